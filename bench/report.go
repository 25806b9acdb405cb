package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// machine describes where the numbers come from.
type machine struct {
	CPUs     int    `json:"nproc"`
	CPUModel string `json:"cpu_model"`
	MemMiB   int    `json:"mem_mib"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
	MariaDB  string `json:"mariadb"`
	FranzGo  string `json:"franz_go"`
	Commit   string `json:"commit"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	m.MemMiB = int(statusLine("/proc/meminfo", "MemTotal:") / 1024)
	m.Kernel = cmdOut("uname", "-sr")
	m.Postgres = cmdOut(filepath.Join(pgBinDir, "postgres"), "--version")
	m.MariaDB = cmdOut("mariadbd", "--version")
	if m.MariaDB == "" {
		m.MariaDB = cmdOut("/usr/sbin/mariadbd", "--version")
	}
	m.Commit = cmdOut("git", "rev-parse", "--short", "HEAD")
	if m.Commit == "" {
		// Run from an exported tree (git archive), which has no .git.
		m.Commit = os.Getenv("BENCH_COMMIT")
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/twmb/franz-go" {
				m.FranzGo = d.Version
			}
		}
	}
	return m
}

func statusLine(path, field string) float64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (m machine) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %d MiB RAM, %s\n", m.CPUs, m.CPUModel, m.MemMiB, m.Kernel)
	fmt.Fprintf(&b, "Versions: %s; %s; %s; franz-go %s; cdcrelay commit %s\n", m.Go, m.Postgres, m.MariaDB, m.FranzGo, m.Commit)
	return b.String()
}

func fmtOpt(v *float64, prec int) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%.*f", prec, *v)
}

func markdownTable(rs []result) string {
	var b strings.Builder
	b.WriteString("| scenario | relay rows/s | limit rows/s | limit | ratio | p50 ms | p99 ms | max ms | peak RSS MiB | resume ms | rows re-read | state bytes | note |\n")
	b.WriteString("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		var others []string
		for _, l := range r.Limits {
			others = append(others, fmt.Sprintf("%s %.0f", l.Name, l.Rate))
		}
		note := r.Note
		if len(others) > 1 {
			note = strings.TrimSpace(note + " limits: " + strings.Join(others, ", "))
		}
		if r.Error != "" {
			note = strings.TrimSpace(note + " ERROR: " + firstLine(r.Error))
		}
		reread, state := "", ""
		if r.RowsReread != nil {
			reread = fmt.Sprint(*r.RowsReread)
		}
		if r.StateBytes != nil {
			state = fmt.Sprint(*r.StateBytes)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, fmtOpt(r.RelayRate, 0), fmtOpt(r.LimitRate, 0), r.LimitName, fmtOpt(r.Ratio, 2),
			fmtOpt(r.P50, 1), fmtOpt(r.P99, 1), fmtOpt(r.Max, 1), fmtOpt(r.PeakRSS, 1),
			fmtOpt(r.ResumeMs, 0), reread, state, strings.ReplaceAll(note, "|", "/"))
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
