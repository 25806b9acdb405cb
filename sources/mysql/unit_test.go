package mysql

import (
	"maps"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/config"
)

func TestStateRoundTrip(t *testing.T) {
	st := &state{V: 1, Flavor: flavorMariaDB, GTID: "0-1-5,1-7-88", File: "binlog.000002", Pos: 1234, ServerID: 1,
		Snapshot: []byte(`{"done":["shop.a"]}`)}
	got, err := decodeState(st.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.GTID != st.GTID || got.File != st.File || got.Pos != st.Pos || string(got.Snapshot) != string(st.Snapshot) {
		t.Fatalf("round trip: %+v", got)
	}
	if got.label() != "0-1-5,1-7-88" {
		t.Fatalf("label %q", got.label())
	}
	st.GTID = ""
	if l := st.label(); l != "binlog.000002:1234" {
		t.Fatalf("file label %q", l)
	}
	for _, bad := range []string{`{`, `{"v":2,"flavor":"mariadb","gtid":"0-1-1"}`, `{"v":1,"flavor":"oracle","gtid":"0-1-1"}`,
		`{"v":1,"flavor":"mariadb"}`, `{"v":1,"flavor":"mariadb","gtid":"x-y"}`} {
		if _, err := decodeState([]byte(bad)); err == nil {
			t.Errorf("decodeState(%s) accepted", bad)
		}
	}
	if st, err := decodeState(nil); st != nil || err != nil {
		t.Errorf("nil state: %v %v", st, err)
	}
}

func TestMariaPos(t *testing.T) {
	p, err := parseMariaPos("1-2-30, 0-1-5")
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "0-1-5,1-2-30" {
		t.Fatalf("String = %q", p.String())
	}
	g := p[0]
	g.SequenceNumber = 9
	p.add(g)
	if p.String() != "0-1-9,1-2-30" || !p.covers(g) {
		t.Fatalf("after add: %q", p.String())
	}
}

func TestMariaDBSeqs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[uint32]uint64
		wantErr bool
	}{
		{in: "0-1-1234", want: map[uint32]uint64{0: 1234}},
		{in: "1-7-88, 0-1-5", want: map[uint32]uint64{0: 5, 1: 88}},
		{in: "0-1-5,0-2-3", want: map[uint32]uint64{0: 5}}, // one domain twice: the higher wins
		{in: "", want: map[uint32]uint64{}},
		{in: "0-1", wantErr: true},
		{in: "a-b-c", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := MariaDBSeqs(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("MariaDBSeqs(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			}
			if !tc.wantErr && !maps.Equal(got, tc.want) {
				t.Fatalf("MariaDBSeqs(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestLagBytes(t *testing.T) {
	logs := []binlogFile{{"b.000001", 1000}, {"b.000002", 500}, {"b.000003", 200}}
	for _, c := range []struct {
		file string
		pos  uint64
		want uint64
	}{
		{"b.000001", 400, 600 + 500 + 200},
		{"b.000003", 200, 0},
		{"b.000000", 4, 1700}, // purged: every byte counts
	} {
		if got := lagBytes(logs, c.file, c.pos); got != c.want {
			t.Errorf("lagBytes(%s:%d) = %d, want %d", c.file, c.pos, got, c.want)
		}
	}
}

func TestSQLTokens(t *testing.T) {
	got := strings.Join(sqlTokens("/* x */ RENAME TABLE `a``b`.t1 TO shop.`t 2`, -- c\n x TO y # z", 32), "|")
	want := "RENAME|TABLE|`a``b`|.|t1|TO|shop|.|`t 2`|,|x|TO|y"
	if got != want {
		t.Fatalf("tokens %s, want %s", got, want)
	}
	db, name, n := tableName(sqlTokens("`a``b`.t1", 8), 0, "def")
	if db != "a`b" || name != "t1" || n != 3 {
		t.Fatalf("tableName = %q %q %d", db, name, n)
	}
}

func TestCompareValue(t *testing.T) {
	for _, c := range []struct {
		k    keyKind
		a, b string
		want int
	}{
		{kindInt, "9", "10", -1},
		{kindInt, "18446744073709551615", "9223372036854775807", 1},
		{kindDecimal, "-1.50", "-1.5", 0},
		{kindText, `"a"`, `"b"`, -1},
		{kindText, `"é"`, `"z"`, 1}, // UTF-8 byte order
		{kindBytes, `"AP8="`, `"AQ=="`, -1},
		{kindTime, `"2024-01-31 00:00:00Z"`, `"2023-12-31 00:00:00Z"`, 1},
	} {
		if got := compareValue(c.k, c.a, c.b); got != c.want {
			t.Errorf("compare(%v, %s, %s) = %d, want %d", c.k, c.a, c.b, got, c.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{ID: "x", Source: config.Source{Type: "mysql", DSN: "mysql://cdc@127.0.0.1:3306/shop", Tables: []string{"shop.*"}}}
	}
	for _, c := range []struct{ dsn, want string }{
		{"postgres://cdc@h/db", "scheme"},
		{"mysql://cdc:pw@h/db", "must not hold a password"},
		{"mysql://h:3306/db", "user missing"},
		{"mysql://cdc@h:99999/db", "not a TCP port"},
		{"mysql://cdc@h:3306", "database missing"},
	} {
		cfg := base()
		cfg.Source.DSN = c.dsn
		if _, err := New(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%s) = %v, want %q", c.dsn, err, c.want)
		}
	}
	s, err := New(base(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.serverID != DeriveServerID("x") || s.serverID < 1<<30 || s.serverID >= 1<<31 {
		t.Errorf("derived server id %d", s.serverID)
	}
	if !s.captured("shop", "orders") || s.captured("shop", WatermarkTable) || s.captured("other", "orders") {
		t.Errorf("include list")
	}
}
