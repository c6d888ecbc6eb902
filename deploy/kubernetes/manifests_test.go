// Package kubernetes_test checks the Kubernetes manifests of deploy/kubernetes:
// both overlays render, every object decodes strictly into its k8s.io/api
// type, the objects refer to each other correctly (selectors, Service ports,
// ConfigMaps, service accounts), the pods are locked down, and the Pharos
// configuration each container really gets — its ConfigMap file, its
// arguments and environment as the kubelet expands them — is valid.
package kubernetes_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

const (
	namespace   = "pharos"
	pharosImage = "ghcr.io/pharos-obs/pharos"
	// agentAccount is the one service account with API permissions.
	agentAccount = "pharos-agent"
	// componentLabel tells the roles apart.
	componentLabel = "app.kubernetes.io/component"
)

// expectedWorkloads are the pods each overlay runs, by kind/name.
var expectedWorkloads = map[string][]string{
	"single":  {"StatefulSet/pharos"},
	"cluster": {"DaemonSet/pharos-agent", "Deployment/pharos-query", "StatefulSet/pharos-aggregator", "StatefulSet/pharos-nats"},
}

// manifests is one rendered overlay, decoded.
type manifests struct {
	overlay         string
	namespaces      []*corev1.Namespace
	serviceAccounts map[string]*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	services        map[string]*corev1.Service
	clusterRoles    map[string]*rbacv1.ClusterRole
	bindings        []*rbacv1.ClusterRoleBinding
	pdbs            []*policyv1.PodDisruptionBudget
	workloads       []*workload
}

// workload is a DaemonSet, Deployment or StatefulSet.
type workload struct {
	kind, name string
	meta       *metav1.ObjectMeta
	selector   *metav1.LabelSelector
	template   *corev1.PodTemplateSpec
	replicas   int32 // DaemonSets: 0
	sts        *appsv1.StatefulSet
	ds         *appsv1.DaemonSet
}

func (w *workload) String() string { return w.kind + "/" + w.name }

func (w *workload) component() string { return w.template.Labels[componentLabel] }

// podName is the name of a pod of w (StatefulSets number theirs from 0).
func (w *workload) podName() string {
	switch w.kind {
	case "StatefulSet":
		return w.name + "-0"
	case "DaemonSet":
		return w.name + "-x7k2p"
	}
	return w.name + "-5d9c7b8f6-x7k2p"
}

// containers returns the init containers, then the containers.
func (w *workload) containers() []corev1.Container {
	return slices.Concat(w.template.Spec.InitContainers, w.template.Spec.Containers)
}

func (w *workload) volume(name string) *corev1.Volume {
	for i := range w.template.Spec.Volumes {
		if w.template.Spec.Volumes[i].Name == name {
			return &w.template.Spec.Volumes[i]
		}
	}
	return nil
}

func (w *workload) claimTemplate(name string) *corev1.PersistentVolumeClaim {
	if w.sts == nil {
		return nil
	}
	for i := range w.sts.Spec.VolumeClaimTemplates {
		if w.sts.Spec.VolumeClaimTemplates[i].Name == name {
			return &w.sts.Spec.VolumeClaimTemplates[i]
		}
	}
	return nil
}

func (m *manifests) workload(kindName string) *workload {
	for _, w := range m.workloads {
		if w.String() == kindName {
			return w
		}
	}
	return nil
}

// selecting returns the workloads whose pods sel selects.
func (m *manifests) selecting(t *testing.T, sel *metav1.LabelSelector) []*workload {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	require.False(t, s.Empty(), "an empty selector selects every pod of the namespace")
	var out []*workload
	for _, w := range m.workloads {
		if s.Matches(labels.Set(w.template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]*manifests{}
)

// load renders and decodes an overlay (once per test binary).
func load(t *testing.T, overlay string) *manifests {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if m, ok := renderCache[overlay]; ok {
		return m
	}
	m := decode(t, overlay, render(t, filepath.Join("overlays", overlay)))
	renderCache[overlay] = m
	return m
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode decodes every document strictly — an unknown or duplicated field
// fails — into the k8s.io/api type of its apiVersion and kind.
func decode(t *testing.T, overlay string, out []byte) *manifests {
	t.Helper()
	m := &manifests{
		overlay:         overlay,
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		configMaps:      map[string]*corev1.ConfigMap{},
		services:        map[string]*corev1.Service{},
		clusterRoles:    map[string]*rbacv1.ClusterRole{},
	}
	seen := map[string]bool{}
	for _, doc := range docSeparator.Split(string(out), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal([]byte(doc), &tm))
		strict := func(obj any) {
			t.Helper()
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "%s: %s %s (%s):\n%s", renderer, overlay, tm.Kind, tm.APIVersion, doc)
		}
		var meta *metav1.ObjectMeta
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o := &corev1.Namespace{}
			strict(o)
			m.namespaces, meta = append(m.namespaces, o), &o.ObjectMeta
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			strict(o)
			m.serviceAccounts[o.Name], meta = o, &o.ObjectMeta
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			strict(o)
			m.configMaps[o.Name], meta = o, &o.ObjectMeta
		case "v1 Service":
			o := &corev1.Service{}
			strict(o)
			m.services[o.Name], meta = o, &o.ObjectMeta
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			o := &rbacv1.ClusterRole{}
			strict(o)
			m.clusterRoles[o.Name], meta = o, &o.ObjectMeta
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			o := &rbacv1.ClusterRoleBinding{}
			strict(o)
			m.bindings, meta = append(m.bindings, o), &o.ObjectMeta
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			strict(o)
			m.pdbs, meta = append(m.pdbs, o), &o.ObjectMeta
		case "apps/v1 DaemonSet":
			o := &appsv1.DaemonSet{}
			strict(o)
			meta = &o.ObjectMeta
			m.workloads = append(m.workloads, &workload{kind: tm.Kind, name: o.Name, meta: meta, selector: o.Spec.Selector, template: &o.Spec.Template, ds: o})
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			strict(o)
			meta = &o.ObjectMeta
			require.NotNil(t, o.Spec.Replicas, "Deployment/%s: replicas", o.Name)
			m.workloads = append(m.workloads, &workload{kind: tm.Kind, name: o.Name, meta: meta, selector: o.Spec.Selector, template: &o.Spec.Template, replicas: *o.Spec.Replicas})
		case "apps/v1 StatefulSet":
			o := &appsv1.StatefulSet{}
			strict(o)
			meta = &o.ObjectMeta
			require.NotNil(t, o.Spec.Replicas, "StatefulSet/%s: replicas", o.Name)
			m.workloads = append(m.workloads, &workload{kind: tm.Kind, name: o.Name, meta: meta, selector: o.Spec.Selector, template: &o.Spec.Template, replicas: *o.Spec.Replicas, sts: o})
		default:
			t.Fatalf("%s: %s renders %s %q, which these tests do not know: teach them to check it", renderer, overlay, tm.APIVersion, tm.Kind)
		}
		key := tm.Kind + "/" + meta.Name
		require.False(t, seen[key], "%s twice", key)
		seen[key] = true
		require.Empty(t, validation.IsDNS1123Subdomain(meta.Name), "%s: name", key)
		switch tm.Kind {
		case "Namespace", "ClusterRole", "ClusterRoleBinding":
			require.Empty(t, meta.Namespace, "%s is cluster-scoped", key)
		default:
			require.Equal(t, namespace, meta.Namespace, "%s: namespace", key)
		}
		require.Equal(t, "pharos", meta.Labels["app.kubernetes.io/part-of"], "%s: labels", key)
		checkLabels(t, key, meta.Labels)
	}
	return m
}

func checkLabels(t *testing.T, where string, l map[string]string) {
	t.Helper()
	for k, v := range l {
		require.Empty(t, validation.IsQualifiedName(k), "%s: label %q", where, k)
		require.Empty(t, validation.IsValidLabelValue(v), "%s: label %s=%q", where, k, v)
	}
}

// forOverlays runs check on each overlay as a subtest.
func forOverlays(t *testing.T, check func(t *testing.T, m *manifests)) {
	for _, o := range []string{"single", "cluster"} {
		t.Run(o, func(t *testing.T) { check(t, load(t, o)) })
	}
}

func TestOverlaysRenderAndDecodeStrictly(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		require.Len(t, m.namespaces, 1)
		require.Equal(t, namespace, m.namespaces[0].Name)
		var got []string
		for _, w := range m.workloads {
			got = append(got, w.String())
		}
		require.ElementsMatch(t, expectedWorkloads[m.overlay], got)
	})
}

func TestSelectorsMatchTheirPods(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		for _, w := range m.workloads {
			require.NotNil(t, w.selector, "%s: selector", w)
			sel := m.selecting(t, w.selector)
			require.Equal(t, []*workload{w}, sel, "%s: its selector must select its own pods and no other workload's", w)
			checkLabels(t, w.String()+" pod template", w.template.Labels)
			for _, c := range w.template.Spec.TopologySpreadConstraints {
				require.Equal(t, []*workload{w}, m.selecting(t, c.LabelSelector), "%s: topology spread selector", w)
			}
		}
		for _, pdb := range m.pdbs {
			sel := m.selecting(t, pdb.Spec.Selector)
			require.Len(t, sel, 1, "PodDisruptionBudget/%s selects one workload", pdb.Name)
			w := sel[0]
			require.NotEqual(t, "DaemonSet", w.kind)
			require.True(t, (pdb.Spec.MaxUnavailable == nil) != (pdb.Spec.MinAvailable == nil), "PodDisruptionBudget/%s: one of maxUnavailable, minAvailable", pdb.Name)
			// At least one pod may be evicted, or a node drain never ends.
			allowed := int32(0)
			if pdb.Spec.MaxUnavailable != nil {
				require.Equal(t, intstr.Int, pdb.Spec.MaxUnavailable.Type)
				allowed = pdb.Spec.MaxUnavailable.IntVal
			} else {
				require.Equal(t, intstr.Int, pdb.Spec.MinAvailable.Type)
				allowed = w.replicas - pdb.Spec.MinAvailable.IntVal
			}
			require.GreaterOrEqual(t, allowed, int32(1), "PodDisruptionBudget/%s blocks every eviction", pdb.Name)
		}
	})
}

func TestServicesReachNamedContainerPorts(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		for _, svc := range m.services {
			sel := m.selecting(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
			require.Len(t, sel, 1, "Service/%s selects the pods of one workload", svc.Name)
			w := sel[0]
			require.NotEmpty(t, svc.Spec.Ports, "Service/%s", svc.Name)
			for _, p := range svc.Spec.Ports {
				require.Empty(t, validation.IsValidPortName(p.Name), "Service/%s: port name %q", svc.Name, p.Name)
				tp := p.TargetPort
				if tp.Type == intstr.Int && tp.IntVal == 0 {
					tp = intstr.FromInt32(p.Port)
				}
				require.NotNil(t, containerPort(w, tp), "Service/%s port %s: target port %s is no container port of %s", svc.Name, p.Name, tp.String(), w)
			}
		}
		for _, w := range m.workloads {
			names := map[string]bool{}
			for _, c := range w.template.Spec.Containers {
				require.Empty(t, validation.IsDNS1123Label(c.Name), "%s: container name", w)
				for _, p := range c.Ports {
					require.Empty(t, validation.IsValidPortName(p.Name), "%s: port name %q", w, p.Name)
					require.False(t, names[p.Name], "%s: port name %q twice", w, p.Name)
					names[p.Name] = true
					require.Zero(t, p.HostPort, "%s: hostPort %s: use a Service", w, p.Name)
				}
			}
			if w.sts == nil {
				continue
			}
			// The governing Service gives each pod its DNS name.
			svc := m.services[w.sts.Spec.ServiceName]
			require.NotNil(t, svc, "%s: serviceName %q", w, w.sts.Spec.ServiceName)
			require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "%s: Service/%s must be headless", w, svc.Name)
			require.Equal(t, []*workload{w}, m.selecting(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}))
		}
	})
}

// containerPort finds the container port a Service's target port names.
func containerPort(w *workload, target intstr.IntOrString) *corev1.ContainerPort {
	for _, c := range w.template.Spec.Containers {
		for i, p := range c.Ports {
			if target.Type == intstr.String && p.Name == target.StrVal || target.Type == intstr.Int && p.ContainerPort == target.IntVal {
				return &c.Ports[i]
			}
		}
	}
	return nil
}

func portNamed(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return 0
}

func TestReferencesResolve(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		used := map[string]bool{}
		for _, w := range m.workloads {
			spec := w.template.Spec
			require.NotNil(t, m.serviceAccounts[spec.ServiceAccountName], "%s: service account %q", w, spec.ServiceAccountName)
			for _, v := range spec.Volumes {
				if v.ConfigMap != nil {
					require.NotNil(t, m.configMaps[v.ConfigMap.Name], "%s: volume %s: ConfigMap %q", w, v.Name, v.ConfigMap.Name)
					used[v.ConfigMap.Name] = true
				}
			}
			for _, c := range w.containers() {
				for _, vm := range c.VolumeMounts {
					require.True(t, w.volume(vm.Name) != nil || w.claimTemplate(vm.Name) != nil, "%s: container %s mounts unknown volume %q", w, c.Name, vm.Name)
				}
			}
		}
		for name := range m.configMaps {
			require.True(t, used[name], "ConfigMap/%s is mounted by no pod", name)
		}
	})
}

// TestImagesArePinned: every image names a version, and every Pharos
// container runs the same one.
func TestImagesArePinned(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		pharos := map[string]bool{}
		for _, w := range m.workloads {
			for _, c := range w.containers() {
				repo, tag, digest := splitImage(c.Image)
				require.True(t, tag != "" || digest != "", "%s: container %s: image %q has no tag", w, c.Name, c.Image)
				require.NotEqual(t, "latest", tag, "%s: container %s: image %q", w, c.Name, c.Image)
				require.Contains(t, []corev1.PullPolicy{"", corev1.PullIfNotPresent}, c.ImagePullPolicy, "%s: container %s", w, c.Name)
				if repo == pharosImage {
					pharos[c.Image] = true
				}
			}
		}
		require.Len(t, pharos, 1, "one Pharos image for every role")
	})
}

func splitImage(image string) (repo, tag, digest string) {
	repo, digest, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

// TestPodsAreLockedDown: the restricted Pod Security level for every pod
// but the agents, which need host paths and, to read the kubelet's log
// files, root without any capability.
func TestPodsAreLockedDown(t *testing.T) {
	restrictedVolumes := func(v corev1.Volume) bool {
		return v.ConfigMap != nil || v.EmptyDir != nil || v.PersistentVolumeClaim != nil || v.Secret != nil || v.Projected != nil || v.DownwardAPI != nil
	}
	forOverlays(t, func(t *testing.T, m *manifests) {
		for _, w := range m.workloads {
			spec := w.template.Spec
			agent := w.String() == "DaemonSet/pharos-agent"
			require.False(t, spec.HostNetwork || spec.HostPID || spec.HostIPC, "%s: host namespaces", w)
			for _, v := range spec.Volumes {
				if agent {
					require.True(t, restrictedVolumes(v) || v.HostPath != nil, "%s: volume %s", w, v.Name)
				} else {
					require.True(t, restrictedVolumes(v), "%s: volume %s is not allowed at the restricted level", w, v.Name)
				}
			}
			// Only the agent account's token is mounted.
			token := spec.AutomountServiceAccountToken
			if acct := m.serviceAccounts[spec.ServiceAccountName]; token == nil && acct != nil {
				token = acct.AutomountServiceAccountToken
			}
			require.NotNil(t, token, "%s: say whether the token is mounted", w)
			require.Equal(t, spec.ServiceAccountName == agentAccount, *token, "%s: token mounted with service account %q", w, spec.ServiceAccountName)

			psc := spec.SecurityContext
			if psc == nil {
				psc = &corev1.PodSecurityContext{}
			}
			for _, c := range w.containers() {
				where := fmt.Sprintf("%s: container %s", w, c.Name)
				sc := c.SecurityContext
				require.NotNil(t, sc, where)
				require.False(t, sc.Privileged != nil && *sc.Privileged, where)
				require.NotNil(t, sc.AllowPrivilegeEscalation, where)
				require.False(t, *sc.AllowPrivilegeEscalation, where)
				require.NotNil(t, sc.ReadOnlyRootFilesystem, where)
				require.True(t, *sc.ReadOnlyRootFilesystem, where)
				require.NotNil(t, sc.Capabilities, where)
				require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, where)
				require.Empty(t, sc.Capabilities.Add, where)
				seccomp := sc.SeccompProfile
				if seccomp == nil {
					seccomp = psc.SeccompProfile
				}
				require.NotNil(t, seccomp, where)
				require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, seccomp.Type, where)

				nonRoot, uid := psc.RunAsNonRoot, psc.RunAsUser
				if sc.RunAsNonRoot != nil {
					nonRoot = sc.RunAsNonRoot
				}
				if sc.RunAsUser != nil {
					uid = sc.RunAsUser
				}
				if agent && c.Name == "agent" {
					require.NotNil(t, uid, where)
					require.Zero(t, *uid, "%s: runs as root to read the kubelet's 0640 log files (the reason is in agent.yaml); if that changed, run it as non-root", where)
					continue
				}
				require.NotNil(t, nonRoot, where)
				require.True(t, *nonRoot, where)
				require.NotNil(t, uid, "%s: a numeric user, so that the kubelet can verify runAsNonRoot", where)
				require.NotZero(t, *uid, where)
			}
		}
	})
}

// TestResourcesAndProbes: requests and memory limits everywhere; every
// Pharos container probed on /ready and /-/healthy on its HTTP port.
func TestResourcesAndProbes(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		for _, w := range m.workloads {
			for _, c := range w.containers() {
				where := fmt.Sprintf("%s: container %s", w, c.Name)
				r := c.Resources
				for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					q, ok := r.Requests[name]
					require.True(t, ok && q.Sign() > 0, "%s: requests.%s", where, name)
					if l, ok := r.Limits[name]; ok {
						require.GreaterOrEqual(t, l.Cmp(q), 0, "%s: limits.%s below the request", where, name)
					}
				}
				_, ok := r.Limits[corev1.ResourceMemory]
				require.True(t, ok, "%s: limits.memory", where)

				repo, _, _ := splitImage(c.Image)
				if repo != pharosImage {
					continue
				}
				for _, p := range []struct {
					probe *corev1.Probe
					path  string
				}{{c.ReadinessProbe, "/ready"}, {c.LivenessProbe, "/-/healthy"}} {
					require.NotNil(t, p.probe, "%s: probe on %s", where, p.path)
					require.NotNil(t, p.probe.HTTPGet, where)
					require.Equal(t, p.path, p.probe.HTTPGet.Path, where)
					require.Equal(t, intstr.FromString("http"), p.probe.HTTPGet.Port, where)
				}
				portNamed(t, c, "http")
			}
		}
	})
}

// TestAggregatorLeavesTheRingCleanly: a preStop hook, and a grace period
// that covers it and Pharos's own graceful stop, which leaves the ring.
func TestAggregatorLeavesTheRingCleanly(t *testing.T) {
	m := load(t, "cluster")
	w := m.workload("StatefulSet/pharos-aggregator")
	require.NotNil(t, w)
	c := w.template.Spec.Containers[0]
	require.NotNil(t, c.Lifecycle)
	require.NotNil(t, c.Lifecycle.PreStop)
	require.NotNil(t, c.Lifecycle.PreStop.Sleep, "the image has no shell: a preStop must be the kubelet's own sleep")
	grace := w.template.Spec.TerminationGracePeriodSeconds
	require.NotNil(t, grace)
	// Pharos stops within 10 s of SIGTERM (app.ShutdownTimeout + exit).
	require.GreaterOrEqual(t, *grace, c.Lifecycle.PreStop.Sleep.Seconds+10+5)
	require.Len(t, w.sts.Spec.VolumeClaimTemplates, 1)
	require.NotNil(t, w.sts.Spec.PersistentVolumeClaimRetentionPolicy)
	require.Equal(t, appsv1.RetainPersistentVolumeClaimRetentionPolicyType, w.sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled)
	var pdb bool
	for _, p := range m.pdbs {
		pdb = pdb || slices.Contains(m.selecting(t, p.Spec.Selector), w)
	}
	require.True(t, pdb, "a PodDisruptionBudget covers the aggregators")
}

// TestAgentDaemonSet: on every node, the node's logs read-only, its state
// on the node, and the node's name from the downward API.
func TestAgentDaemonSet(t *testing.T) {
	m := load(t, "cluster")
	w := m.workload("DaemonSet/pharos-agent")
	require.NotNil(t, w)
	spec := w.template.Spec
	require.Contains(t, spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists}, "tolerates every taint")

	hostMounts := map[string]corev1.VolumeMount{}
	var agent corev1.Container
	for _, c := range w.containers() {
		if c.Name == "agent" {
			agent = c
		}
		var nodeName bool
		for _, e := range c.Env {
			nodeName = nodeName || e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
		}
		require.True(t, nodeName, "container %s: NODE_NAME from spec.nodeName", c.Name)
	}
	for _, vm := range agent.VolumeMounts {
		if v := w.volume(vm.Name); v != nil && v.HostPath != nil {
			require.Equal(t, v.HostPath.Path, vm.MountPath, "host path %s mounted at the same path", v.HostPath.Path)
			hostMounts[v.HostPath.Path] = vm
		}
	}
	for _, p := range []string{"/var/log/pods", "/var/log/containers"} {
		require.Contains(t, hostMounts, p)
		require.True(t, hostMounts[p].ReadOnly, "%s read-only", p)
	}
	require.Contains(t, hostMounts, "/var/lib/pharos-agent")
	require.False(t, hostMounts["/var/lib/pharos-agent"].ReadOnly)
	require.Len(t, hostMounts, 3, "no other host path")

	svc := m.services["pharos-agent"]
	require.NotNil(t, svc)
	require.NotNil(t, svc.Spec.InternalTrafficPolicy)
	require.Equal(t, corev1.ServiceInternalTrafficPolicyLocal, *svc.Spec.InternalTrafficPolicy, "pods reach the agent of their own node")
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.TargetPort.StrVal)
	}
	require.ElementsMatch(t, []string{"http", "otlp-grpc", "otlp-http"}, ports)
}

// TestRBACIsReadOnlyDiscovery: one ClusterRole, bound to the agents'
// account only, with get/list/watch and no wildcard. What it lists is
// checked against the scrape configurations in TestScrapeConfigs.
func TestRBACIsReadOnlyDiscovery(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		require.Len(t, m.clusterRoles, 1)
		role := m.clusterRoles[agentAccount]
		require.NotNil(t, role)
		require.Nil(t, role.AggregationRule)
		for _, r := range role.Rules {
			require.Empty(t, r.NonResourceURLs)
			require.Empty(t, r.ResourceNames)
			require.Subset(t, []string{"get", "list", "watch"}, r.Verbs)
			require.NotContains(t, r.Resources, "*")
			require.NotContains(t, r.APIGroups, "*")
			for _, res := range r.Resources {
				require.NotContains(t, []string{"secrets", "configmaps"}, res, "the agent reads no secrets or configuration")
			}
		}
		require.Len(t, m.bindings, 1)
		b := m.bindings[0]
		require.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}, b.RoleRef)
		require.Equal(t, []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: agentAccount, Namespace: namespace}}, b.Subjects)
	})
}

// grantedResources lists what the ClusterRole grants, as "group/resource".
func grantedResources(m *manifests) []string {
	var out []string
	for _, r := range m.clusterRoles[agentAccount].Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				out = append(out, g+"/"+res)
			}
		}
	}
	return out
}
