package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuGroups samples the CPU time of the relay, PostgreSQL (all its
// processes) and the dev broker, to show where the machine's cores went
// during a measurement.
type cpuGroups struct {
	at    time.Time
	ticks map[string]float64
}

const clockTicks = 100 // USER_HZ on Linux

func (b *bench) sampleCPU(relayPID int) cpuGroups {
	g := cpuGroups{at: time.Now(), ticks: map[string]float64{}}
	// The whole machine's busy time, to tell what the neighbours used.
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line)
		// cpu user nice system idle iowait irq softirq steal ...
		for i := 1; i < len(f); i++ {
			if i == 4 || i == 5 {
				continue
			}
			v, _ := strconv.ParseFloat(f[i], 64)
			g.ticks["machine"] += v
		}
	}
	entries, _ := os.ReadDir("/proc")
	brokerPID := b.broker.Pid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		var group string
		switch {
		case pid == relayPID:
			group = "relay"
		case bytes.HasPrefix(cmdline, []byte("postgres")) || bytes.HasPrefix(cmdline, []byte(pgBinDir+"/postgres")):
			group = "postgres"
		case pid == brokerPID:
			group = "broker"
		default:
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		g.ticks[group] += ut + st
	}
	return g
}

// since describes the CPU used between s and now as percent of one core.
func (b *bench) cpuSince(s cpuGroups, relayPID int) string {
	now := b.sampleCPU(relayPID)
	secs := now.at.Sub(s.at).Seconds()
	var parts []string
	for _, k := range []string{"relay", "postgres", "broker"} {
		// A process that exits between the samples takes its time with
		// it, so a group can come out negative; show that as 0.
		d := max(0, now.ticks[k]-s.ticks[k])
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*d/clockTicks/secs))
	}
	mine := now.ticks["relay"] + now.ticks["postgres"] + now.ticks["broker"] - s.ticks["relay"] - s.ticks["postgres"] - s.ticks["broker"]
	others := max(0, now.ticks["machine"]-s.ticks["machine"]-mine)
	parts = append(parts, fmt.Sprintf("everything else on the machine (the bench included) %.0f%%", 100*others/clockTicks/secs))
	return "CPU (% of one core): " + strings.Join(parts, ", ")
}
