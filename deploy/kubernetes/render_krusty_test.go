//go:build kustomize_disable_go_plugin_support

package kubernetes_test

import (
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// renderer names how overlays are rendered, for failure messages.
const renderer = "kustomize (krusty)"

// render builds the kustomization in dir in process, as `kubectl apply -k`
// does, with kustomize's default options (files only from inside the
// kustomization root, no plugins).
//
// The build tag selects this renderer, and it is kustomize's own tag that
// leaves its Go-plugin loader out: the loader imports package plugin, which
// makes the linker build a dynamically linked test binary, which cannot
// take gozstd's libzstd.a (not position-independent; internal/app brings
// it in).
func render(t *testing.T, dir string) []byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize %s: encode: %v", dir, err)
	}
	return out
}
