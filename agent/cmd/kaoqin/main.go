// Command kaoqin is the classroom attendance agent and its tools: the daemon (run), the
// inspector's CLI (log, verify, export, status), roster and certificate tools, the reference
// central consumer (ingest) and device emulators (emulate).
//
// Exit codes: 0 success; 1 the operation failed or found a problem (verify: the ledger is not
// intact); 2 usage or configuration error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a mistake in the command line or the config: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "kaoqin:", err)
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the daemon", cmdRun},
		{"status", "show the running daemon's state", cmdStatus},
		{"signin", "record a manual sign-in (an override: operator and reason required)", cmdSignin},
		{"log", "list ledger events", cmdLog},
		{"verify", "check the ledger's hash chain and signatures offline, or a bundle (--bundle)", cmdVerify},
		{"export", "export events as CSV or JSON, or the verifiable bundle (--bundle)", cmdExport},
		{"report", "class hours and sign-in sheets (report hours | report sheet --session ID)", cmdReport},
		{"inspector", "the inspector's pages: inspector code | hash | accounts FILE", cmdInspector},
		{"spotcheck", "take a spot check at every room camera now (the headcount against the sign-ins)", cmdSpotcheck},
		{"snapshot", "write a consistent copy of the ledger file, while the daemon runs", cmdSnapshot},
		{"roster", "import or show the roster (roster import FILE | roster show)", cmdRoster},
		{"cert", "certificate serials (cert decode|validate SERIAL | cert next)", cmdCert},
		{"enroll", "enrol a trainee's finger at a reader (enroll finger --trainee ID)", cmdEnroll},
		{"face", "enrol faces and identify photos with the daemon's matcher (face enroll|identify)", cmdFace},
		{"keygen", "make an ed25519 key pair (device or central)", cmdKeygen},
		{"ingest", "the reference central consumer (ingest run|status|publish)", cmdIngest},
		{"emulate", "device emulators on a pseudo-terminal (emulate zfm|lineterm)", cmdEmulate},
		{"version", "print the version", cmdVersion},
	}
}

// run dispatches a command line; it is main without the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return usagef("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	printUsage(stderr)
	return usagef("unknown command %q", args[0])
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "kaoqin: classroom attendance agent (考勤)\n\nUsage: kaoqin COMMAND [flags]   (kaoqin COMMAND --help for its flags)\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nExit codes: 0 success, 1 failure or a problem found, 2 usage or config error.")
}

// newFlags makes a flag set whose errors are returned, and whose --help prints the summary.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kaoqin "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kaoqin %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; a flag error is a usage error, --help is not an error.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// pickSub picks the subcommand of a command that has them (roster import, cert next, ...).
// --help prints usage and ends the command without error.
func pickSub(args []string, cmd string, subs []string, usage string, stdout io.Writer) (string, error) {
	if len(args) > 0 && slices.Contains(subs, args[0]) {
		return args[0], nil
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, usage)
		return "", flag.ErrHelp
	}
	return "", usagef("%s: want one of: %s\n%s", cmd, strings.Join(subs, ", "), usage)
}
