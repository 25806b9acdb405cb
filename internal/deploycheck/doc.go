// Package deploycheck holds the tests that validate the deployment artifacts
// offline: the Dockerfile, docker-compose.yml, the relay configs and Flink SQL
// under deploy/, the Grafana dashboard and the Helm chart.
//
// Invariant: every artifact a user deploys is checked here against the same
// rules the project documents (read_committed consumers, no Flink
// checkpoints, pinned images, no plaintext passwords, one Recreate relay per
// source), so a change that breaks one fails go test. Tools that are not Go
// packages of this module (helm, kubeconform, the Kubernetes and Compose
// libraries) are built once from the Go module proxy into a cache directory;
// see tools_test.go.
package deploycheck
