package uplink

// SetTestHookBeforeSwap sets a function run after a dataset is fully staged and before the swap.
func SetTestHookBeforeSwap(f func()) { testHookBeforeSwap = f }

// WithDefaults is the configuration Run uses.
func WithDefaults(c Config) Config { return c.withDefaults() }
