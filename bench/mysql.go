package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// mysqlWired reports whether `cdcrelay run` has a mysql source built in.
func mysqlWired() bool {
	out, err := exec.Command("go", "list", "-deps", "./cmd/cdcrelay").Output()
	return err == nil && strings.Contains(string(out), "/sources/mysql\n")
}

const myTableDDL = `CREATE TABLE %s (
  id BIGINT PRIMARY KEY,
  customer VARCHAR(64) NOT NULL,
  status VARCHAR(16) NOT NULL,
  qty INT NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  note VARCHAR(128) NOT NULL,
  payload TEXT NOT NULL
) ENGINE=InnoDB`

// myInsertSQL inserts ids lo..hi (the sequence engine's seq_lo_to_hi).
func myInsertSQL(table string, lo, hi int64) string {
	return fmt.Sprintf(`INSERT INTO %s SELECT seq, CONCAT('customer-', seq %% 100000), 'new', seq %% 1000, (seq %% 100000) * 1.25,
  NOW(6), NOW(6), CONCAT('order note ', seq, ' shipped by ground'), REPEAT(MD5(seq), 6) FROM seq_%d_to_%d`, table, lo, hi)
}

func (b *bench) myConn() (*client.Conn, error) {
	return client.Connect(b.my.Addr(), "root", "", "bench")
}

func (b *bench) myExec(sqls ...string) error {
	c, err := b.myConn()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, q := range sqls {
		if _, err := c.Execute(q); err != nil {
			return fmt.Errorf("%w\n%s", err, q)
		}
	}
	return nil
}

func (b *bench) myGTIDSeq() (uint64, error) {
	c, err := b.myConn()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r, err := c.Execute("SELECT @@gtid_binlog_pos")
	if err != nil {
		return 0, err
	}
	s, _ := r.GetString(0, 0)
	return gtidSeq(s), nil
}

func (b *bench) myMasterStatus() (string, int64, error) {
	c, err := b.myConn()
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	r, err := c.Execute("SHOW MASTER STATUS")
	if err != nil {
		return "", 0, err
	}
	file, _ := r.GetString(0, 0)
	pos, _ := r.GetInt(0, 1)
	return file, pos, nil
}

func (b *bench) mysqlScenario(ctx context.Context) []result {
	if !mysqlWired() {
		return []result{{Scenario: "mysql", Note: "skipped: sources/mysql is not wired into cdcrelay run in this build"}}
	}
	if err := b.startMaria(); err != nil {
		return []result{{Scenario: "mysql", Error: err.Error()}}
	}
	return []result{b.mysqlStream(ctx), b.mysqlSnapshot(ctx)}
}

// startMaria starts MariaDB with database bench, once for every scenario.
func (b *bench) startMaria() error {
	if b.my != nil {
		return nil
	}
	my, err := testenv.NewMariaDB(b.env, testenv.MariaConf("innodb_buffer_pool_size = 512M", "max_binlog_size = 1G"))
	if err != nil {
		return err
	}
	b.my = my
	b.myDSN = my.DSN("root", "bench")
	c, err := client.Connect(my.Addr(), "root", "", "")
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Execute("CREATE DATABASE bench")
	return err
}

func (b *bench) mysqlStream(ctx context.Context) result {
	r := result{Scenario: "stream (mariadb)", Rows: b.changes}
	err := func() error {
		const table = "orders"
		if err := b.myExec(fmt.Sprintf(myTableDDL, table)); err != nil {
			return err
		}
		rc := relayConf{id: "mystream", table: "bench." + table, mysql: true}
		p, err := b.prime(ctx, rc)
		if err != nil {
			return err
		}
		p.stop()
		file, pos, err := b.myMasterStatus()
		if err != nil {
			return err
		}
		c, err := b.myConn()
		if err != nil {
			return err
		}
		start := time.Now()
		for k := 0; k < b.changes/100; k++ {
			base := int64(70 * k)
			prev, delFrom := base-70, base-70+61
			if k == 0 {
				prev, delFrom = 0, 51
			}
			for _, q := range []string{
				"BEGIN",
				myInsertSQL(table, base+1, base+70),
				fmt.Sprintf("UPDATE %s SET status = 'paid', qty = qty + 1, amount = amount + 1, updated_at = NOW(6) WHERE id BETWEEN %d AND %d", table, prev+21, prev+40),
				fmt.Sprintf("DELETE FROM %s WHERE id BETWEEN %d AND %d", table, delFrom, delFrom+9),
				"COMMIT",
			} {
				if _, err := c.Execute(q); err != nil {
					c.Close()
					return fmt.Errorf("mariadb workload: %w", err)
				}
			}
		}
		c.Close()
		fmt.Fprintf(os.Stderr, "bench: wrote %d changes into MariaDB in %v\n", b.changes, time.Since(start).Round(time.Millisecond))
		last, err := b.myGTIDSeq()
		if err != nil {
			return err
		}

		binlogA, err := b.mysqlbinlog(ctx, file, pos)
		if err != nil {
			return err
		}
		p, err = b.startRelay(rc)
		if err != nil {
			return err
		}
		defer p.kill()
		cpu0 := b.sampleCPU(p.cmd.Process.Pid)
		stopProf := b.profile(rc.id, map[bool]int{true: 1, false: 5}[b.quick])
		stored, err := b.offsets.waitFor(ctx, rc.id, p, 15*time.Minute, func(s storedPos) bool { return s.gtid >= last })
		if err != nil {
			return err
		}
		stopProf()
		drain := stored.seen.Sub(p.started)
		relayCPU := b.cpuSince(cpu0, p.cmd.Process.Pid)
		r.PeakRSS = f64(p.peakRSSMiB())
		batch := p.meanBatch()
		p.stop()

		binlogB, err := b.mysqlbinlog(ctx, file, pos)
		if err != nil {
			return err
		}
		binlog := (binlogA + binlogB) / 2

		ts, err := b.readTopic(ctx, "mystream.bench."+table, 50000)
		if err != nil {
			return err
		}
		perTxn := batch * float64(ts.records) / float64(b.changes)
		prod, err := b.produceLimit(ctx, "mystream", ts.sample, ts.records, int(perTxn+0.5), 3)
		if err != nil {
			return err
		}
		r.setLimits(float64(b.changes)/drain.Seconds(),
			limit{"mysqlbinlog", float64(b.changes) / binlog.Seconds()},
			limit{"produce", float64(b.changes) / prod.Seconds()})
		r.Note = fmt.Sprintf("mysqlbinlog %.1fs before the relay and %.1fs after, the limit uses the mean; ", binlogA.Seconds(), binlogB.Seconds())
		r.Note += fmt.Sprintf("drain %.1fs from process start; %d records (mean value %.0f B); %.0f events per Kafka txn; %s", drain.Seconds(), ts.records, ts.meanValue(), batch, relayCPU)
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

func (b *bench) mysqlSnapshot(ctx context.Context) result {
	r := result{Scenario: "snapshot (mariadb)", Rows: b.changes}
	err := func() error {
		const table = "snap"
		if err := b.myExec(fmt.Sprintf(myTableDDL, table)); err != nil {
			return err
		}
		for lo := 1; lo <= b.changes; lo += 100000 {
			if err := b.myExec(myInsertSQL(table, int64(lo), int64(min(b.changes, lo+99999)))); err != nil {
				return err
			}
		}
		readA, err := b.clientRead(ctx, table)
		if err != nil {
			return err
		}
		rc := relayConf{id: "mysnap", table: "bench." + table, mysql: true}
		p, err := b.startRelay(rc)
		if err != nil {
			return err
		}
		defer p.kill()
		cpu0 := b.sampleCPU(p.cmd.Process.Pid)
		stopProf := b.profile(rc.id, map[bool]int{true: 1, false: 5}[b.quick])
		pos, err := b.offsets.waitFor(ctx, rc.id, p, 15*time.Minute, func(s storedPos) bool {
			return s.seq > 0 && s.snapDone > 0 && s.snapQ == 0
		})
		if err != nil {
			return err
		}
		stopProf()
		took := pos.seen.Sub(p.started)
		relayCPU := b.cpuSince(cpu0, p.cmd.Process.Pid)
		r.PeakRSS = f64(p.peakRSSMiB())
		batch := p.meanBatch()
		p.stop()
		readB, err := b.clientRead(ctx, table)
		if err != nil {
			return err
		}
		read := (readA + readB) / 2
		ts, err := b.readTopic(ctx, "mysnap.bench."+table, 50000)
		if err != nil {
			return err
		}
		prod, err := b.produceLimit(ctx, "mysnap", ts.sample, ts.records, int(batch+0.5), 3)
		if err != nil {
			return err
		}
		r.setLimits(float64(b.changes)/took.Seconds(),
			limit{"client read", float64(b.changes) / read.Seconds()},
			limit{"produce", float64(b.changes) / prod.Seconds()})
		r.Note = fmt.Sprintf("client read %.2fs before the relay and %.2fs after, the limit uses the mean; ", readA.Seconds(), readB.Seconds())
		r.Note += fmt.Sprintf("%.1fs from process start to the committed end of the snapshot; %d records; %.0f events per Kafka txn; %s", took.Seconds(), ts.records, batch, relayCPU)
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// mysqlbinlog reads the binlog from file:pos to the end of the last log
// from the server and decodes it to text into /dev/null: the source limit.
func (b *bench) mysqlbinlog(ctx context.Context, file string, pos int64) (time.Duration, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "mysqlbinlog", "--read-from-remote-server", "--host=127.0.0.1",
		"--port="+strconv.Itoa(b.my.Port), "--user=root", "--start-position="+strconv.FormatInt(pos, 10),
		"--to-last-log", "--result-file=/dev/null", file)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("mysqlbinlog: %v\n%s", err, out)
	}
	return time.Since(start), nil
}

// clientRead reads every row of table to the client, streamed, into
// /dev/null: the snapshot's source limit.
func (b *bench) clientRead(ctx context.Context, table string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "mariadb", "--host=127.0.0.1", "--port="+strconv.Itoa(b.my.Port), "--user=root",
		"--quick", "--batch", "--skip-column-names", "-e", "SELECT * FROM bench."+table)
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer devNull.Close()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = devNull, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("mariadb client read: %v\n%s", err, stderr.String())
	}
	return time.Since(start), nil
}
