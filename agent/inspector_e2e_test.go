package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	bolt "go.etcd.io/bbolt"

	"github.com/kaoqin/kaoqin/agent/api"
	"github.com/kaoqin/kaoqin/agent/clock"
	"github.com/kaoqin/kaoqin/agent/demo"
	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/inspect"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/store"
	"github.com/kaoqin/kaoqin/agent/testkit"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/driverstest"
)

// The inspector's visit, end to end: the real daemon (agent.New + Run) with a test source and a
// ledger the test builds, its pages served on loopback, and Debian's Chromium driving them
// headless: a wrong password, a lockout, a login; today's trainees, absentees and flags; Chinese
// and English; a phone-size viewport without horizontal scroll; a visit recorded and found in
// the ledger; the bundle downloaded and verified (and refused after an edit); then the ledger
// altered with the daemon stopped, and the integrity page red, naming the first bad seq.
// Screenshots are saved as test artifacts (go test -artifacts keeps them).

const chromiumPath = "/usr/bin/chromium"

// inspectorDaemon is a daemon with a listen address.
type inspectorDaemon struct {
	dir, cfgPath, url string
	client            *api.Client
	feed              *driverstest.Feed
	stop              func()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startInspectorDaemon(t *testing.T, dir, feed string) *inspectorDaemon {
	t.Helper()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`device = "jn-0001-r101"
institution = "0001"
state_dir = "state"
socket = "kaoqin.sock"
listen = %q

[[source]]
name = "door-face"
kind = "driverstest"
feed = %q

[uplink]
central_key = "central.pub"
`, addr, feed)
	d := startDaemon(t, dir, cfg, clock.Running("inspector-boot", true))
	return &inspectorDaemon{dir: dir, cfgPath: d.cfgPath, url: "http://" + addr, client: d.client, feed: driverstest.Get(feed), stop: d.Stop}
}

// aFace is a small JPEG, an evidence photo.
func aFace(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(150 + x), uint8(110 + y), 90, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func browserContext(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium: %v (make deps installs it)", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	// The browser lives as long as the context of the first call: no timeout on it.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 50*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func login(t *testing.T, ctx context.Context, base, name, password string) string {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`#login`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=name]`), name),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Submit(chromedp.CSS(`#login`)),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.WaitReady(chromedp.CSS(`main`)),
	); err != nil {
		t.Fatalf("login as %s: %v", name, err)
	}
	return text(t, ctx, "body")
}

func TestInspectorVisitInTheBrowser(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := ledger.GenerateKeyFiles(filepath.Join(dir, "state", "keys"), "device"); err != nil {
		t.Fatal(err)
	}
	// The accounts, set in the store before the daemon starts (as the central system's dataset
	// will set them).
	key, err := ledger.LoadPrivateKey(filepath.Join(dir, "state", "keys", "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Config{Path: filepath.Join(dir, "state", "kaoqin.db"), Device: "jn-0001-r101", Key: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := inspect.HashPassword("检查员的密码")
	hash2, _ := inspect.HashPassword("another password")
	if err := st.SetInspectors([]store.Inspector{{Name: "zhang", Role: "inspector", Hash: hash}, {Name: "li", Role: "inspector", Hash: hash2}}, store.InspectorsInfo{From: "local"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	central := centralKey(t, dir)
	d := startInspectorDaemon(t, dir, t.Name())
	ctx0 := context.Background()
	r := demo.Roster(time.Now(), 6, 1)
	session := r.Sessions[0].ID
	if _, err := d.client.ImportDataset(ctx0, ops.ImportRequest{Bundle: signedRoster(t, central, "jn-0001-r101", r)}); err != nil {
		t.Fatal(err)
	}
	if !testkit.WaitFor(t, func() bool { return d.feed.Opens() > 0 }, 10*time.Second) {
		t.Fatal("the source never opened")
	}
	// The day: T001 by face with a photo; T002 by a manual override; T003 by face, flagged by
	// the terminal; a stranger refused. T004 and T005 are missing.
	ref, err := d.feed.Env().Evidence.PutEvidence(drivers.Crop, aFace(t))
	if err != nil {
		t.Fatal(err)
	}
	verdicts := make(chan drivers.Verdict, 4)
	doneFn := func(v drivers.Verdict) { verdicts <- v }
	for _, rd := range []drivers.Reading{
		{Method: drivers.Face, Subject: "T001", Score: 0.91, Margin: 0.3, Evidence: []drivers.EvidenceRef{ref}, Done: doneFn},
		{Method: drivers.Face, Subject: "T003", Score: 0.88, Margin: 0.3, Flags: []string{string(ledger.FlagTwoDevices)}, Done: doneFn},
		{Method: drivers.Face, Subject: "T999", Score: 0.7, Margin: 0.3, Done: doneFn},
	} {
		d.feed.Push(rd)
		<-verdicts
	}
	if _, err := d.client.SignIn(ctx0, api.SignInRequest{Trainee: "T002", Operator: demo.Teacher, Secret: demo.TeacherSecret, Reason: "读卡器故障"}); err != nil {
		t.Fatal(err)
	}

	ctx := browserContext(t)
	base := d.url

	// A wrong password, then the lockout of that account, then the right one for another.
	if body := login(t, ctx, base, "zhang", "wrong"); !strings.Contains(body, "账号或密码错误") {
		t.Errorf("wrong password: page says %.200q, want 账号或密码错误", body)
	}
	shot(t, ctx, "01-login-wrong-password")
	for range 4 {
		login(t, ctx, base, "zhang", "wrong again")
	}
	if body := login(t, ctx, base, "zhang", "检查员的密码"); !strings.Contains(body, "已锁定") {
		t.Errorf("the right password after 5 failures: page says %.200q, want 已锁定", body)
	}
	shot(t, ctx, "02-locked-out")
	// The lockout is per account and per address: a fresh address is not available here, so the
	// other account is refused too while the address is locked. A fresh daemon has no lockout:
	// restart it and log in.
	d.stop()
	d = startInspectorDaemon(t, dir, t.Name()+"-2")
	base = d.url
	if body := login(t, ctx, base, "li", "another password"); !strings.Contains(body, "今日") || !strings.Contains(body, "学员01") {
		t.Fatalf("login: page says %.300q, want today's page", body)
	}

	// Today, in Chinese.
	if got := text(t, ctx, "#expected-"+session); got != "5" {
		t.Errorf("expected: got %q, want 5", got)
	}
	if got := text(t, ctx, "#missing-"+session); got != "2" {
		t.Errorf("missing: got %q, want 2 (T004, T005)", got)
	}
	page := text(t, ctx, "main")
	for _, want := range []string{"学员01", "学员02", "学员03", "学员04 (T004)", "学员05 (T005)", "人工补签 (manual_override)",
		"短时间内多台设备打卡 (two_devices)", "非名册学员 (unknown_trainee)", "现在在场"} {
		if !strings.Contains(page, want) {
			t.Errorf("today lacks %q", want)
		}
	}
	if strings.Contains(page, demo.IDNumber(1)) {
		t.Error("today shows a full ID number")
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`[...document.querySelectorAll("img.thumb")].filter(i => i.complete && i.naturalWidth == 64).length == 1`)); err != nil {
		t.Errorf("evidence thumbnails loaded: %v, want 1 of 64 px", err)
	}
	shot(t, ctx, "03-today-zh")

	// English.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#lang`)), chromedp.Sleep(300*time.Millisecond), chromedp.WaitReady(chromedp.CSS(`main`))); err != nil {
		t.Fatal(err)
	}
	if page := text(t, ctx, "main"); !strings.Contains(page, "manual override (manual_override)") || !strings.Contains(page, "Missing") {
		t.Errorf("the English page lacks English labels: %.300q", page)
	}
	shot(t, ctx, "04-today-en")

	// A phone: 375 px wide, no horizontal scroll on any page.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/search", "/integrity", "/health", "/reports", "/reports/sheet?session=" + session, "/visit"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+p), chromedp.WaitReady(chromedp.CSS(`main`))); err != nil {
			t.Fatal(err)
		}
		wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if wide {
			t.Errorf("%s scrolls sideways on a 375 px phone", p)
		}
		if p == "/" {
			shot(t, ctx, "05-phone-today")
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1000)); err != nil {
		t.Fatal(err)
	}

	// The other pages render.
	for _, c := range []struct{ path, want, name string }{
		{"/search?q=学员02", "人工补签", "06-search"},
		{"/reports", "出勤学时", "07-reports"},
		{"/reports/sheet?session=" + session, "签到表", "08-sheet"},
		{"/health", "设备状态", "09-health"},
		{"/integrity", "完好", "10-integrity"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+c.path), chromedp.WaitReady(chromedp.CSS(`main`))); err != nil {
			t.Fatal(err)
		}
		if page := text(t, ctx, "main"); !strings.Contains(page, c.want) {
			t.Errorf("%s lacks %q: %.300q", c.path, c.want, page)
		}
		shot(t, ctx, c.name)
	}
	headHash := strings.ReplaceAll(text(t, ctx, "#head-hash"), " ", "")
	if got := text(t, ctx, "#no-receipt"); !strings.Contains(got, "尚无中心回执") {
		t.Errorf("receipt: got %q, want 尚无中心回执", got)
	}

	// The visit, recorded.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/visit"), chromedp.WaitVisible(chromedp.CSS(`#visit`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=headcount]`), "3"),
		chromedp.SendKeys(chromedp.CSS(`input[name=head]`), headHash[:16]),
		chromedp.SetValue(chromedp.CSS(`textarea[name=note]`), "实到 3 人，与签到一致"),
		chromedp.Submit(chromedp.CSS(`#visit`)),
		chromedp.WaitVisible(chromedp.CSS(`#recorded`))); err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "11-visit-recorded")
	var insp []ledger.Event
	for _, e := range allEvents(t, d.client) {
		if e.Kind == ledger.Inspection {
			insp = append(insp, e)
		}
	}
	if len(insp) != 1 || insp[0].Operator != "li" || insp[0].Note != "实到 3 人，与签到一致" || !strings.Contains(insp[0].Detail, "headcount 3") || !strings.Contains(insp[0].Detail, "matches") {
		t.Fatalf("inspection events in the ledger: got %+v, want one by li, headcount 3, the head hash matching", insp)
	}

	// The bundle, downloaded by the button, verifies offline; an edited copy does not.
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/integrity"), chromedp.WaitVisible(chromedp.CSS(`#bundle`)), chromedp.Click(chromedp.CSS(`#bundle`))); err != nil {
		t.Fatal(err)
	}
	var zipPath string
	testkit.WaitFor(t, func() bool {
		m, _ := filepath.Glob(filepath.Join(dl, "*.zip"))
		if len(m) == 1 {
			zipPath = m[0]
		}
		return zipPath != ""
	}, 15*time.Second)
	if zipPath == "" {
		t.Fatal("the bundle was not downloaded")
	}
	res, err := export.VerifyFile(zipPath, export.VerifyOptions{Key: key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatalf("the downloaded bundle does not verify: %v", err)
	}
	if res.Events < 6 || res.Manifest.HeadHash == "" {
		t.Errorf("bundle: %d events, head %q; want every event and the head", res.Events, res.Manifest.HeadHash)
	}
	edited := filepath.Join(dl, "edited.zip")
	testkit.EditZip(t, zipPath, edited, export.FileEventsCSV, func(b []byte) []byte { return bytes.Replace(b, []byte("T003"), []byte("T004"), 1) })
	if _, err := export.VerifyFile(edited, export.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "events.csv") {
		t.Errorf("an edited bundle: got %v, want a failure naming events.csv", err)
	}

	// The ledger altered while the daemon was stopped: the integrity page is red and names the
	// first bad seq.
	d.stop()
	bad := tamper(t, filepath.Join(dir, "state", "kaoqin.db"), "T003", "T009")
	d = startInspectorDaemon(t, dir, t.Name()+"-3")
	login(t, ctx, d.url, "li", "another password")
	if err := chromedp.Do(ctx, chromedp.Navigate(d.url+"/integrity"), chromedp.WaitVisible(chromedp.CSS(`#verdict`))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#bad-seq"); got != fmt.Sprint(bad) {
		t.Errorf("first bad seq: got %q, want %d", got, bad)
	}
	cls, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#verdict`), "class"))
	if err != nil || !strings.Contains(fmt.Sprint(cls), "red") {
		t.Errorf("verdict class: got %+v (%v), want red", cls, err)
	}
	if got := text(t, ctx, "#verdict"); !strings.Contains(got, "未通过") {
		t.Errorf("verdict: got %q, want 未通过", got)
	}
	shot(t, ctx, "12-integrity-tampered")
}

// tamper replaces old by new in the first record whose body holds old, in the ledger file, and
// returns its seq.
func tamper(t *testing.T, path, old, new string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq uint64
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("events"))
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if bytes.Contains(v[64:], []byte(`"trainee":"`+old+`"`)) {
				seq = binary.BigEndian.Uint64(k)
				return b.Put(bytes.Clone(k), bytes.Replace(bytes.Clone(v), []byte(old), []byte(new), 1))
			}
		}
		return fmt.Errorf("no record of %s", old)
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}
