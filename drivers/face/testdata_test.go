package face

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kaoqin/kaoqin/agent/testkit"
)

// testdataDir is the shared photo set (testkit.Testdata).
func testdataDir(t testing.TB) string {
	t.Helper()
	d, err := testkit.Testdata()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// idolFace is one descriptor of the measuring set, with its person.
type idolFace struct {
	Person string
	D      Descriptor
}

// loadIdols reads idols-descriptors.json: 1,220 descriptors of 127 people.
func loadIdols(t testing.TB) []idolFace {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir(t), "idols-descriptors.json"))
	if err != nil {
		t.Fatalf("read the descriptor set: %v", err)
	}
	var f struct {
		Faces []struct {
			Descriptor string `json:"descriptor"`
			IdolID     string `json:"idol_id"`
		} `json:"faces"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := make([]idolFace, 0, len(f.Faces))
	for _, x := range f.Faces {
		raw, err := base64.StdEncoding.DecodeString(x.Descriptor)
		if err != nil || len(raw) != 512 {
			t.Fatalf("descriptor of %s: %d bytes, %v", x.IdolID, len(raw), err)
		}
		var d Descriptor
		for i := range d {
			d[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		out = append(out, idolFace{x.IdolID, d})
	}
	return out
}
