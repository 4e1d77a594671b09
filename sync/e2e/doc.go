// Package e2e holds the end-to-end fault tests of the sync path: agent store and uplink, a real
// mosquitto, and the reference ingester, checked by synckit.Check (every event the agent recorded
// stored exactly once, none invented, seqs contiguous, the backlog drained). It has no code of
// its own.
package e2e
