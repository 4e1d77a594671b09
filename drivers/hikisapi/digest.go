package hikisapi

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// challenge is a WWW-Authenticate: Digest header's parameters (RFC 7616).
type challenge struct {
	realm, nonce, opaque, algorithm, qop string
	stale                                bool
}

// parseChallenge reads the Digest challenge of a WWW-Authenticate header; ok is false when the
// header is not a Digest challenge or lacks a realm or nonce.
func parseChallenge(h string) (c challenge, ok bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return c, false
	}
	for _, kv := range splitParams(rest) {
		k, v, _ := strings.Cut(kv, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch k {
		case "realm":
			c.realm = v
		case "nonce":
			c.nonce = v
		case "opaque":
			c.opaque = v
		case "algorithm":
			c.algorithm = v
		case "qop":
			c.qop = v
		case "stale":
			c.stale = strings.EqualFold(v, "true")
		}
	}
	if c.algorithm == "" {
		c.algorithm = "MD5"
	}
	return c, c.realm != "" && c.nonce != ""
}

// splitParams splits a comma-separated parameter list, keeping commas inside quotes.
func splitParams(s string) []string {
	var out []string
	var b strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			b.WriteRune(r)
		case r == ',' && !quoted:
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// digestHash is the hash of an algorithm name, nil for one this package does not speak.
func digestHash(alg string) func() hash.Hash {
	switch strings.TrimSuffix(strings.ToUpper(alg), "-SESS") {
	case "MD5":
		return md5.New
	case "SHA-256":
		return sha256.New
	}
	return nil
}

func hexHash(h func() hash.Hash, s string) string {
	x := h()
	x.Write([]byte(s))
	return hex.EncodeToString(x.Sum(nil))
}

// authorization computes the Authorization header for one request under c, with the nonce count
// nc (RFC 7616 section 3.4, qop=auth; the -sess variants too).
func (c challenge) authorization(user, pass, method, uri string, nc uint32) (string, error) {
	h := digestHash(c.algorithm)
	if h == nil {
		return "", fmt.Errorf("hikisapi: digest algorithm %q not supported (MD5, SHA-256)", c.algorithm)
	}
	var cb [12]byte
	if _, err := rand.Read(cb[:]); err != nil {
		return "", fmt.Errorf("hikisapi: digest cnonce: %w", err)
	}
	cnonce := hex.EncodeToString(cb[:])
	ncs := fmt.Sprintf("%08x", nc)
	qop := ""
	for _, q := range strings.Split(c.qop, ",") {
		if strings.TrimSpace(q) == "auth" {
			qop = "auth"
		}
	}
	if qop == "" && c.qop != "" {
		return "", fmt.Errorf("hikisapi: digest qop %q not supported (auth)", c.qop)
	}
	resp := c.response(h, user, pass, method, uri, ncs, cnonce, qop)
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s, response="%s"`,
		user, c.realm, c.nonce, uri, c.algorithm, resp)
	if qop != "" {
		fmt.Fprintf(&b, `, qop=%s, nc=%s, cnonce="%s"`, qop, ncs, cnonce)
	}
	if c.opaque != "" {
		fmt.Fprintf(&b, `, opaque="%s"`, c.opaque)
	}
	return b.String(), nil
}

// response is the request digest of RFC 7616 section 3.4.1 (RFC 2069's when qop is empty).
func (c challenge) response(h func() hash.Hash, user, pass, method, uri, ncs, cnonce, qop string) string {
	ha1 := hexHash(h, user+":"+c.realm+":"+pass)
	if strings.HasSuffix(strings.ToUpper(c.algorithm), "-SESS") {
		ha1 = hexHash(h, ha1+":"+c.nonce+":"+cnonce)
	}
	ha2 := hexHash(h, method+":"+uri)
	if qop == "" {
		return hexHash(h, ha1+":"+c.nonce+":"+ha2)
	}
	return hexHash(h, ha1+":"+c.nonce+":"+ncs+":"+cnonce+":"+qop+":"+ha2)
}
