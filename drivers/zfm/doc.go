// Package zfm drives the fingerprint modules found in classroom attendance hardware: Hangzhou Grow
// R305/R307/R503, Synochip AS608, ZhianTec ZFM-20 and their clones, which all speak one packet
// protocol over a UART (57600 baud 8N1 by default).
//
// The wire facts this package follows (packet layout, instruction and confirmation codes, system
// parameters, transfers, timing, test vectors) are collected in the project's protocol notes,
// docs/fingerprint-zfm.md, from public datasheets (the Grow R503 and R307 user manuals, the AS608
// manual) and libraries (github.com/adafruit/Adafruit-Fingerprint-Sensor-Library,
// github.com/bastianraschke/pyfingerprint, github.com/brianrho/FPM). Details marked model-specific
// there are read from the module (capacity, data packet size) or probed once and remembered
// (HiSpeedSearch, AuraLedConfig).
//
// The package has three layers, in the order data flows:
//
//   - The codec: [Encode] builds a packet; a [Decoder] is fed raw bytes, resynchronises on the
//     EF 01 header (R50x modules send a stray 0x55 after power-up), and drops and counts anything
//     with a bad length, a bad checksum, another address or an unknown packet id.
//   - The [Module] client: one owner goroutine per port, exactly one command outstanding, a typed
//     method per instruction, per-command timeouts (1 s; 2 s for Search, Store, DeletChar and Empty;
//     1 s per data packet of a transfer). A command the module answers with code 0x01 (it arrived
//     corrupt and was not run) is sent again, twice at most, before it fails with [ErrPacket]. [Module.Do] runs several commands as one unit so that no
//     other caller's command touches the module's character buffers in between.
//   - The [Reader]: a [drivers.Source] that runs the identify flow (poll GenImg, Img2Tz, Search,
//     wait for the lift: one touch gives one reading), keeps the module's library in step with the
//     roster ([Reader.SyncTemplates]) and enrolls new fingers ([Reader.Enroll]).
//
// Package zfm/emu emulates a module on a pseudo-terminal; the tests of this package drive the real
// serial path (github.com/tarm/serial through drivers/serialport) against it.
//
// # Caveats
//
// The page -> trainee map lives in memory and is rebuilt by SyncTemplates: after [Open] every hit
// reads as "page N is not assigned" until the first SyncTemplates. The first SyncTemplates of a
// Reader reads back every occupied page (LoadChar + UpChar) to learn what it holds; later calls
// only read pages they did not write themselves. Templates are recognised by their exact bytes, so a
// module that rewrites a template when it stores it would show every page as foreign.
package zfm
