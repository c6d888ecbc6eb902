package kubernetes_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pharos-obs/pharos/alerting/rules"
	"github.com/pharos-obs/pharos/internal/app"
)

// The downward API's answers in these tests.
const (
	testNode  = "node-a.example"
	testPodIP = "10.1.2.3"
)

// pod is a workload's pod laid out in a temporary directory: each
// ConfigMap and emptyDir volume is a directory there, and the paths the
// containers see are rewritten to it wherever they appear (arguments,
// configuration files), so that the real files are read and written.
type pod struct {
	w *manifests
	*workload
	dirs map[string]string // mount path → local directory
}

// newPod lays out w's pod: every ConfigMap key is written to its volume's
// directory, then the init containers run, as the kubelet would run them.
func newPod(t *testing.T, m *manifests, w *workload) *pod {
	t.Helper()
	root := t.TempDir()
	p := &pod{w: m, workload: w, dirs: map[string]string{}}
	for _, c := range w.containers() {
		for _, vm := range c.VolumeMounts {
			require.Empty(t, vm.SubPath, "%s: subPath is not supported by these tests", w)
			v := w.volume(vm.Name)
			if v == nil || v.ConfigMap == nil && v.EmptyDir == nil {
				continue // data volumes: nothing to read before start
			}
			dir := filepath.Join(root, v.Name)
			if prev, ok := p.dirs[vm.MountPath]; ok {
				require.Equal(t, prev, dir, "%s: two volumes at %s", w, vm.MountPath)
			}
			p.dirs[vm.MountPath] = dir
		}
	}
	for _, v := range w.template.Spec.Volumes {
		dir := filepath.Join(root, v.Name)
		switch {
		case v.EmptyDir != nil:
			require.NoError(t, os.MkdirAll(dir, 0o755))
		case v.ConfigMap != nil:
			cm := m.configMaps[v.ConfigMap.Name]
			require.NotNil(t, cm, "%s: ConfigMap %s", w, v.ConfigMap.Name)
			require.Empty(t, v.ConfigMap.Items, "%s: items are not supported by these tests", w)
			require.NoError(t, os.MkdirAll(dir, 0o755))
			for key, data := range cm.Data {
				require.NoError(t, os.WriteFile(filepath.Join(dir, key), []byte(p.local(data)), 0o644))
			}
		}
	}
	for _, c := range w.template.Spec.InitContainers {
		p.runInit(t, c)
	}
	return p
}

// local rewrites the paths a container sees into the local layout.
func (p *pod) local(s string) string {
	mounts := make([]string, 0, len(p.dirs))
	for m := range p.dirs {
		mounts = append(mounts, m)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		s = strings.ReplaceAll(s, m+"/", p.dirs[m]+"/")
	}
	return s
}

// env is the container's environment as the kubelet builds it.
func (p *pod) env(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	require.Empty(t, c.EnvFrom, "%s: envFrom is not supported by these tests", p.workload)
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil:
			v, ok := map[string]string{
				"spec.nodeName":      testNode,
				"metadata.name":      p.podName(),
				"metadata.namespace": namespace,
				"status.podIP":       testPodIP,
			}[e.ValueFrom.FieldRef.FieldPath]
			require.True(t, ok, "%s: env %s: field %s", p.workload, e.Name, e.ValueFrom.FieldRef.FieldPath)
			env[e.Name] = v
		default:
			t.Fatalf("%s: env %s: only values and fieldRefs are supported by these tests", p.workload, e.Name)
		}
	}
	return env
}

// expand does the kubelet's $(VAR) expansion of command, args and env
// values: $$ is a literal $, an undefined $(VAR) stays as it is.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i:], ')'); end > 0 {
				if v, ok := env[s[i+2:i+end]]; ok {
					b.WriteString(v)
					i += end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (p *pod) argv(t *testing.T, c corev1.Container) []string {
	env := p.env(t, c)
	var out []string
	for _, a := range slices.Concat(c.Command, c.Args) {
		out = append(out, p.local(expand(a, env)))
	}
	return out
}

// runInit runs an init container's shell script here, with its
// environment and the local layout.
func (p *pod) runInit(t *testing.T, c corev1.Container) {
	t.Helper()
	argv := p.argv(t, c)
	require.True(t, len(argv) >= 3 && argv[0] == "sh" && argv[1] == "-c", "%s: init container %s: these tests run sh -c scripts only", p.workload, c.Name)
	cmd := exec.Command("sh", argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range p.env(t, c) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: init container %s:\n%s", p.workload, c.Name, out)
}

// pharosConfig is the configuration a Pharos container starts with: its
// arguments and environment, expanded, through app.Load, then validated as
// at start-up (the scrape file is loaded then too).
func (p *pod) pharosConfig(t *testing.T, c corev1.Container) (*app.Config, string) {
	t.Helper()
	require.Empty(t, c.Command, "%s: the image's entrypoint is pharos", p.workload)
	env := p.env(t, c)
	args := p.argv(t, c)
	cfg, _, err := app.Load(args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	require.NoError(t, err, "%s: %v", p.workload, args)
	require.NoError(t, cfg.Validate(), "%s: %v", p.workload, args)
	var file string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "-config.file="); ok {
			file = v
		}
	}
	require.NotEmpty(t, file, "%s: -config.file", p.workload)
	return cfg, file
}

// mountOf returns the volume mount holding path in container c.
func mountOf(c corev1.Container, path string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if (path == vm.MountPath || strings.HasPrefix(path, vm.MountPath+"/")) && (best == nil || len(vm.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func listenPort(t *testing.T, addr string) int32 {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	// In a pod, the loopback default is out of reach of the kubelet's
	// probes, the Services and the other pods.
	require.Equal(t, "0.0.0.0", host, "listener %s", addr)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return int32(n)
}

// roleConfig is a Pharos container's effective configuration.
type roleConfig struct {
	w   *workload
	c   corev1.Container
	pod *pod
	cfg *app.Config
}

func (r roleConfig) has(target string) bool { return slices.Contains(r.cfg.Target, target) }

// effectiveConfigs lays out every pod of the overlay and loads the
// configuration of each of its Pharos containers. Each configuration file
// also passes `pharos config check`, as read from the pod.
func effectiveConfigs(t *testing.T, m *manifests) []roleConfig {
	t.Helper()
	var out []roleConfig
	for _, w := range m.workloads {
		p := newPod(t, m, w)
		for _, c := range w.template.Spec.Containers {
			if repo, _, _ := splitImage(c.Image); repo != pharosImage {
				continue
			}
			cfg, file := p.pharosConfig(t, c)
			var stdout, stderr bytes.Buffer
			require.Zero(t, app.RunConfigCheck([]string{file}, &stdout, &stderr), "%s: pharos config check %s:\n%s", w, file, stderr.String())
			out = append(out, roleConfig{w: w, c: c, pod: p, cfg: cfg})
		}
	}
	return out
}

// TestPharosConfigs: every container's configuration is valid, listens
// where its ports and probes say, and keeps its data on a volume.
func TestPharosConfigs(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		cfgs := effectiveConfigs(t, m)
		require.Len(t, cfgs, len(m.workloads))
		for _, r := range cfgs {
			where := fmt.Sprintf("%s: container %s", r.w, r.c.Name)
			cfg := r.cfg
			require.Equal(t, []string{r.w.component()}, []string(cfg.Target), "%s: the component label names the target", where)
			require.Equal(t, portNamed(t, r.c, "http"), listenPort(t, cfg.HTTP.ListenAddress), where)
			if r.has(app.TargetAgent) || r.has(app.TargetAll) {
				require.Equal(t, portNamed(t, r.c, "otlp-grpc"), listenPort(t, cfg.OTLP.GRPC.ListenAddress), where)
				require.Equal(t, portNamed(t, r.c, "otlp-http"), listenPort(t, cfg.OTLP.HTTP.ListenAddress), where)
			}

			// The root file system is read-only: data on a volume.
			vm := mountOf(r.c, cfg.DataDir)
			require.NotNil(t, vm, "%s: data_dir %s is on no volume", where, cfg.DataDir)
			require.False(t, vm.ReadOnly, where)
			v := r.w.volume(vm.Name)
			switch {
			case r.w.kind == "StatefulSet":
				require.NotNil(t, r.w.claimTemplate(vm.Name), "%s: data_dir on a PVC", where)
			case r.w.kind == "DaemonSet":
				require.NotNil(t, v.HostPath, "%s: data_dir on the node", where)
			default:
				require.NotNil(t, v.EmptyDir, "%s: a stateless role's data_dir", where)
			}

			// Rule files: the globs find the mounted files, which are valid
			// (config check checked them too).
			for _, set := range []struct {
				globs []string
				check func(...string) []error
			}{{cfg.Rules.Files, rules.Check}, {cfg.Rules.LogFiles, rules.CheckLogQL}} {
				for _, g := range set.globs {
					files, err := filepath.Glob(g)
					require.NoError(t, err)
					require.NotEmpty(t, files, "%s: rule glob %s matches nothing in the pod", where, g)
					require.Empty(t, set.check(files...), where)
				}
			}
			if r.has(app.TargetAggregator) || r.has(app.TargetAll) {
				require.NotEmpty(t, cfg.Rules.Files, "%s: the rule files are mounted for a reason", where)
				require.NotEmpty(t, cfg.Rules.LogFiles, where)
			}
		}
	})
}

// TestClusterConfigsAgree: what must be the same in every process is, and
// each address names a Service of the overlay.
func TestClusterConfigsAgree(t *testing.T) {
	m := load(t, "cluster")
	cfgs := effectiveConfigs(t, m)
	byRole := map[string]roleConfig{}
	for _, r := range cfgs {
		byRole[r.cfg.Target[0]] = r
	}
	agent, agg, query, nats := byRole[app.TargetAgent], byRole[app.TargetAggregator], byRole[app.TargetQuery], byRole[app.TargetNATS]
	for _, r := range []roleConfig{agent, agg, query, nats} {
		require.NotNil(t, r.cfg)
	}

	require.Equal(t, agg.cfg.NATS.Partitions, agent.cfg.NATS.Partitions, "nats.partitions")
	require.Equal(t, agg.cfg.NATS.Partitions, query.cfg.NATS.Partitions, "nats.partitions")
	// Whoever starts first creates the streams, later ones update them.
	require.Equal(t, agg.cfg.NATS.Stream, agent.cfg.NATS.Stream, "nats.stream")
	require.Equal(t, agg.cfg.Cluster.Ring.ReplicationFactor, query.cfg.Cluster.Ring.ReplicationFactor, "ring.replication_factor")
	require.LessOrEqual(t, agg.cfg.Cluster.Ring.ReplicationFactor, int(agg.w.replicas))
	require.True(t, agg.cfg.Cluster.Ring.LeaveOnShutdown, "aggregators leave the ring on SIGTERM")

	// NATS: R3 streams on a three-node JetStream cluster, fsync always.
	require.Equal(t, 3, agg.cfg.NATS.Stream.Replicas)
	require.GreaterOrEqual(t, nats.w.replicas, int32(agg.cfg.NATS.Stream.Replicas))
	for _, r := range []roleConfig{agent, agg} {
		u, err := url.Parse(r.cfg.NATS.URL)
		require.NoError(t, err)
		require.Equal(t, "nats", u.Scheme)
		svc := m.services[u.Hostname()]
		require.NotNil(t, svc, "%s: nats.url %s names no Service", r.w, r.cfg.NATS.URL)
		require.Equal(t, []*workload{nats.w}, m.selecting(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}))
		require.Equal(t, u.Port(), strconv.Itoa(int(portNamed(t, nats.c, "nats"))))
	}

	// Gossip: aggregators and queriers join through the aggregators'
	// headless Service, which lists pods before they are ready.
	for _, r := range []roleConfig{agg, query} {
		ml := r.cfg.Cluster.Memberlist
		require.Equal(t, portNamed(t, r.c, "gossip"), listenPort(t, ml.BindAddress))
		require.Equal(t, testPodIP, ml.AdvertiseAddress, "%s: advertise the pod IP", r.w)
		require.Len(t, ml.Join, 1)
		host, port, err := net.SplitHostPort(strings.TrimPrefix(ml.Join[0], "dns+"))
		require.NoError(t, err)
		svc := m.services[host]
		require.NotNil(t, svc, "%s: memberlist.join %s", r.w, ml.Join[0])
		require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP)
		require.True(t, svc.Spec.PublishNotReadyAddresses)
		require.Equal(t, []*workload{agg.w}, m.selecting(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}))
		require.Equal(t, port, strconv.Itoa(int(portNamed(t, agg.c, "gossip"))))
	}
	// Queriers read each aggregator at its stable DNS name.
	require.Equal(t, fmt.Sprintf("%s.%s:%d", agg.w.podName(), agg.w.sts.Spec.ServiceName, portNamed(t, agg.c, "http")), agg.cfg.Cluster.Ring.InstanceAddr)
}

// TestNATSCluster: each node named after its pod, routes to every pod of
// the StatefulSet, fsync on every write, and volumes that hold the streams.
func TestNATSCluster(t *testing.T) {
	m := load(t, "cluster")
	var nats, agg roleConfig
	for _, r := range effectiveConfigs(t, m) {
		switch r.cfg.Target[0] {
		case app.TargetNATS:
			nats = r
		case app.TargetAggregator:
			agg = r
		}
	}
	require.NotNil(t, nats.cfg)
	e := nats.cfg.NATS.Embedded
	sts := nats.w.sts
	require.Equal(t, "always", e.SyncInterval, "the README's NATS settings: fsync before every acknowledgement")
	require.Equal(t, nats.w.podName(), e.ServerName, "server name: the pod name, stable across restarts")
	require.Equal(t, portNamed(t, nats.c, "nats"), listenPort(t, e.ListenAddress))
	clusterPort := portNamed(t, nats.c, "nats-cluster")
	require.Equal(t, clusterPort, listenPort(t, e.ClusterListenAddress))
	var want []string
	for i := range int(nats.w.replicas) {
		want = append(want, fmt.Sprintf("nats-route://%s-%d.%s:%d", sts.Name, i, sts.Spec.ServiceName, clusterPort))
	}
	require.Equal(t, want, []string(e.Routes), "a route to every pod of the StatefulSet")
	require.Equal(t, "Parallel", string(sts.Spec.PodManagementPolicy), "the nodes are ready only together")
	require.True(t, m.services[sts.Spec.ServiceName].Spec.PublishNotReadyAddresses, "routes resolve before the nodes are ready")

	// A quorum survives the disruptions the budget allows.
	var maxUnavailable int32
	for _, p := range m.pdbs {
		if slices.Contains(m.selecting(t, p.Spec.Selector), nats.w) {
			require.NotNil(t, p.Spec.MaxUnavailable)
			maxUnavailable = p.Spec.MaxUnavailable.IntVal
		}
	}
	require.Positive(t, maxUnavailable, "a PodDisruptionBudget covers NATS")
	require.GreaterOrEqual(t, nats.w.replicas-maxUnavailable, nats.w.replicas/2+1)

	// Every node holds a replica of each stream (metrics, logs, traces)
	// and of the dead-letter stream (at most 1 GiB).
	claim := nats.w.claimTemplate("data")
	require.NotNil(t, claim)
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	need := resource.NewQuantity(3*agg.cfg.NATS.Stream.MaxBytes+1<<30, resource.BinarySI)
	require.GreaterOrEqual(t, size.Cmp(*need), 0, "NATS volume %s, streams need %s", size.String(), need.String())
}

// TestScrapeConfigs: the scrape configurations load as Pharos loads them;
// each agent discovers only its own node's targets; the ClusterRole grants
// exactly what the discovery reads.
func TestScrapeConfigs(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		need := map[string]bool{}
		for _, r := range effectiveConfigs(t, m) {
			if !r.has(app.TargetAgent) && !r.has(app.TargetAll) {
				continue
			}
			file := r.cfg.Scrape.ConfigFile
			require.NotEmpty(t, file, "%s: a scrape configuration", r.w)
			raw, err := os.ReadFile(file)
			require.NoError(t, err)
			require.NotContains(t, string(raw), "${", "%s: placeholders left in the scrape configuration", r.w)
			pc, err := config.LoadFile(file, false, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			scfgs, err := pc.GetScrapeConfigs()
			require.NoError(t, err)
			require.NotEmpty(t, scfgs)
			for _, sc := range scfgs {
				for _, d := range sc.ServiceDiscoveryConfigs {
					k, ok := d.(*kubernetes.SDConfig)
					if !ok {
						continue
					}
					for _, res := range sdResources(k) {
						need[res] = true
					}
					if r.w.kind == "DaemonSet" {
						requireOwnNode(t, sc, k)
					}
				}
			}
			require.Equal(t, agentAccount, r.w.template.Spec.ServiceAccountName, "%s discovers through the API", r.w)
		}
		var needed []string
		for res := range need {
			needed = append(needed, res)
		}
		require.ElementsMatch(t, needed, grantedResources(m), "the ClusterRole grants what kubernetes_sd_configs reads, nothing more")
	})
}

// requireOwnNode fails unless the job discovers only testNode's targets:
// pods by a field selector the API server applies, other roles by a keep
// on the endpoint's node.
func requireOwnNode(t *testing.T, sc *config.ScrapeConfig, k *kubernetes.SDConfig) {
	t.Helper()
	if k.Role == kubernetes.RolePod {
		require.Contains(t, k.Selectors, kubernetes.SelectorConfig{Role: kubernetes.RolePod, Field: "spec.nodeName=" + testNode}, "job %s", sc.JobName)
		return
	}
	nodeLabel := map[kubernetes.Role]string{
		kubernetes.RoleEndpointSlice: "__meta_kubernetes_endpointslice_endpoint_node_name",
		kubernetes.RoleEndpoint:      "__meta_kubernetes_endpoint_node_name",
	}[k.Role]
	require.NotEmpty(t, nodeLabel, "job %s: role %s has no node to filter on", sc.JobName, k.Role)
	for _, rc := range sc.RelabelConfigs {
		if rc.Action == relabel.Keep && len(rc.SourceLabels) == 1 && string(rc.SourceLabels[0]) == nodeLabel &&
			rc.Regex.MatchString(testNode) && !rc.Regex.MatchString("node-b") {
			return
		}
	}
	t.Fatalf("job %s: no keep on %s = %s", sc.JobName, nodeLabel, testNode)
}

// sdResources is what a Kubernetes discovery lists and watches, as
// "group/resource" (Prometheus's discovery/kubernetes).
func sdResources(k *kubernetes.SDConfig) []string {
	var out []string
	switch k.Role {
	case kubernetes.RolePod:
		out = []string{"/pods"}
	case kubernetes.RoleEndpointSlice:
		out = []string{"discovery.k8s.io/endpointslices", "/services", "/pods"}
	case kubernetes.RoleEndpoint:
		out = []string{"/endpoints", "/services", "/pods"}
	case kubernetes.RoleService:
		out = []string{"/services"}
	case kubernetes.RoleNode:
		out = []string{"/nodes"}
	case kubernetes.RoleIngress:
		out = []string{"networking.k8s.io/ingresses"}
	}
	if k.AttachMetadata.Node {
		out = append(out, "/nodes")
	}
	if k.AttachMetadata.Namespace {
		out = append(out, "/namespaces")
	}
	return out
}

// TestConfigMapsAreChecked: every key of every ConfigMap is a file these
// tests check — Pharos configurations by `pharos config check` (in
// TestPharosConfigs), scrape configurations by Prometheus's loader (in
// TestScrapeConfigs), rule files by `pharos rules check` — and nothing
// else hides there.
func TestConfigMapsAreChecked(t *testing.T) {
	forOverlays(t, func(t *testing.T, m *manifests) {
		for name, cm := range m.configMaps {
			require.Empty(t, cm.BinaryData, "ConfigMap/%s", name)
			kind := generatorName(name)
			for key, data := range cm.Data {
				f := filepath.Join(t.TempDir(), key)
				require.NoError(t, os.WriteFile(f, []byte(data), 0o644))
				switch kind {
				case "pharos-config", "pharos-scrape":
					// Checked as the pods read them.
				case "pharos-rules":
					require.Empty(t, rules.Check(f), "ConfigMap/%s %s", name, key)
				case "pharos-log-rules":
					require.Empty(t, rules.CheckLogQL(f), "ConfigMap/%s %s", name, key)
				default:
					t.Fatalf("ConfigMap/%s: which check does %s need?", name, key)
				}
			}
		}
	})
}

// generatorName strips the content hash kustomize appends.
func generatorName(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 && len(name)-i-1 == 10 {
		return name[:i]
	}
	return name
}
