package camera

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// The worked examples of RFC 2617 section 3.5 and RFC 7616 section 3.9.1.
func TestDigestRFCExamples(t *testing.T) {
	cases := []struct {
		name, user, password, realm, nonce, alg, uri, cnonce, want string
	}{
		{"RFC 2617", "Mufasa", "Circle Of Life", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "",
			"/dir/index.html", "0a4f113b", "6629fae49393a05397450978507c4ef1"},
		{"RFC 7616 MD5", "Mufasa", "Circle of Life", "http-auth@example.org", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "MD5",
			"/dir/index.html", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "8ca523f5e9506fed4657c9700eebdbec"},
		{"RFC 7616 SHA-256", "Mufasa", "Circle of Life", "http-auth@example.org", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "SHA-256",
			"/dir/index.html", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	}
	for _, c := range cases {
		ch := &challenge{realm: c.realm, nonce: c.nonce, algorithm: c.alg, qop: true}
		p := parseParams(strings.TrimPrefix(ch.answer(c.user, c.password, "GET", c.uri, c.cnonce, 1), "Digest "))
		if p["response"] != c.want || p["nc"] != "00000001" || p["qop"] != "auth" || p["uri"] != c.uri {
			t.Errorf("%s: got %v, want response %s with nc 00000001, qop auth", c.name, p, c.want)
		}
	}
}

func TestDigestChallengeChoice(t *testing.T) {
	cases := []struct {
		headers []string
		want    string // algorithm chosen, "basic", or "" for an error
	}{
		{[]string{`Digest realm="r", qop="auth", algorithm=MD5, nonce="n1"`, `Digest realm="r", qop="auth", algorithm=SHA-256, nonce="n2"`}, "SHA-256"},
		{[]string{`Basic realm="r", Digest realm="r, with comma", nonce="n", qop="auth,auth-int"`}, ""}, // MD5 by default
		{[]string{`Basic realm="cam"`}, "basic"},
		{[]string{`Digest realm="r", nonce="n", algorithm=SHA-512-256`}, ""},
		{[]string{`Digest realm="r", nonce="n", qop="auth-int"`}, ""},
		{[]string{`Bearer realm="r"`}, ""},
	}
	for i, c := range cases {
		a := &digestAuth{user: "u", password: "p"}
		_, err := a.setChallenge(http.Header{"Www-Authenticate": c.headers})
		got := ""
		switch {
		case err != nil:
			got = "error"
		case a.basic:
			got = "basic"
		default:
			got = a.ch.algorithm
		}
		want := c.want
		if want == "" && i != 1 {
			want = "error"
		}
		if got != want {
			t.Errorf("case %d %q: got %s, want %s", i, c.headers, got, want)
		}
		if i == 1 && (a.ch == nil || a.ch.realm != "r, with comma" || !a.ch.qop) {
			t.Errorf("case 1: got challenge %+v, want realm \"r, with comma\" and qop auth", a.ch)
		}
	}
}

// digestServer is a camera's snapshot URL behind Digest authentication, checked independently of
// the client's code: it offers SHA-256 and MD5, rotates its nonce every `uses` requests (the
// next request then gets stale=true) and records what it saw.
type digestServer struct {
	user, password string
	uses           int
	frames         [][]byte

	mu         sync.Mutex
	nonce      int
	used       int
	challenges int
	algs       map[string]int
	ncs        []string
	served     int
	fail       int // answer this many requests with 503 first
}

func (s *digestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nonce := fmt.Sprintf("nonce-%d", s.nonce)
	p := parseParams(strings.TrimPrefix(r.Header.Get("Authorization"), "Digest "))
	h := func(data string) string {
		if p["algorithm"] == "SHA-256" {
			x := sha256.Sum256([]byte(data))
			return hex.EncodeToString(x[:])
		}
		x := md5.Sum([]byte(data))
		return hex.EncodeToString(x[:])
	}
	ha1 := h(s.user + ":camera:" + s.password)
	want := h(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":auth:" + h(r.Method+":"+r.URL.RequestURI()))
	ok := p["username"] == s.user && p["response"] == want && p["uri"] == r.URL.RequestURI() && p["qop"] == "auth" && p["opaque"] == "op"
	stale := ok && (p["nonce"] != nonce || s.used >= s.uses)
	if !ok || stale {
		if stale {
			s.nonce++
			s.used = 0
			nonce = fmt.Sprintf("nonce-%d", s.nonce)
		}
		s.challenges++
		for _, alg := range []string{"MD5", "SHA-256"} {
			w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Digest realm="camera", qop="auth", algorithm=%s, nonce="%s", opaque="op", stale=%v`, alg, nonce, stale))
		}
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.used++
	s.algs[p["algorithm"]]++
	s.ncs = append(s.ncs, p["nc"])
	if s.fail > 0 {
		s.fail--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Write(s.frames[s.served%len(s.frames)])
	s.served++
}

func snapshotSetup(t *testing.T, frames [][]byte, password string) (*digestServer, Config) {
	srv := &digestServer{user: "admin", password: "right", uses: 3, frames: frames, algs: map[string]int{}}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg := testConfig(Snapshot)
	cfg.URL = hs.URL + "/onvif/snapshot?channel=1"
	cfg.FPS = 20
	cfg.Username = "admin"
	cfg.PasswordFile = passwordFile(t, password)
	return srv, cfg
}

// TestSnapshotDigest polls a snapshot URL with Digest auth: SHA-256 chosen, one challenge per
// nonce, counted nonce uses, a stale nonce answered without an error.
func TestSnapshotDigest(t *testing.T) {
	fx := fixtures(t)
	frames := readAll(t, fx.colour[:4])
	srv, cfg := snapshotSetup(t, frames, "right")
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 1; i <= 7; i++ {
		fr := nextWithin(t, f, 5*time.Second)
		if want := frames[i%len(frames)]; string(fr.JPEG) != string(want) || fr.Seq != uint64(i) {
			t.Fatalf("frame %d: got seq %d, %d bytes; want seq %d, %d bytes", i, fr.Seq, len(fr.JPEG), i, len(want))
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	// Open's request and 7 more, a nonce for every 3: the first challenge and two stale ones.
	if srv.served != 8 || srv.challenges != 3 || srv.algs["SHA-256"] != 8 {
		t.Errorf("server: got %d served, %d challenges, algorithms %v; want 8, 3, all SHA-256", srv.served, srv.challenges, srv.algs)
	}
	if want := "00000001 00000002 00000003 00000001 00000002 00000003 00000001 00000002"; strings.Join(srv.ncs, " ") != want {
		t.Errorf("nonce counts: got %v, want %s", srv.ncs, want)
	}
	if h := f.Health(); h.Frames != 7 || h.Restarts != 0 || h.State != drivers.StateOK {
		t.Errorf("health: got %+v, want 7 frames, no retries, ok", h)
	}
}

func TestSnapshotRefused(t *testing.T) {
	fx := fixtures(t)
	frames := readAll(t, fx.colour[:1])
	_, cfg := snapshotSetup(t, frames, "wrong")
	_, err := Open(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), `refused user "admin"`) {
		t.Errorf("wrong password: got %v, want the camera's refusal", err)
	}
	cfg.Username, cfg.PasswordFile = "", ""
	_, err = Open(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "asks for credentials") {
		t.Errorf("no credentials: got %v, want \"asks for credentials\"", err)
	}
	hs := httptest.NewServer(http.NotFoundHandler())
	defer hs.Close()
	cfg.URL = hs.URL
	_, err = Open(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "no such URL") {
		t.Errorf("404: got %v, want \"no such URL\"", err)
	}
}

// TestSnapshotRetries: a camera that answers 503 for a while is retried with backoff inside Next;
// grey and corrupt snapshots are counted and skipped.
func TestSnapshotRetries(t *testing.T) {
	fx := fixtures(t)
	good, _ := os.ReadFile(fx.colour[5])
	gray, _ := os.ReadFile(fx.gray[5])
	srv, cfg := snapshotSetup(t, [][]byte{good, gray, []byte("<html>error</html>"), good}, "right")
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv.mu.Lock()
	srv.fail = 2
	srv.mu.Unlock()
	fr := nextWithin(t, f, 10*time.Second)
	if string(fr.JPEG) != string(good) || fr.Seq != 3 {
		t.Errorf("got seq %d (%d bytes), want seq 3, the colour frame after a grey and a broken one", fr.Seq, len(fr.JPEG))
	}
	if h := f.Health(); h.Restarts != 2 || h.Gray != 1 || h.Corrupt != 1 || h.Frames != 1 {
		t.Errorf("health: got %+v, want 2 retries, 1 grey, 1 corrupt, 1 frame", h)
	}
}

func TestSnapshotCloseUnblocksNext(t *testing.T) {
	fx := fixtures(t)
	_, cfg := snapshotSetup(t, readAll(t, fx.colour[:1]), "right")
	cfg.FPS = 0.1
	cfg.StallTimeout = drivers.Duration(time.Minute)
	f, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	nextWithin(t, f, 5*time.Second) // the next is due in 10 s
	errc := make(chan error, 1)
	go func() {
		_, err := f.Next(context.Background())
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	f.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("got %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next still blocked 2 s after Close")
	}
}

// FuzzChallenge feeds arbitrary WWW-Authenticate values: no panic, and any challenge taken can be
// answered; a quoted value always reads back as itself.
func FuzzChallenge(f *testing.F) {
	f.Add(`Digest realm="r", qop="auth", algorithm=SHA-256, nonce="n", opaque="o"`, "a\"b\\c")
	f.Add(`Basic realm="x", Digest realm="a, b", nonce="\"q\"", qop=auth-int`, "")
	f.Add(`Digest nonce=, realm`, "realm")
	f.Fuzz(func(t *testing.T, header, value string) {
		a := &digestAuth{user: "u", password: "p"}
		if _, err := a.setChallenge(http.Header{"Www-Authenticate": {header}}); err == nil && !a.basic {
			req := httptest.NewRequest(http.MethodGet, "/snapshot", nil)
			a.authorize(req)
			if !strings.HasPrefix(req.Header.Get("Authorization"), "Digest ") {
				t.Fatalf("challenge %q: got Authorization %q, want a Digest answer", header, req.Header.Get("Authorization"))
			}
		}
		if p := parseParams("k=" + quote(value)); p["k"] != value {
			t.Fatalf("quote(%q) read back as %q", value, p["k"])
		}
	})
}
