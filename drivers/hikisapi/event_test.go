package hikisapi_test

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/hikisapi"
	"github.com/kaoqin/kaoqin/drivers/hikisapi/emu"
)

// The example event of the protocol notes, verbatim.
const notesEvent = `{"ipAddress":"10.0.0.21","portNo":80,"protocol":"HTTP","macAddress":"..","channelID":1,
 "dateTime":"2026-03-02T08:01:28+08:00","activePostCount":1,"eventType":"AccessControllerEvent",
 "eventState":"active","eventDescription":"Access Controller Event",
 "AccessControllerEvent":{"deviceName":"..","majorEventType":5,"subEventType":75,"name":"张三",
  "employeeNoString":"T001","cardReaderNo":1,"serialNo":1187,"userType":"normal",
  "currentVerifyMode":"cardOrFaceOrFp","attendanceStatus":"checkIn","mask":"no",
  "picturesNumber":1,"FaceRect":{"height":0.3,"width":0.2,"x":0.4,"y":0.3}}}`

func multipartBody(t testing.TB, parts ...[2]string) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+p[0]+`"`)
		if p[0] == "Picture" {
			h.Set("Content-Type", "image/jpeg")
		} else {
			h.Set("Content-Type", "application/json")
		}
		w, _ := mw.CreatePart(h)
		w.Write([]byte(p[1]))
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func TestDecodeNotesEvent(t *testing.T) {
	ev, err := hikisapi.DecodeEvent("application/json", []byte(notesEvent))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 3, 2, 0, 1, 28, 0, time.UTC)
	if ev.Type != "AccessControllerEvent" || ev.Major != 5 || ev.Minor != 75 || ev.EmployeeNo != "T001" || ev.Name != "张三" ||
		ev.SerialNo != 1187 || !ev.HasSerial || !ev.Time.Equal(want) || ev.AttendanceStatus != "checkIn" || ev.PicturesNumber != 1 {
		t.Errorf("got %+v, want the notes' event (T001, 5/75, serialNo 1187, %v)", ev, want)
	}
}

func TestDecodeForms(t *testing.T) {
	term := emu.New(emu.Config{})
	e := emu.Event{Serial: 42, Time: time.Date(2026, 3, 2, 8, 1, 28, 0, time.FixedZone("", 8*3600)), Major: 5, Minor: 38, EmployeeNo: "T007", Name: "a<b"}
	pic := emu.JPEG(3)
	mp, ctype := multipartBody(t, [2]string{"event_log", string(term.EventJSON(e))}, [2]string{"Picture", string(pic)})
	mpx, ctypex := multipartBody(t, [2]string{"event_log", string(term.EventXML(e))}, [2]string{"Picture", string(pic)})
	cases := []struct {
		name, ctype string
		body        []byte
		pics        int
	}{
		{"json", "application/json", term.EventJSON(e), 0},
		{"xml", "application/xml", term.EventXML(e), 0},
		{"xml labelled text/plain", "text/plain", term.EventXML(e), 0},
		{"json without content type", "", term.EventJSON(e), 0},
		{"multipart", ctype, mp, 1},
		{"multipart without boundary parameter", "multipart/form-data", mp, 1},
		{"multipart with an XML event_log", ctypex, mpx, 1},
		{"employeeNo as a number", "application/json", []byte(`{"eventType":"AccessControllerEvent","AccessControllerEvent":{"majorEventType":"5","subEventType":38,"employeeNo":7,"serialNo":"42"}}`), 0},
	}
	for _, c := range cases {
		ev, err := hikisapi.DecodeEvent(c.ctype, c.body)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		wantNo := "T007"
		if strings.Contains(c.name, "number") {
			wantNo = "7"
		}
		if ev.Major != 5 || ev.Minor != 38 || ev.EmployeeNo != wantNo || ev.SerialNo != 42 || !ev.HasSerial || len(ev.Pictures) != c.pics {
			t.Errorf("%s: got %+v, want 5/38 %s serialNo 42 with %d pictures", c.name, ev, wantNo, c.pics)
		}
		if c.pics == 1 && !bytes.Equal(ev.Pictures[0], pic) {
			t.Errorf("%s: picture bytes differ", c.name)
		}
	}
}

func TestDecodeRefusals(t *testing.T) {
	noEvent, ctype := multipartBody(t, [2]string{"Picture", string(emu.JPEG(1))})
	cases := []struct {
		name, ctype string
		body        string
		want        error
	}{
		{"multipart without any boundary", "multipart/form-data", "{\"eventType\":\"x\"}", hikisapi.ErrNoBoundary},
		{"multipart with only a picture", ctype, string(noEvent), hikisapi.ErrNoEvent},
		{"multipart cut short", `multipart/form-data; boundary=xyz`, "--xyz\r\nContent-Type: application/json\r\n\r\n{\"eventTy", hikisapi.ErrFormat},
		{"empty", "application/json", "", hikisapi.ErrFormat},
		{"binary", "application/octet-stream", "\x00\x01\x02", hikisapi.ErrFormat},
		{"json without eventType", "application/json", `{"dateTime":"2026-03-02T08:01:28+08:00"}`, hikisapi.ErrFormat},
		{"bad dateTime", "application/json", `{"eventType":"AccessControllerEvent","dateTime":"yesterday"}`, hikisapi.ErrFormat},
		{"negative serialNo", "application/json", `{"eventType":"AccessControllerEvent","AccessControllerEvent":{"serialNo":-4}}`, hikisapi.ErrFormat},
		{"xml with a word for a number", "application/xml", `<EventNotificationAlert><eventType>AccessControllerEvent</eventType><AccessControllerEvent><majorEventType>five</majorEventType></AccessControllerEvent></EventNotificationAlert>`, hikisapi.ErrFormat},
	}
	for _, c := range cases {
		_, err := hikisapi.DecodeEvent(c.ctype, []byte(c.body))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestDecodeHeartbeatAndGBK(t *testing.T) {
	ev, err := hikisapi.DecodeEvent("application/json", []byte(`{"ipAddress":"10.0.0.21","dateTime":"2026-03-02T08:01:28+08:00","activePostCount":0,"eventType":"heartBeat","eventState":"active","eventDescription":"heartBeat"}`))
	if err != nil || !ev.Heartbeat() {
		t.Errorf("heartbeat: got %+v, %v; want a heartbeat", ev, err)
	}
	// Old firmware: XML declared GB2312 with the name in GBK bytes ("张三" is D5 C5 C8 FD).
	gbk := "<?xml version=\"1.0\" encoding=\"GB2312\"?><EventNotificationAlert><eventType>AccessControllerEvent</eventType><AccessControllerEvent><majorEventType>5</majorEventType><subEventType>75</subEventType><name>\xd5\xc5\xc8\xfd</name><employeeNoString>T001</employeeNoString><serialNo>9</serialNo></AccessControllerEvent></EventNotificationAlert>"
	ev, err = hikisapi.DecodeEvent("application/xml", []byte(gbk))
	if err != nil || ev.EmployeeNo != "T001" || ev.SerialNo != 9 {
		t.Fatalf("GB2312 XML: got %+v, %v; want T001 serialNo 9", ev, err)
	}
	if !strings.Contains(ev.Name, "\uFFFD") {
		t.Errorf("GBK name: got %q, want it made valid UTF-8 with replacement characters", ev.Name)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	term := emu.New(emu.Config{})
	e := emu.Event{Serial: 42, Time: time.Now(), Major: 5, Minor: 75, EmployeeNo: "T001", Name: "张三", Picture: emu.JPEG(1)[:64]}
	mp, ctype := multipartBody(f, [2]string{"event_log", string(term.EventJSON(e))}, [2]string{"Picture", "\xff\xd8\xff\xe0 jpeg"})
	f.Add("application/json", []byte(notesEvent))
	f.Add("application/json", term.EventJSON(e))
	f.Add("application/xml", term.EventXML(e))
	f.Add(ctype, mp)
	f.Add("multipart/form-data", mp)
	f.Add("multipart/mixed; boundary=boundary", []byte("--boundary\r\nContent-Type: application/json\r\n\r\n{\"eventType\":\"heartBeat\"}\r\n--boundary--\r\n"))
	f.Add("", []byte("<EventNotificationAlert/>"))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		ev, err := hikisapi.DecodeEvent(ctype, body)
		if err != nil {
			return
		}
		if ev.Type == "" {
			t.Fatalf("decoded an event without a type from %q", body)
		}
		if ev.HasSerial != (ev.SerialNo != 0 || ev.HasSerial) {
			t.Fatalf("inconsistent serial")
		}
		if !utf8Valid(ev.Name) || !utf8Valid(ev.EmployeeNo) {
			t.Fatalf("name %q is not valid UTF-8", ev.Name)
		}
		if ev.PicturesNumber < 0 || ev.PicturesNumber > 8 || len(ev.Pictures) > 8 {
			t.Fatalf("pictures out of bounds: %d / %d", ev.PicturesNumber, len(ev.Pictures))
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

func TestDecodeEmployeeNoForms(t *testing.T) {
	cases := map[string]string{
		`"T001"`:          "T001",
		`"T\u0030\u0031"`: "T01",
		`"T\\1"`:          `T\1`,
		`1234`:            "1234",
		"\"T\xff1\"":      "T\uFFFD1",
	}
	for raw, want := range cases {
		body := `{"eventType":"AccessControllerEvent","AccessControllerEvent":{"majorEventType":5,"subEventType":75,"employeeNoString":` + raw + `}}`
		ev, err := hikisapi.DecodeEvent("application/json", []byte(body))
		if err != nil || ev.EmployeeNo != want {
			t.Errorf("employeeNoString %s: got %q, %v; want %q", raw, ev.EmployeeNo, err, want)
		}
	}
}
