package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// xssCorpus is what a hostile tenant puts into labels, log lines, span
// names and attributes, and alert annotations. Rendered as text each is
// harmless; parsed as markup each would run script (alert(), or setting
// window.__xss) or add an element the page checks for.
var xssCorpus = []string{
	`<img src=x onerror=alert(1)>`,
	`"><script>window.__xss=1</script>`,
	`<svg onload=window.__xss=2>`,
	`'><iframe src=javascript:alert(3)></iframe>`,
	`javascript:alert(4)`,
	`{{constructor.constructor('window.__xss=5')()}}`,
	`</title><body onload=alert(6)>`,
}

// injected counts what an XSS payload would have left behind: elements no
// page creates (inline scripts, images, frames, anything with a handler
// attribute) and the flag the payloads set.
const injectedJS = `(() => {
  const bad = document.querySelectorAll('script:not([src]), img, iframe, object, embed, body [onload], [onerror], [onclick], [onmouseover], svg script, a[href^="javascript:"]');
  return bad.length + (window.__xss ? 1000 : 0);
})()`

// browser drives Debian's chromium through chromedp and records anything
// a page should never do: console errors, uncaught exceptions, CSP
// violations (reported as log entries), dialogs.
type browser struct {
	t       *testing.T
	ctx     context.Context
	outDir  string
	mu      sync.Mutex
	errs    []string
	dialogs []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is installed by scripts/install-test-deps.sh")
	opts := append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...)
	opts = append(opts,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	out := os.Getenv("PHAROS_E2E_OUTPUT")
	if out == "" {
		out = "output"
	}
	b := &browser{t: t, ctx: ctx, outDir: filepath.Join(out, t.Name())}
	require.NoError(t, os.MkdirAll(b.outDir, 0o755))
	// The first command starts the browser; events are read from then on.
	_, err = chromedp.Run(ctx, chromedp.Evaluate[int](`1`))
	require.NoError(t, err, "start chromium")
	err = chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *cdpruntime.EventConsoleAPICalled:
			if ev.Type == cdpruntime.ConsoleAPICalledTypeError || ev.Type == cdpruntime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.errs = append(b.errs, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *cdpruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errs = append(b.errs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.errs = append(b.errs, fmt.Sprintf("log %s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		case *page.EventJavascriptDialogOpening:
			b.dialogs = append(b.dialogs, string(ev.Type)+": "+ev.Message)
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel() // closes the tab and, with it, the browser the allocator started
		cancelAlloc()
	})
	return b
}

// open navigates to url and waits until the page says its results are
// drawn (<html data-ready="1">).
func (b *browser) open(u string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx,
		chromedp.Navigate(u),
		chromedp.Poll[chromedp.Void](`document.documentElement.dataset.ready === "1"`, chromedp.WithPollingInterval(50*time.Millisecond)),
	), "open %s", u)
}

// waitReady waits for the page to draw again after an in-page action.
// A navigation replaces the page's JavaScript context, and the browser
// refuses an evaluation still aimed at the old one ("Cannot find context
// with specified id"): waitReady and location ask again instead of
// failing.
func (b *browser) waitReady() {
	b.t.Helper()
	testutil.Poll(b.t, 60*time.Second, 50*time.Millisecond, func() (bool, string) {
		ready, err := tryEvalJS[bool](b, `document.documentElement.dataset.ready === "1"`)
		if err != nil {
			return false, "page not ready: " + err.Error()
		}
		return ready, "page not ready"
	})
}

func tryEvalJS[T any](b *browser, js string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

func evalJS[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(b.t, err, "evaluate %s", js)
	return v
}

func (b *browser) count(selector string) int {
	b.t.Helper()
	return evalJS[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, selector))
}

// pollCount waits until selector matches a count ok accepts.
func (b *browser) pollCount(selector string, ok func(int) bool) int {
	b.t.Helper()
	var n int
	testutil.Poll(b.t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		n = b.count(selector)
		return ok(n), fmt.Sprintf("%s matches %d elements", selector, n)
	})
	return n
}

func (b *browser) text() string {
	b.t.Helper()
	return evalJS[string](b, `document.body.innerText`)
}

func (b *browser) location() string {
	b.t.Helper()
	loc, err := tryEvalJS[string](b, `location.pathname + location.search`)
	if err != nil {
		return "(navigating: " + err.Error() + ")"
	}
	return loc
}

func (b *browser) click(selector string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible)), "click %s", selector)
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	p := filepath.Join(b.outDir, name+".png")
	require.NoError(b.t, os.WriteFile(p, buf, 0o644))
	b.t.Logf("screenshot %s", p)
}

// requireClean fails on anything recorded since the last call, and on
// anything an XSS payload would have injected into the current page.
func (b *browser) requireClean(page string) {
	b.t.Helper()
	injected := evalJS[int](b, injectedJS)
	b.mu.Lock()
	errs, dialogs := b.errs, b.dialogs
	b.errs, b.dialogs = nil, nil
	b.mu.Unlock()
	require.Empty(b.t, errs, "%s: console errors, exceptions or CSP violations", page)
	require.Empty(b.t, dialogs, "%s: dialogs opened (script ran)", page)
	require.Zero(b.t, injected, "%s: elements injected or script run by hostile data", page)
}

// dashboardData is what the test puts into Pharos before opening pages.
type dashboardData struct {
	traceID string
	spans   int
	lines   int
}

// sendDashboardTrace posts one trace of spans spans from two services over
// OTLP/HTTP, with hostile span names and attributes.
func sendDashboardTrace(t *testing.T, otlpHTTP string, traceID pcommon.TraceID, spans int) {
	t.Helper()
	td := ptrace.NewTraces()
	now := time.Now()
	var root pcommon.SpanID
	for svc, n := range map[string]int{"dash-svc": spans - 2, "dash-db": 2} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.Resource().Attributes().PutStr("evil", xssCorpus[0])
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		for i := range n {
			sp := ss.AppendEmpty()
			sp.SetTraceID(traceID)
			id := pcommon.SpanID{byte(len(svc)), byte(i + 1), 7, 7, 7, 7, 7, 7}
			sp.SetSpanID(id)
			switch {
			case svc == "dash-svc" && i == 0:
				root = id
				sp.SetName("GET /checkout")
				sp.SetKind(ptrace.SpanKindServer)
			default:
				sp.SetParentSpanID(root)
				sp.SetName(xssCorpus[(i+1)%len(xssCorpus)])
				sp.SetKind(ptrace.SpanKindClient)
			}
			start := now.Add(-time.Second + time.Duration(i)*50*time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(40 * time.Millisecond)))
			sp.Attributes().PutStr("xss", xssCorpus[i%len(xssCorpus)])
			if svc == "dash-db" {
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage(xssCorpus[1])
			}
		}
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	code, resp := post(t, "http://"+otlpHTTP+"/v1/traces", "application/x-protobuf", body)
	require.Equal(t, http.StatusOK, code, resp)
}

// pushDashboardLogs pushes n lines in one stream (every twentieth naming
// the trace) plus one line per XSS payload in a stream with hostile labels.
func pushDashboardLogs(t *testing.T, addr, traceID string, n int) {
	t.Helper()
	now := time.Now().Add(-time.Minute)
	type stream struct {
		Stream map[string]string `json:"stream"`
		Values [][2]string       `json:"values"`
	}
	s := stream{Stream: map[string]string{"app": "dash", "service_name": "dash-svc"}}
	for i := range n {
		line := "request " + strconv.Itoa(i) + " served"
		if i%20 == 0 {
			line += " trace_id=" + traceID
		}
		s.Values = append(s.Values, [2]string{strconv.FormatInt(now.Add(time.Duration(i)*time.Millisecond).UnixNano(), 10), line})
	}
	evil := stream{Stream: map[string]string{"app": "dash-evil", "evil": xssCorpus[0]}}
	for i, x := range xssCorpus {
		evil.Values = append(evil.Values, [2]string{strconv.FormatInt(now.Add(time.Duration(i)*time.Millisecond).UnixNano(), 10), x})
	}
	body, err := json.Marshal(map[string]any{"streams": []stream{s, evil}})
	require.NoError(t, err)
	code, resp := post(t, "http://"+addr+"/loki/api/v1/push", "application/json", body)
	require.Equal(t, http.StatusNoContent, code, resp)
}

// TestDashboard runs the all-in-one with metrics (100 series, an exemplar
// naming a trace, a hostile label), logs (10k lines and hostile ones), a
// trace with hostile spans and a firing alert with hostile annotations, and
// walks every page of the dashboard in chromium: each draws what the APIs
// hold, says nothing on the console, and runs none of the hostile data.
func TestDashboard(t *testing.T) {
	t.Parallel()
	const spans, lines, series = 7, 10000, 100
	traceID := pcommon.TraceID{0xda, 0x5b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	tid := traceID.String()

	reg := prometheus.NewRegistry()
	wide := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dash_series", Help: "One hundred series."}, []string{"i"})
	for i := range series {
		wide.WithLabelValues(strconv.Itoa(i)).Set(float64(i))
	}
	evil := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dash_xss", Help: "Hostile label values."}, []string{"evil"})
	for _, x := range xssCorpus {
		evil.WithLabelValues(x).Set(1)
	}
	reqs := prometheus.NewCounter(prometheus.CounterOpts{Name: "dash_requests_total", Help: "A counter with an exemplar."})
	reg.MustRegister(wide, evil, reqs)
	reqs.(prometheus.ExemplarAdder).AddWithExemplar(5, prometheus.Labels{"trace_id": tid})
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	t.Cleanup(target.Close)

	scrapeCfg := writeFile(t, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: dash
    scrape_protocols: [OpenMetricsText1.0.0]
    static_configs: [{targets: [%q]}]
`, target.Listener.Addr().String()))
	rulesDir := t.TempDir()
	rulesFile := filepath.Join(rulesDir, "dash.yml")
	require.NoError(t, os.WriteFile(rulesFile, []byte(fmt.Sprintf(`groups:
  - name: dash
    interval: 1s
    rules:
      - alert: DashHostile
        expr: max(dash_series) > 0
        labels:
          evil: %q
        annotations:
          summary: %q
          description: %q
      - record: dash:series:count
        expr: count(dash_series)
`, xssCorpus[0], xssCorpus[1], xssCorpus[2])), 0o644))

	// A receiver that is down, so the alerts page has a delivery failure to
	// show, and a tailed file for the targets page.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	notifyCfg := writeFile(t, "notify.yml", fmt.Sprintf(`receivers:
  - name: pager
    url: %s/hook
route:
  receiver: pager
  group_wait: 1s
  group_interval: 1s
`, down.URL))
	logDir := t.TempDir()
	logFile := filepath.Join(logDir, "app.log")
	require.NoError(t, os.WriteFile(logFile, []byte("one\ntwo\nthree\n"), 0o644))

	p := startPharos(t, "pharos", []string{
		"-data.dir", t.TempDir(), "-nats.partitions", "4",
		"-scrape.config-file", scrapeCfg,
		"-rules.files", filepath.Join(rulesDir, "*.yml"),
		"-notify.config-file", notifyCfg, "-notify.allow-private-addresses",
		"-agent.tail.include", filepath.Join(logDir, "*.log"),
		"-agent.tail.poll-interval", "100ms",
		"-query.logql.max-entries-limit-per-query", "10000",
	})
	_, otlpHTTP := p.otlpAddrs()
	sendDashboardTrace(t, otlpHTTP, traceID, spans)
	pushDashboardLogs(t, p.addr, tid, lines)

	// Everything is stored before the browser looks.
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		got := instant(t, p.addr, `count(dash_series)`, time.Now())
		return len(got) == 1 && strings.HasSuffix(got[0], "=> "+strconv.Itoa(series)), fmt.Sprintf("count(dash_series): %v", got)
	})
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		res, err := lokiQuery(p.addr, "/loki/api/v1/query", url.Values{"query": {`sum(count_over_time({app="dash"}[1h]))`}})
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(res.Result), `"`+strconv.Itoa(lines)+`"`), fmt.Sprintf("count of dash lines: %s", res.Result)
	})
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		got, err := traceSpans(p.addr, tid)
		if err != nil {
			return false, err.Error()
		}
		return len(got) == spans, fmt.Sprintf("trace %s has %d spans, want %d", tid, len(got), spans)
	})
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		var alerts struct {
			Alerts []struct {
				State string `json:"state"`
			} `json:"alerts"`
		}
		if err := getAPI(p.addr, "/api/v1/alerts", nil, &alerts); err != nil {
			return false, err.Error()
		}
		return len(alerts.Alerts) == 1 && alerts.Alerts[0].State == "firing", fmt.Sprintf("alerts: %+v", alerts.Alerts)
	})
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		got := instant(t, p.addr, `dash:series:count`, time.Now())
		return len(got) == 1, fmt.Sprintf("recording rule's series: %v", got)
	})
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		var ex []json.RawMessage
		now := time.Now()
		err := getAPI(p.addr, "/api/v1/query_exemplars", url.Values{"query": {"dash_requests_total"},
			"start": {strconv.FormatInt(now.Add(-5*time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}}, &ex)
		if err != nil {
			return false, err.Error()
		}
		return len(ex) == 1, fmt.Sprintf("exemplar series: %d", len(ex))
	})

	b := newBrowser(t)
	base := "http://" + p.addr

	t.Run("metrics", func(t *testing.T) {
		b.open(base + "/ui/metrics?range=5m&q=" + url.QueryEscape("dash_series"))
		require.Equal(t, series, b.count("svg.chart path.series-line"), "one line per series")
		require.Equal(t, series, b.count(".legend-item"))
		b.screenshot("metrics-graph")
		b.requireClean("metrics graph")

		// Two queries at once, and the table view of the hostile labels.
		b.open(base + "/ui/metrics?tab=table&q=" + url.QueryEscape("dash_xss") + "&q=" + url.QueryEscape("dash:series:count"))
		require.Equal(t, 2, b.count(".query-panel"))
		require.Equal(t, len(xssCorpus)+1, b.count("tr.series-row"))
		text := b.text()
		for _, x := range xssCorpus {
			require.Contains(t, text, x, "a hostile label value is shown as text")
		}
		b.screenshot("metrics-table")
		b.requireClean("metrics table")
	})

	t.Run("metric spike to trace to logs", func(t *testing.T) {
		// The exemplar opens its trace; the trace links to its logs.
		b.open(base + "/ui/metrics?range=5m&q=" + url.QueryEscape("dash_requests_total"))
		b.pollCount("circle.exemplar", func(n int) bool { return n >= 1 })
		b.click("circle.exemplar")
		testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
			loc := b.location()
			return strings.Contains(loc, "/ui/traces") && strings.Contains(loc, tid), "location " + loc
		})
		b.waitReady()
		b.pollCount(".waterfall .span-row", func(n int) bool { return n == spans })
		b.click("a.trace-logs-link")
		testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
			loc := b.location()
			return strings.HasPrefix(loc, "/ui/logs"), "location " + loc
		})
		b.waitReady()
		total := evalJS[string](b, `document.querySelector(".log-list") ? document.querySelector(".log-list").dataset.total : ""`)
		require.Equal(t, strconv.Itoa(lines/20), total, "the trace's log lines")
		b.requireClean("exemplar → trace → logs")
	})

	t.Run("logs", func(t *testing.T) {
		b.open(base + "/ui/logs?range=1h&limit=10000&q=" + url.QueryEscape(`{app="dash"}`))
		total := evalJS[string](b, `document.querySelector(".log-list").dataset.total`)
		require.Equal(t, strconv.Itoa(lines), total)
		rendered := b.count(".log-line")
		require.Positive(t, rendered)
		require.Less(t, rendered, 500, "the list is virtualized: only visible lines are in the DOM")
		require.Positive(t, b.count("svg.chart.volume rect.bar"), "the volume histogram has bars")
		require.Positive(t, b.count("a.trace-link"), "trace IDs in lines are links")
		b.screenshot("logs")
		b.requireClean("logs")

		b.open(base + "/ui/logs?range=1h&q=" + url.QueryEscape(`{app="dash-evil"}`))
		total = evalJS[string](b, `document.querySelector(".log-list").dataset.total`)
		require.Equal(t, strconv.Itoa(len(xssCorpus)), total)
		text := b.text()
		for _, x := range xssCorpus {
			require.Contains(t, text, x, "a hostile log line is shown as text")
		}
		b.screenshot("logs-hostile")
		b.requireClean("hostile logs")
	})

	t.Run("live tail", func(t *testing.T) {
		b.open(base + "/ui/logs?tail=1&q=" + url.QueryEscape(`{app="dash-tail"}`))
		testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
			st := evalJS[string](b, `document.querySelector(".tail-status").dataset.state`)
			return st == "live", "tail state " + st
		})
		// Lines pushed after the tail opened arrive over the websocket.
		for i := range 3 {
			line := fmt.Sprintf("tailed %d %s", i, xssCorpus[i])
			body := fmt.Sprintf(`{"streams":[{"stream":{"app":"dash-tail"},"values":[[%q,%q]]}]}`,
				strconv.FormatInt(time.Now().UnixNano(), 10), line)
			code, resp := post(t, base+"/loki/api/v1/push", "application/json", []byte(body))
			require.Equal(t, http.StatusNoContent, code, resp)
		}
		testutil.Poll(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
			total := evalJS[string](b, `document.querySelector(".log-list").dataset.total`)
			return total == "3", "tailed lines: " + total
		})
		require.Contains(t, b.text(), "tailed 0 "+xssCorpus[0])
		b.screenshot("logs-tail")
		b.requireClean("live tail")
	})

	t.Run("traces", func(t *testing.T) {
		b.open(base + "/ui/traces?range=1h&service=dash-svc")
		b.pollCount("tr.trace-row", func(n int) bool { return n >= 1 })
		b.screenshot("traces-search")
		b.requireClean("trace search")

		b.open(base + "/ui/traces?trace=" + tid)
		spanCount := evalJS[string](b, `document.querySelector(".waterfall").dataset.spanCount`)
		require.Equal(t, strconv.Itoa(spans), spanCount)
		require.Equal(t, spans, b.count(".waterfall .span-row"))
		require.Positive(t, b.count("a.span-metrics-link"))
		// Open the details of every span: attributes are hostile too.
		for i := range spans {
			b.click(fmt.Sprintf(".waterfall .span-row:nth-of-type(%d)", i+1))
			require.Equal(t, 1, b.count(".span-details"))
		}
		b.screenshot("trace")
		b.requireClean("trace")
	})

	t.Run("alerts", func(t *testing.T) {
		b.open(base + "/ui/alerts")
		require.GreaterOrEqual(t, b.count("tr.rule-row"), 2)
		require.Equal(t, 1, b.count("tr.alert-row"))
		require.Equal(t, 1, b.count("tr.receiver-row"), "the receiver's delivery status")
		text := b.text()
		require.Contains(t, text, xssCorpus[1], "a hostile annotation is shown as text")
		b.screenshot("alerts")
		b.requireClean("alerts")
	})

	t.Run("targets", func(t *testing.T) {
		b.open(base + "/ui/targets")
		require.Equal(t, 1, b.count("tr.target-row"))
		require.Contains(t, b.text(), target.Listener.Addr().String())
		require.Equal(t, 1, b.count("tr.file-row"))
		require.Contains(t, b.text(), logFile)
		b.screenshot("targets")
		b.requireClean("targets")
	})

	t.Run("cluster", func(t *testing.T) {
		b.open(base + "/ui/cluster")
		require.Equal(t, 4, b.count("tr.partition-row"), "the all-in-one owns every partition")
		require.Equal(t, 3*4, b.count("tr.consumer-row"), "a consumer per signal and partition")
		require.Equal(t, 3, b.count("tr.stream-row"), "one stream per signal")
		require.Positive(t, b.count("tr.spool-row"))
		b.screenshot("cluster")
		b.requireClean("cluster")
	})

	// The checks above would see an attack that worked: the CSP blocks
	// an inline script even when one gets into the page, the violation is
	// reported, and the injected element is counted.
	t.Run("checks catch injection", func(t *testing.T) {
		b.open(base + "/ui/metrics")
		ran := evalJS[bool](b, `(() => {
  const s = document.createElement("script");
  s.textContent = "window.__xss = 7";
  document.body.append(s);
  return window.__xss === 7;
})()`)
		require.False(t, ran, "the CSP blocks inline script")
		require.Equal(t, 1, evalJS[int](b, injectedJS), "the injected element is counted")
		testutil.Poll(t, 10*time.Second, 50*time.Millisecond, func() (bool, string) {
			b.mu.Lock()
			defer b.mu.Unlock()
			for _, e := range b.errs {
				if strings.Contains(e, "Content Security Policy") {
					return true, ""
				}
			}
			return false, fmt.Sprintf("no CSP violation reported; errors: %q", b.errs)
		})
		b.mu.Lock()
		b.errs = nil
		b.mu.Unlock()
	})

}
