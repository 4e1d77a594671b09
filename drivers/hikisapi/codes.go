package hikisapi

import "github.com/kaoqin/kaoqin/drivers"

// The event codes this driver turns into readings. Major 5 is the access event (MAJOR_EVENT in
// Hikvision's SDK headers); the minor codes are the SDK's MINOR_* constants. Every other code
// (door states, alarms, operations, exceptions) is no reading: it is answered and counted as
// ignored.
const (
	majorEvent = 5

	minorCardPass        = 0x01 // MINOR_LEGAL_CARD_PASS
	minorInvalidCard     = 0x09 // MINOR_INVALID_CARD: a card the terminal does not know
	minorFingerprintPass = 0x26 // 38, MINOR_FINGERPRINT_COMPARE_PASS
	minorFingerprintFail = 0x27 // 39, MINOR_FINGERPRINT_COMPARE_FAIL
	minorFingerprintNone = 0x31 // 49, MINOR_FINGERPRINT_INEXISTENCE
	minorFacePass        = 0x4b // 75, MINOR_FACE_VERIFY_PASS
	minorFaceFail        = 0x4c // 76, MINOR_FACE_VERIFY_FAIL: a stranger, or a face below threshold
	minorEmployeeFace    = 0x4d // 77, MINOR_EMPLOYEENO_AND_FACE_VERIFY_PASS
	minorFaceRecogFail   = 0x50 // 80, MINOR_FACE_RECOGNIZE_FAIL
)

// codeRule is what one (major, minor) pair becomes.
type codeRule struct {
	method  drivers.Method
	granted bool // the terminal identified a person and let them through
}

var codeRules = map[[2]int]codeRule{
	{majorEvent, minorFacePass}:        {drivers.Face, true},
	{majorEvent, minorEmployeeFace}:    {drivers.Face, true},
	{majorEvent, minorCardPass}:        {drivers.Card, true},
	{majorEvent, minorFingerprintPass}: {drivers.Fingerprint, true},
	{majorEvent, minorFaceFail}:        {drivers.Face, false},
	{majorEvent, minorFaceRecogFail}:   {drivers.Face, false},
	{majorEvent, minorInvalidCard}:     {drivers.Card, false},
	{majorEvent, minorFingerprintFail}: {drivers.Fingerprint, false},
	{majorEvent, minorFingerprintNone}: {drivers.Fingerprint, false},
}

// classify says what an event becomes: ok false for events that are no reading. The method comes
// from the minor code, not from currentVerifyMode, which is the door's configured mode
// ("cardOrFaceOrFp") on most firmware and says nothing about the factor used. A granted event
// without an employee number is treated as a refusal: nobody was identified.
func classify(e *Event) (rule codeRule, ok bool) {
	rule, ok = codeRules[[2]int{e.Major, e.Minor}]
	if !ok {
		return codeRule{}, false
	}
	if e.EmployeeNo == "" {
		rule.granted = false
	}
	return rule, true
}
