package roster

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Role is what an operator account may do on the box. Duties are separated (notice 四(三)): one
// account has one role.
type Role string

// Roles.
const (
	// Registration enrols trainees' templates and checks vouchers in.
	Registration Role = "registration"
	// Teaching records manual sign-ins (overrides) for a class.
	Teaching Role = "teaching"
	// Administration allocates certificate serials and imports signed datasets on the box.
	Administration Role = "administration"
)

// Right is a privileged action.
type Right string

// Rights, each carried by one role.
const (
	RightEnrol    Right = "enrol"    // registration
	RightOverride Right = "override" // teaching
	RightCert     Right = "cert"     // administration
	RightImport   Right = "import"   // administration
)

// RoleOf is the role that carries a right.
func RoleOf(r Right) Role {
	switch r {
	case RightEnrol:
		return Registration
	case RightOverride:
		return Teaching
	}
	return Administration
}

// KDF parameters of operator secrets: argon2id with 2 passes over 19 MiB, one lane (the
// parameters OWASP gives for argon2id). A box checks a secret in tens of milliseconds; someone
// who copies the file tries PINs at that cost each.
const (
	KDFTime    = 2
	KDFMemory  = 19 * 1024 // KiB
	KDFThreads = 1
	KDFLen     = 32
	SaltLen    = 16
)

// Operator is a person who may act on the box, as the central system lists them: a name, one
// role, and the argon2id hash of their secret (a password or PIN) with its salt. The secret never
// travels; the box only compares hashes.
type Operator struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	Salt []byte `json:"salt"` // base64 in JSON, SaltLen bytes
	Hash []byte `json:"hash"` // base64 in JSON: argon2id(secret, salt, KDFTime, KDFMemory, KDFThreads, KDFLen)
}

// HashSecret is the KDF of a secret with a salt.
func HashSecret(secret string, salt []byte) []byte {
	return argon2.IDKey([]byte(secret), salt, KDFTime, KDFMemory, KDFThreads, KDFLen)
}

// NewOperator makes an account with a fresh salt (for the central system and tests).
func NewOperator(name string, role Role, secret string) (Operator, error) {
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return Operator{}, fmt.Errorf("roster: operator salt: %w", err)
	}
	return Operator{Name: name, Role: role, Salt: salt, Hash: HashSecret(secret, salt)}, nil
}

// Verify reports whether secret is the operator's, in constant time.
func (o *Operator) Verify(secret string) bool {
	if len(o.Hash) != KDFLen || len(o.Salt) < SaltLen {
		return false
	}
	return subtle.ConstantTimeCompare(HashSecret(secret, o.Salt), o.Hash) == 1
}

// May reports whether the operator's role carries right.
func (o *Operator) May(right Right) bool { return o.Role == RoleOf(right) }

func validRole(r Role) bool { return r == Registration || r == Teaching || r == Administration }
