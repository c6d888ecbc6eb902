// Package e2e tests the real pharos binary, run as separate processes the
// way a user runs it: TestMain builds it once, each test starts the
// processes it needs on ephemeral ports and stops them with SIGTERM.
package e2e
