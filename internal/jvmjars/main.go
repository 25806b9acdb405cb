// Command jvmjars resolves a Maven project under deploy/jvm into the jar
// cache the tests use and prints its class path, so that scripts (CI, the
// Flink demo) run the same jars as the tests:
//
//	java -cp "$(go run ./internal/jvmjars kafka)" kafka.Kafka --version
package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: jvmjars MODULE (a folder under deploy/jvm)")
		os.Exit(2)
	}
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		fmt.Fprintln(os.Stderr, "jvmjars: mvn is missing; install it with: apt-get install -y maven")
		os.Exit(1)
	}
	cp, err := testenv.ResolveJars(mvn, os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "jvmjars: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(cp)
}
