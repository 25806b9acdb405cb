package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand. Each file in this package registers its own in
// an init function, so adding a subcommand touches no other file.
type command struct {
	name    string
	summary string
	// usage is the argument synopsis shown by --help, e.g. "--config F".
	usage string
	// flags declares the subcommand's flags on fs and returns the function
	// that runs it once the flags are parsed.
	flags func(fs *flag.FlagSet) func(ctx context.Context, env *cliEnv) error
}

// cliEnv is what a subcommand may touch of the process.
type cliEnv struct {
	stdout, stderr io.Writer
	args           []string // positional arguments left after the flags
}

var commands = map[string]*command{}

// movedCommands maps a former subcommand to the command that replaced it.
// The development broker left the production binary so that its storage
// and crash-repair code do not ship with the relay.
var movedCommands = map[string]string{"dev-broker": "cdcrelay-devbroker"}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("cdcrelay: subcommand registered twice: " + c.name)
	}
	commands[c.name] = c
}

// exitError carries a specific exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode maps a subcommand error to the process exit code: 2 for usage and
// configuration errors, 1 for everything else.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "version" {
		fmt.Fprintln(stdout, "cdcrelay", version)
		return 0
	}
	if to, ok := movedCommands[args[0]]; ok {
		fmt.Fprintf(stderr, "cdcrelay: %q is a command of its own now: run %s with the same flags (make build puts it in bin/)\n", args[0], to)
		return 2
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cdcrelay: unknown subcommand %q; run 'cdcrelay --help' for the list\n", args[0])
		return 2
	}
	fs := flag.NewFlagSet("cdcrelay "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cdcrelay %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.summary)
		fs.PrintDefaults()
	}
	runFn := c.flags(fs)
	positional, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	err = runFn(ctx, &cliEnv{stdout: stdout, stderr: stderr, args: positional})
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "cdcrelay %s: %v\n", c.name, err)
	return exitCode(err)
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "cdcrelay %s: stream database changes into Kafka, exactly once\n\nusage: cdcrelay <subcommand> [flags]\n\nsubcommands:\n", version)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'cdcrelay <subcommand> --help' for its flags")
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("offsets show --config F" and "offsets --config F show").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
