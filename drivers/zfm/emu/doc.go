// Package emu emulates a ZFM-protocol fingerprint module (R30x, R50x, AS608) on a
// pseudo-terminal, for the tests of drivers/zfm and for demos (`kaoqin emulate zfm`). The driver
// opens the link given to Start as if it were /dev/ttyUSB0, through tarm/serial, and talks to the
// emulator in the real bytes of the protocol (see package zfm for the wire facts).
//
// The emulated module has a library (200 pages unless configured), two character buffers, an
// image buffer, system parameters, a password and an address, a data packet size, the power-up
// delay and the stray 0x55 of R50x modules, configurable latencies, and the instructions of the
// protocol notes (GenImg, Img2Tz, Match, Search, HiSpeedSearch, RegModel, Store, LoadChar, UpChar,
// DownChar, UpImage, DeletChar, Empty, SetSysPara, ReadSysPara, SetPwd, VfyPwd, GetRandomCode,
// SetAdder, TemplateNum, ReadIndexTable, AuraLedConfig, HandShake); any instruction can be declared
// unsupported, to be answered with code 0xFC as an R503 does. A command that arrives with a bad
// checksum is answered with code 0x01 and not run, as a real module does. UpImage streams the
// 256x288 image of an R30x of the last capture ([Image]) in data packets of the configured size, paced at the
// configured byte time after a prompt acknowledgement.
//
// Fingers are placed and lifted by the test or the script. Templates encode the finger they came
// from ([Template]), so Match, Search and RegModel behave like a module's: the same finger matches
// with a score from 60 to 199, another finger does not. Faults ([Fault]) are injected one command
// at a time: a dropped reply, a bad checksum, garbage before the reply, a reply split into single
// bytes, a hang-up in the middle of a reply (the emulator then comes back on a new pseudo-terminal
// behind the same link, library intact), a given confirmation code, a corrupted transfer.
//
// The pseudo-terminal comes from drivers/internal/ptydev, which also keeps the emulator's own
// handle on the slave side open, so that its reads of the master side do not fail when the driver
// closes the port and opens it again.
//
// # Scripts
//
// Emulator.Run plays a script while it serves; the function Run does it with an R503-like
// module, for `kaoqin emulate zfm --link PATH --script FILE`. A script is a text file, one command a line; blank lines
// and everything after # are ignored:
//
//	wait DURATION            pause (a Go duration: 500ms, 2s, 1m)
//	place FINGER             put a finger on the sensor; it stays until lift
//	lift                     take the finger off
//	touch FINGER [DURATION]  place, wait (1s unless given), lift
//	preload FINGER...        store these fingers' templates at the lowest free pages, unless
//	                         they are stored already
//	store PAGE FINGER        store a finger's template at a page
//	erase PAGE               erase a page
//	fault KIND [INSTR]       a fault for the next command (of INSTR, a name such as search or a
//	                         code such as 0x04); KIND is drop, badsum, garbage, split, hangup
//	                         or flipbit
//	fault code CODE [INSTR]  answer the next command with confirmation code CODE (0x06: messy;
//	                         0x01: as if the command had arrived corrupt)
//	repeat                   start again from the top; must be the last command, and the script
//	                         must wait or touch somewhere
//
// A FINGER is any word; the convention is TRAINEE/FINGER, such as T001/right-index. For example:
//
//	# two trainees enrolled, one stranger, forever
//	preload T001/right-index T002/left-index
//	wait 2s
//	touch T001/right-index 800ms
//	wait 3s
//	touch T002/left-index
//	wait 3s
//	touch X999/right-thumb      # not in the library: a reading without a subject
//	wait 5s
//	repeat
package emu
