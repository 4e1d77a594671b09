package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// Version is the payload version this build writes and the only one it reads.
const Version = 1

// Limits. A payload over a limit is malformed.
const (
	MaxPayload     = 16 << 20 // bytes of one MQTT payload
	MaxBatchEvents = 65536    // records in one batch
	MaxChunkSize   = 4 << 20  // bytes of one dataset chunk
	MaxChunks      = 65536    // chunks of one dataset
	MaxDatasetSize = 256 << 20
)

// minRecord is the shortest record that can hold a signature and a body starting with a prev.
const minRecord = ledger.SigSize + len(`{"prev":"`) + 64 + len(`"}`)

// decode reads p into v strictly: the version first (so that a payload of another version is
// refused as such, not as unknown fields), then every field, refusing unknown ones and trailing
// data.
func decode(p []byte, v any) error {
	if err := checkVersion(p); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the object", ErrMalformed)
	}
	return nil
}

// checkVersion refuses a payload that is too large, not a JSON object, or of another version.
func checkVersion(p []byte) error {
	if len(p) > MaxPayload {
		return fmt.Errorf("%w: payload of %d bytes, limit %d", ErrMalformed, len(p), MaxPayload)
	}
	var h struct {
		V *json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal(p, &h); err != nil {
		return fmt.Errorf("%w: not a JSON object: %v", ErrMalformed, err)
	}
	if h.V == nil {
		return fmt.Errorf("%w: no \"v\" field", ErrMalformed)
	}
	if n, err := strconv.Atoi(string(*h.V)); err != nil || n != Version {
		return fmt.Errorf("%w: v %s, this build speaks %d", ErrVersion, *h.V, Version)
	}
	return nil
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// Batch is a run of consecutive ledger records of one device epoch, on up/events.
type Batch struct {
	V        int             `json:"v"`
	Device   string          `json:"device"`
	Epoch    uint64          `json:"epoch"`
	FirstSeq uint64          `json:"first_seq"`
	LastSeq  uint64          `json:"last_seq"`
	Events   []ledger.Record `json:"events"` // base64 of each record exactly as stored
}

// Check reports the first way b breaks the contract.
func (b *Batch) Check() error {
	if err := CheckName(b.Device); err != nil {
		return malformed("batch: device: %v", err)
	}
	switch {
	case b.Epoch == 0:
		return malformed("batch: epoch is 0")
	case b.FirstSeq == 0:
		return malformed("batch: first_seq is 0 (seqs start at 1)")
	case b.LastSeq < b.FirstSeq:
		return malformed("batch: last_seq %d before first_seq %d", b.LastSeq, b.FirstSeq)
	case b.LastSeq-b.FirstSeq >= MaxBatchEvents:
		return malformed("batch: %d..%d is over %d events", b.FirstSeq, b.LastSeq, MaxBatchEvents)
	case uint64(len(b.Events)) != b.LastSeq-b.FirstSeq+1:
		return malformed("batch: %d events for seqs %d..%d", len(b.Events), b.FirstSeq, b.LastSeq)
	}
	for i, r := range b.Events {
		if len(r) < minRecord {
			return malformed("batch: events[%d]: %d bytes, shorter than a record", i, len(r))
		}
	}
	return nil
}

// Encode checks b and writes it as JSON (setting V). It is written by hand: a batch is the bulk
// of the traffic and is the same JSON the encoding/json package would write.
func (b *Batch) Encode() ([]byte, error) {
	b.V = Version
	if err := b.Check(); err != nil {
		return nil, err
	}
	n := 128 + len(b.Device)
	for _, r := range b.Events {
		n += base64.StdEncoding.EncodedLen(len(r)) + 3
	}
	p := make([]byte, 0, n)
	p = append(p, `{"v":1,"device":"`...)
	p = append(p, b.Device...) // CheckName allows nothing JSON would escape
	p = append(p, `","epoch":`...)
	p = strconv.AppendUint(p, b.Epoch, 10)
	p = append(p, `,"first_seq":`...)
	p = strconv.AppendUint(p, b.FirstSeq, 10)
	p = append(p, `,"last_seq":`...)
	p = strconv.AppendUint(p, b.LastSeq, 10)
	p = append(p, `,"events":[`...)
	for i, r := range b.Events {
		if i > 0 {
			p = append(p, ',')
		}
		p = append(p, '"')
		p = base64.StdEncoding.AppendEncode(p, r)
		p = append(p, '"')
	}
	p = append(p, "]}"...)
	if len(p) > MaxPayload {
		return nil, malformed("batch: %d bytes, limit %d", len(p), MaxPayload)
	}
	return p, nil
}

// DecodeBatch reads an up/events payload. A payload in the exact form Encode writes is read by a
// fast path (the bulk of the traffic); any other JSON goes through the strict general decoder,
// with the same result.
func DecodeBatch(p []byte) (*Batch, error) {
	b, ok := decodeBatchFast(p)
	if !ok {
		b = new(Batch)
		if err := decode(p, b); err != nil {
			return nil, err
		}
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeBatchFast parses the canonical form written by Encode:
//
//	{"v":1,"device":"<name>","epoch":N,"first_seq":N,"last_seq":N,"events":["<base64>",...]}
//
// with no white space. It reports false for anything else, including valid JSON in another
// form, which the general decoder then reads. The records share one buffer.
func decodeBatchFast(p []byte) (*Batch, bool) {
	if len(p) > MaxPayload {
		return nil, false
	}
	var b Batch
	rest, ok := bytes.CutPrefix(p, []byte(`{"v":1,"device":"`))
	if !ok {
		return nil, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || CheckName(string(rest[:i])) != nil {
		return nil, false
	}
	b.V, b.Device, rest = Version, string(rest[:i]), rest[i+1:]
	for _, f := range []struct {
		key string
		dst *uint64
	}{{`,"epoch":`, &b.Epoch}, {`,"first_seq":`, &b.FirstSeq}, {`,"last_seq":`, &b.LastSeq}} {
		if rest, ok = bytes.CutPrefix(rest, []byte(f.key)); !ok {
			return nil, false
		}
		if *f.dst, rest, ok = cutUint(rest); !ok {
			return nil, false
		}
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"events":[`)); !ok {
		return nil, false
	}
	if !bytes.HasSuffix(rest, []byte("]}")) || bytes.ContainsAny(rest, "\r\n") { // base64 would skip them, JSON refuses them
		return nil, false
	}
	rest = rest[:len(rest)-2]
	if len(rest) == 0 {
		return &b, true // no events: Check refuses it
	}
	n := bytes.Count(rest, []byte{','}) + 1
	if n > MaxBatchEvents {
		return nil, false
	}
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(rest)))
	b.Events = make([]ledger.Record, 0, n)
	for k := 0; k < n; k++ {
		var item []byte
		if k < n-1 {
			j := bytes.IndexByte(rest, ',')
			item, rest = rest[:j], rest[j+1:]
		} else {
			item = rest
		}
		if len(item) < 2 || item[0] != '"' || item[len(item)-1] != '"' {
			return nil, false
		}
		m, err := base64.StdEncoding.Decode(buf, item[1:len(item)-1])
		if err != nil {
			return nil, false
		}
		b.Events = append(b.Events, buf[:m:m])
		buf = buf[m:]
	}
	return &b, true
}

// cutUint reads a JSON unsigned integer (no sign, no leading zero, no fraction) at the start of p.
func cutUint(p []byte) (uint64, []byte, bool) {
	i := 0
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	if i == 0 || i > 1 && p[0] == '0' {
		return 0, nil, false
	}
	n, err := strconv.ParseUint(string(p[:i]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return n, p[i:], true
}

// State is the retained message on .../state. An online agent publishes the whole of it when it
// connects (birth) and again every few minutes and after a dataset is applied; the will and a
// clean shutdown publish {"v":1,"device":...,"online":false}.
type State struct {
	V      int    `json:"v"`
	Device string `json:"device"`
	Online bool   `json:"online"`
	// The ledger: the current epoch, its last seq, the central's cumulative ack, and the
	// difference (events waiting to be acknowledged) with the age of the oldest of them.
	Epoch        uint64 `json:"epoch,omitempty"`
	HeadSeq      uint64 `json:"head_seq,omitempty"`
	AckedThrough uint64 `json:"acked_through,omitempty"`
	Backlog      uint64 `json:"backlog,omitempty"`
	// HeadHash is the hash of the record at HeadSeq (ledger.Record.Hash, hex) and HeadSig the
	// device key's signature over HeadMessage: the device witnesses its head, so that a later,
	// shorter or different chain contradicts what it signed (see docs/mqtt.md, "Witnessed heads").
	HeadHash         string  `json:"head_hash,omitempty"`
	HeadSig          []byte  `json:"head_sig,omitempty"`
	OldestUnackedAge float64 `json:"oldest_unacked_age,omitempty"` // seconds
	// Disk is the file system of the agent's state directory.
	Disk *Disk `json:"disk,omitempty"`
	// DatasetVersions is the active version of each dataset ("roster": 12).
	DatasetVersions map[string]uint64 `json:"dataset_versions,omitempty"`
	// Drivers is the health of each configured source.
	Drivers map[string]DriverHealth `json:"drivers,omitempty"`
	Clock   *Clock                  `json:"clock,omitempty"`
	// Agent is the agent's software version.
	Agent string `json:"agent,omitempty"`
}

// Disk is free and total space in bytes.
type Disk struct {
	FreeBytes  uint64 `json:"free_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
}

// Clock is the agent's clock when it published the state.
type Clock struct {
	Wall   time.Time `json:"wall"`
	Synced bool      `json:"synced"` // the kernel considers the clock synchronised
	Boot   string    `json:"boot"`   // kernel boot ID
}

// DriverHealth is one source's health (the JSON of drivers.Health).
type DriverHealth struct {
	State    string    `json:"state"` // starting, ok, degraded, down
	Since    time.Time `json:"since"`
	LastErr  string    `json:"last_error,omitempty"`
	Readings uint64    `json:"readings"`
	Dropped  uint64    `json:"dropped"`
	Reopens  uint64    `json:"reopens"`
}

// Check reports the first way s breaks the contract.
func (s *State) Check() error {
	if err := CheckName(s.Device); err != nil {
		return malformed("state: device: %v", err)
	}
	if s.Online && s.Epoch == 0 {
		return malformed("state: online without an epoch")
	}
	if s.AckedThrough > s.HeadSeq {
		return malformed("state: acked_through %d beyond head_seq %d", s.AckedThrough, s.HeadSeq)
	}
	if s.Backlog != s.HeadSeq-s.AckedThrough {
		return malformed("state: backlog %d, head_seq - acked_through is %d", s.Backlog, s.HeadSeq-s.AckedThrough)
	}
	if s.HeadHash != "" || s.HeadSig != nil {
		if err := checkHash(s.HeadHash); err != nil {
			return malformed("state: head_hash: %v", err)
		}
		if len(s.HeadSig) != ed25519.SignatureSize {
			return malformed("state: head_sig of %d bytes, want %d", len(s.HeadSig), ed25519.SignatureSize)
		}
		if s.HeadSeq == 0 {
			return malformed("state: head_hash without a head_seq")
		}
	}
	if s.OldestUnackedAge < 0 || math.IsNaN(s.OldestUnackedAge) || math.IsInf(s.OldestUnackedAge, 0) {
		return malformed("state: oldest_unacked_age %v", s.OldestUnackedAge)
	}
	for name := range s.DatasetVersions {
		if err := CheckDataset(name); err != nil {
			return malformed("state: dataset_versions: %v", err)
		}
	}
	return nil
}

// HeadMessage is what a device signs to witness its head: a fixed prefix, the device, the epoch,
// the seq and the hex hash, one a line.
func HeadMessage(device string, epoch, seq uint64, hash string) []byte {
	return fmt.Appendf(nil, "kaoqin head v1\n%s\n%d\n%d\n%s", device, epoch, seq, hash)
}

// SignHead sets HeadHash and HeadSig for the head (s.Epoch, s.HeadSeq, hash) with the device key.
func (s *State) SignHead(hash [32]byte, key ed25519.PrivateKey) {
	s.HeadHash = hex.EncodeToString(hash[:])
	s.HeadSig = ed25519.Sign(key, HeadMessage(s.Device, s.Epoch, s.HeadSeq, s.HeadHash))
}

// VerifyHead checks HeadSig with the device's key. A state without a signed head wraps
// ErrSignature too: it witnesses nothing.
func (s *State) VerifyHead(pub ed25519.PublicKey) error {
	if s.HeadHash == "" || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: state: no signed head", ErrSignature)
	}
	if !ed25519.Verify(pub, HeadMessage(s.Device, s.Epoch, s.HeadSeq, s.HeadHash), s.HeadSig) {
		return fmt.Errorf("%w: state: head_sig does not verify with the device key", ErrSignature)
	}
	return nil
}

// Encode checks s and writes it as JSON (setting V).
func (s *State) Encode() ([]byte, error) {
	s.V = Version
	if err := s.Check(); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// DecodeState reads a state payload.
func DecodeState(p []byte) (*State, error) {
	var s State
	if err := decode(p, &s); err != nil {
		return nil, err
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Ack is the central's cumulative acknowledgement on down/ack, and the receipt the device keeps:
// every event of Epoch with seq up to AckedThrough is committed centrally, and the event at
// AckedThrough hashes to Hash (ledger.Record.Hash, hex). It is sent only after the central's
// commit, in a Signed envelope of kind ack signed with the central key (SealAck), so that a box
// holds proof of what the central system holds: events removed after that seq show.
type Ack struct {
	V            int       `json:"v"`
	Device       string    `json:"device"`
	Epoch        uint64    `json:"epoch"`
	AckedThrough uint64    `json:"acked_through"`
	Hash         string    `json:"hash"`
	Time         time.Time `json:"time"` // the central's clock at its commit
	// Signed is the down/ack payload the ack was read from (the signed envelope), set by
	// DecodeAck: the box keeps it as its receipt.
	Signed []byte `json:"-"`
}

// Check reports the first way a breaks the contract.
func (a *Ack) Check() error {
	if err := CheckName(a.Device); err != nil {
		return malformed("ack: device: %v", err)
	}
	switch {
	case a.Epoch == 0:
		return malformed("ack: epoch is 0")
	case a.AckedThrough == 0:
		return malformed("ack: acked_through is 0")
	case a.Time.IsZero():
		return malformed("ack: time is missing")
	}
	if err := checkHash(a.Hash); err != nil {
		return malformed("ack: hash: %v", err)
	}
	return nil
}

// HashBytes is Hash as bytes (zero if Hash is not a SHA-256 in hex).
func (a *Ack) HashBytes() (h [32]byte) {
	if b, err := hex.DecodeString(a.Hash); err == nil && len(b) == 32 {
		copy(h[:], b)
	}
	return h
}

// SealAck signs a with the central key and returns the down/ack payload.
func SealAck(a *Ack, key ed25519.PrivateKey) ([]byte, error) {
	a.V = Version
	if err := a.Check(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("wire: ack: %w", err)
	}
	return seal(KindSignedAck, body, key)
}

// DecodeAck reads a down/ack payload, verifies its signature with the central key and decodes
// the ack strictly. An unsigned ack (the form before receipts) is refused as malformed, one
// signed by another key wraps ErrSignature.
func DecodeAck(p []byte, pub ed25519.PublicKey) (*Ack, error) {
	if err := checkVersion(p); err != nil {
		return nil, err
	}
	if kind, err := peekKind(p); err != nil || kind == "" {
		return nil, malformed("ack: unsigned (an ack must be a signed envelope of kind %q)", KindSignedAck)
	}
	s, err := decodeSigned(p, KindSignedAck)
	if err != nil {
		return nil, err
	}
	if err := s.verify(pub); err != nil {
		return nil, err
	}
	a, err := ParseAck(s.Body)
	if err != nil {
		return nil, err
	}
	a.Signed = append([]byte(nil), p...)
	return a, nil
}

// ParseAck decodes the body of an ack envelope strictly, without verifying anything.
func ParseAck(body []byte) (*Ack, error) {
	var a Ack
	if err := decode(body, &a); err != nil {
		return nil, err
	}
	if err := a.Check(); err != nil {
		return nil, err
	}
	return &a, nil
}

// EvidenceAck is the central system's ack on down/evack of one evidence photo it received on
// up/evidence/{sha256} and stored: the photo's hex SHA-256.
type EvidenceAck struct {
	V      int    `json:"v"`
	SHA256 string `json:"sha256"`
}

// Encode writes a as JSON (setting V).
func (a *EvidenceAck) Encode() ([]byte, error) {
	a.V = Version
	if err := checkHash(a.SHA256); err != nil {
		return nil, malformed("evidence ack: %v", err)
	}
	return json.Marshal(a)
}

// DecodeEvidenceAck reads a down/evack payload.
func DecodeEvidenceAck(p []byte) (*EvidenceAck, error) {
	var a EvidenceAck
	if err := decode(p, &a); err != nil {
		return nil, err
	}
	if err := checkHash(a.SHA256); err != nil {
		return nil, malformed("evidence ack: %v", err)
	}
	return &a, nil
}

// Applied statuses.
const (
	StatusApplied = "applied" // the dataset version is active
	StatusRefused = "refused" // the dataset version was refused; the previous one stays active
)

// Applied is the agent's report on up/applied after it swapped a dataset in (or refused it).
type Applied struct {
	V       int    `json:"v"`
	Dataset string `json:"dataset"`
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256,omitempty"` // hex SHA-256 of the whole dataset; required when applied
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"` // why it was refused
}

// Check reports the first way a breaks the contract.
func (a *Applied) Check() error {
	if err := CheckDataset(a.Dataset); err != nil {
		return malformed("applied: %v", err)
	}
	if a.Version == 0 {
		return malformed("applied: version is 0")
	}
	switch a.Status {
	case StatusApplied:
		if err := checkHash(a.SHA256); err != nil {
			return malformed("applied: sha256: %v", err)
		}
	case StatusRefused:
		if a.Reason == "" {
			return malformed("applied: refused without a reason")
		}
		if a.SHA256 != "" {
			if err := checkHash(a.SHA256); err != nil {
				return malformed("applied: sha256: %v", err)
			}
		}
	default:
		return malformed("applied: status %q, want applied or refused", a.Status)
	}
	return nil
}

// Encode checks a and writes it as JSON (setting V).
func (a *Applied) Encode() ([]byte, error) {
	a.V = Version
	if err := a.Check(); err != nil {
		return nil, err
	}
	return json.Marshal(a)
}

// DecodeApplied reads an up/applied payload.
func DecodeApplied(p []byte) (*Applied, error) {
	var a Applied
	if err := decode(p, &a); err != nil {
		return nil, err
	}
	if err := a.Check(); err != nil {
		return nil, err
	}
	return &a, nil
}

// hexSum is the lower-case hex SHA-256 form used everywhere in the contract.
func hexSum(sum [32]byte) string { return hex.EncodeToString(sum[:]) }

var errNoKind = errors.New(`no "kind" field`)

// peekKind reads the "kind" of a payload without decoding the rest.
func peekKind(p []byte) (string, error) {
	var h struct {
		Kind *string `json:"kind"`
	}
	if err := json.Unmarshal(p, &h); err != nil {
		return "", fmt.Errorf("%w: not a JSON object: %v", ErrMalformed, err)
	}
	if h.Kind == nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, errNoKind)
	}
	return *h.Kind, nil
}
