package mysql

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cdcrelay/cdcrelay/sources"
)

// minRetention is the binlog retention below which Check warns that a
// stopped relay may lose its position.
const minRetention = 3 * 24 * 3600

// Check runs the read-only preflight: binlog settings, GTIDs, retention,
// privileges, primary keys and the watermark table. It changes nothing on
// the server. An error means the check itself could not run.
//
// A server that is down or full (too many connections) is waited for with
// the same backoff as Run, until ctx ends; any other connection error is
// returned at once.
func (s *Source) Check(ctx context.Context) (sources.Report, error) {
	c, err := s.connectRetry(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("mysql: %s did not accept a connection in time: %w", s.addr(), ctx.Err())
		}
		return nil, err
	}
	defer s.release(c)
	v, err := variables(c, "version", "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
		"gtid_strict_mode", "gtid_binlog_pos", "gtid_mode", "enforce_gtid_consistency",
		"expire_logs_days", "binlog_expire_logs_seconds", "binlog_annotate_row_events", "binlog_rows_query_log_events")
	if err != nil {
		return nil, err
	}
	mariadb := strings.Contains(strings.ToLower(v["version"]), "mariadb")
	var rep sources.Report
	add := func(l sources.Level, subj, format string, args ...any) {
		rep = append(rep, sources.Finding{Level: l, Subject: subj, Detail: fmt.Sprintf(format, args...)})
	}
	flavor := flavorMySQL
	if mariadb {
		flavor = flavorMariaDB
	}
	add(sources.OK, "server", "%s at %s (binlog flavor %s)", v["version"], s.addr(), flavor)

	want := func(name, value, fix string) {
		got, ok := v[name]
		switch {
		case !ok:
			add(sources.Block, name, "the server does not have this setting; MariaDB 10.5+ or MySQL 8.0.1+ is required")
		case !strings.EqualFold(got, value):
			add(sources.Block, name, "is %s; %s", got, fix)
		default:
			add(sources.OK, name, "%s", got)
		}
	}
	want("log_bin", "ON", "start the server with log_bin=<basename> (a restart is needed)")
	want("binlog_format", "ROW", "set binlog_format=ROW in the server config and SET GLOBAL binlog_format=ROW")
	want("binlog_row_image", "FULL", "set binlog_row_image=FULL in the server config and SET GLOBAL binlog_row_image=FULL")
	want("binlog_row_metadata", "FULL", "set binlog_row_metadata=FULL in the server config and SET GLOBAL binlog_row_metadata=FULL")

	if mariadb {
		if strings.EqualFold(v["gtid_strict_mode"], "ON") {
			add(sources.OK, "gtid_strict_mode", "ON; gtid_binlog_pos %q", v["gtid_binlog_pos"])
		} else {
			add(sources.Block, "gtid_strict_mode", "is %s; set gtid_strict_mode=ON in the server config and SET GLOBAL gtid_strict_mode=ON, so that GTID order is the binlog order the resume relies on", v["gtid_strict_mode"])
		}
		if v["binlog_annotate_row_events"] != "" && !strings.EqualFold(v["binlog_annotate_row_events"], "ON") {
			add(sources.Warn, "binlog_annotate_row_events", "is OFF; events carry no source.query (set it ON to see the statement of each change)")
		}
	} else {
		if strings.EqualFold(v["gtid_mode"], "ON") && strings.EqualFold(v["enforce_gtid_consistency"], "ON") {
			add(sources.OK, "gtid_mode", "ON, enforce_gtid_consistency ON")
		} else {
			add(sources.Warn, "gtid_mode", "gtid_mode is %s, enforce_gtid_consistency %s; the position is kept as file+offset, which a failover to a replica does not carry over (set both ON)", v["gtid_mode"], v["enforce_gtid_consistency"])
		}
	}
	s.checkRetention(v, add)
	mode := s.checkMarkMode(c, mariadb, add)
	g := s.checkGrants(c, mariadb, mode, add)
	s.checkTables(ctx, c, g, add)
	return rep, nil
}

type addFunc func(l sources.Level, subj, format string, args ...any)

func (s *Source) checkRetention(v map[string]string, add addFunc) {
	secs := int64(-1)
	if x, ok := v["binlog_expire_logs_seconds"]; ok {
		secs, _ = strconv.ParseInt(x, 10, 64)
	}
	if secs <= 0 {
		if d, ok := v["expire_logs_days"]; ok {
			f, _ := strconv.ParseFloat(d, 64)
			secs = int64(f * 86400)
		}
	}
	switch {
	case secs <= 0:
		add(sources.Warn, "binlog retention", "binlogs never expire (binlog_expire_logs_seconds=0); the disk fills unless they are purged by hand")
	case secs < minRetention:
		add(sources.Warn, "binlog retention", "binlogs expire after %s; a relay stopped longer than that loses its position and needs a re-sync (raise binlog_expire_logs_seconds)", secondsText(secs))
	default:
		add(sources.OK, "binlog retention", "binlogs expire after %s", secondsText(secs))
	}
}

func secondsText(s int64) string {
	if s%3600 == 0 {
		return strconv.FormatInt(s/3600, 10) + "h"
	}
	return strconv.FormatInt(s, 10) + "s"
}

// checkMarkMode reports how snapshot chunks will be placed in the binlog
// and why, and in binlog mode whether the server reports the point of a
// consistent read. It returns the mode, "" when it cannot run.
func (s *Source) checkMarkMode(c *client.Conn, mariadb bool, add addFunc) string {
	mode, why, err := s.snapshotMode(c, mariadb)
	if err != nil {
		add(sources.Block, "snapshot watermark", "%v", err)
		return ""
	}
	if mode == markTable {
		add(sources.OK, "snapshot watermark", "table: watermark rows in %s.%s (%s)", s.db, WatermarkTable, why)
		return mode
	}
	d := &dialect{s: s, c: c}
	at, err := d.consistentRead()
	if _, rerr := c.Execute("ROLLBACK"); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		add(sources.Block, "snapshot watermark", "binlog: a consistent read failed: %v", err)
		return ""
	}
	add(sources.OK, "snapshot watermark", "binlog: each chunk is a consistent read placed at its binlog point (now %s); nothing is written to the server (%s)", at, why)
	return mode
}

// checkGrants checks the replication grants and those the watermark table
// needs, and returns the grants it read (nil if it could not read them).
func (s *Source) checkGrants(c *client.Conn, mariadb bool, mode string, add addFunc) grants {
	rows, err := queryRows(c, "SHOW GRANTS FOR CURRENT_USER()")
	if err != nil {
		add(sources.Block, "privileges", "cannot read the grants: %v", err)
		return nil
	}
	var lines []string
	for _, r := range rows {
		lines = append(lines, r[0])
	}
	g := parseGrants(lines)
	user := s.user
	if g.has("*.*", "REPLICATION SLAVE") {
		add(sources.OK, "REPLICATION SLAVE", "granted")
	} else {
		add(sources.Block, "REPLICATION SLAVE", "missing; GRANT REPLICATION SLAVE ON *.* TO '%s'@'<host>'", user)
	}
	monitor := "REPLICATION CLIENT"
	if mariadb {
		monitor = "BINLOG MONITOR"
	}
	if g.has("*.*", "REPLICATION CLIENT") || g.has("*.*", "BINLOG MONITOR") {
		add(sources.OK, monitor, "granted")
	} else {
		add(sources.Block, monitor, "missing (needed for SHOW BINARY LOGS and SHOW MASTER STATUS); GRANT %s ON *.* TO '%s'@'<host>'", monitor, user)
	}
	wm := s.db + "." + WatermarkTable
	if mode == markBinlog {
		add(sources.OK, "table "+wm, "not needed: snapshots write nothing (on-demand snapshot requests need it, see docs/mysql.md)")
		return g
	}
	var need []string
	exists, err := watermarkExists(c, s.db)
	if err != nil {
		add(sources.Block, "table "+wm, "%v", err)
		return g
	}
	if !exists {
		need = append(need, "CREATE")
	}
	need = append(need, "INSERT", "UPDATE", "SELECT")
	var missing []string
	for _, p := range need {
		if !g.hasOn(s.db, WatermarkTable, p) {
			missing = append(missing, p)
		}
	}
	switch {
	case len(missing) > 0:
		add(sources.Block, "table "+wm, "the watermark table needs %s; GRANT %s ON `%s`.* TO '%s'@'<host>' (or create the table by hand, see docs/mysql.md)",
			strings.Join(missing, ", "), strings.Join(missing, ", "), s.db, user)
	case !exists:
		add(sources.OK, "table "+wm, "missing; setup creates it")
	default:
		add(sources.OK, "table "+wm, "present")
	}
	return g
}

// checkTables checks each captured table: SELECT, a key to snapshot by,
// source.key_columns. A table whose SELECT the grants g show is not
// queried; any other is read with LIMIT 0, which also catches what the
// grants do not list (roles, partial revokes).
func (s *Source) checkTables(ctx context.Context, c *client.Conn, g grants, add addFunc) {
	tables, err := s.listTables(ctx, c)
	if err != nil {
		add(sources.Block, "tables", "%v", err)
		return
	}
	if len(tables) == 0 {
		add(sources.Block, "tables", "no existing table matches source.tables %v (or the user cannot see them)", s.cfg.Source.Tables)
		return
	}
	for _, r := range s.include {
		if r.Name == "*" {
			continue
		}
		found := false
		for _, t := range tables {
			found = found || r.Matches(t.db, t.name)
		}
		if !found {
			add(sources.Block, "table "+r.String(), "not found, or the user has no privilege on it; GRANT SELECT ON `%s`.* TO '%s'@'<host>'", r.Namespace, s.user)
		}
	}
	for _, t := range tables {
		name := t.db + "." + t.name
		if !g.selects(t.db, t.name) {
			if _, err := c.Execute("SELECT 1 FROM " + quoteTable(t.db, t.name) + " LIMIT 0"); err != nil {
				add(sources.Block, "table "+name, "cannot SELECT (%v); GRANT SELECT ON `%s`.* TO '%s'@'<host>'", err, t.db, s.user)
				continue
			}
		}
		keyed := "the whole row"
		if chosen := s.cfg.Source.KeyColumnsFor(t.db, t.name); chosen != nil {
			keyed = strings.Join(chosen, ", ") + " (source.key_columns)"
			cols, _, err := tableColumns(c, t.db, t.name)
			if err != nil {
				add(sources.Block, "table "+name, "%v", err)
				continue
			}
			var missing []string
			for _, k := range chosen {
				if !slices.ContainsFunc(cols, func(col column) bool { return col.name == k }) {
					missing = append(missing, k)
				}
			}
			if len(missing) > 0 {
				add(sources.Block, "table "+name, "source.key_columns names columns the table does not have: %s", strings.Join(missing, ", "))
				continue
			}
		}
		switch {
		case !t.hasPK && s.isKeyless(t.db, t.name) && s.cfg.Source.Snapshot == "never":
			add(sources.OK, "table "+name, "no primary key; keyed by %s (listed in source.keyless); not snapshotted (source.snapshot: never)", keyed)
		case !t.hasPK && s.isKeyless(t.db, t.name):
			cols, key, index, _, err := s.snapshotKey(c, t.db, t.name)
			switch {
			case err != nil:
				add(sources.Block, "table "+name, "%v", err)
			case len(key) == 0:
				add(sources.Block, "table "+name, "%v", snapshotRefusal(name))
			default:
				add(sources.OK, "table "+name, "no primary key; keyed by %s (listed in source.keyless); snapshotted by unique index %s (%s)", keyed, index, joinCols(cols, key))
			}
		case !t.hasPK:
			add(sources.Block, "table "+name, "no primary key; add one, or list the table in source.keyless to key its events by the whole row")
		default:
			add(sources.OK, "table "+name, "primary key, SELECT granted (~%d rows)", t.rows)
		}
	}
}

// grants is what SHOW GRANTS lists: privileges by scope ("*.*", "db.*",
// "db.table"), upper case.
type grants map[string]map[string]bool

// parseGrants reads SHOW GRANTS lines such as
// GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%` and
// GRANT SELECT, INSERT ON `shop`.* TO ... Column grants are ignored; role
// grants (GRANT `r` TO ...) carry no ON and are skipped.
func parseGrants(lines []string) grants {
	g := grants{}
	for _, l := range lines {
		if strings.HasPrefix(strings.ToUpper(l), "REVOKE ") {
			g[revoked] = map[string]bool{}
			continue
		}
		if !strings.HasPrefix(strings.ToUpper(l), "GRANT ") {
			continue
		}
		on := strings.Index(strings.ToUpper(l), " ON ")
		to := strings.LastIndex(strings.ToUpper(l), " TO ")
		if on < 0 || to < on {
			continue
		}
		privs := l[6:on]
		obj := strings.TrimSpace(l[on+4 : to])
		obj = strings.TrimPrefix(obj, "TABLE ")
		scope := normScope(obj)
		if g[scope] == nil {
			g[scope] = map[string]bool{}
		}
		depth := 0
		start := 0
		for i := 0; i <= len(privs); i++ {
			if i < len(privs) {
				switch privs[i] {
				case '(':
					depth++
					continue
				case ')':
					depth--
					continue
				case ',':
					if depth > 0 {
						continue
					}
				default:
					continue
				}
			}
			p := strings.ToUpper(strings.TrimSpace(privs[start:i]))
			if j := strings.IndexByte(p, '('); j >= 0 {
				p = "" // column-level grant
			}
			p = strings.TrimSuffix(p, " PRIVILEGES")
			if p != "" {
				g[scope][p] = true
			}
			start = i + 1
		}
	}
	return g
}

func normScope(obj string) string {
	dot := -1
	inQuote := false
	for i := 0; i < len(obj); i++ {
		if obj[i] == '`' {
			inQuote = !inQuote
		}
		if obj[i] == '.' && !inQuote {
			dot = i
			break
		}
	}
	if dot < 0 {
		return obj
	}
	return unquoteIdent(obj[:dot]) + "." + unquoteIdent(obj[dot+1:])
}

// has reports whether priv (or ALL) is
// granted at scope.
func (g grants) has(scope, priv string) bool {
	p := g[scope]
	return p[priv] || p["ALL"]
}

// revoked is the scope under which parseGrants notes that the grants hold
// a partial revoke (MySQL's REVOKE ... ON db.* lines under a global grant),
// which a scope lookup cannot resolve.
const revoked = "(revoke)"

// selects reports whether SELECT on db.table is certain from the grants
// alone: granted at some scope, with no partial revoke anywhere.
func (g grants) selects(db, table string) bool {
	return g != nil && g[revoked] == nil && g.hasOn(db, table, "SELECT")
}

// hasOn reports whether priv applies to db.table through a global,
// database or table grant.
func (g grants) hasOn(db, table, priv string) bool {
	return g.has("*.*", priv) || g.has(db+".*", priv) || g.has(db+"."+table, priv)
}
