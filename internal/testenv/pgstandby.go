package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartPGStandby starts a hot standby of primary that streams WAL from it
// through the physical replication slot slot, which it creates on the
// primary. The standby runs the primary's server binaries, keeps its own
// port, socket and log, and sends hot_standby_feedback. opts may add
// settings (PGConf); the version options are ignored, since a standby runs
// the primary's version. It returns once the standby has replayed the
// primary's WAL as of the call.
//
// The copy is a low-level base backup (pg_backup_start, a file copy,
// pg_backup_stop and its backup_label): the zonky server builds carry no
// pg_basebackup, and the Debian package's refuses servers newer than 15.
// The slot is created first, so the primary keeps every WAL segment the
// standby has yet to fetch.
func StartPGStandby(t testing.TB, primary *Postgres, slot string, opts ...PGOption) *Postgres {
	t.Helper()
	var o pgOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, primary.DSN(primary.SuperUser, "postgres"))
	if err != nil {
		t.Fatalf("testenv: standby: connect to the primary: %v", err)
	}
	defer c.Close(context.Background())
	var versionNum int
	if err := c.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&versionNum); err != nil {
		t.Fatalf("testenv: standby: %v", err)
	}
	if _, err := c.Exec(ctx, "SELECT pg_catalog.pg_create_physical_replication_slot($1, true)", slot); err != nil {
		t.Fatalf("testenv: standby: create physical slot %s on the primary: %v", slot, err)
	}

	dir, err := serverDir(t, "pg", true)
	if err != nil {
		t.Fatalf("testenv: standby: %v", err)
	}
	p := newPostgres(dir, primary.binDir, primary.Version)
	p.primary = primary
	label, err := baseBackup(ctx, c, versionNum, primary.dataDir, p.dataDir)
	if err != nil {
		t.Fatalf("testenv: standby: base backup: %v", err)
	}
	files := map[string]string{"backup_label": label, "standby.signal": ""}
	for name, text := range files {
		if err := writeOwned(filepath.Join(p.dataDir, name), []byte(text), 0o600, true); err != nil {
			t.Fatalf("testenv: standby: %v", err)
		}
	}
	conf := []string{
		"",
		"# testenv standby settings",
		"unix_socket_directories = '" + dir + "'",
		fmt.Sprintf("primary_conninfo = 'host=%s port=%d user=%s dbname=postgres application_name=%s'", primary.Host, primary.Port, primary.SuperUser, slot),
		"primary_slot_name = '" + slot + "'",
		"hot_standby = on",
		"hot_standby_feedback = on",
	}
	if versionNum >= 170000 {
		// Copied from the primary, it would name a slot the standby lacks;
		// once promoted, its logical walsenders would wait for that slot.
		conf = append(conf, "synchronized_standby_slots = ''")
	}
	conf = append(conf, o.conf...)
	// postgresql.auto.conf is read last, so these win over what ALTER
	// SYSTEM wrote on the primary before the copy.
	if err := appendFile(filepath.Join(p.dataDir, "postgresql.auto.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		t.Fatalf("testenv: standby: %v", err)
	}
	if err := p.startFirst(t); err != nil {
		t.Fatalf("testenv: standby: %v", err)
	}
	p.CatchUp(t)
	return p
}

// baseBackup copies the primary's data directory from src to dst between
// pg_backup_start and pg_backup_stop on c, and returns the backup label. The
// server may write while the copy runs; the WAL replayed from the label's
// start point makes the copy consistent.
func baseBackup(ctx context.Context, c *pgx.Conn, versionNum int, src, dst string) (string, error) {
	start, stop := "SELECT pg_catalog.pg_backup_start('testenv', true)",
		"SELECT labelfile FROM pg_catalog.pg_backup_stop(false)"
	if versionNum < 150000 {
		start, stop = "SELECT pg_catalog.pg_start_backup('testenv', true, false)",
			"SELECT labelfile FROM pg_catalog.pg_stop_backup(false, false)"
	}
	if _, err := c.Exec(ctx, start); err != nil {
		return "", err
	}
	copyErr := copyDataDir(src, dst)
	var label string
	if err := c.QueryRow(ctx, stop).Scan(&label); err != nil {
		return "", errors.Join(copyErr, err)
	}
	return label, copyErr
}

// pgSkipContents are the directories whose contents a base backup leaves
// out: WAL comes over replication, and the rest is rebuilt at start.
var pgSkipContents = map[string]bool{
	"pg_wal": true, "pg_replslot": true, "pg_dynshmem": true, "pg_notify": true,
	"pg_serial": true, "pg_snapshots": true, "pg_stat_tmp": true, "pg_subtrans": true,
}

// pgSkipFiles are the files a base backup leaves out.
var pgSkipFiles = map[string]bool{
	"postmaster.pid": true, "postmaster.opts": true, "backup_label": true,
	"standby.signal": true, "recovery.signal": true, "pg_internal.init": true,
}

// copyDataDir copies a running server's data directory, keeping owners and
// modes. Files that vanish during the copy are skipped: the server removes
// temporary files as it goes, and replay recreates what matters.
func copyDataDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.MkdirAll(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := chownLike(target, info); err != nil {
				return err
			}
			if pgSkipContents[rel] {
				return fs.SkipDir
			}
			return nil
		}
		if pgSkipFiles[d.Name()] || !info.Mode().IsRegular() {
			return nil
		}
		return copyFile(path, target, info)
	})
}

func copyFile(src, dst string, info fs.FileInfo) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return chownLike(dst, info)
}

// chownLike gives path the owner of info's file, which only root may do.
func chownLike(path string, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || !asRoot() {
		return nil
	}
	return os.Lchown(path, int(st.Uid), int(st.Gid))
}

// CatchUp waits until the standby has replayed the primary's WAL as of the
// call.
func (p *Postgres) CatchUp(t testing.TB) {
	t.Helper()
	if p.primary == nil {
		t.Fatalf("testenv: CatchUp: not a standby")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var target string
	pc, err := pgx.Connect(ctx, p.primary.DSN(p.SuperUser, "postgres"))
	if err != nil {
		t.Fatalf("testenv: CatchUp: connect to the primary: %v", err)
	}
	defer pc.Close(context.Background())
	if err := pc.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_lsn()::text").Scan(&target); err != nil {
		t.Fatalf("testenv: CatchUp: %v", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		var caught bool
		err := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, p.DSN(p.SuperUser, "postgres"))
			if err != nil {
				return err
			}
			defer c.Close(context.Background())
			return c.QueryRow(ctx, "SELECT coalesce(pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", target).Scan(&caught)
		}()
		if err == nil && caught {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: standby did not replay up to %s within %v (last error: %v)\n%s", target, startTimeout, err, p.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Promote ends recovery on a standby and waits until it accepts writes.
func (p *Postgres) Promote(t testing.TB) {
	t.Helper()
	var ok bool
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, p.DSN(p.SuperUser, "postgres"))
	if err != nil {
		t.Fatalf("testenv: promote: %v", err)
	}
	defer c.Close(context.Background())
	if err := c.QueryRow(ctx, "SELECT pg_catalog.pg_promote(true, 90)").Scan(&ok); err != nil || !ok {
		t.Fatalf("testenv: promote: %v (promoted: %v)\n%s", err, ok, p.LogTail())
	}
	p.primary = nil
}
