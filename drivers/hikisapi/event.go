package hikisapi

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one ISAPI event notification as the terminal sends it, whichever the encoding (JSON,
// XML, or either inside a multipart body with its pictures).
type Event struct {
	// Type is the notification's eventType: "AccessControllerEvent" for a person at the terminal,
	// "heartBeat" for an alertStream keep-alive (not an event).
	Type string
	// Time is dateTime (live notifications) or time (history entries), with the terminal's own
	// zone offset; zero when the event carried none.
	Time       time.Time
	Major      int
	Minor      int
	EmployeeNo string // employeeNoString (or employeeNo on firmware that sends a number)
	Name       string // informational; always valid UTF-8
	// SerialNo is the terminal's own increasing event number; HasSerial is false when the event
	// carried none (some firmware omits it from live notifications).
	SerialNo  uint64
	HasSerial bool
	// VerifyMode is currentVerifyMode: the door's configured mode ("cardOrFaceOrFp"), or on some
	// firmware the factor used ("face").
	VerifyMode       string
	AttendanceStatus string
	// PicturesNumber is how many picture parts the terminal says follow the event.
	PicturesNumber int
	// PictureURL is a history entry's link to its capture.
	PictureURL string
	// Pictures are the JPEG parts that came with the event, in order.
	Pictures [][]byte
}

// Heartbeat reports whether e is an alertStream keep-alive rather than an event.
func (e *Event) Heartbeat() bool { return strings.EqualFold(e.Type, "heartBeat") }

// Decoder limits: a multipart event carries the event part and a few pictures.
const (
	maxParts      = 8
	maxEventPart  = 64 << 10
	maxEventBytes = 1 << 20
)

// Decoding errors, wrapped with detail by DecodeEvent.
var (
	// ErrNoBoundary is a multipart body whose Content-Type names no boundary and whose first line
	// is not one either.
	ErrNoBoundary = errors.New("hikisapi: multipart body without a boundary")
	// ErrNoEvent is a multipart body without a JSON or XML part.
	ErrNoEvent = errors.New("hikisapi: no event part")
	// ErrFormat is a body that is neither JSON, XML nor multipart, or does not parse as one.
	ErrFormat = errors.New("hikisapi: malformed event")
)

// DecodeEvent decodes one event notification body as the terminal posts it: multipart (an
// event_log part, JSON or XML, then JPEG parts), bare JSON, or bare XML. contentType is the
// request's Content-Type; a body whose type is missing or wrong is recognised by its first byte.
// A multipart Content-Type without a boundary parameter is read with the boundary found on the
// body's first line, as some firmware sends it.
func DecodeEvent(contentType string, body []byte) (Event, error) {
	mt, params, _ := mime.ParseMediaType(contentType) // a bad type: the body's first byte decides
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case strings.HasPrefix(mt, "multipart/") || bytes.HasPrefix(trimmed, []byte("--")):
		return decodeMultipart(params["boundary"], body)
	case len(trimmed) > 0 && trimmed[0] == '{':
		return decodeJSON(body)
	case len(trimmed) > 0 && trimmed[0] == '<':
		return decodeXML(body)
	}
	return Event{}, fmt.Errorf("%w: content type %q, body starts %q", ErrFormat, contentType, head(body))
}

func head(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(b)
}

// sniffBoundary reads the boundary from the body's first line ("--BOUNDARY").
func sniffBoundary(body []byte) string {
	b := bytes.TrimLeft(body, "\r\n")
	if !bytes.HasPrefix(b, []byte("--")) {
		return ""
	}
	line := b[2:]
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	} else {
		return ""
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 70 {
		return ""
	}
	return string(line)
}

func decodeMultipart(boundary string, body []byte) (Event, error) {
	if boundary == "" {
		boundary = sniffBoundary(body)
		if boundary == "" {
			return Event{}, ErrNoBoundary
		}
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var ev Event
	found := false
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Event{}, fmt.Errorf("%w: multipart: %v", ErrFormat, err)
		}
		if n >= maxParts {
			return Event{}, fmt.Errorf("%w: more than %d parts", ErrFormat, maxParts)
		}
		data, err := io.ReadAll(io.LimitReader(p, maxEventBytes+1))
		if err != nil {
			return Event{}, fmt.Errorf("%w: multipart part %d: %v", ErrFormat, n, err)
		}
		if len(data) > maxEventBytes {
			return Event{}, fmt.Errorf("%w: part %d over %d bytes", ErrFormat, n, maxEventBytes)
		}
		switch partKind(p.Header, data) {
		case partEvent:
			if found {
				continue // a second event part: keep the first, as the terminal sends one
			}
			if len(data) > maxEventPart {
				return Event{}, fmt.Errorf("%w: event part over %d bytes", ErrFormat, maxEventPart)
			}
			e, err := decodeBare(data)
			if err != nil {
				return Event{}, err
			}
			pics := ev.Pictures
			ev, found = e, true
			ev.Pictures = pics
		case partPicture:
			ev.Pictures = append(ev.Pictures, data)
		}
	}
	if !found {
		return Event{}, ErrNoEvent
	}
	return ev, nil
}

type kindOfPart int

const (
	partOther kindOfPart = iota
	partEvent
	partPicture
)

// partKind tells an event part (JSON or XML) from a picture by its Content-Type and, where the
// firmware labels it wrongly, by its first bytes.
func partKind(h textproto.MIMEHeader, data []byte) kindOfPart {
	if isJPEG(data) {
		return partPicture
	}
	ct := strings.ToLower(h.Get("Content-Type"))
	t := bytes.TrimLeft(data, " \t\r\n")
	if strings.Contains(ct, "json") || strings.Contains(ct, "xml") || (len(t) > 0 && (t[0] == '{' || t[0] == '<')) {
		return partEvent
	}
	return partOther
}

func isJPEG(b []byte) bool { return len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF }

func decodeBare(data []byte) (Event, error) {
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) > 0 && t[0] == '<' {
		return decodeXML(data)
	}
	return decodeJSON(data)
}

// flexString accepts a JSON string or number (firmware differs on employeeNo and serialNo).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b[1:len(b)-1], '\\') < 0 && utf8.Valid(b) {
			*f = flexString(b[1 : len(b)-1]) // the usual case: nothing escaped
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	if len(b) == 0 || !(b[0] == '-' || b[0] >= '0' && b[0] <= '9') {
		return fmt.Errorf("want a string or a number, got %q", head(b))
	}
	*f = flexString(b) // encoding/json has already checked the number's syntax
	return nil
}

// flexInt accepts a JSON number or a numeric string.
type flexInt struct {
	v   int64
	set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := b
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		s = b[1 : len(b)-1]
	}
	if len(s) == 0 {
		return nil
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer, got %q", head(b))
	}
	f.v, f.set = v, true
	return nil
}

type acsFields struct {
	MajorEventType   flexInt    `json:"majorEventType"`
	SubEventType     flexInt    `json:"subEventType"`
	Name             string     `json:"name"`
	EmployeeNoString flexString `json:"employeeNoString"`
	EmployeeNo       flexString `json:"employeeNo"`
	SerialNo         flexInt    `json:"serialNo"`
	CurrentVerify    string     `json:"currentVerifyMode"`
	Attendance       string     `json:"attendanceStatus"`
	PicturesNumber   flexInt    `json:"picturesNumber"`
}

type jsonEvent struct {
	DateTime  string     `json:"dateTime"`
	EventType string     `json:"eventType"`
	ACS       *acsFields `json:"AccessControllerEvent"`
}

func decodeJSON(data []byte) (Event, error) {
	var j jsonEvent
	if err := json.Unmarshal(data, &j); err != nil {
		return Event{}, fmt.Errorf("%w: json: %v", ErrFormat, err)
	}
	ev := Event{Type: j.EventType}
	if j.DateTime != "" {
		t, err := parseTime(j.DateTime)
		if err != nil {
			return Event{}, fmt.Errorf("%w: dateTime: %v", ErrFormat, err)
		}
		ev.Time = t
	}
	if j.ACS != nil {
		a := j.ACS
		ev.Major, ev.Minor = int(a.MajorEventType.v), int(a.SubEventType.v)
		ev.EmployeeNo = string(a.EmployeeNoString)
		if ev.EmployeeNo == "" {
			ev.EmployeeNo = string(a.EmployeeNo)
		}
		ev.Name = strings.ToValidUTF8(a.Name, "\uFFFD")
		if a.SerialNo.set {
			if a.SerialNo.v < 0 {
				return Event{}, fmt.Errorf("%w: negative serialNo %d", ErrFormat, a.SerialNo.v)
			}
			ev.SerialNo, ev.HasSerial = uint64(a.SerialNo.v), true
		}
		ev.VerifyMode, ev.AttendanceStatus = a.CurrentVerify, a.Attendance
		ev.PicturesNumber = int(min(max(a.PicturesNumber.v, 0), maxParts))
	}
	if ev.Type == "" && j.ACS != nil {
		ev.Type = "AccessControllerEvent"
	}
	if ev.Type == "" {
		return Event{}, fmt.Errorf("%w: json without eventType", ErrFormat)
	}
	return ev, nil
}

type xmlEvent struct {
	DateTime  string `xml:"dateTime"`
	EventType string `xml:"eventType"`
	ACS       *struct {
		MajorEventType   string `xml:"majorEventType"`
		SubEventType     string `xml:"subEventType"`
		Name             string `xml:"name"`
		EmployeeNoString string `xml:"employeeNoString"`
		EmployeeNo       string `xml:"employeeNo"`
		SerialNo         string `xml:"serialNo"`
		CurrentVerify    string `xml:"currentVerifyMode"`
		Attendance       string `xml:"attendanceStatus"`
		PicturesNumber   string `xml:"picturesNumber"`
	} `xml:"AccessControllerEvent"`
}

func decodeXML(data []byte) (Event, error) {
	var x xmlEvent
	d := xml.NewDecoder(bytes.NewReader(data))
	// Old firmware declares GB2312 or GBK. Only the name can be non-ASCII and it is informational:
	// bytes that are not UTF-8 become U+FFFD rather than failing the event.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) {
		b, err := io.ReadAll(r)
		return bytes.NewReader(bytes.ToValidUTF8(b, []byte("\uFFFD"))), err
	}
	if err := d.Decode(&x); err != nil {
		return Event{}, fmt.Errorf("%w: xml: %v", ErrFormat, err)
	}
	ev := Event{Type: strings.TrimSpace(x.EventType)}
	if s := strings.TrimSpace(x.DateTime); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return Event{}, fmt.Errorf("%w: dateTime: %v", ErrFormat, err)
		}
		ev.Time = t
	}
	if a := x.ACS; a != nil {
		var err error
		num := func(key, s string) int {
			s = strings.TrimSpace(s)
			if s == "" || err != nil {
				return 0
			}
			v, e := strconv.Atoi(s)
			if e != nil {
				err = fmt.Errorf("%w: %s: want an integer, got %q", ErrFormat, key, s)
			}
			return v
		}
		ev.Major, ev.Minor = num("majorEventType", a.MajorEventType), num("subEventType", a.SubEventType)
		ev.PicturesNumber = min(max(num("picturesNumber", a.PicturesNumber), 0), maxParts)
		if s := strings.TrimSpace(a.SerialNo); s != "" {
			v, e := strconv.ParseUint(s, 10, 64)
			if e != nil {
				return Event{}, fmt.Errorf("%w: serialNo: want an integer, got %q", ErrFormat, s)
			}
			ev.SerialNo, ev.HasSerial = v, true
		}
		if err != nil {
			return Event{}, err
		}
		ev.EmployeeNo = strings.TrimSpace(a.EmployeeNoString)
		if ev.EmployeeNo == "" {
			ev.EmployeeNo = strings.TrimSpace(a.EmployeeNo)
		}
		ev.Name = strings.ToValidUTF8(strings.TrimSpace(a.Name), "\uFFFD")
		ev.VerifyMode, ev.AttendanceStatus = strings.TrimSpace(a.CurrentVerify), strings.TrimSpace(a.Attendance)
		if ev.Type == "" {
			ev.Type = "AccessControllerEvent"
		}
	}
	if ev.Type == "" {
		return Event{}, fmt.Errorf("%w: xml without eventType", ErrFormat)
	}
	return ev, nil
}

// parseTime reads an ISAPI time: RFC 3339 with a zone offset, or (history entries on some
// firmware) without one, which is read in China Standard Time.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, chinaTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("want a time like 2026-03-02T08:01:28+08:00, got %q", s)
	}
	return t, nil
}

var chinaTime = time.FixedZone("CST", 8*3600)
