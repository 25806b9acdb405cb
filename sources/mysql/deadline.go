package mysql

import (
	"context"
	"net"
	"sync"
	"time"
)

// go-mysql sets a socket deadline before every packet it reads or writes,
// which is twice per row of a result and once per binlog event. Each one
// re-arms the runtime's timer, a cost paid per row. lazyConn passes a later deadline on to the socket only when
// it moves the current one by at least an eighth of the current one's
// span (from when it was set to when it expires), so a stalled server is
// still noticed, at the latest an eighth of the timeout early. A deadline
// earlier than the current one, or none, is passed on at once: that is how
// a read is interrupted.
type lazyConn struct {
	net.Conn
	mu          sync.Mutex
	read, write deadline
}

// deadline is what was last set on the socket for one direction.
type deadline struct {
	at  time.Time // the deadline on the socket; zero: none
	set time.Time // when it was set
}

// due says whether t must reach the socket, and records it if so.
func (d *deadline) due(t time.Time) bool {
	if !t.IsZero() && !d.at.IsZero() && !t.Before(d.at) && t.Sub(d.at) < d.at.Sub(d.set)/8 {
		return false
	}
	d.at, d.set = t, time.Now()
	return true
}

func (c *lazyConn) SetReadDeadline(t time.Time) error {
	return c.pass(&c.read, t, c.Conn.SetReadDeadline)
}

func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	return c.pass(&c.write, t, c.Conn.SetWriteDeadline)
}

// pass sets t with set if it is due for the direction d.
func (c *lazyConn) pass(d *deadline, t time.Time, set func(time.Time) error) error {
	c.mu.Lock()
	due := d.due(t)
	c.mu.Unlock()
	if !due {
		return nil
	}
	return set(t)
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.read.at, c.write.at = t, t
	c.read.set = time.Now()
	c.write.set = c.read.set
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// lazyDialer dials with d and wraps the connection in a lazyConn.
func lazyDialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &lazyConn{Conn: c}, nil
	}
}
