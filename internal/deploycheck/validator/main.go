// Command validator checks deploy artifacts offline, for the deploycheck
// tests. It is a module of its own so that the Kubernetes and Compose
// libraries it needs stay out of cdcrelay's go.mod.
//
//	validator k8s < manifests.yaml   # every document decoded strictly into its API type
//	validator compose FILE           # loaded and checked as docker compose would
//
// It exits 1 and prints one line per problem when anything is wrong.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validator k8s < manifests.yaml | validator compose FILE [PROFILE...]")
		os.Exit(2)
	}
	var errs []string
	switch os.Args[1] {
	case "k8s":
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "validator:", err)
			os.Exit(2)
		}
		n, problems := validateManifests(data)
		errs = problems
		if len(errs) == 0 {
			fmt.Printf("validator: %d Kubernetes documents decode strictly and pass the checks\n", n)
		}
	case "compose":
		if len(os.Args) < 3 {
			fmt.Fprintln(os.Stderr, "usage: validator compose FILE [PROFILE...]")
			os.Exit(2)
		}
		file, err := filepath.Abs(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "validator:", err)
			os.Exit(2)
		}
		summary, err := validateCompose(context.Background(), file, os.Args[3:])
		if err != nil {
			errs = append(errs, err.Error())
		} else {
			fmt.Println("validator:", summary)
		}
	default:
		fmt.Fprintf(os.Stderr, "validator: unknown check %q\n", os.Args[1])
		os.Exit(2)
	}
	if len(errs) > 0 {
		fmt.Fprintln(os.Stderr, strings.Join(errs, "\n"))
		os.Exit(1)
	}
}
