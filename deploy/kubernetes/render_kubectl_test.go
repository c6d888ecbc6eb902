//go:build !kustomize_disable_go_plugin_support

package kubernetes_test

import (
	"bytes"
	"os/exec"
	"testing"
)

// renderer names how overlays are rendered, for failure messages.
const renderer = "kubectl kustomize"

// render builds the kustomization in dir with the kustomize that kubectl
// embeds. The in-process kustomize (sigs.k8s.io/kustomize/api/krusty,
// render_krusty_test.go) needs sigs.k8s.io/kustomize/kyaml in go.sum; with
// it there, test with -tags kustomize_disable_go_plugin_support.
func render(t *testing.T, dir string) []byte {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("rendering %s needs kubectl (its built-in kustomize) on PATH, or -tags kustomize_disable_go_plugin_support: %v", dir, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	return stdout.Bytes()
}
