package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// jvmCacheEnv names the variable that moves the cache of resolved jars.
const jvmCacheEnv = "CDCRELAY_JVM_CACHE"

// jvmModulesDir is where the Maven projects live, relative to the module
// root: one folder per JVM program the tests run (kafka, flink, ...).
const jvmModulesDir = "deploy/jvm"

// Java returns the path of the java launcher: $JAVA_HOME/bin/java when set,
// else java on PATH. A missing JVM fails the test under CI and skips it
// otherwise, with the install command.
func Java(t testing.TB) string {
	t.Helper()
	return must(java())(t)
}

func java() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		if p := filepath.Join(home, "bin", "java"); isExecutable(p) {
			return p, nil
		}
	}
	return lookExecutable("java")
}

// Jars returns the class path of the Maven project deploy/jvm/<module>: the
// module's own jar, if it builds one, and every runtime dependency, resolved
// from Maven Central by mvn the first time and kept in a cache that later
// runs and other test processes reuse.
//
// The cache is $CDCRELAY_JVM_CACHE, or cdcrelay/jvm under the user's cache
// directory; each entry is named after a hash of the module's files, so a
// changed pom.xml resolves again. Test processes that ask at the same time
// wait for one another on a file lock.
func Jars(t testing.TB, module string) string {
	t.Helper()
	return must(jars(module))(t)
}

func jars(module string) (string, error) {
	if _, err := java(); err != nil {
		return "", err
	}
	mvn, err := lookExecutable("mvn")
	if err != nil {
		return "", err
	}
	cp, err := ResolveJars(mvn, module)
	if err != nil {
		return "", fmt.Errorf("resolve the %s jars: %w", module, err)
	}
	return cp, nil
}

// ResolveJars is Jars without a test: mvn is the path of Maven's launcher.
func ResolveJars(mvn, module string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, jvmModulesDir, module)
	sum, err := hashTree(src)
	if err != nil {
		return "", err
	}
	cache, err := jvmCache()
	if err != nil {
		return "", err
	}
	dest := filepath.Join(cache, module+"-"+sum[:16])
	if cp, ok := classPath(dest); ok {
		return cp, nil
	}

	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cache, module+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if cp, ok := classPath(dest); ok {
		return cp, nil // another process resolved it while we waited
	}

	work, err := os.MkdirTemp(cache, module+"-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	build := filepath.Join(work, "src")
	if err := os.CopyFS(build, os.DirFS(src)); err != nil {
		return "", err
	}
	lib := filepath.Join(work, "lib")
	// package builds the module's own jar (a no-op for a pom-only module);
	// copy-dependencies puts every runtime dependency next to it.
	cmd := exec.Command(mvn, "-q", "-B", "-f", filepath.Join(build, "pom.xml"),
		"package", "dependency:copy-dependencies",
		"-DincludeScope=runtime", "-DoutputDirectory="+lib, "-Dmaven.test.skip=true")
	cmd.Dir = build
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mvn in %s: %v\n%s", src, err, lastLines(out, 40))
	}
	own, _ := filepath.Glob(filepath.Join(build, "target", "*.jar"))
	for _, j := range own {
		if err := os.Rename(j, filepath.Join(lib, filepath.Base(j))); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(lib, ".complete"), []byte(time.Since(start).String()+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(lib, dest); err != nil {
		return "", err
	}
	cp, ok := classPath(dest)
	if !ok {
		return "", fmt.Errorf("mvn resolved no jars into %s", dest)
	}
	return cp, nil
}

// classPath lists the jars of a finished cache entry.
func classPath(dir string) (string, bool) {
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		return "", false
	}
	jars, _ := filepath.Glob(filepath.Join(dir, "*.jar"))
	if len(jars) == 0 {
		return "", false
	}
	sort.Strings(jars)
	return strings.Join(jars, string(os.PathListSeparator)), true
}

func jvmCache() (string, error) {
	if d := os.Getenv(jvmCacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the jars (set %s): %w", jvmCacheEnv, err)
	}
	return filepath.Join(d, "cdcrelay", "jvm"), nil
}

// moduleRoot returns the folder that holds go.mod, from the current
// directory upwards.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the current directory")
		}
		dir = parent
	}
}

// hashTree hashes the names and contents of the files under dir, leaving
// out build output.
func hashTree(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "target" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "%s\x00", rel)
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// lastLines returns the last n lines of out.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
