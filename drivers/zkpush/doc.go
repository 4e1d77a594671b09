// Package zkpush receives attendance from ZKTeco face and fingerprint terminals over the PUSH
// protocol ("ADMS", "iclock"): the terminal is the HTTP client, kaoqin the server. It serves
// /iclock/cdata (the init handshake and the ATTLOG, ATTPHOTO and OPERLOG uploads),
// /iclock/getrequest (the command poll), /iclock/devicecmd (command results) and /iclock/ping.
//
// Each configured terminal, named by its serial number, is one source of kind "zkpush". Sources
// that share a listen address share one HTTP server, reference-counted inside the package.
//
// The wire facts are ZKTeco's "Attendance PUSH Communication Protocol" (software 2.4.1), summed up
// in the project's protocol notes (zkteco-push.md); docs/terminals.md lists what this package
// checks against them. In short:
//
//   - every ATTLOG line becomes a drivers.Reading whose Key is serial|PIN|time|status|verify, and
//     the terminal is answered "OK: n" only once every reading of its batch is durable (Done);
//     anything else makes it send the same batch again, which the Key makes harmless;
//   - an ATTPHOTO is kept as evidence and named by the reading of its punch (by PIN and time);
//   - the init reply carries a Date header and TimeZone only while the box's clock is trusted;
//   - a command queue per terminal, kept in a bbolt file, adds the roster's trainees to the
//     terminal and deletes those whose voucher has ended (PersonSyncer).
package zkpush
