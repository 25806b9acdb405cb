package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// A program uses the error-returning core with a Cleanups: the server
// serves, and Close stops it and removes its directory.
func TestCleanupsCloseStopsServers(t *testing.T) {
	t.Parallel()
	env := &testenv.Cleanups{}
	p, err := testenv.NewPostgres(env)
	if err != nil {
		var missing *testenv.MissingError
		if errors.As(err, &missing) && os.Getenv("CI") == "" {
			t.Skip(err)
		}
		env.Close()
		t.Fatal(err)
	}
	if err := p.CreateDatabase("prog"); err != nil {
		env.Close()
		t.Fatal(err)
	}
	if _, err := p.ExecErr("prog", "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		env.Close()
		t.Fatal(err)
	}
	if _, err := p.ExecErr("prog", "SELECT * FROM missing_table"); err == nil {
		t.Error("ExecErr of a bad statement returned no error")
	}
	env.Close()
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Errorf("directory %s still there after Close: %v", p.Dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", p.Port)); err == nil {
		c.Close(ctx)
		t.Errorf("postgres on port %d still answers after Close", p.Port)
	}
}

// Close runs the cleanups last registered first, those registered while it
// runs included.
func TestCleanupsOrder(t *testing.T) {
	var env testenv.Cleanups
	var got []int
	env.Cleanup(func() { got = append(got, 1) })
	env.Cleanup(func() {
		got = append(got, 2)
		env.Cleanup(func() { got = append(got, 3) })
	})
	env.Close()
	if fmt.Sprint(got) != "[2 3 1]" {
		t.Fatalf("cleanups ran as %v, want [2 3 1]", got)
	}
	if env.Failed() {
		t.Fatal("Failed before Fail")
	}
	env.Fail()
	if !env.Failed() {
		t.Fatal("not Failed after Fail")
	}
}

// A server whose program is missing is a *MissingError naming the package
// that installs it, and nothing is left to clean up.
func TestMissingServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("JAVA_HOME", "")
	env := &testenv.Cleanups{}
	defer env.Close()
	_, err := testenv.NewKafka(env)
	var missing *testenv.MissingError
	if !errors.As(err, &missing) || missing.Package != "openjdk-17-jre-headless" {
		t.Fatalf("NewKafka without java: %v, want a *MissingError for openjdk-17-jre-headless", err)
	}
}
