package mysql

import (
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// lagEvery is how often the binlog lag in bytes is measured.
const lagEvery = 5 * time.Second

// updateLag sets SourceLagBytes: the binlog bytes from the acknowledged
// position to the end of the newest binlog, from SHOW BINARY LOGS.
func (s *Source) updateLag(c *client.Conn) {
	s.mu.Lock()
	acked := s.acked
	s.mu.Unlock()
	if acked == nil || acked.File == "" {
		return
	}
	logs, err := binaryLogs(c)
	if err != nil {
		s.log.Debug("mysql: lag: SHOW BINARY LOGS failed", "err", err)
		return
	}
	s.m.SourceLagBytes.Set(float64(lagBytes(logs, acked.File, uint64(acked.Pos))))
}

// lagBytes counts the bytes after file:pos in logs. A file older than the
// oldest binlog counts every byte.
func lagBytes(logs []binlogFile, file string, pos uint64) uint64 {
	var n uint64
	seen := false
	for _, l := range logs {
		switch {
		case l.name == file:
			seen = true
			if l.size > pos {
				n += l.size - pos
			}
		case seen || l.name > file:
			n += l.size
		}
	}
	return n
}
