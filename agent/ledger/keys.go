package ledger

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Key files are PEM: PKCS #8 for the private key, PKIX for the public key, as openssl writes them.
const (
	PrivateKeyFile = "device.key"
	PublicKeyFile  = "device.pub"
)

// GenerateKeyFiles makes a new ed25519 key pair in dir as name.key (mode 0600) and name.pub. It
// refuses to overwrite an existing key: a device key replaced is a ledger nobody can verify.
func GenerateKeyFiles(dir, name string) (priv, pub string, err error) {
	priv = filepath.Join(dir, name+".key")
	pub = filepath.Join(dir, name+".pub")
	for _, p := range []string{priv, pub} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("ledger: %s exists; refusing to overwrite a key", p)
		}
	}
	pk, sk, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", "", fmt.Errorf("ledger: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(sk)
	if err != nil {
		return "", "", fmt.Errorf("ledger: encode private key: %w", err)
	}
	pder, err := x509.MarshalPKIXPublicKey(pk)
	if err != nil {
		return "", "", fmt.Errorf("ledger: encode public key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("ledger: %w", err)
	}
	if err := writeFileSync(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := writeFileSync(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644); err != nil {
		return "", "", err
	}
	return priv, pub, nil
}

func writeFileSync(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("ledger: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ledger: sync %s: %w", path, err)
	}
	return f.Close()
}

// LoadPrivateKey reads a PEM PKCS #8 ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("ledger: %s: %w", path, err)
	}
	sk, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("ledger: %s: not an ed25519 key", path)
	}
	return sk, nil
}

// LoadPublicKey reads a PEM PKIX ed25519 public key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	return ParsePublicKey(der)
}

// ParsePublicKey decodes a DER PKIX ed25519 public key.
func ParsePublicKey(der []byte) (ed25519.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("ledger: public key: %w", err)
	}
	pk, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("ledger: public key: not ed25519")
	}
	return pk, nil
}

// EncodePublicKey returns pk as PEM.
func EncodePublicKey(pk ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pk)
	if err != nil {
		panic(err) // cannot fail for an ed25519 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("ledger: %s: not a PEM %q block", path, typ)
	}
	return blk.Bytes, nil
}
