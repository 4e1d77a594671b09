// Package camera turns cameras into streams of JPEG frames for the face pipeline, without cgo and
// without decoding video itself.
//
// [Open] returns [Frames] for one [Config]:
//
//   - RTSP, V4L2 and HTTP MJPEG cameras are read by ffmpeg, a child process in a process group of
//     its own, which keeps fps frames a second scaled to the configured width and writes them as
//     JPEG images to a pipe. A [Splitter] cuts that pipe into frames by the JPEG marker structure.
//     A watchdog goroutine owns the process: when ffmpeg dies or writes no frame for the stall
//     timeout it kills the whole group (SIGTERM, then SIGKILL), always reaps it, and starts it
//     again with exponential backoff and jitter.
//   - A snapshot URL (ONVIF GetSnapshotUri) is polled at the frame rate with net/http, answering
//     HTTP Digest challenges (RFC 7616: MD5, SHA-256, qop=auth) itself.
//   - A folder of JPEG files is replayed in name order, for demonstrations and tests.
//
// The newest frame wins: ffmpeg's frames go through a one-slot mailbox that the reader overwrites,
// so a slow consumer never holds up the camera (the overwritten frames are counted as dropped);
// the polled sources fetch only when asked. Truncated, undecodable, grey and infrared frames are
// counted and skipped, never fatal; [Frames.Health] has the counters.
//
// The agent's [[source]] kind "camera" combines a camera with the face pipeline (drivers/face);
// this package registers no kind of its own. docs/camera.md describes every key and failure.
package camera
