// Traces page: a search form (TraceQL or service / span name / tags /
// durations) with a result table, and the trace view: a waterfall of the
// spans with their details, the trace's log lines, and links to its logs
// and to each service's span-metric graphs.
//
// URL: trace=<hex id> opens a trace; otherwise a search: q (TraceQL),
// service, name (span name), minDuration, maxDuration, tags (logfmt),
// range (1h), limit (20).

import {h, replace, clear, errorBox, table} from '../dom.js';
import {getJSON} from '../api.js';
import {params, update, link} from '../state.js';
import {parseDuration, formatTime, since} from '../time.js';
import {parseTrace, renderWaterfall, spanDetails, formatNsDuration, formatNsTime} from '../waterfall.js';

const DEFAULT_LIMIT = 20;
const MAX_LOG_LINES = 200; // drawn under the waterfall; the logs page has the rest

function loadCSS(name) {
  const href = '/ui/assets/css/' + name + '.css';
  if (!document.head.querySelector(`link[rel="stylesheet"][href="${href}"]`)) {
    document.head.append(h('link', {rel: 'stylesheet', href}));
  }
}

// navigate opens a dashboard URL without reloading the page.
function navigate(ctx, url) {
  history.pushState(null, '', url);
  ctx.rerender();
}

function internalLink(ctx, href, attrs, ...children) {
  return h('a', {...attrs, href, on: {click: (ev) => {
    if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    navigate(ctx, href);
  }}}, ...children);
}

// quote writes a string literal for PromQL and LogQL (both read Go-style
// double-quoted strings).
function quote(v) {
  return JSON.stringify(String(v));
}

export function spanMetricsURL(service) {
  const sel = `{service=${quote(service)}}`;
  return link('metrics', {q: [
    `sum by (span_name) (rate(traces_spanmetrics_calls_total${sel}[5m]))`,
    `histogram_quantile(0.95, sum by (le, span_name) (rate(traces_spanmetrics_latency_bucket${sel}[5m])))`,
  ]});
}

export async function render(root, ctx) {
  loadCSS('traces');
  const p = params();
  const id = (p.get('trace') || '').trim();
  if (id) return renderTrace(root, ctx, id);
  return renderSearch(root, ctx, p);
}

// --- search ------------------------------------------------------------------------

async function renderSearch(root, ctx, p) {
  const st = {
    q: p.get('q') || '',
    service: p.get('service') || '',
    name: p.get('name') || '',
    tags: p.get('tags') || '',
    minDuration: p.get('minDuration') || '',
    maxDuration: p.get('maxDuration') || '',
    range: p.get('range') || '1h',
    limit: p.get('limit') || String(DEFAULT_LIMIT),
  };

  const qIn = h('textarea', {class: 'query', rows: 1, spellcheck: 'false', placeholder: '{ resource.service.name = "api" && status = error }', 'aria-label': 'TraceQL'});
  qIn.value = st.q;
  const svcSel = h('select', {'aria-label': 'Service'}, h('option', {value: ''}, 'any service'));
  if (st.service) svcSel.append(h('option', {value: st.service, selected: true}, st.service));
  const names = h('datalist', {id: 'span-names'});
  const nameIn = h('input', {type: 'text', size: 18, list: 'span-names', value: st.name, placeholder: 'any span', 'aria-label': 'Span name'});
  const tagsIn = h('input', {type: 'text', size: 26, value: st.tags, placeholder: 'http.status_code=500', 'aria-label': 'Tags', title: 'Tags as logfmt: key=value key2="a b"'});
  const minIn = h('input', {type: 'text', size: 7, value: st.minDuration, placeholder: '100ms', 'aria-label': 'Min duration'});
  const maxIn = h('input', {type: 'text', size: 7, value: st.maxDuration, placeholder: '5s', 'aria-label': 'Max duration'});
  const rangeIn = h('input', {type: 'text', size: 5, value: st.range, 'aria-label': 'Range'});
  const limitIn = h('input', {type: 'number', min: 1, max: 1000, value: st.limit, 'aria-label': 'Limit'});
  const openIn = h('input', {type: 'text', size: 34, placeholder: 'trace ID', 'aria-label': 'Trace ID', class: 'mono'});
  const results = h('div', {class: 'trace-results'});
  const stats = h('span', {class: 'muted trace-stats'});
  const runBtn = h('button', {type: 'button', on: {click: () => run(true)}}, 'Search');

  qIn.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); run(true); } });
  for (const el of [nameIn, tagsIn, minIn, maxIn, rangeIn, limitIn]) {
    el.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') run(true); });
  }
  const openTrace = () => {
    const v = openIn.value.trim();
    if (v) navigate(ctx, link('traces', {trace: v}));
  };
  openIn.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') openTrace(); });

  replace(root,
    h('h1', null, 'Traces'),
    h('div', {class: 'panel trace-search'},
      h('div', {class: 'row'}, h('label', {class: 'grow'}, h('span', {class: 'muted'}, 'TraceQL '), qIn)),
      h('div', {class: 'row'},
        h('label', null, h('span', {class: 'muted'}, 'Service '), svcSel),
        h('label', null, h('span', {class: 'muted'}, 'Span '), nameIn, names),
        h('label', null, h('span', {class: 'muted'}, 'Tags '), tagsIn),
        h('label', null, h('span', {class: 'muted'}, 'Duration '), minIn, ' – ', maxIn),
        h('label', null, h('span', {class: 'muted'}, 'Range '), rangeIn),
        h('label', null, h('span', {class: 'muted'}, 'Limit '), limitIn),
        runBtn),
      h('div', {class: 'row trace-open'},
        h('span', {class: 'muted'}, 'Open a trace by ID '), openIn,
        h('button', {type: 'button', class: 'secondary', on: {click: openTrace}}, 'Open'),
        h('span', {class: 'grow'}), stats)),
    results);

  // The form's choices, from the tag endpoints; a failure leaves free text.
  const tagRange = () => {
    const r = parseDuration(st.range);
    const end = Math.floor(Date.now() / 1000);
    return {start: end - (isFinite(r) && r > 0 ? Math.ceil(r) : 3600), end};
  };
  getJSON('/api/search/tag/service.name/values', tagRange(), {signal: ctx.signal}).then((d) => {
    const values = (d && d.tagValues) || [];
    for (const v of values) if (v !== st.service) svcSel.append(h('option', {value: v}, v));
    svcSel.value = st.service;
  }).catch(() => { /* free choice stays "any" */ });
  getJSON('/api/search/tag/name/values', tagRange(), {signal: ctx.signal}).then((d) => {
    replace(names, ((d && d.tagValues) || []).slice(0, 500).map((v) => h('option', {value: v})));
  }).catch(() => {});

  function read() {
    st.q = qIn.value.trim();
    st.service = svcSel.value;
    st.name = nameIn.value.trim();
    st.tags = tagsIn.value.trim();
    st.minDuration = minIn.value.trim();
    st.maxDuration = maxIn.value.trim();
    st.range = rangeIn.value.trim() || '1h';
    st.limit = limitIn.value.trim() || String(DEFAULT_LIMIT);
  }

  // searchParams builds /api/search's: TraceQL in q, else Tempo's logfmt
  // tags with the service and span name (the API takes one or the other).
  function searchParams() {
    const r = parseDuration(st.range);
    if (!isFinite(r) || r <= 0) throw new Error(`Invalid range ${JSON.stringify(st.range)}: use a duration such as 15m, 1h or 2d.`);
    const end = Math.ceil(Date.now() / 1000);
    const out = {start: Math.max(0, end - Math.ceil(r)), end, limit: st.limit, minDuration: st.minDuration, maxDuration: st.maxDuration};
    if (st.q) {
      out.q = st.q;
    } else {
      const tags = [];
      if (st.service) tags.push('service.name=' + quote(st.service));
      if (st.name) tags.push('name=' + quote(st.name));
      if (st.tags) tags.push(st.tags);
      out.tags = tags.join(' ');
    }
    return out;
  }

  let ctl = null;
  async function run(fromUser) {
    if (fromUser) {
      read();
      update({q: st.q, service: st.service, name: st.name, tags: st.tags, minDuration: st.minDuration,
        maxDuration: st.maxDuration, range: st.range === '1h' ? '' : st.range,
        limit: st.limit === String(DEFAULT_LIMIT) ? '' : st.limit}, true);
    }
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const signal = ctl.signal;
    document.documentElement.dataset.ready = '0';
    replace(results, h('div', {class: 'muted'}, 'Searching…'));
    stats.textContent = '';
    const began = performance.now();
    try {
      const args = searchParams();
      const body = await getJSON('/api/search', args, {signal});
      drawResults(body && body.traces ? body.traces : []);
      const n = body && body.traces ? body.traces.length : 0;
      stats.textContent = `${n} trace${n === 1 ? '' : 's'}, took ${Math.round(performance.now() - began)} ms` +
        (st.q && (st.service || st.name || st.tags) ? ' (the TraceQL query replaces service, span and tags)' : '');
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      replace(results, errorBox(err));
    }
    ctx.ready();
  }

  function drawResults(traces) {
    if (!traces.length) {
      replace(results, h('div', {class: 'panel muted'}, 'No traces match in this range.'));
      return;
    }
    const rows = traces.map((t) => {
      const tid = String(t.traceID || '');
      const href = link('traces', {trace: tid});
      const startNs = t.startTimeUnixNano ? String(t.startTimeUnixNano) : '';
      const startSec = startNs ? Number(BigInt(startNs) / 1000000n) / 1000 : 0;
      const sets = t.spanSets || (t.spanSet ? [t.spanSet] : []);
      const matched = sets.reduce((n, x) => n + (x.matched || (x.spans || []).length), 0);
      return {
        href, tid,
        cells: [
          internalLink(ctx, href, {class: 'mono trace-id'}, tid),
          t.rootServiceName || '',
          t.rootTraceName || '',
          startSec ? h('span', {title: since(startSec)}, formatTime(startSec)) : '',
          durationOf(t, sets),
          matched ? String(matched) : '',
        ],
      };
    });
    replace(results, table(['Trace ID', 'Root service', 'Root span', 'Start', 'Duration', 'Matched spans'],
      rows.map((r) => r.cells),
      (_, i) => ({class: 'trace-row', dataset: {traceId: rows[i].tid}, on: {click: (ev) => {
        if (ev.target.closest('a')) return;
        navigate(ctx, rows[i].href);
      }}})));
  }

  const hasSearch = ['q', 'service', 'name', 'tags', 'minDuration', 'maxDuration'].some((k) => p.get(k));
  if (hasSearch || !p.toString()) {
    // With no parameters the recent traces are the most useful default.
    await run(false);
  } else {
    ctx.ready();
  }
  return () => { if (ctl) ctl.abort(); };
}

// durationOf is Tempo's durationMs, which it leaves out below a
// millisecond; then the matched spans give a lower bound.
function durationOf(t, sets) {
  if (t.durationMs) return formatNsDuration(Number(t.durationMs) * 1e6);
  if (!t.startTimeUnixNano) return '';
  let end = 0n;
  const start = BigInt(String(t.startTimeUnixNano));
  for (const set of sets) {
    for (const sp of set.spans || []) {
      try {
        const e = BigInt(String(sp.startTimeUnixNano)) + BigInt(String(sp.durationNanos || '0'));
        if (e > end) end = e;
      } catch { /* a malformed span is skipped */ }
    }
  }
  return end > start ? formatNsDuration(end - start) : '< 1ms';
}

// --- one trace ------------------------------------------------------------------

async function renderTrace(root, ctx, id) {
  const head = h('div', {class: 'trace-head'});
  const main = h('div', {class: 'trace-main'});
  const logsBox = h('div', {class: 'trace-logs'});
  replace(root,
    h('div', {class: 'row trace-title'},
      h('h1', null, 'Trace ', h('span', {class: 'mono'}, id)),
      h('span', {class: 'grow'}),
      internalLink(ctx, '/ui/traces', {class: 'back-link'}, '← Search traces')),
    head, main, logsBox);

  if (!/^[0-9a-fA-F]{1,32}$/.test(id)) {
    head.append(errorBox(`"${id}" is not a trace ID: a trace ID is up to 32 hexadecimal digits.`));
    ctx.ready();
    return null;
  }
  const hex = id.toLowerCase().padStart(32, '0');
  let trace;
  try {
    const body = await getJSON('/api/traces/' + encodeURIComponent(hex), null, {signal: ctx.signal});
    trace = parseTrace(body);
    if (!trace.spans.length) throw Object.assign(new Error('empty'), {status: 404});
  } catch (err) {
    if (err && err.name === 'AbortError') return null;
    head.append(err && err.status === 404
      ? h('div', {class: 'error trace-not-found', role: 'alert'},
        `Trace ${hex} was not found. It may not have arrived yet, may be older than the traces' retention, or the ID may be wrong.`)
      : errorBox(err));
    ctx.ready();
    return null;
  }

  const root0 = trace.roots[0];
  const errors = trace.spans.filter((sp) => sp.status === 'error').length;
  const logsLink = h('a', {class: 'trace-logs-link', href: logsURL(hex, null)}, 'Logs of this trace');
  head.append(h('div', {class: 'panel trace-summary'},
    h('div', {class: 'row'},
      h('strong', null, root0.service + ': ' + root0.name),
      h('span', {class: 'muted'}, formatNsTime(trace.start)),
      h('span', null, 'Duration ', h('strong', null, formatNsDuration(trace.end - trace.start))),
      h('span', null, `${trace.spans.length} span${trace.spans.length === 1 ? '' : 's'}`),
      h('span', null, `${trace.services.length} service${trace.services.length === 1 ? '' : 's'}`),
      errors ? h('span', {class: 'badge err'}, `${errors} error${errors === 1 ? '' : 's'}`) : null,
      h('span', {class: 'grow'}),
      logsLink),
    h('div', {class: 'row trace-services'},
      h('span', {class: 'muted'}, 'Span metrics:'),
      trace.services.map((svc) => h('a', {class: 'span-metrics-link', href: spanMetricsURL(svc), title: `Call rate and p95 latency by span of ${svc}`}, svc)))));

  const wf = h('div', {class: 'waterfall', role: 'table', 'aria-label': 'Spans'});
  const details = h('div', {class: 'span-details panel'},
    h('div', {class: 'muted'}, 'Select a span to see its attributes.'));
  replace(main, h('div', {class: 'panel wf-panel'}, wf), details);
  const view = renderWaterfall(wf, trace, {onSelect: (sp) => {
    if (sp) replace(details, spanDetails(sp, trace));
    else replace(details, h('div', {class: 'muted'}, 'Select a span to see its attributes.'));
  }});
  // The root span is the natural first thing to read about.
  view.select(root0);
  // The trace's logs are part of the page: its link to the logs page is
  // only final once they are known (it picks the query that finds them).
  await drawLogs(hex, logsBox, logsLink, ctx.signal);
  ctx.ready();
  return null;
}

// logsURL is the logs page for the trace: OTLP logs keep the trace ID as
// structured metadata (trace_id) on streams labelled service_name; lines
// that write it into the text are found with a line filter.
function logsURL(hex, sample) {
  let q = `{service_name=~".+"} | trace_id=${quote(hex)}`;
  if (sample) {
    const lbl = ['service_name', 'app', 'job', 'filename', 'container', 'namespace'].find((n) => sample.labels && sample.labels[n]);
    if (lbl) {
      q = sample.labels.trace_id === hex
        ? `{${lbl}=~".+"} | trace_id=${quote(hex)}`
        : `{${lbl}=~".+"} |= ${quote(hex)}`;
    }
  }
  return link('logs', {q});
}

async function drawLogs(hex, box, logsLink, signal) {
  replace(box, h('h2', null, 'Logs'), h('div', {class: 'muted'}, 'Looking for the trace\'s log lines…'));
  let lines;
  try {
    const body = await getJSON('/api/traces/' + encodeURIComponent(hex) + '/logs', null, {signal});
    lines = (body && body.logs) || [];
  } catch (err) {
    if (err && err.name === 'AbortError') return;
    replace(box, h('h2', null, 'Logs'), h('div', {class: 'muted'},
      err && err.status === 501 ? 'This server does not look up the logs of traces.' : 'Could not load the trace\'s logs: ' + (err && err.message ? err.message : String(err))));
    return;
  }
  if (lines.length) logsLink.setAttribute('href', logsURL(hex, lines[0]));
  clear(box);
  box.append(h('h2', null, `Logs (${lines.length}${lines.length >= 1000 ? '+' : ''})`));
  if (!lines.length) {
    box.append(h('div', {class: 'muted'}, 'No log lines carry this trace ID (as trace_id metadata or in the line text) around the trace\'s time.'));
    return;
  }
  box.append(h('div', {class: 'panel trace-log-lines'}, lines.slice(0, MAX_LOG_LINES).map((l) => {
    const labels = l.labels || {};
    const who = labels.service_name || labels.app || labels.job || labels.filename || '';
    return h('div', {class: 'trace-log-line mono'},
      h('span', {class: 'muted'}, formatNsTime(String(l.timestamp || '0')).slice(11, 23)),
      who ? h('span', {class: 'chip'}, who) : null,
      h('span', {class: 'trace-log-text'}, String(l.line || '')));
  })));
  if (lines.length > MAX_LOG_LINES) {
    box.append(h('div', {class: 'muted'}, `Showing the first ${MAX_LOG_LINES}; `, h('a', {href: logsLink.getAttribute('href')}, 'open all in Logs'), '.'));
  }
}
