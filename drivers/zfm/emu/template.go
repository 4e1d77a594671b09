package emu

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
)

// TemplateSize is the size of the templates and character files the emulator makes, as on R305,
// R307 and R503 modules.
const TemplateSize = 512

// Layout of an emulated template or character file:
//
//	0-3     magic "KQFP"
//	4       kind: 1 template (RegModel, Template), 2 character file of one capture (Img2Tz)
//	5       n, the length of the finger ID
//	6..6+n  finger ID
//	112-119 capture number (character files; zero in templates)
//	120-511 filler derived from the finger ID, standing in for minutiae
const (
	kindTemplate  = 1
	kindCharacter = 2
	maxIDLen      = 100
	nonceAt       = 112
	fillAt        = 120
)

var magic = [4]byte{'K', 'Q', 'F', 'P'}

// Template returns the template the emulator makes for a finger: deterministic, TemplateSize
// bytes, and what Enroll on the emulator returns for that finger. Match, Search and RegModel treat
// two templates or captures as the same finger exactly when they encode the same finger ID. A
// finger ID is any string ("T001/right-index"); IDs longer than 100 bytes are stored as a digest.
func Template(fingerID string) []byte { return encode(kindTemplate, fingerID, 0) }

// FingerOf returns the finger ID an emulator template or character file encodes (the digest form
// for IDs over 100 bytes), or false for bytes the emulator did not make.
func FingerOf(data []byte) (string, bool) {
	if len(data) < fillAt || [4]byte(data[0:4]) != magic || (data[4] != kindTemplate && data[4] != kindCharacter) {
		return "", false
	}
	n := int(data[5])
	if n > maxIDLen {
		return "", false
	}
	return string(data[6 : 6+n]), true
}

// character is the character file of one capture of a finger.
func character(fingerID string, capture uint64) []byte {
	return encode(kindCharacter, fingerID, capture)
}

func encode(kind byte, fingerID string, capture uint64) []byte {
	id := storedID(fingerID)
	b := make([]byte, TemplateSize)
	copy(b, magic[:])
	b[4] = kind
	b[5] = byte(len(id))
	copy(b[6:], id)
	binary.BigEndian.PutUint64(b[nonceAt:], capture)
	seed := sha256.Sum256([]byte("kaoqin-emu-finger:" + id))
	for off, block := fillAt, uint32(0); off < TemplateSize; block++ {
		var in [36]byte
		copy(in[:], seed[:])
		binary.BigEndian.PutUint32(in[32:], block)
		sum := sha256.Sum256(in[:])
		off += copy(b[off:], sum[:])
	}
	return b
}

func storedID(fingerID string) string {
	if len(fingerID) <= maxIDLen {
		return fingerID
	}
	sum := sha256.Sum256([]byte(fingerID))
	return "#" + hex.EncodeToString(sum[:])
}

// matchThreshold is the score from which the emulated module calls two fingers the same.
const matchThreshold = 50

// score compares two character files or templates the way a module would: the same finger scores
// from 60 to 199 (or fixed, the configured MatchScore), another finger under 20, bytes the
// emulator did not make 0. Scores are deterministic in the two inputs.
func score(a, b []byte, fixed int) int {
	fa, oka := FingerOf(a)
	fb, okb := FingerOf(b)
	if !oka || !okb {
		return 0
	}
	h := fnv.New32a()
	if fa != fb {
		h.Write([]byte(fa + "\x00" + fb))
		return int(h.Sum32() % 20)
	}
	if fixed > 0 {
		return fixed
	}
	h.Write([]byte(fa))
	h.Write(a[nonceAt:fillAt])
	h.Write(b[nonceAt:fillAt])
	return 60 + int(h.Sum32()%140)
}
