package mysql

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestDeadlineDue(t *testing.T) {
	set := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := deadline{at: set.Add(80 * time.Second), set: set} // span 80 s, an eighth is 10 s
	for _, c := range []struct {
		name string
		t    time.Time
		due  bool
	}{
		{"later by less than an eighth", set.Add(89 * time.Second), false},
		{"the same", set.Add(80 * time.Second), false},
		{"later by an eighth", set.Add(90 * time.Second), true},
		{"earlier", set.Add(79 * time.Second), true},
		{"none", time.Time{}, true},
	} {
		d := d
		if got := d.due(c.t); got != c.due {
			t.Errorf("%s: due %v, want %v", c.name, got, c.due)
		}
		if c.due && !d.at.Equal(c.t) {
			t.Errorf("%s: recorded %v, want %v", c.name, d.at, c.t)
		}
	}
	none := deadline{}
	if !none.due(set) {
		t.Error("the first deadline was not passed on")
	}
}

// TestLazyConnDeadlines checks on a real socket that the deadlines which
// matter still work: a stalled peer is noticed although the deadline is
// pushed later before every read, an earlier deadline interrupts a read at
// once, and clearing the deadline lets a read wait.
func TestLazyConnDeadlines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			peer <- c
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &lazyConn{Conn: raw}
	defer c.Close()
	p := <-peer
	defer p.Close()

	// The peer sends one byte per read, then stalls; each read first pushes
	// the deadline 400 ms on, as go-mysql does.
	buf := make([]byte, 1)
	start := time.Now()
	for i := 0; ; i++ {
		if i < 3 {
			if _, err := p.Write([]byte{'x'}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.SetReadDeadline(time.Now().Add(400 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read %d: %v", i, err)
		}
		if i != 3 {
			t.Fatalf("read %d timed out, want read 3", i)
		}
		break
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("the stall was noticed after %v", waited)
	}

	// An earlier deadline reaches the socket at once.
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after an expired deadline: %v", err)
	}

	// No deadline: the read waits for the peer.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		p.Write([]byte{'y'})
	}()
	if _, err := c.Read(buf); err != nil || buf[0] != 'y' {
		t.Fatalf("read without a deadline: %q %v", buf, err)
	}
}
