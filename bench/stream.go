package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// prime starts a relay for rc on an empty table and waits until its
// (empty) snapshot is committed, so that its publication and slot exist
// and a position is stored. The relay keeps running.
func (b *bench) prime(ctx context.Context, rc relayConf) (*relayProc, error) {
	p, err := b.startRelay(rc)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 2*time.Minute); err != nil {
		p.kill()
		return nil, err
	}
	_, err = b.offsets.waitFor(ctx, rc.id, p, time.Minute, func(s storedPos) bool {
		return s.seq > 0 && s.snapDone > 0 && s.snapQ == 0
	})
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("prime %s: %w", rc.id, err)
	}
	return p, nil
}

// profile fetches a CPU profile of secs seconds from the relay that serves
// pprof, then a heap (allocs) profile, into profileDir.
func (b *bench) profile(name string, secs int) func() {
	if b.pprofAddr == "" || b.pprofID != name {
		return func() {}
	}
	done := make(chan struct{})
	os.MkdirAll(b.profileDir, 0o755)
	fetch := func(path, file string) {
		resp, err := http.Get("http://" + b.pprofAddr + path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: pprof %s: %v\n", path, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(b.profileDir, file))
		if err != nil {
			return
		}
		io.Copy(f, resp.Body)
		f.Close()
	}
	go func() {
		defer close(done)
		// The endpoint comes up with the process. The trace and the CPU
		// profile are taken side by side, so that both cover the start of
		// a short drain.
		time.Sleep(300 * time.Millisecond)
		traced := make(chan struct{})
		go func() {
			defer close(traced)
			fetch("/debug/pprof/trace?seconds=2", name+".trace")
		}()
		fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), name+".cpu.pprof")
		<-traced
	}()
	return func() {
		fetch("/debug/pprof/allocs", name+".allocs.pprof")
		<-done
	}
}

func (b *bench) streamScenario(ctx context.Context) []result {
	r := result{Scenario: "stream (pg)", Rows: b.changes}
	var peer *result
	err := func() error {
		const table = "orders"
		rc := relayConf{id: "stream", table: "public." + table}
		if err := b.pgExec(ctx, tableDDL(table)); err != nil {
			return err
		}
		p, err := b.prime(ctx, rc)
		if err != nil {
			return err
		}
		p.stop()
		defer b.dropSlot(ctx, "cdcrelay_stream")
		// Two copies of the relay's slot: pg_recvlogical drains one before
		// the relay runs and one after, so that a noisy neighbour weighs on
		// the limit about as much as on the relay.
		for _, slot := range []string{"bench_limit_a", "bench_limit_b"} {
			if err := b.createSlot(ctx, slot); err != nil {
				return err
			}
			defer b.dropSlot(ctx, slot)
		}
		if b.peerCmd != "" {
			if err := b.createSlot(ctx, "bench_peer"); err != nil {
				return err
			}
			defer b.dropSlot(ctx, "bench_peer")
		}
		mix, err := b.writeMix(ctx, table, b.changes)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %d changes in %v (last commit after %s, end %s)\n", mix.changes, mix.took.Round(time.Millisecond), fmtLSN(mix.lastLSN), fmtLSN(mix.finalLSN))

		recvA, cpuA, err := b.recvlogical(ctx, "bench_limit_a", "cdcrelay_stream", mix.finalLSN)
		if err != nil {
			return err
		}

		p, err = b.startRelay(rc)
		if err != nil {
			return err
		}
		defer p.kill()
		cpu0 := b.sampleCPU(p.cmd.Process.Pid)
		stopProf := b.profile("stream", map[bool]int{true: 3, false: 12}[b.quick])
		pos, err := b.offsets.waitFor(ctx, rc.id, p, 15*time.Minute, func(s storedPos) bool { return s.lsn > mix.lastLSN })
		if err != nil {
			return err
		}
		drain := pos.seen.Sub(p.started)
		relayCPU := b.cpuSince(cpu0, p.cmd.Process.Pid)
		stopProf()
		r.PeakRSS = f64(p.peakRSSMiB())
		batch := p.meanBatch()
		p.stop()

		recvB, cpuB, err := b.recvlogical(ctx, "bench_limit_b", "cdcrelay_stream", mix.finalLSN)
		if err != nil {
			return err
		}
		recv, recvCPU := (recvA+recvB)/2, (cpuA+cpuB)/2
		ts, err := b.readTopic(ctx, "stream.public."+table, 50000)
		if err != nil {
			return err
		}
		perTxn := batch * float64(ts.records) / float64(mix.changes)
		prod, err := b.produceLimit(ctx, "stream", ts.sample, ts.records, int(perTxn+0.5), 3)
		if err != nil {
			return err
		}
		relayRate := float64(mix.changes) / drain.Seconds()
		r.setLimits(relayRate,
			limit{"pg_recvlogical", float64(mix.changes) / recv.Seconds()},
			limit{"produce", float64(mix.changes) / prod.Seconds()})
		r.Note = fmt.Sprintf("pg_recvlogical %.1fs before the relay and %.1fs after, the limit uses the mean; ", recvA.Seconds(), recvB.Seconds())
		r.Note += fmt.Sprintf("drain %.1fs from process start; %d records (mean key %.0f B, value %.0f B); %.0f events per Kafka txn; during the drain %s; pg_recvlogical itself used %.0f%% of one core", drain.Seconds(), ts.records, ts.meanKey(), ts.meanValue(), batch, relayCPU, 100*recvCPU.Seconds()/recv.Seconds())
		if b.peerCmd != "" && (b.only == nil || b.only["peer"] || b.only["stream"]) {
			pr := b.runPeer(ctx, mix, r.LimitRate)
			peer = &pr
		}
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	if peer != nil {
		return []result{r, *peer}
	}
	return []result{r}
}

func (b *bench) snapshotScenario(ctx context.Context) []result {
	r := result{Scenario: "snapshot (pg)", Rows: b.changes}
	err := func() error {
		const table = "snap"
		if err := b.pgExec(ctx, tableDDL(table)); err != nil {
			return err
		}
		if err := b.fillTable(ctx, table, b.changes); err != nil {
			return err
		}
		cpA, rows, err := b.copyOut(ctx, table)
		if err != nil {
			return err
		}
		rc := relayConf{id: "snap", table: "public." + table}
		p, err := b.startRelay(rc)
		if err != nil {
			return err
		}
		defer p.kill()
		defer b.dropSlot(ctx, "cdcrelay_snap")
		cpu0 := b.sampleCPU(p.cmd.Process.Pid)
		stopProf := b.profile("snap", map[bool]int{true: 3, false: 5}[b.quick])
		pos, err := b.offsets.waitFor(ctx, rc.id, p, 15*time.Minute, func(s storedPos) bool {
			return s.seq > 0 && s.snapDone > 0 && s.snapQ == 0
		})
		if err != nil {
			return err
		}
		took := pos.seen.Sub(p.started)
		relayCPU := b.cpuSince(cpu0, p.cmd.Process.Pid)
		stopProf()
		r.PeakRSS = f64(p.peakRSSMiB())
		batch := p.meanBatch()
		p.stop()
		cpB, _, err := b.copyOut(ctx, table)
		if err != nil {
			return err
		}
		cp := (cpA + cpB) / 2
		ts, err := b.readTopic(ctx, "snap.public."+table, 50000)
		if err != nil {
			return err
		}
		if ts.records != b.changes {
			r.Note = fmt.Sprintf("topic holds %d records, expected %d; ", ts.records, b.changes)
		}
		prod, err := b.produceLimit(ctx, "snap", ts.sample, ts.records, int(batch+0.5), 3)
		if err != nil {
			return err
		}
		r.setLimits(float64(b.changes)/took.Seconds(),
			limit{"COPY TO STDOUT", float64(rows) / cp.Seconds()},
			limit{"produce", float64(b.changes) / prod.Seconds()})
		r.Note += fmt.Sprintf("COPY %.2fs before the relay and %.2fs after, the limit uses the mean; ", cpA.Seconds(), cpB.Seconds())
		r.Note += fmt.Sprintf("%.1fs from process start to the committed end of the snapshot; mean value %.0f B; %.0f events per Kafka txn; %s", took.Seconds(), ts.meanValue(), batch, relayCPU)
		return nil
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return []result{r}
}
