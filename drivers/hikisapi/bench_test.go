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

// paired runs the driver's work and its baseline alternately in one loop, so that both see the
// same machine at the same moment, and reports each one's time per operation and their ratio.
func paired(b *testing.B, driver, baseline func()) {
	b.Helper()
	driver()
	baseline()
	var td, tb time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		baseline()
		t1 := time.Now()
		driver()
		td += time.Since(t1)
		tb += t1.Sub(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(td.Nanoseconds())/n, "driver-ns/op")
	b.ReportMetric(float64(tb.Nanoseconds())/n, "baseline-ns/op")
	b.ReportMetric(float64(td)/float64(tb), "ratio")
}

func benchEvent() (emu.Event, *emu.Terminal) {
	term := emu.New(emu.Config{})
	return emu.Event{Serial: 1187, Time: time.Date(2026, 3, 2, 8, 1, 28, 0, time.FixedZone("", 8*3600)), Major: 5, Minor: 75,
		EmployeeNo: "T001", Name: "张三", Picture: emu.JPEG(5)}, term
}

// bareEvent is a plain struct of the fields the driver reads, for encoding/json alone.
type bareEvent struct {
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

// BenchmarkDecodeEventJSON: a pushed JSON event through DecodeEvent, against encoding/json
// unmarshalling the same bytes into bareEvent.
func BenchmarkDecodeEventJSON(b *testing.B) {
	e, term := benchEvent()
	body := term.EventJSON(e)
	defer b.ReportMetric(float64(len(body)), "bytes")
	paired(b, func() {
		if _, err := hikisapi.DecodeEvent("application/json", body); err != nil {
			b.Fatal(err)
		}
	}, func() {
		var v bareEvent
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkDecodeEventMultipart: a pushed multipart event with its capture through DecodeEvent,
// against mime/multipart reading the same parts plus encoding/json on the event part.
func BenchmarkDecodeEventMultipart(b *testing.B) {
	e, term := benchEvent()
	body, ctype := multipartBody(b, [2]string{"event_log", string(term.EventJSON(e))}, [2]string{"Picture", string(e.Picture)})
	_, params, _ := mime.ParseMediaType(ctype)
	defer b.ReportMetric(float64(len(body)), "bytes")
	paired(b, func() {
		ev, err := hikisapi.DecodeEvent(ctype, body)
		if err != nil || len(ev.Pictures) != 1 {
			b.Fatal(err)
		}
	}, func() {
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			data, err := io.ReadAll(p)
			if err != nil {
				b.Fatal(err)
			}
			if p.FormName() == "event_log" {
				var v bareEvent
				if err := json.Unmarshal(data, &v); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkPushEvent: one event end to end (the emulator posts a multipart face event with its
// capture, the driver decodes it, keeps the photo, hands the reading to the harness and answers
// 200 after Done), against the emulator's same body posted over loopback to a handler that
// reads it and answers 200.
func BenchmarkPushEvent(b *testing.B) {
	r := newRig(b, emu.Config{}, func(c *hikisapi.Config) { c.History = hikisapi.HistoryOff })
	waitFor(b, "httpHosts configured", func() bool { return r.term.HTTPHost() != "" })
	e, term := benchEvent()
	body, ctype := multipartBody(b, [2]string{"event_log", string(term.EventJSON(e))}, [2]string{"Picture", string(e.Picture)})
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"statusCode":1,"statusString":"OK","subStatusCode":"ok"}`)
	}))
	defer bare.Close()
	ctx := context.Background()
	n := 0
	paired(b, func() {
		n++
		if _, err := r.term.Punch(ctx, emu.Event{Minor: emu.MinorFacePass, EmployeeNo: "T001", Picture: e.Picture}); err != nil {
			b.Fatal(err)
		}
	}, func() {
		resp, err := http.Post(bare.URL, ctype, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	if got, _ := r.h.count(); got != n {
		b.Fatalf("recorded %d of %d", got, n)
	}
}
