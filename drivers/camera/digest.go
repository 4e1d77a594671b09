package camera

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
)

// digestAuth answers HTTP authentication challenges for one camera: Digest (RFC 7616, and RFC
// 2617's MD5 with or without qop) with algorithm MD5, SHA-256 or their -sess variants and
// qop=auth, or Basic (RFC 7617) when that is all the camera offers. After the first challenge it
// authorises every request up front, counting nonce uses, until the camera sends a new challenge
// (a stale nonce).
type digestAuth struct {
	user, password string

	mu    sync.Mutex
	ch    *challenge // nil until the first 401
	nc    uint32
	basic bool
}

// challenge is a parsed WWW-Authenticate: Digest header.
type challenge struct {
	realm, nonce, opaque, algorithm string
	qop                             bool // qop=auth offered
	userhash                        bool
	stale                           bool
}

// errNoChallenge means a 401 carried no challenge this client can answer.
var errNoChallenge = errors.New("no Digest (MD5, SHA-256) or Basic challenge")

// setChallenge picks the best challenge from a 401's WWW-Authenticate headers: Digest SHA-256
// before MD5, Basic only if there is no Digest. It reports whether the nonce was stale (worth
// retrying at once with the same credentials).
func (a *digestAuth) setChallenge(h http.Header) (stale bool, err error) {
	var best *challenge
	basic := false
	for _, v := range h.Values("WWW-Authenticate") {
		for _, c := range splitChallenges(v) {
			scheme, params, _ := strings.Cut(strings.TrimSpace(c), " ")
			switch strings.ToLower(scheme) {
			case "basic":
				basic = true
			case "digest":
				ch := parseChallenge(params)
				if ch == nil {
					continue
				}
				if best == nil || (strength(ch.algorithm) > strength(best.algorithm)) {
					best = ch
				}
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case best != nil:
		a.ch, a.nc, a.basic = best, 0, false
		return best.stale, nil
	case basic:
		a.ch, a.basic = nil, true
		return false, nil
	}
	return false, errNoChallenge
}

// strength orders the algorithms this client speaks; 0 for one it does not.
func strength(alg string) int {
	switch strings.ToUpper(alg) {
	case "", "MD5", "MD5-SESS":
		return 1
	case "SHA-256", "SHA-256-SESS":
		return 2
	}
	return 0
}

// splitChallenges splits a header value that may hold several challenges ("Digest a=1, b=2, Basic
// realm=x") at each scheme name, respecting quoted strings.
func splitChallenges(v string) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			// A new challenge starts if the next token is a scheme (a word followed by a space
			// or the end), not a param (a word followed by '=').
			rest := strings.TrimLeft(v[i+1:], " \t")
			tok := rest
			if j := strings.IndexAny(rest, " =,"); j >= 0 {
				tok = rest[:j]
			}
			if tok != "" && (len(tok) == len(rest) || rest[len(tok)] == ' ') {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// parseChallenge reads a Digest challenge's parameters; nil if it cannot be answered.
func parseChallenge(params string) *challenge {
	p := parseParams(params)
	ch := &challenge{realm: p["realm"], nonce: p["nonce"], opaque: p["opaque"], algorithm: p["algorithm"]}
	if ch.nonce == "" || strength(ch.algorithm) == 0 {
		return nil
	}
	if q, ok := p["qop"]; ok {
		for _, o := range strings.Split(q, ",") {
			ch.qop = ch.qop || strings.TrimSpace(o) == "auth"
		}
		if !ch.qop {
			return nil // auth-int only
		}
	}
	ch.stale = strings.EqualFold(p["stale"], "true")
	ch.userhash = strings.EqualFold(p["userhash"], "true")
	return ch
}

// parseParams reads `key=value, key="quoted, value"` pairs; keys lower-cased.
func parseParams(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t,")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val strings.Builder
		if strings.HasPrefix(s, `"`) {
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			s = s[min(i+1, len(s)):]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val.WriteString(strings.TrimSpace(s[:end]))
			s = s[end:]
		}
		out[key] = val.String()
	}
	return out
}

// authorize sets the Authorization header for req, if a challenge has been seen.
func (a *digestAuth) authorize(req *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.basic {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.user+":"+a.password)))
		return
	}
	if a.ch == nil {
		return
	}
	a.nc++
	cnonce := make([]byte, 16)
	rand.Read(cnonce) // never fails (crypto/rand since Go 1.24)
	req.Header.Set("Authorization", a.ch.answer(a.user, a.password, req.Method, req.URL.RequestURI(),
		hex.EncodeToString(cnonce), a.nc))
}

// answer is the Authorization header value for one request (RFC 7616 section 3.4).
func (ch *challenge) answer(user, password, method, uri, cnonce string, nc uint32) string {
	alg := strings.ToUpper(ch.algorithm)
	var newHash func() hash.Hash = md5.New
	if strings.HasPrefix(alg, "SHA-256") {
		newHash = sha256.New
	}
	h := func(s string) string {
		x := newHash()
		x.Write([]byte(s))
		return hex.EncodeToString(x.Sum(nil))
	}
	ncs := fmt.Sprintf("%08x", nc)
	ha1 := h(user + ":" + ch.realm + ":" + password)
	if strings.HasSuffix(alg, "-SESS") {
		ha1 = h(ha1 + ":" + ch.nonce + ":" + cnonce)
	}
	ha2 := h(method + ":" + uri)
	var resp string
	if ch.qop {
		resp = h(ha1 + ":" + ch.nonce + ":" + ncs + ":" + cnonce + ":auth:" + ha2)
	} else {
		resp = h(ha1 + ":" + ch.nonce + ":" + ha2)
	}
	name := user
	if ch.userhash {
		name = h(user + ":" + ch.realm)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username=%s, realm=%s, nonce=%s, uri=%s`, quote(name), quote(ch.realm), quote(ch.nonce), quote(uri))
	if ch.algorithm != "" {
		fmt.Fprintf(&b, `, algorithm=%s`, ch.algorithm)
	}
	if ch.qop {
		fmt.Fprintf(&b, `, qop=auth, nc=%s, cnonce=%s`, ncs, quote(cnonce))
	}
	fmt.Fprintf(&b, `, response=%s`, quote(resp))
	if ch.opaque != "" {
		fmt.Fprintf(&b, `, opaque=%s`, quote(ch.opaque))
	}
	if ch.userhash {
		b.WriteString(`, userhash=true`)
	}
	return b.String()
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
