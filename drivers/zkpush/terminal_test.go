package zkpush_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/zkpush"
	"github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

func TestPunchesBecomeReadings(t *testing.T) {
	r := open(t, config(t, "ZK001", "127.0.0.1:0"))
	term := r.emu(nil)
	ctx := context.Background()
	if err := term.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 8, 1, 28, 0, shanghai)
	term.Punch(emu.Punch{PIN: "1452", At: at, Status: 0, Verify: 15})
	term.Punch(emu.Punch{PIN: "1453", At: at.Add(time.Minute), Status: 1, Verify: 1})
	term.Punch(emu.Punch{PIN: "1454", At: at.Add(2 * time.Minute), Status: 0, Verify: 4})
	term.Punch(emu.Punch{PIN: "1455", At: at.Add(3 * time.Minute), Status: 0, Verify: 3})
	if err := term.Upload(ctx); err != nil {
		t.Fatalf("Upload: got %v, want nil", err)
	}
	got := r.led.recorded()
	want := []struct {
		key    string
		method drivers.Method
		intent drivers.Intent
	}{
		{"ZK001|1452|2026-03-02 08:01:28|0|15", drivers.Face, drivers.SignIn},
		{"ZK001|1453|2026-03-02 08:02:28|1|1", drivers.Fingerprint, drivers.SignOut},
		{"ZK001|1454|2026-03-02 08:03:28|0|4", drivers.Card, drivers.SignIn},
		{"ZK001|1455|2026-03-02 08:04:28|0|3", drivers.Manual, drivers.SignIn},
	}
	if len(got) != len(want) {
		t.Fatalf("recorded %d readings, want %d", len(got), len(want))
	}
	for _, w := range want {
		rd, ok := got[w.key]
		if !ok {
			t.Fatalf("no reading with key %q; got keys %v", w.key, keys(got))
		}
		if rd.Method != w.method || rd.Intent != w.intent || rd.Source != "zk-ZK001" {
			t.Errorf("%s: got method %q intent %q source %q, want %q %q zk-ZK001", w.key, rd.Method, rd.Intent, rd.Source, w.method, w.intent)
		}
		if pin := strings.Split(w.key, "|")[1]; rd.Subject != pin {
			t.Errorf("%s: got subject %q, want %q", w.key, rd.Subject, pin)
		}
	}
	if rd := got[want[0].key]; !rd.At.Equal(at) {
		t.Errorf("got time %v, want %v (the line's time read in Asia/Shanghai)", rd.At, at)
	}
	if rd := got[want[3].key]; rd.Operator != "" || !strings.Contains(rd.Detail, "password") {
		t.Errorf("a password punch: got operator %q detail %q, want no operator and the mode in the detail", rd.Operator, rd.Detail)
	}
	if n, _ := term.Unsent(); n != 0 {
		t.Errorf("terminal still holds %d lines after OK, want 0", n)
	}
	if h := r.term.Health(); h.Readings != 4 || h.State != drivers.StateOK {
		t.Errorf("health: got %+v, want 4 readings and state ok", h)
	}
}

func keys(m map[string]drivers.Reading) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The agent could not record (NotRecorded): the terminal is not told OK, keeps the batch and
// sends it again; every punch is recorded once.
func TestNotRecordedMakesTheTerminalResend(t *testing.T) {
	r := open(t, config(t, "ZK002", "127.0.0.1:0"))
	r.led.verdict = func(n int) drivers.Verdict {
		if n == 2 {
			return drivers.NotRecorded
		}
		return drivers.Recorded
	}
	term := r.emu(nil)
	ctx := context.Background()
	for i := range 5 {
		term.Punch(emu.Punch{PIN: fmt.Sprint(100 + i), At: time.Date(2026, 3, 2, 8, i, 0, 0, shanghai), Verify: 15})
	}
	if err := term.Upload(ctx); err == nil {
		t.Fatal("first upload: got OK, want an error answer (a reading was not recorded)")
	}
	if n, _ := term.Unsent(); n != 5 {
		t.Fatalf("terminal holds %d lines after the error, want 5", n)
	}
	if err := term.Upload(ctx); err != nil {
		t.Fatalf("resend: got %v, want nil", err)
	}
	if got := len(r.led.recorded()); got != 5 {
		t.Errorf("recorded %d punches, want 5", got)
	}
	if term.Resends != 1 {
		t.Errorf("terminal resent %d times, want 1", term.Resends)
	}
	if h := r.term.Status(); h.Failures != 1 {
		t.Errorf("failures: got %d, want 1", h.Failures)
	}
}

// A terminal replays 1,000 events it already sent: each is recorded once; the driver answers the
// replay without handing the agent the readings again. A new driver (after a restart) hands
// them over again and the ledger's key makes them duplicates.
func TestReplayOfAThousandEventsRecordedOnce(t *testing.T) {
	c := config(t, "ZK003", "127.0.0.1:0")
	r := open(t, c)
	term := r.emu(nil)
	ctx := context.Background()
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, shanghai)
	for i := range 1000 {
		term.Punch(emu.Punch{PIN: fmt.Sprint(1000 + i%50), At: base.Add(time.Duration(i) * time.Second), Verify: 15})
	}
	if err := term.Upload(ctx); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if err := term.Replay(ctx); err != nil {
		t.Fatalf("replay: got %v, want OK", err)
	}
	if got, del := len(r.led.recorded()), r.led.deliveredN(); got != 1000 || del != 1000 {
		t.Errorf("got %d recorded and %d delivered, want 1000 and 1000", got, del)
	}
}

// A batch that repeats lines is collapsed before it reaches the agent.
func TestDuplicatesInOneBatchCollapse(t *testing.T) {
	r := open(t, config(t, "ZK004", "127.0.0.1:0"))
	line := "7\t2026-03-02 08:00:00\t0\t15\t0\t0\t0\n"
	code, body := post(t, r.url+"/iclock/cdata?SN=ZK004&table=ATTLOG&Stamp=1", []byte(line+line+line))
	if code != 200 || body != "OK: 3" {
		t.Fatalf("got %d %q, want 200 \"OK: 3\"", code, body)
	}
	if d := r.led.deliveredN(); d != 1 {
		t.Errorf("delivered %d readings, want 1", d)
	}
}

// A power cut mid-upload: the whole lines received are recorded, the terminal is not told OK,
// and its resend records each punch once.
func TestPowerCutMidUpload(t *testing.T) {
	r := open(t, config(t, "ZK005", "127.0.0.1:0"))
	term := r.emu(nil)
	ctx := context.Background()
	for i := range 100 {
		term.Punch(emu.Punch{PIN: fmt.Sprint(i + 1), At: time.Date(2026, 3, 2, 9, 0, i, 0, shanghai), Verify: 1})
	}
	term.CutPower(1500)
	if err := term.Upload(ctx); err == nil {
		t.Fatal("upload cut short: got OK, want an error")
	}
	if n, _ := term.Unsent(); n != 100 {
		t.Fatalf("terminal holds %d lines, want 100", n)
	}
	eventually(t, "the lines before the cut recorded", func() bool { return len(r.led.recorded()) > 0 })
	if err := term.Upload(ctx); err != nil {
		t.Fatalf("resend: %v", err)
	}
	if got := len(r.led.recorded()); got != 100 {
		t.Errorf("recorded %d, want 100", got)
	}
}

func TestMalformedLinesRefusedRestKept(t *testing.T) {
	r := open(t, config(t, "ZK006", "127.0.0.1:0"))
	body := strings.Join([]string{
		"1452\t2026-03-02 08:01:28\t0\t15\t0\t0\t0",
		"1453\t2026-03-02 08:01:29",                 // wrong field count
		"1454\t2026-02-30 08:01:28\t0\t15\t0\t0\t0", // bad date
		"14x5\t2026-03-02 08:01:28\t0\t15\t0\t0\t0", // non-numeric PIN
		"1456\t2026-03-02 08:01:30\t1\t1\t0\t0\t0",
	}, "\n") + "\n"
	code, reply := post(t, r.url+"/iclock/cdata?SN=ZK006&table=ATTLOG&Stamp=1", []byte(body))
	if code != 200 || reply != "OK: 5" {
		t.Fatalf("got %d %q, want 200 \"OK: 5\" (bad lines cannot be mended by resending)", code, reply)
	}
	got := r.led.recorded()
	if len(got) != 2 {
		t.Errorf("recorded %v, want the 2 good lines", keys(got))
	}
	if n := r.logs.count("attlog line refused"); n != 3 {
		t.Errorf("got %d refusal log lines, want 3; log:\n%s", n, r.logs)
	}
	for _, want := range []string{"fields", "YYYY-MM-DD", "want digits"} {
		if !strings.Contains(r.logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, r.logs)
		}
	}
	if h := r.term.Health(); h.Dropped != 3 {
		t.Errorf("dropped: got %d, want 3", h.Dropped)
	}
}

func TestPhotoLinkedToItsPunch(t *testing.T) {
	c := config(t, "ZK007", "127.0.0.1:0")
	c.PhotoWait = drivers.Duration(time.Millisecond)
	r := open(t, c)
	at := time.Date(2026, 3, 2, 8, 1, 28, 0, shanghai)
	photoURL := r.url + "/iclock/cdata?SN=ZK007&table=ATTPHOTO&Stamp=1"
	logURL := r.url + "/iclock/cdata?SN=ZK007&table=ATTLOG&Stamp=1"

	// Photo first, then its punch: the reading names the photo.
	jpg := emu.Capture(1)
	if code, body := post(t, photoURL, zkpush.EncodePhoto("ZK007", "1452", at, jpg)); code != 200 || body != "OK" {
		t.Fatalf("photo: got %d %q, want 200 OK", code, body)
	}
	if code, body := post(t, logURL, []byte("1452\t2026-03-02 08:01:28\t0\t15\t0\t0\t0\n")); code != 200 || body != "OK: 1" {
		t.Fatalf("attlog: got %d %q", code, body)
	}
	rd := r.led.recorded()["ZK007|1452|2026-03-02 08:01:28|0|15"]
	if len(rd.Evidence) != 1 || rd.Evidence[0].Kind != drivers.Frame || rd.Evidence[0].Size != int64(len(jpg)) {
		t.Fatalf("evidence: got %+v, want the photo as one frame of %d bytes", rd.Evidence, len(jpg))
	}

	// The protocol's usual order, punch then photo (the emulator's): the photo is handed over
	// with the punch's key, for the agent to attach to the recorded event.
	term := r.emu(nil)
	photo2 := emu.Capture(2)
	term.Punch(emu.Punch{PIN: "1460", At: at.Add(time.Minute), Verify: 15, Photo: photo2})
	if err := term.Upload(context.Background()); err != nil {
		t.Fatal(err)
	}
	late := r.led.recorded()["ZK007|1460|2026-03-02 08:02:28|0|15"]
	if len(late.Evidence) != 1 || late.Evidence[0].Size != int64(len(photo2)) {
		t.Errorf("photo after its punch: got evidence %+v, want the photo attached to the punch's key", late.Evidence)
	}

	// A photo with no punch: kept, and logged once its wait is over.
	if code, _ := post(t, photoURL, zkpush.EncodePhoto("ZK007", "9999", at, emu.Capture(3))); code != 200 {
		t.Fatalf("photo without punch: got %d, want 200", code)
	}
	time.Sleep(5 * time.Millisecond) // past photo_wait (1ms)
	post(t, photoURL, zkpush.EncodePhoto("ZK007", "9998", at, emu.Capture(4)))
	if !strings.Contains(r.logs.String(), "attphoto without a punch") {
		t.Errorf("no log line for the photo without a punch:\n%s", r.logs)
	}
	if n := r.ev.count(); n != 4 {
		t.Errorf("evidence store holds %d photos, want 4 (none lost)", n)
	}

	// A photo that cannot be decoded: acknowledged (resending cannot mend it) and logged.
	if code, body := post(t, photoURL, []byte("PIN=garbage\nCMD=uploadphoto\x00not a jpeg")); code != 200 || body != "OK" {
		t.Errorf("bad photo: got %d %q, want 200 OK", code, body)
	}
	if !strings.Contains(r.logs.String(), "attphoto refused") {
		t.Errorf("no log line for the bad photo:\n%s", r.logs)
	}
}

func TestGBKNamesDecodeAndEncode(t *testing.T) {
	r := open(t, config(t, "ZK008", "127.0.0.1:0"))
	name, err := zkpush.EncodeGB18030("张三")
	if err != nil {
		t.Fatal(err)
	}
	body := append([]byte("USER PIN=1452\tName="), name...)
	body = append(body, "\tPri=0\tPasswd=\tCard=\tGrp=1\nOPLOG 4\t0\t2026-03-02 08:00:00\t0\t0\t0\t0\n"...)
	if code, reply := post(t, r.url+"/iclock/cdata?SN=ZK008&table=OPERLOG&Stamp=1", body); code != 200 || reply != "OK: 2" {
		t.Fatalf("operlog: got %d %q, want 200 \"OK: 2\"", code, reply)
	}
	if !strings.Contains(r.logs.String(), "张三") {
		t.Errorf("the GBK name is not in the log as 张三:\n%s", r.logs)
	}
	if s := r.term.Status(); s.OperLog != 2 {
		t.Errorf("operlog lines: got %d, want 2", s.OperLog)
	}
	// Users onto a terminal in Chinese mode (language=83): the name travels as GB18030 and the
	// terminal shows it right.
	if got := r.syncName(nil, "1452", "张三"); got != "张三" {
		t.Errorf("terminal user 1452: got %q, want 张三", got)
	}
}

func TestBodyOfTenMegabytesRefused(t *testing.T) {
	r := open(t, config(t, "ZK009", "127.0.0.1:0"))
	big := make([]byte, 10<<20)
	code, _ := post(t, r.url+"/iclock/cdata?SN=ZK009&table=ATTLOG&Stamp=1", big)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d, want 413", code)
	}
	if !strings.Contains(r.logs.String(), "request body too large") {
		t.Errorf("no log line:\n%s", r.logs)
	}
	// Chunked, with no length announced: cut at max_body all the same.
	req, _ := http.NewRequest(http.MethodPost, r.url+"/iclock/cdata?SN=ZK009&table=ATTLOG&Stamp=1", strings.NewReader(strings.Repeat("x", 5<<20)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: got %d, want 413", resp.StatusCode)
	}
	if code, body, _ := get(t, r.url+"/iclock/ping?SN=ZK009"); code != 200 || body != "OK" {
		t.Errorf("after: ping got %d %q, want 200 OK", code, body)
	}
	if len(r.led.recorded()) != 0 {
		t.Error("a refused body recorded readings")
	}
}

func TestUnknownSerialRefusedAndLoggedOnce(t *testing.T) {
	r := open(t, config(t, "ZK010", "127.0.0.1:0"))
	for range 5 {
		code, _ := post(t, r.url+"/iclock/cdata?SN=EVIL&table=ATTLOG&Stamp=1", []byte("1\t2026-03-02 08:00:00\t0\t15\n"))
		if code != http.StatusForbidden {
			t.Fatalf("got %d, want 403", code)
		}
	}
	if n := r.logs.count("request from an unknown serial refused"); n != 1 {
		t.Errorf("got %d log lines for 5 requests, want 1 (rate-limited):\n%s", n, r.logs)
	}
	if len(r.led.recorded()) != 0 {
		t.Error("an unknown serial's line was recorded")
	}
}

func TestKnownSerialFromNewAddressIsADoubt(t *testing.T) {
	c := config(t, "ZK011", "127.0.0.1:0")
	c.Address = "192.0.2.7" // documentation range: the terminal is known elsewhere
	r := open(t, c)
	post(t, r.url+"/iclock/cdata?SN=ZK011&table=ATTLOG&Stamp=1", []byte("1\t2026-03-02 08:00:00\t0\t15\t0\t0\t0\n"))
	rd := r.led.recorded()["ZK011|1|2026-03-02 08:00:00|0|15"]
	if !slices.Contains(rd.Flags, zkpush.FlagNewAddress) {
		t.Errorf("flags: got %v, want %s", rd.Flags, zkpush.FlagNewAddress)
	}
	if !strings.Contains(r.logs.String(), "known serial from a new address") {
		t.Errorf("no log line:\n%s", r.logs)
	}
}

func TestFirstAddressIsLearnedAndKept(t *testing.T) {
	c := config(t, "ZK012", "127.0.0.1:0")
	r := open(t, c)
	post(t, r.url+"/iclock/cdata?SN=ZK012&table=ATTLOG&Stamp=1", []byte("1\t2026-03-02 08:00:00\t0\t15\t0\t0\t0\n"))
	rd := r.led.recorded()["ZK012|1|2026-03-02 08:00:00|0|15"]
	if len(rd.Flags) != 0 {
		t.Errorf("flags: got %v, want none from the first address", rd.Flags)
	}
}

func TestClockTrustedSetsTheTerminalsClock(t *testing.T) {
	r := open(t, config(t, "ZK013", "127.0.0.1:0"))
	_, body, hdr := get(t, r.url+"/iclock/cdata?SN=ZK013&options=all&pushver=2.4.1&language=83")
	if hdr.Get("Date") != "" || strings.Contains(body, "TimeZone=") {
		t.Errorf("untrusted clock: got Date %q and body\n%s\nwant neither Date nor TimeZone", hdr.Get("Date"), body)
	}
	for _, want := range []string{"GET OPTION FROM: ZK013\n", "ATTLOGStamp=None\n", "Delay=10\n", "ErrorDelay=30\n", "Realtime=1\n", "TransFlag=TransData AttLog\tOpLog\tAttPhoto"} {
		if !strings.Contains(body, want) {
			t.Errorf("init reply lacks %q:\n%s", want, body)
		}
	}
	r.setTrusted(true)
	_, body, hdr = get(t, r.url+"/iclock/cdata?SN=ZK013&options=all&pushver=2.4.1&language=83")
	if hdr.Get("Date") == "" || !strings.Contains(body, "TimeZone=8\n") {
		t.Errorf("trusted clock: got Date %q and body\n%s\nwant both", hdr.Get("Date"), body)
	}
	// A terminal an hour off takes the box's clock at boot, and its punches carry no doubt.
	term := r.emu(func(c *emu.Config) { c.ClockOffset = time.Hour })
	if err := term.Boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(term.Now()); d > 5*time.Second || d < -5*time.Second {
		t.Errorf("terminal clock after boot off by %v, want within 5s", d)
	}
}

func TestTerminalClockOffFlagsReadings(t *testing.T) {
	r := open(t, config(t, "ZK014", "127.0.0.1:0"))
	term := r.emu(func(c *emu.Config) { c.ClockOffset = time.Hour })
	ctx := context.Background()
	if err := term.Boot(ctx); err != nil { // untrusted box clock: the terminal keeps its own
		t.Fatal(err)
	}
	term.Punch(emu.Punch{PIN: "1452", Verify: 15})
	if err := term.Upload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, rd := range r.led.recorded() {
		if !slices.Contains(rd.Flags, zkpush.FlagClockOff) {
			t.Errorf("flags: got %v, want %s", rd.Flags, zkpush.FlagClockOff)
		}
	}
	s := r.term.Status()
	if !s.ClockKnown || s.ClockOffset < 59*time.Minute || s.ClockOffset > 61*time.Minute {
		t.Errorf("clock offset: got %v (known %v), want about 1h", s.ClockOffset, s.ClockKnown)
	}
	if h := r.term.Health(); h.State != drivers.StateDegraded || !strings.Contains(h.LastErr, "clock") {
		t.Errorf("health: got %+v, want degraded naming the clock", h)
	}
	// A terminal behind the box shows it in a punch uploaded while it polls.
	term.SetClockOffset(-10 * time.Minute)
	if err := term.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	term.Punch(emu.Punch{PIN: "1453", Verify: 15})
	if err := term.Upload(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.term.Status(); s.ClockOffset > -9*time.Minute || s.ClockOffset < -11*time.Minute {
		t.Errorf("clock offset: got %v, want about -10m", s.ClockOffset)
	}
}

func TestUsersFollowTheRoster(t *testing.T) {
	c := config(t, "ZK015", "127.0.0.1:0")
	r := open(t, c)
	term := r.emu(func(c *emu.Config) { c.Language = "69" }) // English mode: names in UTF-8
	ctx := context.Background()
	if err := term.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ps := []drivers.Person{
		{Trainee: "1001", Name: "李四"},
		{Trainee: "1002", Name: "王五", ValidUntil: now.Add(time.Hour)},
		{Trainee: "1003", Name: "赵六", ValidUntil: now.Add(-time.Hour)}, // voucher ended
		{Trainee: "T-04", Name: "bad pin"},
	}
	report, err := r.term.SyncPersons(ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report, "queued 2 adds and 1 deletes") || !strings.Contains(report, "1 trainees skipped") {
		t.Errorf("report: got %q", report)
	}
	term.Punch(emu.Punch{PIN: "1003", Verify: 15}) // enrolled at the terminal by hand
	if err := term.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"1001": "李四", "1002": "王五"}
	if got := term.Users(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("terminal users: got %v, want %v", got, want)
	}
	cmds, _ := r.term.Commands()
	for _, c := range cmds {
		if c.State != "done" {
			t.Errorf("command %s %q: got state %s, want done", c.ID, c.Text, c.State)
		}
	}
	// The same roster again queues nothing; one trainee dropped queues one delete.
	if report, _ := r.term.SyncPersons(ctx, ps); !strings.Contains(report, "queued 0 adds and 0 deletes") {
		t.Errorf("second sync: got %q, want nothing queued", report)
	}
	if _, err := r.term.SyncPersons(ctx, ps[:1]); err != nil {
		t.Fatal(err)
	}
	// The queue is persisted: close and reopen the terminal on its state file before the poll.
	r.term.Close()
	c2 := *c
	r2 := open(t, &c2)
	term2 := r2.emu(func(c *emu.Config) { c.Language = "69" })
	if s := r2.term.Status(); s.Pending != 1 {
		t.Fatalf("after reopen: %d commands pending, want 1", s.Pending)
	}
	if err := term2.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	cmds, _ = r2.term.Commands()
	last := cmds[len(cmds)-1]
	if last.Text != "DATA DELETE USERINFO PIN=1002" || last.State != "done" || last.Return != -10 {
		t.Errorf("last command: got %+v, want the delete of 1002, done, -10 on this fresh terminal", last)
	}
}

func TestServerSharedAndKeepsServingOthers(t *testing.T) {
	a := open(t, config(t, "ZKA", "127.0.0.1:0"))
	c := config(t, "ZKB", "127.0.0.1:0")
	b := open(t, c)
	if a.url != b.url {
		t.Fatalf("two terminals on one listen address: got %s and %s, want one server", a.url, b.url)
	}
	dup := config(t, "ZKA", "127.0.0.1:0")
	if _, err := dup.Open(context.Background(), drivers.Env{}); err == nil {
		t.Error("a second source with the same serial on one server: got nil error")
	}
	a.term.Close()
	if code, _, _ := get(t, b.url+"/iclock/ping?SN=ZKB"); code != 200 {
		t.Errorf("after closing the other terminal: got %d, want 200", code)
	}
	if code, _, _ := get(t, b.url+"/iclock/ping?SN=ZKA"); code != http.StatusForbidden {
		t.Errorf("closed terminal's serial: got %d, want 403", code)
	}
}

func TestValidateNamesEveryBadKey(t *testing.T) {
	c := zkpush.NewConfig()
	c.Listen = "nope"
	c.Serial = ""
	c.Zone = "Mars/Olympus"
	c.Address = "not-an-ip"
	c.MaxBody = 10
	c.Delay = drivers.Duration(time.Hour)
	c.NameEncoding = "latin1"
	err := c.Validate()
	var got []string
	for _, fe := range drivers.FieldErrors(err) {
		got = append(got, fe.Key)
	}
	want := []string{"listen", "serial", "address", "zone", "state_dir", "max_body", "delay", "name_encoding"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("field errors: got %v, want %v", got, want)
	}
	if _, err := drivers.Lookup("zkpush"); err != nil {
		t.Errorf("registry: got %v, want the zkpush kind", err)
	}
}

// A command handed out whose result never comes back is handed out again after resend_after,
// under the same id; one whose result came is not.
func TestCommandWithoutResultIsSentAgain(t *testing.T) {
	c := config(t, "ZK016", "127.0.0.1:0")
	c.ResendAfter = drivers.Duration(time.Second)
	r := open(t, c)
	if _, err := r.term.SyncPersons(context.Background(), []drivers.Person{{Trainee: "7", Name: "Li"}}); err != nil {
		t.Fatal(err)
	}
	poll := r.url + "/iclock/getrequest?SN=ZK016"
	want := "C:1:DATA UPDATE USERINFO PIN=7\tName=Li\tPri=0\tPasswd=\tCard=\tGrp=1\n"
	if _, body, _ := get(t, poll); body != want {
		t.Fatalf("first poll: got %q, want %q", body, want)
	}
	if _, body, _ := get(t, poll); body != "OK" {
		t.Fatalf("poll before resend_after: got %q, want OK", body)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, body, _ := get(t, poll); body != want {
		t.Fatalf("poll after resend_after: got %q, want the command again", body)
	}
	if code, body := post(t, r.url+"/iclock/devicecmd?SN=ZK016", []byte("ID=1&Return=0&CMD=DATA\n")); code != 200 || body != "OK" {
		t.Fatalf("devicecmd: got %d %q", code, body)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, body, _ := get(t, poll); body != "OK" {
		t.Errorf("poll after the result: got %q, want OK", body)
	}
	cmds, _ := r.term.Commands()
	if len(cmds) != 1 || cmds[0].State != "done" || cmds[0].Tries != 2 {
		t.Errorf("queue: got %+v, want one command done after 2 tries", cmds)
	}
}

// Names go to the terminal in the encoding its firmware reads: GB18030 for a terminal in Chinese
// mode when name_encoding is auto, UTF-8 for one in another language; a configured encoding
// wins over the language. The emulator reads names as the firmware does, so a name in the wrong
// encoding shows as garbage on it.
func TestNamesGoInTheTerminalsEncoding(t *testing.T) {
	for _, tc := range []struct {
		encoding, language, want string
	}{
		{"auto", "83", "张三"},
		{"auto", "69", "张三"},
		{"gb18030", "83", "张三"},
		{"utf-8", "83", "寮犱笁"},      // UTF-8 read as GB18030: what a terminal in Chinese mode shows
		{"gb18030", "69", "\uFFFD"}, // GB18030 read as UTF-8
	} {
		cfg := config(t, "ZK02"+tc.language+tc.encoding[:1], "127.0.0.1:0")
		cfg.NameEncoding = tc.encoding
		r := open(t, cfg)
		if got := r.syncName(func(c *emu.Config) { c.Language = tc.language }, "1452", "张三"); got != tc.want {
			t.Errorf("name_encoding %s, terminal language %s: the terminal shows %q, want %q", tc.encoding, tc.language, got, tc.want)
		}
	}
}
