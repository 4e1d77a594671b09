// Package wire is the MQTT contract between a kaoqin agent and the central system: the topic names
// and the payloads, version 1. It is shared by the agent's uplink and the reference ingester and
// documented for the central system's engineers in docs/mqtt.md (with docs/asyncapi.yaml).
//
// Every payload is a JSON object with a "v" field. Decoders are strict: a payload of an unknown
// version, with an unknown field, with a missing or inconsistent field, or larger than
// MaxPayload is refused as a whole with an error that says why (wrapping ErrVersion or
// ErrMalformed); nothing is ever half-applied. Any change to a payload is a new version.
//
// Ledger records travel as the bytes the agent stored (base64 in JSON): a verifier checks the
// signature over those bytes and never re-encodes a body (see agent/ledger).
package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Root is the first two levels of every topic: the product and the contract version.
const Root = "kaoqin/v1"

// Kind is what a topic carries: the part after kaoqin/v1/{institution}/{device}/.
type Kind string

// Topic kinds, as in the contract table of docs/mqtt.md.
const (
	KindEvents   Kind = "up/events"   // agent -> central, QoS 1: a Batch of ledger records
	KindEvidence Kind = "up/evidence" // agent -> central, QoS 1: JPEG bytes; the topic ends in the hex SHA-256
	KindState    Kind = "state"       // agent -> central, QoS 1 retained: State (birth); the will says offline
	KindApplied  Kind = "up/applied"  // agent -> central, QoS 1: Applied, after a dataset swap or refusal
	KindAck      Kind = "down/ack"    // central -> agent, QoS 1: Ack, cumulative, after the central's commit
	KindData     Kind = "down/data"   // central -> agent, QoS 1: a signed manifest or a Chunk; the topic ends in the dataset name
	KindCmd      Kind = "down/cmd"    // central -> agent, QoS 1: a signed Command
	// KindEvidenceAck is the central system's application ack of one evidence photo (EvidenceAck),
	// sent once the photo is stored: only then may the box ever delete its copy.
	KindEvidenceAck Kind = "down/evack" // central -> agent, QoS 1: EvidenceAck
)

// hasArg reports whether topics of kind k end in one more level (a dataset name or a hash).
func (k Kind) hasArg() bool { return k == KindEvidence || k == KindData }

// Topic is a parsed kaoqin topic.
type Topic struct {
	Institution string
	Device      string
	Kind        Kind
	Arg         string // the dataset of a KindData topic, the hex SHA-256 of a KindEvidence topic
}

// String is the topic name.
func (t Topic) String() string {
	s := Prefix(t.Institution, t.Device) + "/" + string(t.Kind)
	if t.Kind.hasArg() {
		s += "/" + t.Arg
	}
	return s
}

// Prefix is kaoqin/v1/{institution}/{device}.
func Prefix(institution, device string) string {
	return Root + "/" + institution + "/" + device
}

// Topic names of one device.
func EventsTopic(institution, device string) string {
	return Topic{institution, device, KindEvents, ""}.String()
}
func StateTopic(institution, device string) string {
	return Topic{institution, device, KindState, ""}.String()
}
func AppliedTopic(institution, device string) string {
	return Topic{institution, device, KindApplied, ""}.String()
}
func AckTopic(institution, device string) string {
	return Topic{institution, device, KindAck, ""}.String()
}
func CmdTopic(institution, device string) string {
	return Topic{institution, device, KindCmd, ""}.String()
}
func EvidenceAckTopic(institution, device string) string {
	return Topic{institution, device, KindEvidenceAck, ""}.String()
}
func DataTopic(institution, device, dataset string) string {
	return Topic{institution, device, KindData, dataset}.String()
}
func EvidenceTopic(institution, device, sha256hex string) string {
	return Topic{institution, device, KindEvidence, sha256hex}.String()
}

// DownFilter is the one subscription an agent needs: everything the central sends it.
func DownFilter(institution, device string) string {
	return Prefix(institution, device) + "/down/#"
}

// CentralFilters are the subscriptions of a central consumer: the events, state and applied
// topics of every device of the given institutions (all when none are given). A non-empty share
// group makes them MQTT shared subscriptions ($share/{group}/...), which a broker delivers to one
// member of the group each.
func CentralFilters(share string, institutions ...string) []string {
	if len(institutions) == 0 {
		institutions = []string{"+"}
	}
	var out []string
	for _, in := range institutions {
		for _, k := range []Kind{KindEvents, KindState, KindApplied, KindEvidence + "/+"} {
			f := Root + "/" + in + "/+/" + string(k)
			if share != "" {
				f = "$share/" + share + "/" + f
			}
			out = append(out, f)
		}
	}
	return out
}

// ParseTopic splits a kaoqin topic name. It refuses topics of another contract version, unknown
// kinds and invalid names.
func ParseTopic(s string) (Topic, error) {
	var t Topic
	rest, ok := strings.CutPrefix(s, Root+"/")
	if !ok {
		return t, fmt.Errorf("%w: topic %q is not under %s/", ErrMalformed, s, Root)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 {
		return t, fmt.Errorf("%w: topic %q: want %s/{institution}/{device}/{kind}", ErrMalformed, s, Root)
	}
	t.Institution, t.Device = parts[0], parts[1]
	if err := CheckName(t.Institution); err != nil {
		return t, fmt.Errorf("%w: topic %q: institution: %v", ErrMalformed, s, err)
	}
	if err := CheckName(t.Device); err != nil {
		return t, fmt.Errorf("%w: topic %q: device: %v", ErrMalformed, s, err)
	}
	kind := parts[2]
	for _, k := range []Kind{KindEvents, KindState, KindApplied, KindAck, KindCmd, KindEvidenceAck} {
		if kind == string(k) {
			t.Kind = k
			return t, nil
		}
	}
	for _, k := range []Kind{KindData, KindEvidence} {
		if arg, ok := strings.CutPrefix(kind, string(k)+"/"); ok {
			t.Kind, t.Arg = k, arg
			check := CheckDataset
			if k == KindEvidence {
				check = checkHash
			}
			if err := check(arg); err != nil {
				return t, fmt.Errorf("%w: topic %q: %v", ErrMalformed, s, err)
			}
			return t, nil
		}
	}
	return t, fmt.Errorf("%w: topic %q: unknown kind %q", ErrMalformed, s, kind)
}

// CheckName checks an institution code or a device name: 1 to 64 characters of ASCII letters,
// digits, '.', '_' and '-', so that it is one topic level and never a wildcard.
func CheckName(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return fmt.Errorf("name of %d characters, want 1 to 64", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q: character %q not allowed (want letters, digits, '.', '_', '-')", s, c)
		}
	}
	return nil
}

// CheckDataset checks a dataset name: 1 to 32 characters of lower-case letters, digits, '_' and
// '-' ("roster", "templates").
func CheckDataset(s string) error {
	if len(s) == 0 || len(s) > 32 {
		return fmt.Errorf("dataset name of %d characters, want 1 to 32", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("dataset name %q: character %q not allowed", s, c)
		}
	}
	return nil
}

func checkHash(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("hash %q: want 64 lower-case hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("hash %q: want 64 lower-case hex digits", s)
		}
	}
	return nil
}

// Errors of this package. Decoders wrap one of them with the reason.
var (
	// ErrVersion is a payload whose "v" this build does not speak.
	ErrVersion = errors.New("wire: unsupported payload version")
	// ErrMalformed is a payload or topic that does not follow the contract.
	ErrMalformed = errors.New("wire: malformed")
	// ErrSignature is a signed payload whose signature does not verify with the central key.
	ErrSignature = errors.New("wire: signature does not verify")
)
