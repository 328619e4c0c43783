// Package cli is the fairlease command line: one cobra command tree whose
// subcommands each live in their own file. cmd/fairlease only calls Run, so
// that tests run the whole binary in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // the command line is wrong
)

// Environment variables behind the global flags.
const (
	EnvAddr  = "FAIRLEASE_ADDR"
	EnvToken = "FAIRLEASE_TOKEN"
)

// Output formats of --output.
const (
	OutputTable = "table"
	OutputJSON  = "json"
)

// globals are the root's flags, shared by every subcommand.
type globals struct {
	addr   string
	token  string
	output string
}

// env holds what a command run needs from outside: streams and context.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	g      *globals
}

// exitError carries an exit code with an error and, optionally, what the
// user should do next.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usagef reports a wrong command line (exit 2).
func usagef(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// failure marks err as a run-time failure (exit 1) with a hint, keeping a
// code already set.
func failure(err error, hint string) error {
	if err == nil {
		return nil
	}
	var e *exitError
	if errors.As(err, &e) {
		return err
	}
	return &exitError{code: ExitFailure, err: err, hint: hint}
}

// Run runs the fairlease command line with args (without the program name)
// and returns the process exit code. Errors go to stderr as one line; a
// panic becomes an error message too, never a stack trace.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "fairlease: internal error: %v (please report this with the command you ran)\n", r)
			code = ExitFailure
		}
	}()
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, g: &globals{}}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code, hint := ExitUsage, ""
	var ee *exitError
	if errors.As(err, &ee) {
		code, hint = ee.code, ee.hint
	}
	if cmd == nil {
		cmd = root
	}
	if code == ExitUsage && hint == "" {
		hint = fmt.Sprintf("run '%s --help' for usage", cmd.CommandPath())
	}
	msg := oneLine(err.Error())
	if hint != "" {
		msg += "; " + hint
	}
	fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), msg)
	return code
}

// oneLine keeps an error on one line: multi-line messages (a trace notice,
// a wrapped parser error) would be cut by anyone reading the first line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "fairlease",
		Short: "Federated VM lease broker with a fair-share scheduler",
		Long: `fairlease grants timed virtual clusters without money and without
revoking leases, sharing a site fairly among groups, and replays workloads
through the same admission code in virtual time.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable, so that cobra checks Args (and our wording of an
		// unknown command) rather than printing help for anything.
		Args: unknownCommand,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return e.g.resolve(cmd)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SuggestionsMinimumDistance = 2
	pf := root.PersistentFlags()
	pf.StringVar(&e.g.addr, "addr", "", "broker address (default $"+EnvAddr+")")
	pf.StringVar(&e.g.token, "token", "", "API token (default $"+EnvToken+")")
	pf.StringVarP(&e.g.output, "output", "o", OutputTable, "output format: table or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	root.AddCommand(newVersionCmd(e), newSimCmd(e))
	root.AddCommand(newServerCmd(e))
	root.AddCommand(newClusterCmd(e))
	root.AddCommand(newBenchCmd(e))
	root.AddCommand(newLeaseCmd(e))
	root.AddCommand(newShareCmd(e))
	root.AddCommand(newUserCmd(e))
	root.AddCommand(newTokenCmd(e))
	root.AddCommand(newSiteCmd(e))
	root.AddCommand(newHostCmd(e))
	root.AddCommand(newImageCmd(e), newVMCmd(e), newAgentCmd(e))
	root.AddCommand(newUpCmd(e))
	return root
}

// resolve fills flags left unset from the environment and checks them.
// It runs after parsing so that --help never prints a token.
func (g *globals) resolve(cmd *cobra.Command) error {
	if !cmd.Flags().Changed("addr") {
		g.addr = os.Getenv(EnvAddr)
	}
	if !cmd.Flags().Changed("token") {
		g.token = os.Getenv(EnvToken)
	}
	switch g.output {
	case OutputTable, OutputJSON:
		return nil
	}
	return usagef("--output: unknown format %q (want table or json)", g.output)
}

// unknownCommand rejects a word that names no subcommand, suggesting the
// closest one.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		return usagef("unknown command %q (did you mean %s?)", args[0], strings.Join(s, " or "))
	}
	return usagef("unknown command %q", args[0])
}

// noArgs rejects positional arguments as a usage error naming them.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if cmd.HasSubCommands() {
			return usagef("unknown command %q", args[0])
		}
		return usagef("unexpected argument %q (this command takes flags only)", args[0])
	}
	return nil
}
