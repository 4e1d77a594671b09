package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
)

// KindBundle is the kind of a dataset bundle file.
const KindBundle = "bundle"

// MaxBundle is the largest bundle file read: the largest dataset, base64, and its manifest.
const MaxBundle = MaxDatasetSize/3*4 + 1<<20

// Bundle is a dataset as a file, for a box the network does not reach: the signed manifest the
// central system would send on down/data (made for one device) and the whole content, carried on a
// USB stick and applied with `kaoqin roster import`. It proves what the MQTT path proves: the
// central key signed the manifest, the manifest names the device and the content's SHA-256.
type Bundle struct {
	V        int     `json:"v"`
	Kind     string  `json:"kind"` // bundle
	Manifest *Signed `json:"manifest"`
	Content  []byte  `json:"content"` // base64 in JSON
}

// SealBundle signs m with the central key and returns the bundle file's bytes. m must describe
// content (wire.Split makes it).
func SealBundle(m *Manifest, content []byte, key ed25519.PrivateKey) ([]byte, error) {
	if err := m.CheckContent(content); err != nil {
		return nil, fmt.Errorf("wire: bundle: %w", err)
	}
	env, err := SealManifest(m, key)
	if err != nil {
		return nil, err
	}
	s, err := decodeSigned(env, KindManifest)
	if err != nil {
		return nil, err
	}
	return json.Marshal(&Bundle{V: Version, Kind: KindBundle, Manifest: s, Content: content})
}

// DecodeBundle reads a bundle file strictly without verifying it. A file that is not a bundle
// (a plain roster, say) is ErrMalformed.
func DecodeBundle(p []byte) (*Bundle, error) {
	if len(p) > MaxBundle {
		return nil, malformed("bundle of %d bytes, limit %d", len(p), MaxBundle)
	}
	var h struct {
		V    *json.RawMessage `json:"v"`
		Kind string           `json:"kind"`
	}
	if err := json.Unmarshal(p, &h); err != nil {
		return nil, malformed("bundle: not a JSON object: %v", err)
	}
	if h.Kind != KindBundle {
		return nil, malformed("not a signed bundle (kind %q): make one with kaoqin ingest publish --out", h.Kind)
	}
	if h.V == nil || string(*h.V) != fmt.Sprint(Version) {
		return nil, fmt.Errorf("%w: bundle of another version", ErrVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, malformed("bundle: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("bundle: trailing data after the object")
	}
	if b.Manifest == nil {
		return nil, malformed("bundle: no manifest")
	}
	if b.Manifest.Kind != KindManifest || len(b.Manifest.Sig) != ed25519.SignatureSize || len(b.Manifest.Body) == 0 {
		return nil, malformed("bundle: the manifest is not a signed manifest envelope")
	}
	return &b, nil
}

// Open verifies the bundle with the central key: the manifest's signature, then the content
// against the manifest's size and SHA-256. It returns the manifest; the caller checks that it
// names this device and has not expired. A signature that does not verify, or content that is
// not what was signed, wraps ErrSignature.
func (b *Bundle) Open(pub ed25519.PublicKey) (*Manifest, error) {
	m, err := OpenManifest(b.Manifest, pub)
	if err != nil {
		return nil, err
	}
	if err := m.CheckContent(b.Content); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return m, nil
}

// Claimed is the dataset, version and SHA-256 the bundle's manifest claims, read without
// verifying it, to record what a refused bundle said it was.
func (b *Bundle) Claimed() (dataset string, version uint64, sha string) {
	var m struct {
		Dataset string `json:"dataset"`
		Version uint64 `json:"version"`
		SHA256  string `json:"sha256"`
	}
	if b.Manifest != nil && json.Unmarshal(b.Manifest.Body, &m) == nil && checkHash(m.SHA256) == nil {
		sha = m.SHA256
	}
	if CheckDataset(m.Dataset) == nil {
		dataset = m.Dataset
	}
	return dataset, m.Version, sha
}
