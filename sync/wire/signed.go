package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Kinds of a Signed envelope and of a data message.
const (
	KindManifest  = "manifest"
	KindCommand   = "command"
	KindSignedAck = "ack" // a signed down/ack (Ack), kept by the device as its receipt
	KindChunk     = "chunk"
)

// Signed is an envelope for what the central signs: a dataset manifest, a command or an ack. Body is the
// JSON of a Manifest or a Command, carried as base64 so that the signed bytes arrive exactly as
// signed; Sig is the ed25519 signature of the central key over Body. A receiver verifies Sig
// over the decoded Body bytes before it reads Body.
type Signed struct {
	V    int    `json:"v"`
	Kind string `json:"kind"` // manifest or command
	Body []byte `json:"body"`
	Sig  []byte `json:"sig"`
}

// seal signs body and returns the envelope's JSON.
func seal(kind string, body []byte, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("wire: sign %s: not an ed25519 private key", kind)
	}
	return json.Marshal(&Signed{V: Version, Kind: kind, Body: body, Sig: ed25519.Sign(key, body)})
}

// decodeSigned reads a Signed envelope of the given kind without verifying it.
func decodeSigned(p []byte, kind string) (*Signed, error) {
	var s Signed
	if err := decode(p, &s); err != nil {
		return nil, err
	}
	if s.Kind != kind {
		return nil, malformed("signed envelope: kind %q, want %q", s.Kind, kind)
	}
	if len(s.Sig) != ed25519.SignatureSize {
		return nil, malformed("signed envelope: sig of %d bytes, want %d", len(s.Sig), ed25519.SignatureSize)
	}
	if len(s.Body) == 0 {
		return nil, malformed("signed envelope: empty body")
	}
	return &s, nil
}

// verify checks the signature with the central key.
func (s *Signed) verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: no central public key", ErrSignature)
	}
	if !ed25519.Verify(pub, s.Body, s.Sig) {
		return fmt.Errorf("%w (%s)", ErrSignature, s.Kind)
	}
	return nil
}

// Manifest describes one version of a dataset sent to one device: its size and SHA-256, and how
// it is cut into chunks. It travels signed (a Signed envelope of kind manifest) on
// down/data/{dataset}, followed by its chunks on the same topic.
type Manifest struct {
	V       int       `json:"v"`
	Dataset string    `json:"dataset"`
	Version uint64    `json:"version"`
	Device  string    `json:"device"` // the device it is for: a manifest for another device is refused
	Issued  time.Time `json:"issued"`
	// Expires, if set, is when the manifest stops being valid: a bundle carried on a USB stick is
	// refused after it, so an old roster kept back cannot be applied months later.
	Expires   time.Time `json:"expires,omitzero"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"` // hex SHA-256 of the whole dataset
	ChunkSize int       `json:"chunk_size"`
	Chunks    []string  `json:"chunks"` // hex SHA-256 of each chunk, in order
}

// Check reports the first way m breaks the contract.
func (m *Manifest) Check() error {
	if err := CheckDataset(m.Dataset); err != nil {
		return malformed("manifest: %v", err)
	}
	if err := CheckName(m.Device); err != nil {
		return malformed("manifest: device: %v", err)
	}
	switch {
	case m.Version == 0:
		return malformed("manifest: version is 0")
	case m.Issued.IsZero():
		return malformed("manifest: issued is missing")
	case !m.Expires.IsZero() && !m.Expires.After(m.Issued):
		return malformed("manifest: expires %s is not after issued %s", m.Expires.Format(time.RFC3339), m.Issued.Format(time.RFC3339))
	case m.Size < 0 || m.Size > MaxDatasetSize:
		return malformed("manifest: size %d outside 0..%d", m.Size, MaxDatasetSize)
	case m.ChunkSize <= 0 || m.ChunkSize > MaxChunkSize:
		return malformed("manifest: chunk_size %d outside 1..%d", m.ChunkSize, MaxChunkSize)
	}
	if err := checkHash(m.SHA256); err != nil {
		return malformed("manifest: sha256: %v", err)
	}
	if want := (m.Size + int64(m.ChunkSize) - 1) / int64(m.ChunkSize); int64(len(m.Chunks)) != want {
		return malformed("manifest: %d chunk hashes, %d bytes in chunks of %d make %d", len(m.Chunks), m.Size, m.ChunkSize, want)
	}
	for i, h := range m.Chunks {
		if err := checkHash(h); err != nil {
			return malformed("manifest: chunks[%d]: %v", i, err)
		}
	}
	return nil
}

// ChunkLen is the length chunk i must have.
func (m *Manifest) ChunkLen(i int) int {
	if i < len(m.Chunks)-1 {
		return m.ChunkSize
	}
	return int(m.Size - int64(m.ChunkSize)*int64(len(m.Chunks)-1))
}

// CheckChunk checks that data is chunk i of the dataset: its length and SHA-256.
func (m *Manifest) CheckChunk(i int, data []byte) error {
	if i < 0 || i >= len(m.Chunks) {
		return fmt.Errorf("chunk %d of %d does not exist", i, len(m.Chunks))
	}
	if len(data) != m.ChunkLen(i) {
		return fmt.Errorf("chunk %d is %d bytes, want %d", i, len(data), m.ChunkLen(i))
	}
	if got := hexSum(sha256.Sum256(data)); got != m.Chunks[i] {
		return fmt.Errorf("chunk %d is corrupt: sha256 %s, manifest says %s", i, got[:12], m.Chunks[i][:12])
	}
	return nil
}

// CheckContent checks that content is the whole dataset: its size and SHA-256.
func (m *Manifest) CheckContent(content []byte) error {
	if int64(len(content)) != m.Size {
		return fmt.Errorf("dataset is %d bytes, manifest says %d", len(content), m.Size)
	}
	if got := hexSum(sha256.Sum256(content)); got != m.SHA256 {
		return fmt.Errorf("dataset sha256 %s, manifest says %s", got[:12], m.SHA256[:12])
	}
	return nil
}

// Chunk is one piece of a dataset on down/data/{dataset}. It is not signed: the signed manifest
// names its SHA-256.
type Chunk struct {
	V       int    `json:"v"`
	Kind    string `json:"kind"` // chunk
	Dataset string `json:"dataset"`
	Version uint64 `json:"version"`
	Index   int    `json:"index"` // from 0
	Data    []byte `json:"data"`
}

// Check reports the first way c breaks the contract.
func (c *Chunk) Check() error {
	if c.Kind != KindChunk {
		return malformed("chunk: kind %q", c.Kind)
	}
	if err := CheckDataset(c.Dataset); err != nil {
		return malformed("chunk: %v", err)
	}
	switch {
	case c.Version == 0:
		return malformed("chunk: version is 0")
	case c.Index < 0 || c.Index >= MaxChunks:
		return malformed("chunk: index %d outside 0..%d", c.Index, MaxChunks-1)
	case len(c.Data) > MaxChunkSize:
		return malformed("chunk: %d bytes, limit %d", len(c.Data), MaxChunkSize)
	}
	return nil
}

// Encode checks c and writes it as JSON (setting V and Kind).
func (c *Chunk) Encode() ([]byte, error) {
	c.V, c.Kind = Version, KindChunk
	if err := c.Check(); err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// Data is a decoded down/data/{dataset} message: exactly one of Manifest (not yet verified) and
// Chunk is set.
type Data struct {
	Manifest *Signed
	Chunk    *Chunk
}

// DecodeData reads a down/data payload. A manifest is returned unverified: call OpenManifest.
func DecodeData(p []byte) (Data, error) {
	if err := checkVersion(p); err != nil {
		return Data{}, err
	}
	kind, err := peekKind(p)
	if err != nil {
		return Data{}, err
	}
	switch kind {
	case KindManifest:
		s, err := decodeSigned(p, KindManifest)
		return Data{Manifest: s}, err
	case KindChunk:
		var c Chunk
		if err := decode(p, &c); err != nil {
			return Data{}, err
		}
		if err := c.Check(); err != nil {
			return Data{}, err
		}
		return Data{Chunk: &c}, nil
	}
	return Data{}, malformed("data: kind %q, want manifest or chunk", kind)
}

// OpenManifest verifies the envelope with the central key and decodes the manifest strictly.
func OpenManifest(s *Signed, pub ed25519.PublicKey) (*Manifest, error) {
	if s.Kind != KindManifest {
		return nil, malformed("manifest: envelope kind %q", s.Kind)
	}
	if err := s.verify(pub); err != nil {
		return nil, err
	}
	return parseManifest(s.Body)
}

func parseManifest(body []byte) (*Manifest, error) {
	var m Manifest
	if err := decode(body, &m); err != nil {
		return nil, err
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Split cuts content into chunks for one device and returns the manifest (not yet signed) and
// the chunks in order.
func Split(dataset string, version uint64, device string, content []byte, chunkSize int, issued time.Time) (*Manifest, []Chunk, error) {
	if chunkSize <= 0 || chunkSize > MaxChunkSize {
		return nil, nil, fmt.Errorf("wire: chunk size %d outside 1..%d", chunkSize, MaxChunkSize)
	}
	m := &Manifest{V: Version, Dataset: dataset, Version: version, Device: device, Issued: issued,
		Size: int64(len(content)), SHA256: hexSum(sha256.Sum256(content)), ChunkSize: chunkSize, Chunks: []string{}}
	var chunks []Chunk
	for i := 0; i*chunkSize < len(content); i++ {
		part := content[i*chunkSize : min((i+1)*chunkSize, len(content))]
		m.Chunks = append(m.Chunks, hexSum(sha256.Sum256(part)))
		chunks = append(chunks, Chunk{V: Version, Kind: KindChunk, Dataset: dataset, Version: version, Index: i, Data: part})
	}
	if err := m.Check(); err != nil {
		return nil, nil, err
	}
	return m, chunks, nil
}

// SealManifest signs m with the central key and returns the down/data payload.
func SealManifest(m *Manifest, key ed25519.PrivateKey) ([]byte, error) {
	m.V = Version
	if err := m.Check(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: manifest: %w", err)
	}
	return seal(KindManifest, body, key)
}

// Commands.
const (
	CmdResync    = "resync"    // send the ledger again from FromSeq of Epoch
	CmdSpotcheck = "spotcheck" // reserved: an attendance spot check (no arguments in v1)
	CmdReconcile = "reconcile" // reserved: a reconciliation request (no arguments in v1)
)

// Command is an instruction from the central on down/cmd, carried in a Signed envelope of kind
// command. ID must be above the last command ID the device accepted (the central uses its clock
// in microseconds, bumped to stay increasing), which makes a replayed command a no-op.
type Command struct {
	V       int       `json:"v"`
	ID      uint64    `json:"id"`
	Device  string    `json:"device"`
	Issued  time.Time `json:"issued"`
	Cmd     string    `json:"cmd"`
	Epoch   uint64    `json:"epoch,omitempty"`    // resync: the epoch to resend
	FromSeq uint64    `json:"from_seq,omitempty"` // resync: the first seq to resend
}

// Check reports the first way c breaks the contract.
func (c *Command) Check() error {
	if err := CheckName(c.Device); err != nil {
		return malformed("command: device: %v", err)
	}
	switch {
	case c.ID == 0:
		return malformed("command: id is 0")
	case c.Issued.IsZero():
		return malformed("command: issued is missing")
	}
	switch c.Cmd {
	case CmdResync:
		if c.Epoch == 0 || c.FromSeq == 0 {
			return malformed("command: resync needs epoch and from_seq (from 1)")
		}
	case CmdSpotcheck, CmdReconcile:
		if c.Epoch != 0 || c.FromSeq != 0 {
			return malformed("command: %s takes no arguments in v%d", c.Cmd, Version)
		}
	default:
		return malformed("command: unknown cmd %q", c.Cmd)
	}
	return nil
}

// SealCommand signs c with the central key and returns the down/cmd payload.
func SealCommand(c *Command, key ed25519.PrivateKey) ([]byte, error) {
	c.V = Version
	if err := c.Check(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("wire: command: %w", err)
	}
	return seal(KindCommand, body, key)
}

// DecodeCommand reads a down/cmd payload, verifies its signature with the central key and
// decodes the command strictly.
func DecodeCommand(p []byte, pub ed25519.PublicKey) (*Command, error) {
	s, err := decodeSigned(p, KindCommand)
	if err != nil {
		return nil, err
	}
	if err := s.verify(pub); err != nil {
		return nil, err
	}
	return parseCommand(s.Body)
}

func parseCommand(body []byte) (*Command, error) {
	var c Command
	if err := decode(body, &c); err != nil {
		return nil, err
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// SHA256Hex is the contract's form of a SHA-256: 64 lower-case hex digits.
func SHA256Hex(b []byte) string { return hex.EncodeToString(sumOf(b)) }

func sumOf(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
