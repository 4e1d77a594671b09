package ingest

// SetInCommit sets a function run inside each transaction that stores records, before it
// commits. Set it before Run.
func SetInCommit(in *Ingester, f func()) { in.inCommit = f }

// WithDefaults is the configuration Run uses.
func WithDefaults(c Config) Config { return c.withDefaults() }
