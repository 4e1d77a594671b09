package hikisapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/hikisapi"
	"github.com/kaoqin/kaoqin/drivers/hikisapi/emu"
)

func punch(t *testing.T, term *emu.Terminal, e emu.Event) emu.Event {
	t.Helper()
	e, err := term.Punch(context.Background(), e)
	if err != nil {
		t.Fatalf("punch %d: push: %v", e.Serial, err)
	}
	return e
}

func TestRegistered(t *testing.T) {
	d, err := drivers.Lookup("hikisapi")
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.Config()
	err = cfg.Validate()
	var keys []string
	for _, fe := range drivers.FieldErrors(err) {
		keys = append(keys, fe.Key)
	}
	slices.Sort(keys)
	if want := []string{"address", "listen", "password", "serial"}; !slices.Equal(keys, want) {
		t.Errorf("an empty table: got errors on %v, want %v (%v)", keys, want, err)
	}
}

// Events pushed in each of the terminal's formats become readings: identified faces and cards
// with their subject, a stranger without one, a door event none; pictures become evidence.
func TestPushFormats(t *testing.T) {
	for _, format := range []string{emu.PushMultipart, emu.PushNoBoundary, emu.PushJSON, emu.PushXML} {
		t.Run(format, func(t *testing.T) {
			r := newRig(t, emu.Config{PushFormat: format}, func(c *hikisapi.Config) { c.History = hikisapi.HistoryOff })
			waitFor(t, "httpHosts configured", func() bool { return r.term.HTTPHost() != "" })
			if got, want := r.term.HTTPHost(), "http://127.0.0.1:"; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "/hik/event") {
				t.Fatalf("httpHosts: got %q, want %s<port>/hik/event", got, want)
			}
			pic := emu.JPEG(7)
			face := punch(t, r.term, emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T001", Name: "张三", Picture: pic})
			card := punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T002"})
			stranger := punch(t, r.term, emu.Event{Minor: emu.MinorFaceFail})
			punch(t, r.term, emu.Event{Minor: emu.MinorDoorOpen})
			// Every push above was answered 200 only after its reading was done: no waiting here.
			if n, _ := r.h.count(); n != 3 {
				t.Fatalf("got %d readings, want 3", n)
			}
			got, _ := r.h.get(r.key(face.Serial))
			if got.Subject != "T001" || got.Method != drivers.Face || !got.At.Equal(face.Time) || got.Source != "hik-1" {
				t.Errorf("face: got %+v, want T001 face at %v", got, face.Time)
			}
			wantPics := 0
			if format == emu.PushMultipart || format == emu.PushNoBoundary {
				wantPics = 1
			}
			if len(got.Evidence) != wantPics {
				t.Fatalf("face evidence: got %d, want %d", len(got.Evidence), wantPics)
			}
			if wantPics == 1 && !bytes.Equal(r.ev.get(got.Evidence[0].SHA256), pic) {
				t.Errorf("face evidence: the stored photo is not the capture")
			}
			got, _ = r.h.get(r.key(card.Serial))
			if got.Subject != "T002" || got.Method != drivers.Card {
				t.Errorf("card: got subject %q method %q, want T002 card", got.Subject, got.Method)
			}
			got, _ = r.h.get(r.key(stranger.Serial))
			if got.Subject != "" || got.Method != drivers.Face {
				t.Errorf("stranger: got subject %q method %q, want no subject, face", got.Subject, got.Method)
			}
			if st := r.src.Status(); st.Ignored != 1 || st.Readings != 3 {
				t.Errorf("status: got ignored %d readings %d, want 1 and 3", st.Ignored, st.Readings)
			}
		})
	}
}

// A terminal that replays the same 1,000 events has them recorded once: the replay is answered
// without a second reading.
func TestReplayedThousandRecordedOnce(t *testing.T) {
	r := newRig(t, emu.Config{PushFormat: emu.PushJSON}, func(c *hikisapi.Config) { c.History = hikisapi.HistoryOff })
	waitFor(t, "httpHosts configured", func() bool { return r.term.HTTPHost() != "" })
	for i := 0; i < 1000; i++ {
		punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: fmt.Sprintf("T%04d", i%40)})
	}
	if err := r.term.Replay(context.Background(), r.term.Events()); err != nil {
		t.Fatalf("replay: %v", err)
	}
	rec, handed := r.h.count()
	if rec != 1000 {
		t.Errorf("recorded: got %d, want 1000", rec)
	}
	if handed != 1000 {
		t.Errorf("readings handed to the agent: got %d, want 1000 (replays answered by the driver)", handed)
	}
	if st := r.src.Status(); st.Duplicates != 1000 {
		t.Errorf("duplicates: got %d, want 1000", st.Duplicates)
	}
	if got := r.term.Pushed(); got != 2000 {
		t.Errorf("pushes answered 200: got %d, want 2000", got)
	}
}

// Events logged while the network was cut are not pushed; the next push shows a jump in serialNo
// and the history query fills the gap, pictures fetched from pictureURL.
func TestGapFilledAfterCut(t *testing.T) {
	r := newRig(t, emu.Config{}, nil)
	waitFor(t, "the first history query", func() bool { return r.logs.has("history query done") })
	punch(t, r.term, emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T001", Picture: emu.JPEG(1)})
	r.term.Cut(true)
	lost1 := punch(t, r.term, emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T002", Picture: emu.JPEG(2)})
	lost2 := punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T003"})
	r.term.Cut(false)
	punch(t, r.term, emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T004", Picture: emu.JPEG(4)})
	waitFor(t, "the gap filled", func() bool { n, _ := r.h.count(); return n == 4 })
	got, _ := r.h.get(r.key(lost1.Serial))
	if got.Subject != "T002" || len(got.Evidence) != 1 || !bytes.Equal(r.ev.get(got.Evidence[0].SHA256), emu.JPEG(2)) {
		t.Errorf("filled face: got %+v, want T002 with its capture", got)
	}
	if !strings.Contains(got.Detail, "via history") {
		t.Errorf("filled face detail: got %q, want it to say via history", got.Detail)
	}
	if got, _ := r.h.get(r.key(lost2.Serial)); got.Subject != "T003" || got.Method != drivers.Card {
		t.Errorf("filled card: got %+v, want T003 card", got)
	}
	if _, handed := r.h.count(); handed != 4 {
		t.Errorf("readings handed: got %d, want 4 (each once)", handed)
	}
	if !r.logs.has("history query filled a gap") {
		t.Errorf("no log line for the filled gap")
	}
}

// The alertStream delivers events (JSON or XML parts) with the JPEG part that follows them;
// heartbeats are no readings.
func TestAlertStream(t *testing.T) {
	for _, xml := range []bool{false, true} {
		t.Run(fmt.Sprintf("xml=%v", xml), func(t *testing.T) {
			r := newRig(t, emu.Config{Heartbeat: 20 * time.Millisecond, StreamXML: xml}, func(c *hikisapi.Config) {
				c.Receive = hikisapi.ReceiveStream
				c.HeartbeatTimeout = drivers.Duration(2 * time.Second)
			})
			waitFor(t, "the stream open", func() bool { return r.logs.has("alertStream open") })
			face := punch(t, r.term, emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T001", Picture: emu.JPEG(9)})
			fp := punch(t, r.term, emu.Event{Minor: emu.MinorFingerprint, EmployeeNo: "T005"})
			waitFor(t, "two readings", func() bool { n, _ := r.h.count(); return n == 2 })
			got, _ := r.h.get(r.key(face.Serial))
			if got.Subject != "T001" || len(got.Evidence) != 1 || !bytes.Equal(r.ev.get(got.Evidence[0].SHA256), emu.JPEG(9)) {
				t.Errorf("streamed face: got %+v, want T001 with its picture", got)
			}
			if got, _ := r.h.get(r.key(fp.Serial)); got.Method != drivers.Fingerprint || got.Subject != "T005" {
				t.Errorf("streamed fingerprint: got %+v, want T005 fingerprint", got)
			}
			if n := r.term.Requests("/ISAPI/Event/notification/httpHosts/1"); n != 0 {
				t.Errorf("stream mode wrote httpHosts %d times, want 0", n)
			}
		})
	}
}

// A stream that stops in the middle of a part loses nothing: the part is discarded with a log
// line, the stream reconnects and the history query brings the event back, recorded once.
func TestStreamStopsMidPart(t *testing.T) {
	r := newRig(t, emu.Config{Heartbeat: 20 * time.Millisecond}, func(c *hikisapi.Config) {
		c.Receive = hikisapi.ReceiveStream
		c.HeartbeatTimeout = drivers.Duration(2 * time.Second)
	})
	waitFor(t, "the stream open", func() bool { return r.logs.has("alertStream open") && r.logs.has("history query done") })
	punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T001"})
	waitFor(t, "the first reading", func() bool { n, _ := r.h.count(); return n == 1 })
	r.term.StopMidPart()
	cut := punch(t, r.term, emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T002", Picture: emu.JPEG(3)})
	waitFor(t, "the cut-off event back", func() bool { _, ok := r.h.get(r.key(cut.Serial)); return ok })
	if !r.logs.has("alertStream part cut off") {
		t.Errorf("no log line for the cut-off part")
	}
	got, _ := r.h.get(r.key(cut.Serial))
	if got.Subject != "T002" || len(got.Evidence) != 1 {
		t.Errorf("recovered event: got %+v, want T002 with its capture", got)
	}
	waitFor(t, "the stream reopened", func() bool { return r.logs.count("alertStream open") >= 2 })
	after := punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T003"})
	waitFor(t, "a reading on the new stream", func() bool { _, ok := r.h.get(r.key(after.Serial)); return ok })
	if _, handed := r.h.count(); handed != 3 {
		t.Errorf("readings handed: got %d, want 3", handed)
	}
}

// A stream that stays open but says nothing (no heartbeat) is reconnected.
func TestSilentStreamReconnected(t *testing.T) {
	r := newRig(t, emu.Config{Heartbeat: time.Hour}, func(c *hikisapi.Config) {
		c.Receive = hikisapi.ReceiveStream
		c.HeartbeatTimeout = drivers.Duration(200 * time.Millisecond)
	})
	waitFor(t, "a reconnect", func() bool { return r.logs.count("alertStream open") >= 2 })
	if !r.logs.has("alertStream silent") {
		r.logs.dump(t)
		t.Errorf("no log line naming the silence")
	}
}

// A wrong password is tried exactly once: the stream, the history, their reopen and person syncs
// all refuse without asking the terminal again, and Health says until when.
func TestWrongPasswordTriedOnceStreaming(t *testing.T) {
	r := newRig(t, emu.Config{}, func(c *hikisapi.Config) { c.Password = "wrong"; c.Receive = hikisapi.ReceiveStream })
	waitFor(t, "the first attempt", func() bool { return r.term.AuthFailures() == 1 })
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.src.SyncPersons(context.Background(), nil); !errors.Is(err, hikisapi.ErrRejected) {
				t.Errorf("sync: got %v, want ErrRejected", err)
			}
		}()
	}
	wg.Wait()
	if got := r.term.AuthFailures(); got != 1 {
		t.Errorf("wrong passwords sent: got %d, want exactly 1", got)
	}
}

// The same in push mode, across a reopen.
func TestWrongPasswordTriedOnce(t *testing.T) {
	r := newRig(t, emu.Config{}, func(c *hikisapi.Config) { c.Password = "wrong" })
	waitFor(t, "the first attempt", func() bool { return r.term.AuthFailures() == 1 })
	_, err := r.src.SyncPersons(context.Background(), []drivers.Person{{Trainee: "T001"}})
	var le *hikisapi.LockError
	if !errors.As(err, &le) || !errors.Is(err, hikisapi.ErrRejected) {
		t.Fatalf("sync after a rejection: got %v, want ErrRejected", err)
	}
	if d := time.Until(le.Until); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("next attempt in %v, want about 30m (auth_retry)", d)
	}
	if le.RetryLeft != 4 {
		t.Errorf("attempts left: got %d, want 4", le.RetryLeft)
	}
	r.src.Close()
	again, err := hikisapi.Open(context.Background(), *r.cfg, drivers.Env{Name: "hik-1", Log: r.logs.log})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	if _, err := again.SyncPersons(context.Background(), nil); !errors.Is(err, hikisapi.ErrRejected) {
		t.Errorf("sync after reopen: got %v, want ErrRejected", err)
	}
	if got := r.term.AuthFailures(); got != 1 {
		t.Errorf("wrong passwords sent: got %d, want exactly 1", got)
	}
	h := again.Health()
	if h.State != drivers.StateDegraded || !strings.Contains(h.LastErr, "until") {
		t.Errorf("health: got %+v, want degraded with the next attempt time", h)
	}
	if !r.logs.has("rejected the password") {
		t.Errorf("no log line for the rejected password")
	}
}

// A terminal that answers with a lock reports its unlock time; pushes still arrive meanwhile.
func TestLockedAccount(t *testing.T) {
	r := newRig(t, emu.Config{LockAfter: 1, LockFor: 20 * time.Minute}, func(c *hikisapi.Config) { c.Password = "wrong" })
	waitFor(t, "the first attempt", func() bool { return r.term.AuthFailures() == 1 })
	waitFor(t, "the lock seen", func() bool { return !r.src.Status().LockedUntil.IsZero() && r.logs.has("locked the account") })
	st := r.src.Status()
	if d := time.Until(st.LockedUntil); d < 19*time.Minute || d > 21*time.Minute {
		t.Errorf("unlock in %v, want about 20m", d)
	}
	if !strings.Contains(st.LastErr, "locked") {
		t.Errorf("health last error: got %q, want it to say locked", st.LastErr)
	}
	if !r.logs.has("locked the account") || !r.logs.has("unlock_time=") {
		t.Errorf("no log line with the unlock time")
	}
	if _, err := r.src.SyncPersons(context.Background(), nil); !errors.Is(err, hikisapi.ErrLocked) {
		t.Errorf("sync while locked: got %v, want ErrLocked", err)
	}
	if got := r.term.AuthFailures(); got != 1 {
		t.Errorf("attempts while locked: got %d, want 1", got)
	}
}

// The roster's persons and photos go onto the terminal one write at a time; a photo that is
// another person's face is refused with faceDuplicate, an alarm, and flags that trainee's punches.
func TestSyncPersonsAndFaceDuplicate(t *testing.T) {
	r := newRig(t, emu.Config{}, func(c *hikisapi.Config) { c.KeepPersons = []string{"ADMIN"} })
	r.term.AddPerson(emu.Person{EmployeeNo: "ADMIN", Name: "管理员", Begin: "2020-01-01T00:00:00", End: "2037-12-31T23:59:59", Enable: true})
	r.term.AddPerson(emu.Person{EmployeeNo: "GONE", Name: "left the course", Begin: "2026-01-01T00:00:00", End: "2026-02-01T00:00:00", Enable: true})
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	until := time.Date(2026, 6, 30, 23, 59, 59, 0, time.FixedZone("CST", 8*3600))
	ps := []drivers.Person{
		{Trainee: "T001", Name: "张三", ValidFrom: from, ValidUntil: until, Photo: emu.JPEG(1)},
		{Trainee: "T002", Name: "李四", ValidFrom: from, ValidUntil: until, Photo: emu.JPEG(2)},
		{Trainee: "T003", Name: "王五", ValidFrom: from, ValidUntil: until, Photo: emu.JPEG(1)}, // T001's face
		{Trainee: "T004", Name: "赵六"},
	}
	// Two syncs at once: the terminal must still see one write at a time.
	reps := make(chan string, 2)
	for i := 0; i < 2; i++ {
		go func() {
			rep, err := r.src.SyncPersons(context.Background(), ps)
			if err != nil {
				rep = "error: " + err.Error()
			}
			reps <- rep
		}()
	}
	rep1, rep2 := <-reps, <-reps
	if !strings.Contains(rep1+rep2, "faceDuplicate") {
		t.Errorf("reports: got %q and %q, want a faceDuplicate", rep1, rep2)
	}
	if m, busy := r.term.MaxConcurrentWrites(); m != 1 || busy != 0 {
		t.Errorf("writes in progress at once: got %d (deviceBusy %d), want 1 (0)", m, busy)
	}
	persons := r.term.Persons()
	if len(persons) != 5 || persons["GONE"].EmployeeNo != "" || persons["ADMIN"].EmployeeNo != "ADMIN" {
		t.Errorf("persons on the terminal: got %v, want T001..T004 and ADMIN (kept), not GONE", persons)
	}
	if p := persons["T001"]; p.Begin != "2026-03-01T00:00:00" || p.End != "2026-06-30T23:59:59" || !p.Enable || p.Name != "张三" {
		t.Errorf("T001: got %+v, want Valid 2026-03-01T00:00:00..2026-06-30T23:59:59", p)
	}
	if p := persons["T004"]; p.Begin != "2000-01-01T00:00:00" || p.End != "2037-12-31T23:59:59" {
		t.Errorf("T004 without validity: got %+v, want the widest period", p)
	}
	faces := r.term.Faces()
	if len(faces) != 2 || !bytes.Equal(faces["T002"], emu.JPEG(2)) || faces["T003"] != nil {
		t.Errorf("faces: got %d (T003 %v), want T001 and T002 only", len(faces), faces["T003"] != nil)
	}
	st := r.src.Status()
	if _, ok := st.FaceDuplicates["T003"]; !ok || len(st.FaceDuplicates) != 1 {
		t.Errorf("status face duplicates: got %v, want T003", st.FaceDuplicates)
	}
	if !r.logs.has("ALARM faceDuplicate") {
		t.Errorf("no alarm log line for the faceDuplicate")
	}
	waitFor(t, "httpHosts configured", func() bool { return r.term.HTTPHost() != "" })
	e := punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T003"})
	if got, _ := r.h.get(r.key(e.Serial)); !slices.Contains(got.Flags, hikisapi.FlagFaceDuplicate) {
		t.Errorf("T003's punch: got flags %v, want %s", got.Flags, hikisapi.FlagFaceDuplicate)
	}

	// A second sync with one validity changed writes only that.
	ps[1].ValidUntil = until.AddDate(0, 1, 0)
	rep, err := r.src.SyncPersons(context.Background(), ps)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep, "0 added, 1 modified, 0 removed; faces 0 uploaded") {
		t.Errorf("second sync: got %q, want one modification and no upload", rep)
	}
	if got := r.term.Persons()["T002"].End; got != "2026-07-30T23:59:59" {
		t.Errorf("T002 end: got %q, want 2026-07-30T23:59:59", got)
	}
}

// Digest with SHA-256 works as with MD5.
func TestDigestSHA256(t *testing.T) {
	r := newRig(t, emu.Config{Algorithm: "SHA-256"}, nil)
	rep, err := r.src.SyncPersons(context.Background(), []drivers.Person{{Trainee: "T001", Name: "x"}})
	if err != nil || !strings.Contains(rep, "1 added") {
		t.Fatalf("sync: got %q, %v; want 1 added", rep, err)
	}
	if r.term.AuthFailures() != 0 {
		t.Errorf("auth failures: got %d, want 0", r.term.AuthFailures())
	}
}

// A terminal whose clock is far off flags its readings, and Status says by how much.
func TestClockOff(t *testing.T) {
	r := newRig(t, emu.Config{}, nil)
	waitFor(t, "httpHosts configured", func() bool { return r.term.HTTPHost() != "" })
	ok := punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T001"})
	r.term.SetClockOffset(10 * time.Minute)
	off := punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T001"})
	if got, _ := r.h.get(r.key(ok.Serial)); slices.Contains(got.Flags, hikisapi.FlagClockOff) {
		t.Errorf("a punch on time: got flags %v, want none", got.Flags)
	}
	if got, _ := r.h.get(r.key(off.Serial)); !slices.Contains(got.Flags, hikisapi.FlagClockOff) {
		t.Errorf("a punch 10 minutes ahead: got flags %v, want %s", got.Flags, hikisapi.FlagClockOff)
	}
	if st := r.src.Status(); !st.ClockKnown || st.ClockOffset < 9*time.Minute || st.ClockOffset > 11*time.Minute {
		t.Errorf("clock offset: got %v (known %v), want about +10m", st.ClockOffset, st.ClockKnown)
	}
	if st := r.src.Status(); st.LastContact.IsZero() {
		t.Errorf("last contact: got zero, want the last push")
	}
}

func post(t *testing.T, url, ctype string, body []byte) int {
	t.Helper()
	resp, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Bad pushes are refused with a status and a log line; good ones around them still record.
func TestBadPushes(t *testing.T) {
	r := newRig(t, emu.Config{}, func(c *hikisapi.Config) { c.History = hikisapi.HistoryOff })
	waitFor(t, "httpHosts configured", func() bool { return r.term.HTTPHost() != "" })
	url := r.term.HTTPHost()

	if got := post(t, url, "multipart/form-data", []byte("no boundary line here\r\n{}")); got != http.StatusBadRequest {
		t.Errorf("multipart without a boundary: got %d, want 400", got)
	}
	if !r.logs.has("multipart body without a boundary") {
		t.Errorf("no log line for the missing boundary")
	}
	if got := post(t, url, "application/json", []byte(`{"eventType":"AccessControllerEvent","AccessControllerEvent":{"majorEventType":5,"subEventType":`)); got != http.StatusBadRequest {
		t.Errorf("truncated JSON: got %d, want 400", got)
	}
	if got := post(t, url, "application/json", bytes.Repeat([]byte("x"), 10<<20)); got != http.StatusRequestEntityTooLarge {
		t.Errorf("a 10 MB body (cap 2 MiB): got %d, want 413", got)
	}
	if got := r.src.Health().Dropped; got != 3 {
		t.Errorf("dropped: got %d, want 3", got)
	}

	// A JSON event without serialNo is recorded, keyed by its content: sent twice, recorded once.
	noSerial := []byte(`{"dateTime":"2026-03-02T08:01:28+08:00","eventType":"AccessControllerEvent","AccessControllerEvent":{"majorEventType":5,"subEventType":75,"employeeNoString":"T009"}}`)
	for i := 0; i < 2; i++ {
		if got := post(t, url, "application/json", noSerial); got != http.StatusOK {
			t.Fatalf("event without serialNo: got %d, want 200", got)
		}
	}
	rec, handed := r.h.count()
	if rec != 1 || handed != 2 {
		t.Errorf("event without serialNo sent twice: got %d recorded of %d handed, want 1 of 2", rec, handed)
	}
	if !r.logs.has("without serialNo") {
		t.Errorf("no log line for the missing serialNo")
	}
	good := punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T001"})
	if _, ok := r.h.get(r.key(good.Serial)); !ok {
		t.Errorf("a good push after the bad ones was not recorded")
	}
}

// A client that sends its headers slowly is cut off by the header timeout.
func TestSlowLorisCutOff(t *testing.T) {
	r := newRig(t, emu.Config{}, func(c *hikisapi.Config) { c.RequestTimeout = drivers.Duration(200 * time.Millisecond) })
	waitFor(t, "httpHosts configured", func() bool { return r.term.HTTPHost() != "" })
	host := strings.TrimPrefix(r.term.HTTPHost(), "http://")
	host, _, _ = strings.Cut(host, "/")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("POST /hik/event HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, 512)
	_, err = c.Read(b)
	for err == nil {
		_, err = c.Read(b)
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Errorf("a half-sent header kept the connection: got %v, want it closed", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A push from a host that is not the terminal is refused: the terminal listens on 127.0.0.2,
// the post comes from 127.0.0.1.
func TestPushFromAnotherHostRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("this test needs 127.0.0.2 on the loopback: %v", err)
	}
	term := emu.New(emu.Config{Serial: testSerial})
	srv := httptest.NewUnstartedServer(term)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	cfg := hikisapi.NewConfig()
	cfg.Address, cfg.Serial, cfg.Password, cfg.Listen, cfg.History = srv.URL, testSerial, "12345abc", "127.0.0.1:0", hikisapi.HistoryOff
	logs := newLogCapture(t)
	src, err := hikisapi.Open(context.Background(), *cfg, drivers.Env{Name: "hik-1", Log: logs.log})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := startHarness(t, src)
	waitFor(t, "httpHosts configured", func() bool { return term.HTTPHost() != "" })
	e := term.EventJSON(emu.Event{Serial: 1, Time: time.Now(), Major: 5, Minor: emu.MinorCard, EmployeeNo: "T001"})
	if got := post(t, term.HTTPHost(), "application/json", e); got != http.StatusForbidden {
		t.Errorf("a push from 127.0.0.1: got %d, want 403", got)
	}
	if n, _ := h.count(); n != 0 {
		t.Errorf("readings: got %d, want 0", n)
	}
	if !logs.has("not the terminal") || src.Health().Dropped != 1 {
		t.Errorf("want a log line and one dropped, got dropped %d", src.Health().Dropped)
	}
}

// A push cut off halfway by a power cut is refused with a log line; the event, in the terminal's
// log, comes back through the history query when the next push shows the gap.
func TestPowerCutMidPush(t *testing.T) {
	r := newRig(t, emu.Config{}, nil)
	waitFor(t, "the first history query", func() bool { return r.logs.has("history query done") })
	r.term.PowerCutMidPush()
	lost, err := r.term.Punch(context.Background(), emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T001", Picture: emu.JPEG(1)})
	if err == nil {
		t.Fatalf("the cut push: got no error, want the emulator's power cut")
	}
	waitFor(t, "the half body refused", func() bool { return r.logs.has("reading a pushed body failed") })
	if n, _ := r.h.count(); n != 0 {
		t.Fatalf("a half body: got %d readings, want 0", n)
	}
	punch(t, r.term, emu.Event{Minor: emu.MinorCard, EmployeeNo: "T002"})
	waitFor(t, "the lost event back", func() bool { _, ok := r.h.get(r.key(lost.Serial)); return ok })
	if got, _ := r.h.get(r.key(lost.Serial)); got.Subject != "T001" || len(got.Evidence) != 1 {
		t.Errorf("recovered: got %+v, want T001 with its capture", got)
	}
	if rec, handed := r.h.count(); rec != 2 || handed != 2 {
		t.Errorf("got %d recorded of %d handed, want 2 of 2", rec, handed)
	}
}
