package deploycheck

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The tools are built from the Go module proxy at these exact versions, once,
// into toolsDir. They never enter cdcrelay's go.mod.
const (
	helmModule        = "helm.sh/helm/v3/cmd/helm"
	helmVersion       = "v3.22.0"
	kubeconformModule = "github.com/yannh/kubeconform/cmd/kubeconform"
	kubeconformVer    = "v0.7.0"
	// The Kubernetes version helm reports to charts, as its release build
	// sets it from the client-go it is built with (v0.37 for helm 3.22).
	helmKubeMinor = "37"
)

// toolsDir is where built tools are kept between runs:
// $CDCRELAY_TOOLS_DIR, or the user cache directory.
func toolsDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CDCRELAY_TOOLS_DIR"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "cdcrelay-deploycheck")
}

// toolEnv is the environment of a go command that builds a tool: module mode
// on its own, whatever the caller's GOFLAGS or go.work say.
func toolEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOFLAGS=") || strings.HasPrefix(kv, "GOWORK=") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "GOWORK=off"), extra...)
}

// needTool handles a tool that cannot be built: in CI a failure that says
// what is missing, elsewhere a skip.
func needTool(t testing.TB, name string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is not available: %v", name, err)
	if inCI() {
		t.Fatal(msg + "\n(CI is set, so this is a failure: the tool is built from the Go module proxy; check that the proxy is reachable)")
	}
	t.Skip(msg)
}

var toolOnce sync.Map // name -> *toolResult

type toolResult struct {
	once sync.Once
	path string
	err  error
}

func cached(name string, build func() (string, error)) (string, error) {
	v, _ := toolOnce.LoadOrStore(name, &toolResult{})
	r := v.(*toolResult)
	r.once.Do(func() { r.path, r.err = build() })
	return r.path, r.err
}

// goInstall builds module@version into dir/name-version/ unless it is there.
func goInstall(t testing.TB, name, module, version string, ldflags string) (string, error) {
	dir := filepath.Join(toolsDir(t), name+"-"+version)
	bin := filepath.Join(dir, filepath.Base(module))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	args := []string{"install"}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	args = append(args, module+"@"+version)
	cmd := exec.Command("go", args...)
	cmd.Env = toolEnv("GOBIN=" + dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t.Logf("building %s %s into %s (once; later runs reuse it)", name, version, dir)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return bin, nil
}

// helm returns the path of a helm binary built like a helm release.
func helm(t testing.TB) string {
	t.Helper()
	p, err := cached("helm", func() (string, error) {
		ld := strings.Join([]string{
			"-X helm.sh/helm/v3/internal/version.version=" + helmVersion,
			"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
			"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=" + helmKubeMinor,
			"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
			"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=" + helmKubeMinor,
		}, " ")
		return goInstall(t, "helm", helmModule, helmVersion, ld)
	})
	if err != nil {
		needTool(t, "helm "+helmVersion, err)
	}
	return p
}

// kubeconform returns the path of kubeconform.
func kubeconform(t testing.TB) string {
	t.Helper()
	p, err := cached("kubeconform", func() (string, error) {
		return goInstall(t, "kubeconform", kubeconformModule, kubeconformVer, "")
	})
	if err != nil {
		needTool(t, "kubeconform "+kubeconformVer, err)
	}
	return p
}

// validator returns the path of the validator program in
// internal/deploycheck/validator (a module of its own), built into the cache
// under a name that changes with its sources.
func validator(t testing.TB) string {
	t.Helper()
	p, err := cached("validator", func() (string, error) {
		src := path(t, "internal/deploycheck/validator")
		files, err := filepath.Glob(filepath.Join(src, "*"))
		if err != nil {
			return "", err
		}
		sort.Strings(files)
		h := sha256.New()
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
			h.Write(b)
		}
		bin := filepath.Join(toolsDir(t), "validator-"+hex.EncodeToString(h.Sum(nil))[:16])
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			return "", err
		}
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = src
		cmd.Env = toolEnv("GOFLAGS=-mod=readonly")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t.Logf("building the deploy validator into %s", bin)
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go build (in %s): %v\n%s", src, err, out.String())
		}
		return bin, nil
	})
	if err != nil {
		needTool(t, "the deploy validator", err)
	}
	return p
}

// run runs a tool and returns what it wrote to stdout and to stderr.
func run(dir string, stdin []byte, name string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}
