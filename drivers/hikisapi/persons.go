package hikisapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/drivers"
)

// Limits of the terminal's person and face records.
const (
	maxEmployeeNo = 32
	maxFacePhoto  = 200 << 10
	faceLibType   = "blackFD"
	validLayout   = "2006-01-02T15:04:05"
)

// Unbounded validity is written as the widest period the terminals accept.
var (
	validEver  = time.Date(2000, 1, 1, 0, 0, 0, 0, chinaTime)
	validNever = time.Date(2037, 12, 31, 23, 59, 59, 0, chinaTime)
)

type userValid struct {
	Enable    bool   `json:"enable"`
	BeginTime string `json:"beginTime"`
	EndTime   string `json:"endTime"`
	TimeType  string `json:"timeType,omitempty"`
}

type userInfo struct {
	EmployeeNo string    `json:"employeeNo"`
	Name       string    `json:"name"`
	UserType   string    `json:"userType"`
	Valid      userValid `json:"Valid"`
	NumOfFace  int       `json:"numOfFace,omitempty"`
}

func personInfo(p drivers.Person) userInfo {
	from, until := p.ValidFrom, p.ValidUntil
	if from.IsZero() {
		from = validEver
	}
	if until.IsZero() {
		until = validNever
	}
	return userInfo{EmployeeNo: p.Trainee, Name: p.Name, UserType: "normal",
		Valid: userValid{Enable: true, BeginTime: from.In(chinaTime).Format(validLayout), EndTime: until.In(chinaTime).Format(validLayout)}}
}

// same reports whether the terminal's record v already says what u says. Times compare as
// instants: some firmware answers them with a zone offset ("2026-03-01T00:00:00+08:00").
func (u userInfo) same(v userInfo) bool {
	return u.Name == v.Name && u.Valid.Enable == v.Valid.Enable && sameTime(u.Valid.BeginTime, v.Valid.BeginTime) &&
		sameTime(u.Valid.EndTime, v.Valid.EndTime)
}

func sameTime(a, b string) bool {
	ta, ea := parseTime(a)
	tb, eb := parseTime(b)
	if ea != nil || eb != nil {
		return a == b
	}
	return ta.Equal(tb)
}

// SyncPersons makes the terminal's persons equal to ps (employeeNo = trainee ID, Valid = the
// voucher's validity) and uploads each photo that the terminal does not hold yet, one write at a
// time. Persons named in Config.KeepPersons are never deleted. A person the terminal refuses (a bad photo, a face enrolled under another person) is in
// the report and does not stop the others; a faceDuplicate is logged as an alarm, shown in
// Status and flags that trainee's readings. An error means the terminal could not be asked
// (unreachable, locked account): nothing more was written.
func (t *Terminal) SyncPersons(ctx context.Context, ps []drivers.Person) (string, error) {
	have, err := t.listUsers(ctx)
	if err != nil {
		return "", err
	}
	want := map[string]drivers.Person{}
	var refused []string
	for _, p := range ps {
		if p.Trainee == "" || len(p.Trainee) > maxEmployeeNo {
			refused = append(refused, fmt.Sprintf("%q: employeeNo must be 1..%d characters", p.Trainee, maxEmployeeNo))
			continue
		}
		want[p.Trainee] = p
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var added, modified, removed, uploaded, dups int
	for _, id := range ids {
		u := personInfo(want[id])
		cur, ok := have[id]
		switch {
		case !ok:
			err = t.userWrite(ctx, "Record", http.MethodPost, u)
			added++
		case !cur.same(u):
			err = t.userWrite(ctx, "Modify", http.MethodPut, u)
			modified++
		default:
			continue
		}
		if err != nil {
			var se *StatusError
			if !errors.As(err, &se) {
				return "", fmt.Errorf("hikisapi: person %s: %w", id, err)
			}
			refused = append(refused, fmt.Sprintf("%s: %s", id, se.SubStatus))
		}
	}
	var gone []string
	for id := range have {
		if _, ok := want[id]; !ok && !slices.Contains(t.cfg.KeepPersons, id) {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for len(gone) > 0 {
		n := min(len(gone), 30)
		if err := t.userDelete(ctx, gone[:n]); err != nil {
			return "", fmt.Errorf("hikisapi: deleting persons: %w", err)
		}
		t.st.count(func(s *state) {
			for _, id := range gone[:n] {
				delete(s.faces, id)
			}
		})
		removed += n
		gone = gone[n:]
	}
	for _, id := range ids {
		p := want[id]
		if len(p.Photo) == 0 {
			continue
		}
		sum := sha256.Sum256(p.Photo)
		h := hex.EncodeToString(sum[:])
		t.st.mu.Lock()
		same := t.st.faces[id] == h
		t.st.mu.Unlock()
		if same {
			continue
		}
		err := t.uploadFace(ctx, id, p.Photo)
		var se *StatusError
		switch {
		case err == nil:
			uploaded++
			t.st.count(func(s *state) { s.faces[id] = h; delete(s.faceDups, id) })
		case errors.As(err, &se) && se.SubStatus == "faceDuplicate":
			dups++
			msg := "the terminal holds this face under another person: " + se.Msg
			t.st.count(func(s *state) { s.faceDups[id] = strings.TrimSpace(msg) })
			t.log.Error("hikisapi: ALARM faceDuplicate: the photo of a trainee is already enrolled under another person (possible impersonation)",
				"trainee", id, "terminal_says", se.Msg)
			refused = append(refused, id+": faceDuplicate")
		case errors.As(err, &se) || errors.Is(err, errFaceTooBig):
			refused = append(refused, fmt.Sprintf("%s: face %v", id, faceReason(err)))
		default:
			return "", fmt.Errorf("hikisapi: face of %s: %w", id, err)
		}
	}
	rep := fmt.Sprintf("hikisapi: persons %d added, %d modified, %d removed; faces %d uploaded", added, modified, removed, uploaded)
	if dups > 0 {
		rep += fmt.Sprintf(", %d faceDuplicate (ALARM)", dups)
	}
	if len(refused) > 0 {
		rep += "; refused: " + strings.Join(refused, ", ")
	}
	return rep, nil
}

func faceReason(err error) string {
	var se *StatusError
	if errors.As(err, &se) {
		return se.SubStatus
	}
	return err.Error()
}

var errFaceTooBig = fmt.Errorf("hikisapi: face photo over %d bytes (the terminal takes at most 200 KB)", maxFacePhoto)

type userSearch struct {
	UserInfoSearch struct {
		SearchID           string     `json:"searchID"`
		ResponseStatusStrg string     `json:"responseStatusStrg"`
		NumOfMatches       int        `json:"numOfMatches"`
		TotalMatches       int        `json:"totalMatches"`
		UserInfo           []userInfo `json:"UserInfo"`
	} `json:"UserInfoSearch"`
}

// listUsers pages through UserInfo/Search.
func (t *Terminal) listUsers(ctx context.Context) (map[string]userInfo, error) {
	var idb [8]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	out := map[string]userInfo{}
	pos := 0
	for page := 0; page < maxHistoryPages; page++ {
		body, _ := json.Marshal(map[string]any{"UserInfoSearchCond": map[string]any{"searchID": id, "searchResultPosition": pos, "maxResults": 30}})
		var ans userSearch
		if err := t.cl.call(ctx, http.MethodPost, "/ISAPI/AccessControl/UserInfo/Search?format=json", "application/json", body, &ans); err != nil {
			return nil, fmt.Errorf("hikisapi: listing persons: %w", err)
		}
		a := ans.UserInfoSearch
		for _, u := range a.UserInfo {
			out[u.EmployeeNo] = u
		}
		if strings.ToUpper(a.ResponseStatusStrg) != "MORE" || a.NumOfMatches <= 0 {
			break
		}
		pos += a.NumOfMatches
	}
	return out, nil
}

func (t *Terminal) userWrite(ctx context.Context, op, method string, u userInfo) error {
	body, _ := json.Marshal(map[string]any{"UserInfo": u})
	return t.cl.call(ctx, method, "/ISAPI/AccessControl/UserInfo/"+op+"?format=json", "application/json", body, nil)
}

func (t *Terminal) userDelete(ctx context.Context, ids []string) error {
	list := make([]map[string]string, len(ids))
	for i, id := range ids {
		list[i] = map[string]string{"employeeNo": id}
	}
	body, _ := json.Marshal(map[string]any{"UserInfoDelCond": map[string]any{"EmployeeNoList": list}})
	return t.cl.call(ctx, http.MethodPut, "/ISAPI/AccessControl/UserInfo/Delete?format=json", "application/json", body, nil)
}

// uploadFace deletes the person's face (firmware keeps an old one otherwise) and uploads photo.
func (t *Terminal) uploadFace(ctx context.Context, id string, photo []byte) error {
	if len(photo) > maxFacePhoto {
		return errFaceTooBig
	}
	del, _ := json.Marshal(map[string]any{"FPID": []map[string]string{{"value": id}}})
	q := "?format=json&FDID=" + t.cfg.FaceLibrary + "&faceLibType=" + faceLibType
	if err := t.cl.call(ctx, http.MethodPut, "/ISAPI/Intelligent/FDLib/FDSearch/Delete"+q, "application/json", del, nil); err != nil {
		var se *StatusError
		if !errors.As(err, &se) {
			return err
		}
		// No face to delete is the usual answer for a new person.
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	rec, _ := json.Marshal(map[string]string{"faceLibType": faceLibType, "FDID": t.cfg.FaceLibrary, "FPID": id})
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="FaceDataRecord"`)
	h.Set("Content-Type", "application/json")
	pw, _ := mw.CreatePart(h)
	pw.Write(rec)
	h = textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="FaceImage"; filename="facePic.jpg"`)
	h.Set("Content-Type", "image/jpeg")
	pw, _ = mw.CreatePart(h)
	pw.Write(photo)
	mw.Close()
	return t.cl.call(ctx, http.MethodPost, "/ISAPI/Intelligent/FDLib/FaceDataRecord?format=json", mw.FormDataContentType(), buf.Bytes(), nil)
}
