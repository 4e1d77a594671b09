package hikisapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kaoqin/kaoqin/drivers/hikisapi"
	"github.com/kaoqin/kaoqin/drivers/hikisapi/emu"
)

func benchEvent() (emu.Event, *emu.Terminal) {
	term := emu.New(emu.Config{})
	return emu.Event{Serial: 1187, Time: time.Date(2026, 3, 2, 8, 1, 28, 0, time.FixedZone("", 8*3600)), Major: 5, Minor: 75,
		EmployeeNo: "T001", Name: "张三", Picture: emu.JPEG(5)}, term
}

// BenchmarkDecodeEventJSON decodes a pushed JSON event as the receiver does. Compare with
// BenchmarkBareJSONUnmarshal: encoding/json alone on the same bytes.
func BenchmarkDecodeEventJSON(b *testing.B) {
	e, term := benchEvent()
	body := term.EventJSON(e)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hikisapi.DecodeEvent("application/json", body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareJSONUnmarshal is encoding/json.Unmarshal of the same event into a plain struct of
// the fields the driver reads.
func BenchmarkBareJSONUnmarshal(b *testing.B) {
	e, term := benchEvent()
	body := term.EventJSON(e)
	var v struct {
		DateTime  string `json:"dateTime"`
		EventType string `json:"eventType"`
		ACS       struct {
			Major      int    `json:"majorEventType"`
			Minor      int    `json:"subEventType"`
			Name       string `json:"name"`
			EmployeeNo string `json:"employeeNoString"`
			SerialNo   uint64 `json:"serialNo"`
			Verify     string `json:"currentVerifyMode"`
			Attendance string `json:"attendanceStatus"`
			Pictures   int    `json:"picturesNumber"`
		} `json:"AccessControllerEvent"`
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func benchMultipart(b *testing.B) ([]byte, string) {
	e, term := benchEvent()
	return multipartBody(b, [2]string{"event_log", string(term.EventJSON(e))}, [2]string{"Picture", string(e.Picture)})
}

// BenchmarkDecodeEventMultipart decodes a pushed multipart event with its capture. Compare with
// BenchmarkBareMultipart: mime/multipart reading the same parts, and nothing else.
func BenchmarkDecodeEventMultipart(b *testing.B) {
	body, ctype := benchMultipart(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := hikisapi.DecodeEvent(ctype, body)
		if err != nil || len(ev.Pictures) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkBareMultipart(b *testing.B) {
	body, ctype := benchMultipart(b)
	_, params, _ := mime.ParseMediaType(ctype)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadAll(p); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPushEvent is one event end to end: the emulated terminal posts a multipart event with
// its capture, the driver decodes it, keeps the photo, hands the reading to the harness and
// answers 200 after Done. Compare with BenchmarkBarePost: the same body posted over loopback to a
// handler that reads it and answers 200.
func BenchmarkPushEvent(b *testing.B) {
	r := newRig(b, emu.Config{}, func(c *hikisapi.Config) { c.History = hikisapi.HistoryOff })
	waitFor(b, "httpHosts configured", func() bool { return r.term.HTTPHost() != "" })
	pic := emu.JPEG(5)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.term.Punch(ctx, emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T001", Picture: pic}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n, _ := r.h.count(); n < b.N {
		b.Fatalf("recorded %d of %d", n, b.N)
	}
}

func BenchmarkBarePost(b *testing.B) {
	body, ctype := benchMultipart(b)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"statusCode":1,"statusString":"OK","subStatusCode":"ok"}`)
	}))
	defer srv.Close()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Post(srv.URL, ctype, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
