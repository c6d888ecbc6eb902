// Command targetgen serves synthetic Prometheus scrape targets on loopback for
// the side-by-side benchmarks in bench/ (see bench/README.md).
//
// It starts -targets HTTP listeners on 127.0.0.1, each exposing about
// -series/-targets series in the Prometheus text format (0.0.4): counters,
// gauges and classic histograms shaped like an HTTP server plus node-exporter
// mix, 6–9 labels per series in the exposition (8–11 once the scraper adds job
// and instance). Values advance with wall-clock time on every scrape. Churn:
// every second a share of the "pods" (groups of ~330 series) is replaced by a
// new pod name, so that -churn of the series (0.01 = 1 % per minute) turn into
// new series.
//
// The target list is written as a Prometheus configuration (-config-out) and
// as file_sd JSON (-file-sd-out) once every listener is bound, so that
// Prometheus and Pharos scrape exactly the same targets.
//
// The hot path is cheap: label strings are rendered once per series (again
// only when churned), a scrape appends pre-rendered prefixes and formatted
// values into a reused buffer, and gzip (when the scraper asks for it, as
// Prometheus does) uses a reused writer at BestSpeed.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	var (
		nTargets   = flag.Int("targets", 20, "Number of targets (HTTP listeners).")
		nSeries    = flag.Int("series", 100_000, "Total series across all targets (approximate: whole pods of ~330 series plus a filler gauge).")
		interval   = flag.Duration("interval", 10*time.Second, "Scrape interval written into the generated Prometheus configuration.")
		churn      = flag.Float64("churn", 0.01, "Fraction of the series replaced by new label values per minute (0.01 = 1 %/min).")
		host       = flag.String("listen-host", "127.0.0.1", "Host to listen on (loopback only).")
		basePort   = flag.Int("base-port", 0, "First port; target i listens on base-port+i. 0 = ephemeral ports.")
		job        = flag.String("job", "targetgen", "Job name in the generated configuration.")
		configOut  = flag.String("config-out", "", "Write a Prometheus configuration scraping all targets to this file.")
		fileSDOut  = flag.String("file-sd-out", "", "Write the targets as file_sd JSON to this file.")
		useGzip    = flag.Bool("gzip", true, "Gzip responses when the scraper accepts it (as client_golang exporters do).")
		seed       = flag.Uint64("seed", 1, "Random seed (label values and value paths are deterministic per seed).")
		statsEvery = flag.Duration("stats-interval", time.Minute, "How often to log scrape statistics to stderr (0 = never).")
		dump       = flag.Bool("dump", false, "Print one scrape of target 0 to stdout and exit (e.g. for promtool check metrics).")
		freePorts  = flag.Int("free-ports", 0, "Print this many free loopback TCP ports, one per line, and exit.")
	)
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	if *freePorts > 0 {
		if err := printFreePorts(*freePorts); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if ip := net.ParseIP(*host); ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "-listen-host must be a loopback address, got %q\n", *host)
		os.Exit(2)
	}
	if *nTargets < 1 || *nSeries < *nTargets || *churn < 0 || *interval <= 0 {
		fmt.Fprintln(os.Stderr, "need -targets >= 1, -series >= -targets, -churn >= 0, -interval > 0")
		os.Exit(2)
	}

	perTarget := *nSeries / *nTargets
	targets := make([]*target, *nTargets)
	total := 0
	for i := range targets {
		targets[i] = newTarget(i, perTarget, *seed, *useGzip)
		total += targets[i].series
	}

	if *dump {
		t := targets[0]
		t.advance(time.Now().Add(*interval))
		os.Stdout.Write(t.render(nil))
		return
	}

	// Bind every listener first, then publish the target list.
	addrs := make([]string, len(targets))
	listeners := make([]net.Listener, len(targets))
	for i := range targets {
		port := 0
		if *basePort > 0 {
			port = *basePort + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(port)))
		if err != nil {
			logger.Error("listen", "err", err)
			os.Exit(1)
		}
		listeners[i] = ln
		addrs[i] = ln.Addr().String()
	}
	servers := make([]*http.Server, len(targets))
	for i, t := range targets {
		mux := http.NewServeMux()
		mux.Handle("/metrics", t)
		servers[i] = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go servers[i].Serve(listeners[i]) //nolint:errcheck
	}

	timeout := *interval
	if timeout > 10*time.Second {
		timeout = 10 * time.Second
	}
	if *configOut != "" {
		if err := writeAtomic(*configOut, []byte(promConfig(*job, *interval, timeout, addrs))); err != nil {
			logger.Error("write config", "err", err)
			os.Exit(1)
		}
	}
	if *fileSDOut != "" {
		b, _ := json.MarshalIndent([]map[string]any{{"targets": addrs, "labels": map[string]string{"job": *job}}}, "", "  ")
		if err := writeAtomic(*fileSDOut, append(b, '\n')); err != nil {
			logger.Error("write file_sd", "err", err)
			os.Exit(1)
		}
	}
	logger.Info("serving", "targets", len(targets), "series", total, "series_per_target", total/len(targets),
		"pod_series", targets[0].podSeries, "churn_per_min", *churn, "first", addrs[0], "last", addrs[len(addrs)-1])

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	churnTick := time.NewTicker(time.Second)
	defer churnTick.Stop()
	var statsC <-chan time.Time
	if *statsEvery > 0 {
		st := time.NewTicker(*statsEvery)
		defer st.Stop()
		statsC = st.C
	}
	var lastScrapes, lastBytes, lastChurned int64
	for {
		select {
		case <-churnTick.C:
			for _, t := range targets {
				t.churnTick(*churn, time.Second)
			}
		case <-statsC:
			var scrapes, bytesOut, churned int64
			cur := 0
			for _, t := range targets {
				scrapes += t.scrapes.Load()
				bytesOut += t.bytesOut.Load()
				churned += t.churned.Load()
				t.mu.Lock()
				cur += t.series
				t.mu.Unlock()
			}
			logger.Info("stats", "scrapes", scrapes-lastScrapes, "bytes_out", bytesOut-lastBytes,
				"churned_series", churned-lastChurned, "series", cur)
			lastScrapes, lastBytes, lastChurned = scrapes, bytesOut, churned
		case <-stop:
			for _, s := range servers {
				s.Close()
			}
			logger.Info("stopped")
			return
		}
	}
}

func printFreePorts(n int) error {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

func promConfig(job string, interval, timeout time.Duration, addrs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by bench/targetgen.\nglobal:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets:\n", interval, timeout, job)
	for _, a := range addrs {
		fmt.Fprintf(&b, "          - %q\n", a)
	}
	return b.String()
}

func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ---------------------------------------------------------------------------
// Metric families.

type kind int

const (
	kCounter kind = iota
	kGauge
	kHistogram
)

// valueModel says how a counter or gauge moves.
type valueModel int

const (
	vmIntCounter   valueModel = iota // integer increments (requests, bytes, packets)
	vmFloatCounter                   // seconds, 0.01 resolution
	vmIntGauge                       // bytes / counts, random walk
	vmFloatGauge                     // load averages, 0.01 resolution
	vmConstGauge                     // sizes that do not move
)

type family struct {
	name, help string
	kind       kind
	model      valueModel
	buckets    []float64 // histograms: upper bounds without +Inf
	// labelSets lists the family-specific label pairs ("k=\"v\"") of one pod;
	// each entry becomes one series (or one histogram).
	labelSets [][]string
	// rate and level parameters per label set: base rate per second (counters,
	// histogram observations) or level (gauges).
	base func(i int, r *rand.Rand) float64
	// fill marks the filler family whose size is set per target.
	fill bool
}

var (
	handlers = []string{"/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/cart", "/api/v1/products", "/api/v1/users/{id}", "/healthz"}
	methods  = []string{"GET", "POST"}
	codes    = []string{"200", "404", "500"}
	cpuModes = []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
	netDevs  = []string{"eth0", "lo", "cni0"}
	disks    = []string{"nvme0n1", "nvme1n1"}
	services = []string{"checkout-api", "cart-service", "catalog-api", "payments", "user-profile", "search-frontend", "inventory", "shipping-worker"}
	clusters = []string{"prod-eu-west-1", "prod-us-east-1"}
	nss      = []string{"shop", "platform", "payments"}

	latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	sizeBuckets    = []float64{100, 1000, 10000, 100000, 1e6}
)

func lp(k, v string) string { return k + `="` + v + `"` }

func cross(dims ...[]string) [][]string {
	out := [][]string{nil}
	for _, d := range dims {
		var next [][]string
		for _, prefix := range out {
			for _, v := range d {
				next = append(next, append(append([]string(nil), prefix...), v))
			}
		}
		out = next
	}
	return out
}

func prefixed(k string, vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = lp(k, v)
	}
	return out
}

func single() [][]string { return [][]string{nil} }

func families() []family {
	var cpus []string
	for i := range 4 {
		cpus = append(cpus, strconv.Itoa(i))
	}
	fs := []family{
		{name: "http_requests_total", help: "Total HTTP requests by handler, method and status code.", kind: kCounter, model: vmIntCounter,
			labelSets: cross(prefixed("handler", handlers), prefixed("method", methods), prefixed("code", codes)),
			base: func(i int, r *rand.Rand) float64 {
				switch i % 3 {
				case 0:
					return 1 + 49*r.Float64()
				case 1:
					return 0.05 + r.Float64()
				}
				return 0.01 + 0.2*r.Float64()
			}},
		{name: "http_request_duration_seconds", help: "HTTP request latency.", kind: kHistogram, buckets: latencyBuckets,
			labelSets: cross(prefixed("handler", handlers), prefixed("method", methods)),
			base:      func(int, *rand.Rand) float64 { return 0 }},
		{name: "http_response_size_bytes", help: "HTTP response sizes.", kind: kHistogram, buckets: sizeBuckets,
			labelSets: cross(prefixed("handler", handlers)),
			base:      func(int, *rand.Rand) float64 { return 0 }},
		{name: "http_requests_in_flight", help: "Requests being served.", kind: kGauge, model: vmIntGauge,
			labelSets: cross(prefixed("handler", handlers)),
			base:      func(_ int, r *rand.Rand) float64 { return float64(r.IntN(20)) }},
		{name: "node_cpu_seconds_total", help: "Seconds the CPUs spent in each mode.", kind: kCounter, model: vmFloatCounter,
			labelSets: cross(prefixed("cpu", cpus), prefixed("mode", cpuModes)),
			base: func(i int, r *rand.Rand) float64 {
				return []float64{0.70, 0.02, 0.001, 0.001, 0.01, 0.002, 0.06, 0.2}[i%len(cpuModes)] * (0.8 + 0.4*r.Float64())
			}},
		{name: "node_memory_MemAvailable_bytes", help: "Memory information field MemAvailable_bytes.", kind: kGauge, model: vmIntGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(8<<30 + r.IntN(8<<30)) }},
		{name: "node_memory_MemFree_bytes", help: "Memory information field MemFree_bytes.", kind: kGauge, model: vmIntGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(1<<30 + r.IntN(4<<30)) }},
		{name: "node_memory_Cached_bytes", help: "Memory information field Cached_bytes.", kind: kGauge, model: vmIntGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(4<<30 + r.IntN(4<<30)) }},
		{name: "node_memory_Buffers_bytes", help: "Memory information field Buffers_bytes.", kind: kGauge, model: vmIntGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(100<<20 + r.IntN(400<<20)) }},
		{name: "node_filesystem_avail_bytes", help: "Filesystem space available to non-root users in bytes.", kind: kGauge, model: vmIntGauge,
			labelSets: [][]string{
				{lp("device", "/dev/nvme0n1p1"), lp("fstype", "ext4"), lp("mountpoint", "/")},
				{lp("device", "/dev/nvme1n1"), lp("fstype", "xfs"), lp("mountpoint", "/var/lib/containerd")},
				{lp("device", "tmpfs"), lp("fstype", "tmpfs"), lp("mountpoint", "/run")},
			},
			base: func(_ int, r *rand.Rand) float64 { return float64(10<<30 + r.IntN(90<<30)) }},
		{name: "node_filesystem_size_bytes", help: "Filesystem size in bytes.", kind: kGauge, model: vmConstGauge,
			labelSets: [][]string{
				{lp("device", "/dev/nvme0n1p1"), lp("fstype", "ext4"), lp("mountpoint", "/")},
				{lp("device", "/dev/nvme1n1"), lp("fstype", "xfs"), lp("mountpoint", "/var/lib/containerd")},
				{lp("device", "tmpfs"), lp("fstype", "tmpfs"), lp("mountpoint", "/run")},
			},
			base: func(i int, _ *rand.Rand) float64 { return []float64{100 << 30, 200 << 30, 4 << 30}[i] }},
		{name: "node_network_receive_bytes_total", help: "Network device statistic receive_bytes.", kind: kCounter, model: vmIntCounter,
			labelSets: cross(prefixed("device", netDevs)), base: func(_ int, r *rand.Rand) float64 { return 1e3 + 1e7*r.Float64() }},
		{name: "node_network_transmit_bytes_total", help: "Network device statistic transmit_bytes.", kind: kCounter, model: vmIntCounter,
			labelSets: cross(prefixed("device", netDevs)), base: func(_ int, r *rand.Rand) float64 { return 1e3 + 5e6*r.Float64() }},
		{name: "node_network_receive_packets_total", help: "Network device statistic receive_packets.", kind: kCounter, model: vmIntCounter,
			labelSets: cross(prefixed("device", netDevs)), base: func(_ int, r *rand.Rand) float64 { return 10 + 5e3*r.Float64() }},
		{name: "node_network_transmit_packets_total", help: "Network device statistic transmit_packets.", kind: kCounter, model: vmIntCounter,
			labelSets: cross(prefixed("device", netDevs)), base: func(_ int, r *rand.Rand) float64 { return 10 + 3e3*r.Float64() }},
		{name: "node_disk_read_bytes_total", help: "The total number of bytes read successfully.", kind: kCounter, model: vmIntCounter,
			labelSets: cross(prefixed("device", disks)), base: func(_ int, r *rand.Rand) float64 { return 4096 * (1 + 200*r.Float64()) }},
		{name: "node_disk_written_bytes_total", help: "The total number of bytes written successfully.", kind: kCounter, model: vmIntCounter,
			labelSets: cross(prefixed("device", disks)), base: func(_ int, r *rand.Rand) float64 { return 4096 * (1 + 500*r.Float64()) }},
		{name: "node_disk_io_time_seconds_total", help: "Total seconds spent doing I/Os.", kind: kCounter, model: vmFloatCounter,
			labelSets: cross(prefixed("device", disks)), base: func(_ int, r *rand.Rand) float64 { return 0.01 + 0.2*r.Float64() }},
		{name: "node_load1", help: "1m load average.", kind: kGauge, model: vmFloatGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return 0.5 + 3*r.Float64() }},
		{name: "node_load5", help: "5m load average.", kind: kGauge, model: vmFloatGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return 0.5 + 3*r.Float64() }},
		{name: "node_load15", help: "15m load average.", kind: kGauge, model: vmFloatGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return 0.5 + 3*r.Float64() }},
		{name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", kind: kCounter, model: vmFloatCounter, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return 0.01 + 0.5*r.Float64() }},
		{name: "process_resident_memory_bytes", help: "Resident memory size in bytes.", kind: kGauge, model: vmIntGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(50<<20 + r.IntN(500<<20)) }},
		{name: "process_open_fds", help: "Number of open file descriptors.", kind: kGauge, model: vmIntGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(20 + r.IntN(200)) }},
		{name: "go_goroutines", help: "Number of goroutines that currently exist.", kind: kGauge, model: vmIntGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(30 + r.IntN(300)) }},
		{name: "go_memstats_heap_alloc_bytes", help: "Number of heap bytes allocated and still in use.", kind: kGauge, model: vmIntGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(20<<20 + r.IntN(300<<20)) }},
		{name: "go_threads", help: "Number of OS threads created.", kind: kGauge, model: vmConstGauge, labelSets: single(),
			base: func(_ int, r *rand.Rand) float64 { return float64(8 + r.IntN(20)) }},
		// Filler: brings each target to its share of -series exactly; its
		// label sets are made per target.
		{name: "app_queue_messages", help: "Messages waiting per queue.", kind: kGauge, model: vmIntGauge, fill: true,
			base: func(_ int, r *rand.Rand) float64 { return float64(r.IntN(1000)) }},
	}
	return fs
}

func seriesPerSet(f *family) int {
	if f.kind == kHistogram {
		return len(f.buckets) + 3 // buckets, +Inf, _sum, _count
	}
	return 1
}

// ---------------------------------------------------------------------------
// Series state.

// unit is one series, or one histogram (all its bucket/sum/count series).
type unit struct {
	fam *family
	// prefix: for counters and gauges the whole "name{labels} "; for
	// histograms one per bucket (+Inf last), then _sum, then _count.
	prefixes [][]byte
	val      float64 // counter/gauge value
	base     float64 // rate or level
	// histograms
	probs  []float64 // per bucket incl. +Inf, non-cumulative
	counts []uint64  // non-cumulative
	sum    float64
	count  uint64
	mean   float64 // mean observed value
}

type pod struct {
	name, node string
	units      [][]*unit // per family
	series     int
}

type target struct {
	idx       int
	fams      []family
	rng       *rand.Rand
	gzip      bool
	service   string
	cluster   string
	namespace string
	fillSets  [][]string

	mu          sync.Mutex
	pods        []*pod
	series      int
	podSeries   int
	last        time.Time
	churnBudget float64
	buf         []byte
	zbuf        bytes.Buffer
	zw          *gzip.Writer

	scrapes, bytesOut, churned atomic.Int64
}

func newTarget(idx, want int, seed uint64, useGzip bool) *target {
	t := &target{
		idx:       idx,
		fams:      families(),
		rng:       rand.New(rand.NewPCG(seed, uint64(idx)+1)),
		gzip:      useGzip,
		service:   services[idx%len(services)],
		cluster:   clusters[idx%len(clusters)],
		namespace: nss[idx%len(nss)],
		last:      time.Now(),
	}
	t.zw, _ = gzip.NewWriterLevel(&t.zbuf, gzip.BestSpeed)
	podSeries := 0
	for i := range t.fams {
		f := &t.fams[i]
		if !f.fill {
			podSeries += len(f.labelSets) * seriesPerSet(f)
		}
	}
	t.podSeries = podSeries
	nPods := max(1, want/podSeries)
	fill := max(0, want-nPods*podSeries)
	for q := range fill {
		t.fillSets = append(t.fillSets, []string{lp("queue", fmt.Sprintf("orders.q%04d", q))})
	}
	for i := range nPods {
		t.pods = append(t.pods, t.newPod(i == 0))
	}
	for _, p := range t.pods {
		t.series += p.series
	}
	// Start each target's churn budget at a random point, so that targets
	// replace their pods at different times (smooth churn overall, not a burst
	// of every target at once).
	t.churnBudget = t.rng.Float64() * float64(podSeries)
	return t
}

const hexdigits = "0123456789abcdef"
const alnum = "bcdfghjklmnpqrstvwxz2456789"

func (t *target) randString(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[t.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// newPod makes a pod with new name and node; withFill adds the filler series.
func (t *target) newPod(withFill bool) *pod {
	p := &pod{
		name: t.service + "-" + t.randString(10, hexdigits) + "-" + t.randString(5, alnum),
		node: fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", t.rng.IntN(4), t.rng.IntN(256), t.rng.IntN(256)),
	}
	common := []string{
		lp("cluster", t.cluster), lp("namespace", t.namespace), lp("service", t.service),
		lp("pod", p.name), lp("container", "app"), lp("node", p.node),
	}
	p.units = make([][]*unit, len(t.fams))
	for fi := range t.fams {
		f := &t.fams[fi]
		sets := f.labelSets
		if f.fill {
			if !withFill {
				continue
			}
			sets = t.fillSets
		}
		for si, set := range sets {
			u := &unit{fam: f, base: f.base(si, t.rng)}
			labels := strings.Join(append(append([]string(nil), common...), set...), ",")
			switch f.kind {
			case kHistogram:
				for _, le := range f.buckets {
					u.prefixes = append(u.prefixes, []byte(f.name+"_bucket{"+labels+`,le="`+formatLe(le)+`"} `))
				}
				u.prefixes = append(u.prefixes,
					[]byte(f.name+"_bucket{"+labels+`,le="+Inf"} `),
					[]byte(f.name+"_sum{"+labels+"} "),
					[]byte(f.name+"_count{"+labels+"} "))
				t.initHistogram(u, si)
			default:
				u.prefixes = [][]byte{[]byte(f.name + "{" + labels + "} ")}
				if f.kind == kGauge {
					u.val = u.base
				}
			}
			p.units[fi] = append(p.units[fi], u)
			p.series += len(u.prefixes)
		}
	}
	return p
}

func formatLe(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// initHistogram sets a log-normal-ish observation distribution: latency
// histograms get a median between 5 ms and 300 ms, size histograms between
// 500 B and 50 kB; request rate 1..50/s.
func (t *target) initHistogram(u *unit, _ int) {
	b := u.fam.buckets
	var median float64
	if b[0] < 1 { // seconds
		median = 0.005 * math.Pow(60, t.rng.Float64())
	} else {
		median = 500 * math.Pow(100, t.rng.Float64())
	}
	sigma := 0.6 + 0.6*t.rng.Float64()
	u.base = 1 + 49*t.rng.Float64()
	u.probs = make([]float64, len(b)+1)
	prev := 0.0
	for i, le := range b {
		c := normCDF(math.Log(le/median) / sigma)
		u.probs[i] = c - prev
		prev = c
	}
	u.probs[len(b)] = 1 - prev
	u.mean = median * math.Exp(sigma*sigma/2)
	u.counts = make([]uint64, len(b)+1)
}

func normCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// advance moves every value by the wall-clock time since the last scrape.
func (t *target) advance(now time.Time) {
	dt := now.Sub(t.last).Seconds()
	t.last = now
	if dt <= 0 {
		return
	}
	r := t.rng
	for _, p := range t.pods {
		for _, us := range p.units {
			for _, u := range us {
				switch u.fam.kind {
				case kCounter:
					inc := u.base * dt * (0.7 + 0.6*r.Float64())
					if u.fam.model == vmIntCounter {
						u.val += math.Floor(inc + r.Float64())
					} else {
						u.val = math.Round((u.val+inc)*100) / 100
					}
				case kGauge:
					switch u.fam.model {
					case vmIntGauge:
						// mean-reverting random walk around base
						step := (u.base - u.val) * 0.1
						noise := (r.Float64() - 0.5) * 0.05 * (u.base + 1)
						if u.base >= 1<<20 {
							u.val = math.Round((u.val+step+noise)/4096) * 4096
						} else {
							u.val = math.Max(0, math.Round(u.val+step+noise*10))
						}
					case vmFloatGauge:
						u.val = math.Round(math.Max(0, u.val+(u.base-u.val)*0.1+(r.Float64()-0.5)*0.2)*100) / 100
					}
				case kHistogram:
					n := math.Floor(u.base*dt*(0.7+0.6*r.Float64()) + r.Float64())
					var added uint64
					for i, pr := range u.probs {
						c := uint64(math.Floor(n*pr + r.Float64()))
						u.counts[i] += c
						added += c
					}
					u.count += added
					u.sum += float64(added) * u.mean * (0.8 + 0.4*r.Float64())
				}
			}
		}
	}
}

// render appends the exposition of the target to b.
func (t *target) render(b []byte) []byte {
	for fi := range t.fams {
		f := &t.fams[fi]
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.help...)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		switch f.kind {
		case kCounter:
			b = append(b, " counter\n"...)
		case kGauge:
			b = append(b, " gauge\n"...)
		case kHistogram:
			b = append(b, " histogram\n"...)
		}
		for _, p := range t.pods {
			for _, u := range p.units[fi] {
				if f.kind != kHistogram {
					b = append(b, u.prefixes[0]...)
					b = strconv.AppendFloat(b, u.val, 'g', -1, 64)
					b = append(b, '\n')
					continue
				}
				var cum uint64
				for i, c := range u.counts {
					cum += c
					b = append(b, u.prefixes[i]...)
					b = strconv.AppendUint(b, cum, 10)
					b = append(b, '\n')
				}
				nb := len(u.counts)
				b = append(b, u.prefixes[nb]...)
				b = strconv.AppendFloat(b, math.Round(u.sum*1e6)/1e6, 'g', -1, 64)
				b = append(b, '\n')
				b = append(b, u.prefixes[nb+1]...)
				b = strconv.AppendUint(b, u.count, 10)
				b = append(b, '\n')
			}
		}
	}
	return b
}

func (t *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance(time.Now())
	t.buf = t.render(t.buf[:0])
	body := t.buf
	h := w.Header()
	h.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if t.gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		t.zbuf.Reset()
		t.zw.Reset(&t.zbuf)
		t.zw.Write(body) //nolint:errcheck
		t.zw.Close()     //nolint:errcheck
		body = t.zbuf.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body) //nolint:errcheck
	t.scrapes.Add(1)
	t.bytesOut.Add(int64(len(body)))
}

// churnTick replaces whole pods once enough churn budget has accumulated:
// on average frac of the target's series per minute become new series.
func (t *target) churnTick(frac float64, dt time.Duration) {
	if frac <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.churnBudget += frac * float64(t.series) * dt.Minutes()
	for {
		i := t.rng.IntN(len(t.pods))
		old := t.pods[i]
		if t.churnBudget < float64(old.series) {
			return
		}
		np := t.newPod(len(old.units) > 0 && hasFill(t, old))
		t.pods[i] = np
		t.churnBudget -= float64(old.series)
		t.series += np.series - old.series
		t.churned.Add(int64(old.series))
	}
}

func hasFill(t *target, p *pod) bool {
	for fi := range t.fams {
		if t.fams[fi].fill {
			return len(p.units[fi]) > 0
		}
	}
	return false
}
