package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/kafkaconfig"
	"github.com/cdcrelay/cdcrelay/offsets"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

func init() {
	register(&command{
		name:    "offsets",
		summary: "show or reset the stored position: 'offsets show' or 'offsets reset --yes'",
		usage:   "show|reset --config F [--yes]",
		flags: func(fs *flag.FlagSet) func(context.Context, *cliEnv) error {
			path := fs.String("config", "", "path of the YAML config `file` (required)")
			asJSON := fs.Bool("json", false, "with 'show': print the stored record as one line of JSON")
			yes := fs.Bool("yes", false, "confirm 'reset': forget the stored position, so the next run starts fresh (and snapshots again when source.snapshot is initial)")
			return func(ctx context.Context, env *cliEnv) error {
				if len(env.args) != 1 || (env.args[0] != "show" && env.args[0] != "reset") {
					return &exitError{code: 2, err: fmt.Errorf("say 'show' or 'reset' after the flags, e.g. cdcrelay offsets --config F show")}
				}
				cfg, err := loadConfig(*path)
				if err != nil {
					return err
				}
				opts, err := kafkaconfig.Opts(&cfg.Kafka, nil)
				if err != nil {
					return err
				}
				if env.args[0] == "show" {
					return showOffsets(ctx, env, opts, cfg.Kafka.OffsetsTopic, cfg.ID, *asJSON)
				}
				if !*yes {
					return &exitError{code: 2, err: fmt.Errorf("reset forgets the stored position of %q; the next run starts over. Repeat with --yes to do it", cfg.ID)}
				}
				return resetOffsets(ctx, env, opts, cfg.Kafka.OffsetsTopic, cfg.ID)
			}
		},
	})
}

func showOffsets(ctx context.Context, env *cliEnv, opts []kgo.Opt, topic, id string, asJSON bool) error {
	rec, err := offsets.Load(ctx, opts, topic, id)
	if err != nil {
		return err
	}
	if asJSON {
		if rec == nil {
			fmt.Fprintln(env.stdout, "null")
			return nil
		}
		out, err := recordJSON(rec)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, string(out))
		return nil
	}
	if rec == nil {
		fmt.Fprintf(env.stdout, "no stored position for %q in %s: the next run starts fresh\n", id, topic)
		return nil
	}
	fmt.Fprintf(env.stdout, "source id:      %s\n", rec.SourceID)
	fmt.Fprintf(env.stdout, "position:       %s\n", rec.Position)
	fmt.Fprintf(env.stdout, "written:        %s by cdcrelay %s (record v%d)\n", rec.Written().UTC().Format(time.RFC3339Nano), rec.RelayVersion, rec.Version)
	if rec.CommitMs != 0 {
		fmt.Fprintf(env.stdout, "source commit:  %s\n", time.UnixMilli(rec.CommitMs).UTC().Format(time.RFC3339Nano))
	}
	if rec.SchemaFingerprint != "" {
		fmt.Fprintf(env.stdout, "schema:         %s\n", rec.SchemaFingerprint)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, rec.State, "                ", "  "); err != nil {
		pretty.Write(rec.State)
	}
	fmt.Fprintf(env.stdout, "state:          %s\n", pretty.String())
	if len(rec.Parts) > 0 {
		queued, finished := snapshot.CountParts(rec.Parts)
		fmt.Fprintf(env.stdout, "tables apart:   %d finished, %d queued (%d records keyed %s)\n",
			finished, queued, len(rec.Parts), offsets.PartKey(id, snapshot.PartPrefix+"<table>"))
	}
	return nil
}

// resetOffsets fences any running relay with the same id, then writes a
// tombstone for the id and for each of its parts in one transaction. The
// parts are read after the fencing, so that a relay's open transaction is
// aborted by then.
func resetOffsets(ctx context.Context, env *cliEnv, opts []kgo.Opt, topic, id string) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...), kgo.TransactionalID(relay.TransactionalID(id)))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte(id)}).FirstErr(); err != nil {
		_ = cl.EndTransaction(context.Background(), kgo.TryAbort)
		return fmt.Errorf("write the reset record to %s: %w", topic, err)
	}
	names, err := offsets.PartNames(ctx, opts, topic, id)
	if err != nil {
		_ = cl.EndTransaction(context.Background(), kgo.TryAbort)
		return err
	}
	recs := make([]*kgo.Record, len(names))
	for i, n := range names {
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: []byte(offsets.PartKey(id, n))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = cl.EndTransaction(context.Background(), kgo.TryAbort)
		return fmt.Errorf("write the reset records to %s: %w", topic, err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit the reset: %w", err)
	}
	fmt.Fprintf(env.stdout, "stored position of %q and its %d table records removed from %s; any relay running with this id was fenced. The next run starts fresh.\n", id, len(names), topic)
	return nil
}

// recordJSON is the stored record as it is in the offsets topic, with the
// source's state parts (the tables a snapshot keeps apart, by part name)
// under "parts" when there are any.
func recordJSON(rec *offsets.Record) ([]byte, error) {
	raw := rec.Encode()
	if len(rec.Parts) == 0 {
		return raw, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("offsets record: %w", err)
	}
	parts := make(map[string]json.RawMessage, len(rec.Parts))
	for name, v := range rec.Parts {
		if json.Valid(v) {
			parts[name] = v
			continue
		}
		q, _ := json.Marshal(string(v))
		parts[name] = q
	}
	p, err := json.Marshal(parts)
	if err != nil {
		return nil, err
	}
	obj["parts"] = p
	return json.Marshal(obj)
}
