package zfm

import (
	"errors"
	"fmt"
)

// Instr is an instruction code, the first payload byte of a command packet.
type Instr byte

// Instruction codes.
const (
	InstrGenImg         Instr = 0x01 // capture an image into the image buffer
	InstrImg2Tz         Instr = 0x02 // image buffer -> character buffer 1 or 2
	InstrMatch          Instr = 0x03 // compare character buffers 1 and 2
	InstrSearch         Instr = 0x04 // search the library for a character buffer
	InstrRegModel       Instr = 0x05 // merge buffers 1 and 2 into a template
	InstrStore          Instr = 0x06 // character buffer -> library page
	InstrLoadChar       Instr = 0x07 // library page -> character buffer
	InstrUpChar         Instr = 0x08 // character buffer -> host (data packets follow the ack)
	InstrDownChar       Instr = 0x09 // host -> character buffer (data packets follow the ack)
	InstrUpImage        Instr = 0x0A // image buffer -> host (data packets follow the ack)
	InstrDownImage      Instr = 0x0B
	InstrDeletChar      Instr = 0x0C // delete pages
	InstrEmpty          Instr = 0x0D // delete the whole library
	InstrSetSysPara     Instr = 0x0E
	InstrReadSysPara    Instr = 0x0F
	InstrSetPwd         Instr = 0x12
	InstrVfyPwd         Instr = 0x13
	InstrGetRandomCode  Instr = 0x14 // four random bytes from the module's generator
	InstrSetAdder       Instr = 0x15
	InstrHiSpeedSearch  Instr = 0x1B // model-specific: absent on R551
	InstrTemplateNum    Instr = 0x1D
	InstrReadIndexTable Instr = 0x1F
	InstrAuraLedConfig  Instr = 0x35 // R50x
	InstrReadProdInfo   Instr = 0x3C // R50x
	InstrHandShake      Instr = 0x40 // R50x
)

var instrNames = map[Instr]string{
	InstrGenImg: "genimg", InstrImg2Tz: "img2tz", InstrMatch: "match", InstrSearch: "search",
	InstrRegModel: "regmodel", InstrStore: "store", InstrLoadChar: "loadchar", InstrUpChar: "upchar",
	InstrDownChar: "downchar", InstrUpImage: "upimage", InstrDownImage: "downimage",
	InstrDeletChar: "deletchar", InstrEmpty: "empty", InstrSetSysPara: "setsyspara",
	InstrReadSysPara: "readsyspara", InstrSetPwd: "setpwd", InstrVfyPwd: "vfypwd", InstrGetRandomCode: "getrandomcode",
	InstrSetAdder: "setadder", InstrHiSpeedSearch: "hispeedsearch", InstrTemplateNum: "templatenum",
	InstrReadIndexTable: "readindextable", InstrAuraLedConfig: "auraledconfig",
	InstrReadProdInfo: "readprodinfo", InstrHandShake: "handshake",
}

// String is the instruction's lower-case name ("search"), or its code in hex.
func (i Instr) String() string {
	if s, ok := instrNames[i]; ok {
		return s
	}
	return fmt.Sprintf("instr(0x%02X)", byte(i))
}

// ParseInstr accepts an instruction name as String writes it.
func ParseInstr(name string) (Instr, bool) {
	for i, s := range instrNames {
		if s == name {
			return i, true
		}
	}
	return 0, false
}

// Code is a confirmation code, the first payload byte of an acknowledgement.
type Code byte

// Confirmation codes.
const (
	CodeOK          Code = 0x00
	CodePacket      Code = 0x01 // error receiving the packet
	CodeNoFinger    Code = 0x02
	CodeCapture     Code = 0x03 // failed to capture the image
	CodeMessy       Code = 0x06 // image too messy
	CodeFewPoints   Code = 0x07 // too few feature points
	CodeNoMatch     Code = 0x08 // the two buffers do not match
	CodeNotFound    Code = 0x09 // no match in the library
	CodeCombine     Code = 0x0A // failed to combine the character files
	CodeBadPage     Code = 0x0B // page beyond the library
	CodeBadTemplate Code = 0x0C // error reading the template, or invalid template
	CodeUpload      Code = 0x0D // error uploading the template
	CodeDataPackets Code = 0x0E // cannot receive the following data packets
	CodeUploadImage Code = 0x0F
	CodeDelete      Code = 0x10 // failed to delete
	CodeClear       Code = 0x11 // failed to clear the library
	CodePassword    Code = 0x13 // wrong password
	CodeNoImage     Code = 0x15 // no valid image in the buffer
	CodeFlash       Code = 0x18 // flash write error
	CodeRegister    Code = 0x1A // invalid register number
	CodeUnsupported Code = 0xFC // unsupported command (R503 manual)
)

// Sentinel errors. The package never returns them bare: every error it returns starts with
// "zfm: " and the operation ("zfm: search: no match in the library (code 0x09)"), and wraps one of
// these, a context error, or serialport.ErrHangup when the line is gone. Test with errors.Is; a
// *CodeError (errors.As) carries the raw confirmation code.
var (
	// Confirmation codes of the module.
	ErrPacket        = errors.New("module could not receive the packet")      // 0x01
	ErrNoFinger      = errors.New("no finger on the sensor")                  // 0x02
	ErrCapture       = errors.New("failed to capture the image")              // 0x03
	ErrImageMessy    = errors.New("image too messy")                          // 0x06
	ErrFewPoints     = errors.New("too few feature points")                   // 0x07
	ErrNoMatch       = errors.New("fingers do not match")                     // 0x08
	ErrNotFound      = errors.New("no match in the library")                  // 0x09
	ErrCombine       = errors.New("failed to combine the character files")    // 0x0A
	ErrBadPage       = errors.New("page beyond the library")                  // 0x0B
	ErrBadTemplate   = errors.New("invalid template")                         // 0x0C
	ErrUpload        = errors.New("error uploading the template")             // 0x0D, 0x0F
	ErrDataPackets   = errors.New("module cannot receive the data packets")   // 0x0E
	ErrDelete        = errors.New("failed to delete")                         // 0x10, 0x11
	ErrWrongPassword = errors.New("wrong password")                           // 0x13
	ErrNoImage       = errors.New("no valid image in the buffer")             // 0x15
	ErrFlash         = errors.New("flash write error")                        // 0x18
	ErrRegister      = errors.New("invalid register number")                  // 0x1A
	ErrUnsupported   = errors.New("instruction not supported by this module") // 0xFC, or probed
	ErrModule        = errors.New("module error")                             // any other code

	// Failures on the host side.
	ErrTimeout     = errors.New("no reply from the module in time")
	ErrBadReply    = errors.New("malformed reply")
	ErrClosed      = errors.New("module closed")
	ErrLibraryFull = errors.New("library full")
	ErrVerify      = errors.New("template read back differs from the one stored")
)

var codeErrs = map[Code]error{
	CodePacket: ErrPacket, CodeNoFinger: ErrNoFinger, CodeCapture: ErrCapture,
	CodeMessy: ErrImageMessy, CodeFewPoints: ErrFewPoints, CodeNoMatch: ErrNoMatch,
	CodeNotFound: ErrNotFound, CodeCombine: ErrCombine, CodeBadPage: ErrBadPage,
	CodeBadTemplate: ErrBadTemplate, CodeUpload: ErrUpload, CodeDataPackets: ErrDataPackets,
	CodeUploadImage: ErrUpload, CodeDelete: ErrDelete, CodeClear: ErrDelete,
	CodePassword: ErrWrongPassword, CodeNoImage: ErrNoImage, CodeFlash: ErrFlash,
	CodeRegister: ErrRegister, CodeUnsupported: ErrUnsupported,
}

var codeText = map[Code]string{
	CodeOK: "ok", CodeUploadImage: "error uploading the image", CodeClear: "failed to clear the library",
}

func (c Code) String() string {
	if s, ok := codeText[c]; ok {
		return s
	}
	if err, ok := codeErrs[c]; ok {
		return err.Error()
	}
	return "module error"
}

// Err is the sentinel error for a confirmation code: nil for CodeOK, ErrModule for a code this
// package does not know.
func (c Code) Err() error {
	if c == CodeOK {
		return nil
	}
	if err, ok := codeErrs[c]; ok {
		return err
	}
	return ErrModule
}

// CodeError is a confirmation code other than OK, returned by the operation Op.
type CodeError struct {
	Op   string
	Code Code
}

func (e *CodeError) Error() string {
	return fmt.Sprintf("zfm: %s: %s (code 0x%02X)", e.Op, e.Code, byte(e.Code))
}

// Unwrap returns the sentinel for the code.
func (e *CodeError) Unwrap() error { return e.Code.Err() }
