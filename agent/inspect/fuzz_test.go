package inspect

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A stored password hash comes from a dataset: whatever it holds, CheckPassword answers (an error
// or a verdict) without a panic, and never matches a hash it cannot read.
func FuzzCheckPassword(f *testing.F) {
	good, _ := HashPassword("pw")
	for _, s := range []string{good, "", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2i$v=19$m=8,t=1,p=1$x$y",
		"$argon2id$v=19$m=8,t=1,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "plaintext"} {
		f.Add(s, "pw")
	}
	f.Fuzz(func(t *testing.T, hash, pw string) {
		ok, err := CheckPassword(hash, pw)
		if err != nil && ok {
			t.Fatalf("CheckPassword(%q) matched and failed", hash)
		}
	})
}

// Any query on any page of a logged-in inspector gets a page or a clear 4xx, never a 500 or a
// panic.
func FuzzPageParameters(f *testing.F) {
	for _, s := range []string{"/?date=2026-03-01", "/search?q=学员&since=2026-01-01&until=2026-12-31&kind=sign_in&flag=late&page=2",
		"/reports?programme=P-ELEC", "/reports/sheet?session=S1", "/bundle?since=2026-01-01", "/evidence/1/aa", "/visit?recorded=3",
		"/?lang=en", "/search?page=99999999999"} {
		f.Add(s)
	}
	b, _ := fixture(f)
	srv := New(b, Options{})
	h := srv.Handler()
	ss := srv.sess.create("fuzz", "inspector", time.Now())
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.Parse(target)
		if err != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "/bundle") {
			return // the bundle is written, not parsed: left to the handler tests
		}
		req := httptest.NewRequest("GET", "http://box/", nil)
		req.URL, req.RequestURI = u, u.RequestURI()
		req.AddCookie(&http.Cookie{Name: cookieSession, Value: ss.id})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %s: %d", target, rec.Code)
		}
	})
}
