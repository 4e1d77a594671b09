// Package hikisapi is the driver for Hikvision face terminals (DS-K1T series, MinMoe) on the
// classroom LAN. The terminal identifies people itself and reports over ISAPI: HTTP with Digest
// authentication, JSON or XML. The wire facts it follows are collected in the team's protocol
// notes, shared/protocols/hikvision-isapi.md; the event codes are Hikvision's SDK constants
// (codes.go). A terminal is one [[source]] of kind "hikisapi" (Config).
//
// Data flows in three ways, all ending in deliver, which turns an Event into a drivers.Reading,
// keeps its pictures as evidence first, hands it to Next and waits for its Done:
//
//   - push (Config.Receive "push", the default): Open listens on Config.Listen and the background
//     loop writes httpHosts on the terminal (PUT /ISAPI/Event/notification/httpHosts/<id>) so that
//     it POSTs each event there. DecodeEvent reads the three forms terminals send: multipart with
//     an event_log part and JPEG parts (also with the boundary missing from the Content-Type, read
//     from the body's first line), bare JSON and bare XML. The POST is answered 200 only once the
//     reading is done, 503 when the agent could not record it (the terminal sends it again).
//   - stream (Config.Receive "stream"): a long GET of /ISAPI/Event/notification/alertStream,
//     multipart/mixed; heartbeat parts prove it alive, a stream silent for HeartbeatTimeout or
//     broken mid-part is dropped and reopened (1 s to 30 s apart).
//   - history: POST /ISAPI/AccessControl/AcsEvent, paged by searchResultPosition with one
//     searchID while responseStatusStrg is MORE, from the last event recorded (Backfill on the
//     first run). It runs at open, every HistoryInterval, after every stream reconnect, on the
//     first live event of the process and whenever a live event's serialNo jumps: it fills what
//     a network cut, a power cut mid-push or a broken stream lost, fetching each capture from its
//     pictureURL.
//
// The dedupe key of a reading is "<terminal serial>:<serialNo>". The driver remembers the serials
// it saw recorded (Done with anything but NotRecorded, up to 50,000) and answers a resent event
// without a second reading; a copy arriving while the first is with the agent waits for its
// outcome. The agent's own dedupe by Key covers the rest (a restart of the process). An event without a
// serialNo is keyed by its time, codes and employee number.
//
// SyncPersons (drivers.PersonSyncer) keeps the terminal's persons equal to the roster: employeeNo
// is the trainee ID and Valid the voucher's validity, then uploads each photo the terminal does
// not hold (FDLib/FaceDataRecord, deleting the old face first), all writes one at a time. A
// faceDuplicate answer (the face is enrolled under another person) is an alarm: logged at Error,
// listed in Status and flagged on that trainee's readings (FlagFaceDuplicate).
//
// The client never sends a password the terminal rejected before Config.AuthRetry has passed, nor
// anything while the account is locked (401 with lockStatus and unlockTime): the state is kept
// per terminal for the life of the process, so the agent's reopens do not retry either. Pushes
// need no authentication and keep arriving while the account is locked.
//
// Package hikisapi/emu emulates a terminal over HTTP; the tests of this package run the driver
// against it over loopback.
//
// # Caveats
//
// The recorded-serial memory and the last event time live in memory: after a restart of the
// process the first history query re-reads Backfill (24 h by default) and relies on the agent's
// dedupe by Key. The clock offset is taken from live events and the terminal's Date headers; a
// push the terminal retried late looks like a clock that is late by the delay.
package hikisapi
