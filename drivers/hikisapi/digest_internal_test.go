package hikisapi

import (
	"testing"
	"time"
)

// The worked examples of RFC 2617 (section 3.5) and RFC 7616 (section 3.9.1).
func TestDigestVectors(t *testing.T) {
	cases := []struct {
		name, header, user, pass, cnonce, want string
	}{
		{"rfc2617 md5", `Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
			"Mufasa", "Circle Of Life", "0a4f113b", "6629fae49393a05397450978507c4ef1"},
		{"rfc7616 md5", `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			"Mufasa", "Circle of Life", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "8ca523f5e9506fed4657c9700eebdbec"},
		{"rfc7616 sha-256", `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			"Mufasa", "Circle of Life", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	}
	for _, c := range cases {
		ch, ok := parseChallenge(c.header)
		if !ok {
			t.Fatalf("%s: challenge not parsed", c.name)
		}
		got := ch.response(digestHash(ch.algorithm), c.user, c.pass, "GET", "/dir/index.html", "00000001", c.cnonce, "auth")
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	if _, ok := parseChallenge(`Basic realm="x"`); ok {
		t.Errorf("a Basic challenge parsed as Digest")
	}
	ch, _ := parseChallenge(`Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth"`)
	if _, err := ch.authorization("u", "p", "GET", "/", 1); err == nil {
		t.Errorf("an unsupported algorithm: got no error")
	}
}

func TestParseUserCheck(t *testing.T) {
	cases := []struct {
		body   string
		locked bool
		unlock time.Duration
		left   int
	}{
		{`<?xml version="1.0" encoding="UTF-8"?><userCheck><statusValue>401</statusValue><statusString>Unauthorized</statusString><lockStatus>unlock</lockStatus><unlockTime>0</unlockTime><retryLoginTime>3</retryLoginTime></userCheck>`, false, 0, 3},
		{`<userCheck><lockStatus>lock</lockStatus><unlockTime>1795</unlockTime><retryLoginTime>0</retryLoginTime></userCheck>`, true, 1795 * time.Second, 0},
		{`<userCheck><lockStatus>locked</lockStatus><unlockTime>N</unlockTime></userCheck>`, true, 0, -1},
		{`{"lockStatus":"lock","unlockTime":600,"retryLoginTime":0}`, true, 600 * time.Second, 0},
		{``, false, 0, -1},
		{`<html>401</html>`, false, 0, -1},
	}
	for _, c := range cases {
		locked, unlock, left := parseUserCheck([]byte(c.body))
		if locked != c.locked || unlock != c.unlock || left != c.left {
			t.Errorf("%q: got locked %v unlock %v left %d, want %v %v %d", c.body, locked, unlock, left, c.locked, c.unlock, c.left)
		}
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Digest realm="DS-K1T341", nonce="abc", qop="auth", algorithm=MD5, stale="false"`)
	f.Add(`Digest realm="a,b", nonce="", opaque="x"`)
	f.Add(`Basic realm="x"`)
	f.Fuzz(func(t *testing.T, h string) {
		c, ok := parseChallenge(h)
		if ok && (c.realm == "" || c.nonce == "") {
			t.Fatalf("accepted a challenge without realm or nonce: %+v", c)
		}
		if ok && digestHash(c.algorithm) != nil {
			if _, err := c.authorization("admin", "pw", "GET", "/ISAPI", 1); err != nil && c.qop == "" {
				t.Fatalf("authorization without qop failed: %v", err)
			}
		}
	})
}

func FuzzParseUserCheck(f *testing.F) {
	f.Add([]byte(`<userCheck><lockStatus>lock</lockStatus><unlockTime>1795</unlockTime><retryLoginTime>0</retryLoginTime></userCheck>`))
	f.Add([]byte(`{"lockStatus":"unlock","retryLoginTime":"4"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, unlock, left := parseUserCheck(b)
		if unlock < 0 || left < -1 {
			t.Fatalf("got unlock %v left %d from %q", unlock, left, b)
		}
	})
}
