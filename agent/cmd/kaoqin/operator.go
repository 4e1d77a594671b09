package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kaoqin/kaoqin/agent/ops"
)

// Operators' secrets: from the environment (KAOQIN_SECRET, KAOQIN_CONFIRM_SECRET: tests and
// scripts) or typed on standard input after a prompt on standard error. Never a flag: a flag
// shows in ps and the shell's history.
const (
	envSecret        = "KAOQIN_SECRET"
	envConfirmSecret = "KAOQIN_CONFIRM_SECRET"
)

// stdin is where secrets are read when the environment has none; a test may replace it.
var stdin io.Reader = os.Stdin

// stdinLines reads stdin one line at a time across the secrets of one command.
var stdinLines *bufio.Reader

// operatorFlag adds --operator to a privileged command.
func operatorFlag(fs *flag.FlagSet, role string) *string {
	return fs.String("operator", "", "the operator of role "+role+" who does this (their secret: typed at the prompt, or "+envSecret+")")
}

// credentials reads the secret of operator. Without an operator there is nothing to read: the
// daemon refuses the action and records the refusal.
func credentials(operator, env, prompt string, stderr io.Writer) (ops.Credentials, error) {
	c := ops.Credentials{Operator: operator}
	if operator == "" {
		return c, nil
	}
	if v, ok := os.LookupEnv(env); ok {
		c.Secret = v
		return c, nil
	}
	fmt.Fprintf(stderr, "%s %s: ", prompt, operator)
	if stdinLines == nil {
		stdinLines = bufio.NewReader(stdin)
	}
	line, err := stdinLines.ReadString('\n')
	if err != nil && line == "" {
		return c, fmt.Errorf("reading the secret of %s from standard input: %w", operator, err)
	}
	c.Secret = strings.TrimRight(line, "\r\n")
	return c, nil
}
