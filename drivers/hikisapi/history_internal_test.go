package hikisapi

import (
	"encoding/json"
	"testing"
)

// FuzzHistoryPage decodes an AcsEvent answer as fillHistory does: no input panics, and every
// entry that decodes has a consistent serial.
func FuzzHistoryPage(f *testing.F) {
	f.Add([]byte(`{"AcsEvent":{"searchID":"1","totalMatches":2,"responseStatusStrg":"MORE","numOfMatches":1,"InfoList":[{"major":5,"minor":75,"time":"2026-03-02T08:01:28+08:00","employeeNoString":"T001","name":"张三","serialNo":1187,"currentVerifyMode":"cardOrFaceOrFp","attendanceStatus":"checkIn","pictureURL":"http://10.0.0.21/LOCALS/pic/acsLinkCap/1187.jpg@WEB000000000001"}]}}`))
	f.Add([]byte(`{"AcsEvent":{"searchID":"1","responseStatusStrg":"NO MATCH","numOfMatches":0}}`))
	f.Add([]byte(`{"AcsEvent":{"InfoList":[{"major":"5","minor":"1","time":"2026-03-02T08:01:28","serialNo":"7"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a acsEventAnswer
		if json.Unmarshal(b, &a) != nil {
			return
		}
		for _, in := range a.AcsEvent.InfoList {
			ev, err := in.event()
			if err != nil {
				continue
			}
			if in.SerialNo.set && in.SerialNo.v >= 0 && (!ev.HasSerial || ev.SerialNo != uint64(in.SerialNo.v)) {
				t.Fatalf("serial %d decoded as %d/%v", in.SerialNo.v, ev.SerialNo, ev.HasSerial)
			}
			classify(&ev)
		}
	})
}

func TestSameValidity(t *testing.T) {
	u := userInfo{EmployeeNo: "T001", Name: "a", Valid: userValid{Enable: true, BeginTime: "2026-03-01T00:00:00", EndTime: "2026-06-30T23:59:59"}}
	v := u
	v.Valid.BeginTime, v.Valid.EndTime = "2026-03-01T00:00:00+08:00", "2026-06-30T15:59:59Z"
	if !u.same(v) {
		t.Errorf("the same validity with zone offsets: got different, want same")
	}
	v.Valid.EndTime = "2026-07-30T23:59:59"
	if u.same(v) {
		t.Errorf("another end: got same, want different")
	}
}
