// Command cdcrelay-devbroker runs a Kafka-compatible development broker,
// franz-go's kfake with a data directory, for demos and tests. It is a
// command of its own so that the production cdcrelay binary carries none of
// its storage and crash-repair code; `make build` builds both, and
// kafka.embedded in a relay config runs this command beside the relay.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cdcrelay/cdcrelay/internal/devbroker"
)

// devBrokerPasswordEnvPrefix, followed by the user name in upper case with
// every character other than A-Z, 0-9 and _ turned into _, names the
// environment variable holding that SASL user's password.
const devBrokerPasswordEnvPrefix = "CDCRELAY_DEV_BROKER_PASSWORD_"

const devBrokerHelp = `The broker is franz-go's kfake: one node, transactions and read_committed
included, for demos and tests only. It prints "dev-broker listening on ADDR"
on stdout once it accepts connections. SIGTERM or SIGINT shut it down cleanly
(exit 0).

Durability, with --data-dir (without it, everything is in memory and gone
at exit):
  - every batch, transaction marker, producer id and offset commit is
    written to the data directory before the broker answers the request;
  - without --sync those writes are not fsynced: kill -9 of the broker loses
    nothing acknowledged, but a machine crash or power loss can lose recent
    writes, part of a transaction's markers included;
  - with --sync each write is fsynced before the answer, so acknowledged data
    also survives a machine crash (directories are not fsynced);
  - after kill -9, a transaction without a commit or abort marker is aborted
    (the broker writes its ABORT marker at start) and its producer must be
    replaced; consumer group membership, open transactions and fetch sessions
    are kept only across a clean shutdown;
  - a kill -9 in the microseconds while EndTxn writes its markers can leave
    that one transaction committed on some partitions and aborted on others.
Without a data dir every record stays in memory; with one, a small index per
batch does, and all segments are read back at start.

Compaction is off by default: kfake's cleaner does not stop at open
transactions, so a transaction that later aborts can take the last committed
value of a key with it (for the relay: its stored position). Topics keep
cleanup.policy=compact; --compact-interval turns the cleaner on for trials.

SASL passwords never come from the command line. For --sasl-user MECH:NAME
the password is read from the file given by --sasl-password-file NAME=FILE,
or else from the environment variable ` + devBrokerPasswordEnvPrefix + `<NAME>,
NAME in upper case with characters other than A-Z, 0-9 and _ replaced by _.
The users given are the only ones on every start; every user may do
everything (no ACLs).`

// usage is the first line of --help.
const usage = "usage: cdcrelay-devbroker [--listen HOST:PORT] [--data-dir DIR [--sync]] [--auto-create-topics] [--partitions N] [--tls-cert F --tls-key F [--tls-client-ca F]] [--sasl-user MECH:NAME ...]"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// run parses args and runs the broker until ctx ends. It returns the exit
// code: 0 after a clean stop, 2 for a usage or configuration error, 1 for
// anything else.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		cfg           devbroker.Config
		users         listFlag
		passwordFiles listFlag
		logLevel      string
	)
	fs := flag.NewFlagSet("cdcrelay-devbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9092", "`host:port` to listen on; port 0 picks a free port")
	fs.StringVar(&cfg.Advertise, "advertise", "", "`host:port` given to clients in metadata (default: the listen address, 0.0.0.0 shown as 127.0.0.1)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "`directory` to keep state in and reload it from (default: memory only)")
	fs.BoolVar(&cfg.SyncWrites, "sync", false, "fsync every write before acknowledging it (needs --data-dir)")
	fs.BoolVar(&cfg.AutoCreateTopics, "auto-create-topics", false, "create unknown topics when a client asks for them")
	fs.IntVar(&cfg.DefaultPartitions, "partitions", 1, "partitions of auto-created topics and of topics created with the broker default")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate `file`; with --tls-key the listener is TLS only")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key `file` for --tls-cert")
	fs.StringVar(&cfg.TLSClientCAFile, "tls-client-ca", "", "PEM CA `file`; clients must present a certificate it signed")
	fs.Var(&users, "sasl-user", "require SASL and add the user `MECH:NAME` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); repeatable")
	fs.Var(&passwordFiles, "sasl-password-file", "read the password of user NAME from FILE (`NAME=FILE`); repeatable")
	fs.DurationVar(&cfg.CompactInterval, "compact-interval", 0, "compact cleanup.policy=compact topics and apply retention this often (default 0: never; see below)")
	fs.StringVar(&logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nflags:\n", usage)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\n%s\n", devBrokerHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "cdcrelay-devbroker: %v\n", err)
		return code
	}
	if fs.NArg() > 0 {
		return fail(2, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fail(2, fmt.Errorf("--log-level: %w", err))
	}
	sasl, err := devBrokerUsers(users, passwordFiles, os.Getenv)
	if err != nil {
		return fail(2, err)
	}
	cfg.SASL = sasl
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	err = devbroker.Run(ctx, cfg, log, func(addr string) {
		fmt.Fprintf(stdout, "dev-broker listening on %s\n", addr)
	})
	switch {
	case errors.Is(err, devbroker.ErrInvalidConfig):
		return fail(2, err)
	case err != nil:
		return fail(1, err)
	}
	return 0
}

// devBrokerUsers builds the SASL users from --sasl-user values, taking each
// password from --sasl-password-file or else from the environment.
func devBrokerUsers(specs, passwordFiles []string, getenv func(string) string) ([]devbroker.User, error) {
	var (
		errs  []error
		users []devbroker.User
		names = map[string]bool{}
		files = map[string]string{}
	)
	for _, spec := range specs {
		u, err := devbroker.ParseUser(spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("--sasl-user: %w", err))
			continue
		}
		users = append(users, u)
		names[u.Name] = true
	}
	for _, pf := range passwordFiles {
		name, file, ok := strings.Cut(pf, "=")
		switch {
		case !ok || name == "" || file == "":
			errs = append(errs, fmt.Errorf("--sasl-password-file %q: want NAME=FILE", pf))
		case !names[name]:
			errs = append(errs, fmt.Errorf("--sasl-password-file %s: no --sasl-user has that name", name))
		default:
			files[name] = file
		}
	}
	for i := range users {
		u := &users[i]
		if file, ok := files[u.Name]; ok {
			b, err := os.ReadFile(file)
			if err != nil {
				errs = append(errs, fmt.Errorf("--sasl-password-file for %s: %w", u.Name, err))
				continue
			}
			u.Password = strings.TrimRight(string(b), "\r\n")
		} else {
			u.Password = getenv(devBrokerPasswordEnv(u.Name))
		}
		if u.Password == "" {
			errs = append(errs, fmt.Errorf("--sasl-user %s: no password: set %s or use --sasl-password-file %s=FILE", u, devBrokerPasswordEnv(u.Name), u.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return users, nil
}

// devBrokerPasswordEnv returns the environment variable holding name's
// password.
func devBrokerPasswordEnv(name string) string {
	var b strings.Builder
	b.WriteString(devBrokerPasswordEnvPrefix)
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
