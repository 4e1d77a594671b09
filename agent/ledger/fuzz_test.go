package ledger

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzHeader: the fast header reader agrees with a full JSON decode whenever it accepts a body,
// and no input makes Record methods panic.
func FuzzHeader(f *testing.F) {
	_, recs := testChain(f, 2)
	for _, r := range recs {
		f.Add([]byte(r.Body()))
	}
	f.Add([]byte(`{"prev":"` + "00000000000000000000000000000000000000000000000000000000000000000" + `","v":1,"device":"a\"b","epoch":1,"seq":2,"kind":"alarm"}`))
	f.Add([]byte(`{"prev":"x","v":1}`))
	zeros := `{"prev":"` + strings.Repeat("0", 64) + `","v":1,`
	f.Add([]byte(zeros + `"device":"\u0041b","epoch":1,"seq":2,"kind":"alarm"}`)) // an escape first
	f.Add([]byte(zeros + `"device":"abc`))                                        // cut in the device
	f.Add([]byte(zeros + `"device":"abc","epoch":12`))                            // cut in a number
	f.Add([]byte(zeros + `"device":"abc","epoch":123456789012345678901,"seq":2,"kind":"alarm"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := append(make(Record, SigSize), body...)
		r.Prev()
		r.Event()
		h, ok := fastHeader(body)
		if !ok {
			return
		}
		var e struct {
			V      int    `json:"v"`
			Device string `json:"device"`
			Epoch  uint64 `json:"epoch"`
			Seq    uint64 `json:"seq"`
		}
		if json.Unmarshal(body, &e) != nil {
			return // the chain's hash and signature refuse a body that is not the device's
		}
		for _, k := range []string{`"v"`, `"device"`, `"epoch"`, `"seq"`} {
			if bytes.Count(body, []byte(k)) != 1 {
				return // a repeated key (JSON's last one wins) is never sealed: Seal writes each once
			}
		}
		if e.V != Version || e.Device != h.device || e.Epoch != h.epoch || e.Seq != h.seq {
			t.Fatalf("fast header %+v, JSON decode %+v of %q", h, e, body)
		}
	})
}
