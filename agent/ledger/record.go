package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors of this package.
var (
	ErrShortRecord = errors.New("ledger: record shorter than a signature and a body")
	ErrBadPrefix   = errors.New(`ledger: body does not start with {"prev":"<64 hex>"`)
	ErrSignature   = errors.New("ledger: signature does not verify")
)

// SigSize is the size of the signature at the start of every record.
const SigSize = ed25519.SignatureSize

// ZeroHash is the prev of the first event of an epoch.
var ZeroHash [32]byte

const prevPrefix = `{"prev":"`

// Record is a sealed event as stored and sent: signature, then body.
type Record []byte

// Sig is the record's ed25519 signature.
func (r Record) Sig() []byte { return r[:SigSize] }

// Body is the signed JSON body.
func (r Record) Body() []byte { return r[SigSize:] }

// Hash is the SHA-256 of the whole record, what the next event names as prev.
func (r Record) Hash() [32]byte { return sha256.Sum256(r) }

// Prev returns the prev hash named by the body without decoding the rest of it.
func (r Record) Prev() ([32]byte, error) {
	var h [32]byte
	if len(r) < SigSize+len(prevPrefix)+64+1 {
		return h, ErrShortRecord
	}
	b := r[SigSize:]
	if !bytes.HasPrefix(b, []byte(prevPrefix)) || b[len(prevPrefix)+64] != '"' {
		return h, ErrBadPrefix
	}
	if _, err := hex.Decode(h[:], b[len(prevPrefix):len(prevPrefix)+64]); err != nil {
		return h, ErrBadPrefix
	}
	return h, nil
}

// Verify checks the record's signature with the device's public key.
func (r Record) Verify(pub ed25519.PublicKey) error {
	if len(r) <= SigSize {
		return ErrShortRecord
	}
	if !ed25519.Verify(pub, r.Body(), r.Sig()) {
		return ErrSignature
	}
	return nil
}

// Event decodes the body. It does not check the signature.
func (r Record) Event() (Event, error) {
	var e Event
	if len(r) <= SigSize {
		return e, ErrShortRecord
	}
	if err := json.Unmarshal(r.Body(), &e); err != nil {
		return e, fmt.Errorf("ledger: decode body: %w", err)
	}
	if e.V != Version {
		return e, fmt.Errorf("ledger: body version %d, want %d", e.V, Version)
	}
	return e, nil
}

// Seal links e to prev, encodes it and signs it. It sets e.Prev and e.V; everything else, including
// Device, Epoch, Seq and ID, is the caller's.
func Seal(e *Event, prev [32]byte, key ed25519.PrivateKey) (Record, error) {
	e.Prev = hex.EncodeToString(prev[:])
	e.V = Version
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("ledger: encode event: %w", err)
	}
	rec := make(Record, SigSize, SigSize+len(body))
	copy(rec, ed25519.Sign(key, body))
	return append(rec, body...), nil
}

// NewID returns a UUIDv7 (RFC 9562) for an event made at t: 48 bits of Unix milliseconds, then
// random bits, so IDs sort by creation time.
func NewID(t time.Time) string {
	var u [16]byte
	if _, err := rand.Read(u[6:]); err != nil {
		panic("ledger: crypto/rand failed: " + err.Error()) // rand.Read never fails on Linux
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
