// Logs page: a LogQL editor with label completion, a volume histogram, the
// matching lines in a virtualized list (10k lines keep only the rows in
// view in the DOM), and live tail over Loki's websocket. A metric query
// draws its result as lines instead of the list.
//
// URL: q, range (1h), end (blank = now), limit (1000, at most 10000),
// direction (backward | forward), tail (1 = live tail).

import {h, replace, clear, errorBox, labelChips} from '../dom.js';
import {APIError, getJSON, withParams} from '../api.js';
import {params, update, link} from '../state.js';
import {parseDuration, parseTime, autoStep} from '../time.js';
import {VList} from '../vlist.js';

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 10000;
const TAIL_CAP = 10000; // live tail keeps this many lines, dropping the oldest
const ROW_HEIGHT = 20; // px; matches .log-line in logs.css
const SHORT_LINE = 2000; // a collapsed row draws this many characters at most

// The server's own cap on entries per query (Loki's
// max_entries_limit_per_query, Pharos's -query.logql.max-entries-limit-per-query,
// 5000 by default), learned from its error when a query asks for more.
let serverMax = 0;

export function loadCSS(name) {
  const href = '/ui/assets/css/' + name + '.css';
  if (!document.head.querySelector(`link[rel="stylesheet"][href="${href}"]`)) {
    document.head.append(h('link', {rel: 'stylesheet', href}));
  }
}

function clampLimit(v) {
  const n = Math.floor(Number(v));
  if (!isFinite(n) || n <= 0) return DEFAULT_LIMIT;
  return Math.min(n, MAX_LIMIT);
}

// isLogQuery tells a log query ({…} | pipeline) from a metric query
// (count_over_time(…), sum by (…) (…), …): only a log query starts with
// its stream selector.
export function isLogQuery(q) {
  return q.trim().startsWith('{');
}

// toNs renders Unix seconds as integer nanoseconds, which the Loki API
// reads exactly (it also takes RFC 3339 and Unix seconds).
function toNs(sec) {
  return (BigInt(Math.round(sec * 1e6)) * 1000n).toString();
}

function nsToMs(ns) {
  return ns.length > 6 ? Number(ns.slice(0, -6)) : 0;
}

function formatNs(ns) {
  const ms = nsToMs(ns);
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

// Nanosecond timestamps as decimal strings: compare by length, then text.
function cmpNs(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

// --- levels and trace IDs ---------------------------------------------------

const LEVEL_KEYS = ['level', 'detected_level', 'severity', 'severity_text', 'lvl', 'loglevel', 'log_level'];
const TRACE_KEYS = ['trace_id', 'traceID', 'traceid', 'traceId', 'TraceId', 'trace.id'];
const TRACE_HEX = /^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{16})$/;
// trace_id=<hex>, "trace_id":"<hex>", traceID: <hex>, trace-id=<hex>…
const TRACE_IN_LINE = /\btrace[_.-]?id(\\?"?\s*[:=]\s*\\?"?)([0-9a-fA-F]{32}|[0-9a-fA-F]{16})(?![0-9a-fA-F])/gi;
const LEVEL_IN_LINE = /\b(?:level|lvl|severity)"?\s*[:=]\s*"?([a-zA-Z]+)/i;

function normLevel(v) {
  const s = String(v || '').toLowerCase();
  if (!s) return '';
  if (/^(err|error|fatal|crit|critical|emerg|emergency|alert|panic|severe)/.test(s)) return 'error';
  if (/^warn/.test(s)) return 'warn';
  if (/^(info|notice|information)/.test(s)) return 'info';
  if (/^(debug|dbg)/.test(s)) return 'debug';
  if (/^trace/.test(s)) return 'trace';
  return 'unknown';
}

function levelOf(e) {
  for (const src of [e.stream, e.meta, e.parsed]) {
    if (!src) continue;
    for (const k of LEVEL_KEYS) if (src[k]) return normLevel(src[k]);
  }
  const m = LEVEL_IN_LINE.exec(e.line.slice(0, 500));
  return m ? normLevel(m[1]) : '';
}

function traceIdOf(e) {
  for (const src of [e.meta, e.stream, e.parsed]) {
    if (!src) continue;
    for (const k of TRACE_KEYS) if (src[k] && TRACE_HEX.test(src[k])) return src[k].toLowerCase();
  }
  return '';
}

function traceLink(id) {
  return h('a', {class: 'trace-link', href: link('traces', {trace: id.toLowerCase()}), title: 'Open trace ' + id}, id);
}

// lineNodes splits a line into text nodes and a.trace-link elements for
// the trace IDs written into it; nothing of the line is parsed as markup.
function lineNodes(text) {
  const out = [];
  let last = 0;
  TRACE_IN_LINE.lastIndex = 0;
  let m;
  while ((m = TRACE_IN_LINE.exec(text)) !== null) {
    const idStart = m.index + m[0].length - m[2].length;
    if (idStart > last) out.push(text.slice(last, idStart));
    out.push(traceLink(m[2]));
    last = idStart + m[2].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

// --- results -----------------------------------------------------------------

// entriesOf flattens Loki streams into entries; values are [ns, line] or,
// with categorized labels, [ns, line, {structuredMetadata, parsed}].
function entriesOf(streams) {
  const out = [];
  for (const st of streams || []) {
    const stream = st.stream || {};
    for (const v of st.values || []) {
      const e = {ns: String(v[0]), line: String(v[1] ?? ''), stream, meta: null, parsed: null};
      const extra = v[2];
      if (extra && typeof extra === 'object') {
        if (extra.structuredMetadata || extra.parsed) {
          e.meta = extra.structuredMetadata || null;
          e.parsed = extra.parsed || null;
        } else {
          e.meta = extra;
        }
      }
      out.push(e);
    }
  }
  return out;
}

// queryRange asks for categorized labels, so that stream labels, structured
// metadata and parsed labels show apart (as Grafana shows them).
async function queryRange(args, signal) {
  const res = await fetch(withParams('/loki/api/v1/query_range', args), {
    headers: {Accept: 'application/json', 'X-Loki-Response-Encoding-Flags': 'categorize-labels'},
    signal,
  });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* plain text error */ }
  if (!res.ok || !body || body.status !== 'success') {
    const msg = (body && (body.error || body.message)) || text.trim() || 'no message';
    throw new APIError(res.status, `${res.status} ${res.statusText}: ${msg}`);
  }
  return body.data;
}

function seriesName(metric) {
  const names = Object.keys(metric || {}).sort();
  if (!names.length) return '{}';
  return '{' + names.map((n) => `${n}=${JSON.stringify(String(metric[n]))}`).join(', ') + '}';
}

function toSeries(result) {
  return (result || []).map((r) => ({
    name: seriesName(r.metric),
    labels: r.metric || {},
    points: (r.values || (r.value ? [r.value] : [])).map(([t, v]) => [Number(t), Number(v)]),
  }));
}

async function chartModule() {
  return import('../chart.js');
}

// --- label completion ----------------------------------------------------------

// attachCompletion offers label names inside {…} and a label's values after
// name= / name=~ / name!= / name!~, from the Loki label endpoints.
function attachCompletion(textarea, wrap, {signal, range, onRun}) {
  const ul = h('ul', {role: 'listbox', hidden: true});
  wrap.append(ul);
  const cache = new Map();
  let items = [];
  let sel = 0;
  let target = null; // {from, to, kind, name}
  let seq = 0;

  async function fetchList(path) {
    if (!cache.has(path)) {
      const {start, end} = range();
      cache.set(path, getJSON(path, {start, end}, {signal}).then((d) => (Array.isArray(d) ? d : [])).catch(() => []));
    }
    return cache.get(path);
  }

  function hide() {
    ul.hidden = true;
    items = [];
    target = null;
  }

  function draw() {
    replace(ul, items.map((it, i) => h('li', {
      role: 'option',
      class: i === sel ? 'selected' : null,
      'aria-selected': i === sel ? 'true' : 'false',
      on: {mousedown: (ev) => { ev.preventDefault(); sel = i; accept(); }},
    }, it)));
    ul.hidden = items.length === 0;
    const li = ul.children[sel];
    if (li && li.scrollIntoView) li.scrollIntoView({block: 'nearest'});
  }

  // context finds what the caret is in: a label name or a value.
  function context() {
    const pos = textarea.selectionStart;
    if (pos !== textarea.selectionEnd) return null;
    const before = textarea.value.slice(0, pos);
    const open = before.lastIndexOf('{');
    if (open < 0 || before.lastIndexOf('}') > open) return null;
    const inside = before.slice(open + 1);
    let m = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("?)((?:[^"\\,}]|\\.)*)$/.exec(inside);
    if (m) return {kind: 'value', name: m[1], quoted: m[3] === '"', prefix: m[4], from: pos - m[4].length - m[3].length, to: pos};
    const seg = inside.slice(inside.lastIndexOf(',') + 1);
    m = /^\s*([A-Za-z_][A-Za-z0-9_]*)?$/.exec(seg);
    if (m) {
      const prefix = m[1] || '';
      return {kind: 'name', prefix, from: pos - prefix.length, to: pos};
    }
    return null;
  }

  async function refresh() {
    const c = context();
    const mine = ++seq;
    if (!c) { hide(); return; }
    const list = c.kind === 'name'
      ? await fetchList('/loki/api/v1/labels')
      : await fetchList('/loki/api/v1/label/' + encodeURIComponent(c.name) + '/values');
    if (mine !== seq || document.activeElement !== textarea) return;
    const p = c.prefix.toLowerCase();
    items = list.filter((x) => String(x).toLowerCase().startsWith(p) && String(x) !== c.prefix).slice(0, 50);
    if (c.kind === 'value' && items.length === 0 && c.prefix === '') items = list.slice(0, 50);
    target = c;
    sel = 0;
    draw();
  }

  function accept() {
    const it = items[sel];
    const c = target;
    if (it === undefined || !c) { hide(); return; }
    const v = textarea.value;
    let insert;
    if (c.kind === 'name') insert = it + '="';
    else insert = '"' + String(it).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
    // A closing quote the user already typed after the caret is reused.
    let to = c.to;
    if (c.kind === 'value' && v[to] === '"') to++;
    textarea.value = v.slice(0, c.from) + insert + v.slice(to);
    const caret = c.from + insert.length;
    textarea.setSelectionRange(caret, caret);
    hide();
    if (c.kind === 'name') refresh();
  }

  textarea.addEventListener('input', refresh);
  textarea.addEventListener('click', refresh);
  textarea.addEventListener('blur', () => setTimeout(hide, 150));
  textarea.addEventListener('keydown', (ev) => {
    const open = !ul.hidden && items.length > 0;
    if (open && (ev.key === 'ArrowDown' || ev.key === 'ArrowUp')) {
      ev.preventDefault();
      sel = (sel + (ev.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
      draw();
    } else if (open && (ev.key === 'Enter' || ev.key === 'Tab') && !ev.shiftKey) {
      ev.preventDefault();
      accept();
    } else if (open && ev.key === 'Escape') {
      ev.preventDefault();
      hide();
    } else if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      hide();
      onRun();
    }
  });
}

// --- the page --------------------------------------------------------------------

export async function render(root, ctx) {
  loadCSS('logs');
  const p = params();
  const state = {
    q: p.get('q') || '',
    range: p.get('range') || '1h',
    end: p.get('end') || '',
    limit: clampLimit(p.get('limit') || DEFAULT_LIMIT),
    direction: p.get('direction') === 'forward' ? 'forward' : 'backward',
    tail: p.get('tail') === '1',
  };
  const limitAsked = Number(p.get('limit') || DEFAULT_LIMIT);

  const chartDisposers = [];
  let runCtl = null;
  let ws = null;
  let tailGen = 0;

  const editor = h('textarea', {class: 'query', rows: 2, spellcheck: 'false', 'aria-label': 'LogQL query',
    placeholder: '{app="api"} |= "error"'});
  editor.value = state.q;
  const rangeIn = h('input', {type: 'text', size: 6, value: state.range, 'aria-label': 'Range', title: 'Range, e.g. 15m, 1h, 2d'});
  const endIn = h('input', {type: 'text', size: 20, value: state.end, placeholder: 'now', 'aria-label': 'End', title: 'End: RFC 3339, Unix seconds or blank for now'});
  const limitIn = h('input', {type: 'number', min: 1, max: MAX_LIMIT, size: 6, value: state.limit, 'aria-label': 'Limit',
    title: `Lines at most (up to ${MAX_LIMIT}; the server may cap it lower with -query.logql.max-entries-limit-per-query)`});
  const dirSel = h('select', {'aria-label': 'Direction'},
    h('option', {value: 'backward', selected: state.direction === 'backward'}, 'Newest first'),
    h('option', {value: 'forward', selected: state.direction === 'forward'}, 'Oldest first'));
  const runBtn = h('button', {type: 'button', on: {click: () => run(true)}}, 'Run');
  const tailBtn = h('button', {type: 'button', class: 'secondary tail-toggle', 'aria-pressed': 'false', on: {click: () => toggleTail()}}, 'Live tail');
  const tailStatus = h('span', {class: 'tail-status', dataset: {state: 'off'}, hidden: true});
  const stats = h('span', {class: 'log-stats muted'});
  const messages = h('div', {class: 'log-messages'});
  const volume = h('div', {class: 'log-volume'});
  const chartBox = h('div', {class: 'log-metric', hidden: true});
  const listEl = h('div', {class: 'log-list', tabindex: '0', role: 'list', 'aria-label': 'Log lines', dataset: {total: '0'}});
  const wrap = h('div', {class: 'autocomplete'}, editor);

  replace(root,
    h('h1', null, 'Logs'),
    h('div', {class: 'panel log-controls'},
      wrap,
      h('div', {class: 'row'},
        h('label', null, 'Range ', rangeIn),
        h('label', null, 'End ', endIn),
        h('label', null, 'Limit ', limitIn),
        dirSel, runBtn, tailBtn, tailStatus,
        h('span', {class: 'grow'}), stats)),
    messages,
    volume,
    chartBox,
    listEl);

  const list = new VList(listEl, {rowHeight: ROW_HEIGHT, render: renderRow});
  ctx.signal.addEventListener('abort', () => runCtl && runCtl.abort(), {once: true});

  function setTotal() {
    listEl.dataset.total = String(list.length);
  }

  function renderRow(e, i, expanded) {
    const lvl = levelOf(e);
    const text = expanded || e.line.length <= SHORT_LINE ? e.line : e.line.slice(0, SHORT_LINE) + '…';
    const row = h('div', {
      class: ['log-line', expanded && 'expanded', lvl && 'lvl-' + lvl],
      role: 'listitem',
      tabindex: '-1',
      'aria-expanded': expanded ? 'true' : 'false',
      on: {
        click: (ev) => {
          if (ev.target.closest('a')) return; // a trace link navigates
          if (!expanded && String(getSelection && getSelection()).length > 0) return; // selecting text
          list.toggle(e);
        },
        keydown: (ev) => { if (ev.key === 'Enter' && !ev.target.closest('a')) list.toggle(e); },
      },
    },
    h('span', {class: 'log-level', title: lvl || 'no level'}),
    h('span', {class: 'log-time mono'}, formatNs(e.ns)),
    metaTraceLink(e),
    h('span', {class: 'log-text mono'}, lineNodes(text)));
    if (expanded) row.append(details(e));
    return row;
  }

  // metaTraceLink links a trace ID carried in labels or structured metadata
  // (OTLP logs) rather than written in the line.
  function metaTraceLink(e) {
    const tid = traceIdOf(e);
    if (!tid || e.line.toLowerCase().includes(tid)) return null;
    const a = traceLink(tid);
    a.textContent = tid.slice(0, 8) + '…';
    a.classList.add('log-trace', 'mono');
    return a;
  }

  function details(e) {
    TRACE_IN_LINE.lastIndex = 0;
    const inLine = TRACE_IN_LINE.exec(e.line);
    const tid = traceIdOf(e) || (inLine ? inLine[2].toLowerCase() : '');
    return h('div', {class: 'log-details'},
      h('div', null, h('span', {class: 'muted'}, 'Stream '), labelChips(e.stream)),
      e.meta && Object.keys(e.meta).length ? h('div', null, h('span', {class: 'muted'}, 'Metadata '), labelChips(e.meta)) : null,
      e.parsed && Object.keys(e.parsed).length ? h('div', null, h('span', {class: 'muted'}, 'Parsed '), labelChips(e.parsed)) : null,
      h('div', {class: 'muted'}, 'Timestamp ', h('span', {class: 'mono'}, e.ns + ' ns'),
        tid ? [' · Trace ', traceLink(tid)] : null));
  }

  function readInputs() {
    state.q = editor.value.trim();
    state.range = rangeIn.value.trim() || '1h';
    state.end = endIn.value.trim();
    state.limit = clampLimit(limitIn.value);
    limitIn.value = String(state.limit);
    state.direction = dirSel.value;
  }

  function timeRange() {
    let r = parseDuration(state.range);
    if (!isFinite(r) || r <= 0) r = 3600;
    let end = parseTime(state.end);
    if (!isFinite(end)) end = Date.now() / 1000;
    return {start: end - r, end, range: r};
  }

  function pushURL(push) {
    update({q: state.q, range: state.range === '1h' ? '' : state.range, end: state.end,
      limit: state.limit === DEFAULT_LIMIT ? '' : state.limit,
      direction: state.direction === 'backward' ? '' : state.direction, tail: state.tail ? '1' : ''}, push);
  }

  function disposeCharts() {
    while (chartDisposers.length) {
      const d = chartDisposers.pop();
      try { d(); } catch { /* already gone */ }
    }
  }

  async function drawChart(box, opts) {
    const {renderChart} = await chartModule();
    clear(box);
    const dispose = renderChart(box, opts);
    if (typeof dispose === 'function') chartDisposers.push(dispose);
  }

  // --- query run -----------------------------------------------------------------

  async function run(fromUser) {
    if (fromUser) readInputs();
    if (!state.q) return;
    if (state.tail || ws) { stopTail(false); setTailStatus('off'); }
    state.tail = false;
    if (fromUser) pushURL(true);
    if (runCtl) runCtl.abort();
    runCtl = new AbortController();
    const signal = runCtl.signal;
    document.documentElement.dataset.ready = '0';
    clear(messages);
    disposeCharts();
    clear(volume);
    stats.textContent = 'Running…';

    if (limitAsked > MAX_LIMIT && !fromUser) {
      messages.append(h('div', {class: 'warning'}, `The limit is at most ${MAX_LIMIT} lines; using ${MAX_LIMIT}.`));
    }
    const {start, end, range} = timeRange();
    const began = performance.now();
    try {
      if (isLogQuery(state.q)) {
        chartBox.hidden = true;
        listEl.hidden = false;
        const vol = drawVolume(start, end, range, signal); // in parallel; its errors stay in its panel
        await drawLines(start, end, signal, began);
        await vol;
      } else {
        await drawMetric(start, end, range, signal, began);
      }
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      list.setItems([]);
      setTotal();
      stats.textContent = '';
      messages.append(errorBox(err));
    }
    ctx.ready();
  }

  async function drawVolume(start, end, range, signal) {
    const step = Math.max(1, Math.ceil(range / 60));
    const query = `sum by (level) (count_over_time(${state.q} [${step}s]))`;
    try {
      const data = await getJSON('/loki/api/v1/query_range',
        {query, start: toNs(start), end: toNs(end), step}, {signal});
      const series = toSeries(data.result).map((s) => {
        s.name = s.labels.level ? s.labels.level : 'lines';
        return s;
      });
      await drawChart(volume, {series, kind: 'bar', start, end, step, className: 'volume', height: 90, unit: 'lines'});
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      replace(volume, h('div', {class: 'muted volume-error'}, 'Volume: ' + (err && err.message ? err.message : String(err))));
    }
  }

  async function drawLines(start, end, signal, began) {
    let limit = state.limit;
    if (serverMax && limit > serverMax) limit = serverMax;
    const args = {query: state.q, start: toNs(start), end: toNs(end), limit, direction: state.direction};
    let data;
    try {
      data = await queryRange(args, signal);
    } catch (err) {
      // The server caps entries per query; ask again for its maximum.
      const m = /max_entries_limit_per_query \((\d+) > (\d+)\)/.exec(err && err.message || '');
      if (!m) throw err;
      serverMax = Number(m[2]);
      limit = serverMax;
      data = await queryRange({...args, limit}, signal);
    }
    if (limit < state.limit) {
      messages.append(h('div', {class: 'warning log-capped'},
        `This server returns at most ${limit} lines per query (its -query.logql.max-entries-limit-per-query); asked for ${state.limit}.`));
    }
    if (data.resultType !== 'streams') {
      await showMetric(data, start, end, autoStep(end - start), began);
      return;
    }
    const entries = entriesOf(data.result);
    const back = state.direction === 'backward';
    entries.sort((a, b) => (back ? cmpNs(b.ns, a.ns) : cmpNs(a.ns, b.ns)));
    list.setItems(entries);
    setTotal();
    const ms = Math.round(performance.now() - began);
    stats.textContent = `${entries.length} line${entries.length === 1 ? '' : 's'} from ${(data.result || []).length} stream${(data.result || []).length === 1 ? '' : 's'}, took ${ms} ms` +
      (entries.length >= limit ? ` (limit ${limit} reached)` : '');
    if (entries.length === 0) messages.append(h('div', {class: 'muted log-empty'}, 'No lines match in this range.'));
  }

  async function drawMetric(start, end, range, signal, began) {
    const step = autoStep(range);
    const data = await getJSON('/loki/api/v1/query_range',
      {query: state.q, start: toNs(start), end: toNs(end), step}, {signal});
    await showMetric(data, start, end, step, began);
  }

  async function showMetric(data, start, end, step, began) {
    list.setItems([]);
    setTotal();
    listEl.hidden = true;
    chartBox.hidden = false;
    const series = toSeries(data.result);
    await drawChart(chartBox, {series, kind: 'line', start, end, step, className: 'log-metric-chart', height: 300});
    const ms = Math.round(performance.now() - began);
    stats.textContent = `${series.length} series, took ${ms} ms`;
    if (!series.length) messages.append(h('div', {class: 'muted'}, 'The query returned no series.'));
  }

  // --- live tail -------------------------------------------------------------------

  function setTailStatus(st, text) {
    tailStatus.hidden = st === 'off';
    tailStatus.dataset.state = st;
    tailStatus.textContent = text || '';
    tailBtn.textContent = st === 'off' || st === 'closed' || st === 'error' ? 'Live tail' : 'Stop tail';
    tailBtn.setAttribute('aria-pressed', st === 'live' || st === 'connecting' ? 'true' : 'false');
  }

  function toggleTail() {
    if (ws) {
      stopTail(true);
      state.tail = false;
      pushURL(false);
    } else {
      readInputs();
      state.tail = true;
      pushURL(true);
      startTail();
    }
  }

  function stopTail(show) {
    tailGen++;
    if (ws) {
      const w = ws;
      ws = null;
      try { w.close(1000, 'stopped'); } catch { /* closing */ }
    }
    if (show) setTailStatus('closed', 'Tail stopped');
  }

  async function startTail() {
    stopTail(false);
    const gen = ++tailGen;
    clear(messages);
    disposeCharts();
    clear(volume);
    chartBox.hidden = true;
    listEl.hidden = false;
    list.setItems([]);
    setTotal();
    stats.textContent = '';
    let received = 0;
    let dropped = 0;
    let serverDropped = 0;
    const fail = (msg) => {
      if (gen !== tailGen) return;
      messages.append(errorBox(msg));
      setTailStatus('error', 'Tail failed');
      ws = null;
      ctx.ready();
    };
    if (!state.q) { fail('Live tail needs a log query, such as {app="api"}.'); return; }
    if (!isLogQuery(state.q)) { fail('Live tail needs a log query ({…} with filters), not a metric query.'); return; }
    setTailStatus('connecting', 'Connecting…');
    const {range} = timeRange();
    const now = Date.now() / 1000;
    const limit = Math.min(state.limit, serverMax || 5000);
    // A websocket handshake the server refuses shows no reason in the
    // browser: check the query over a moment first, for the server's message.
    try {
      await getJSON('/loki/api/v1/query_range', {query: state.q, limit: 1, start: toNs(now - 60), end: toNs(now)}, {signal: ctx.signal});
    } catch (err) {
      if (err && err.name === 'AbortError') return;
      fail(err);
      return;
    }
    if (gen !== tailGen) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = proto + '//' + location.host + withParams('/loki/api/v1/tail',
      {query: state.q, limit, start: toNs(now - Math.min(range, 3600))});
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (err) {
      fail(err);
      return;
    }
    ws = sock;
    sock.addEventListener('open', () => {
      if (ws !== sock) return;
      setTailStatus('live', 'Live');
      ctx.ready();
    });
    sock.addEventListener('message', (ev) => {
      if (ws !== sock) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      const entries = entriesOf(msg.streams);
      entries.sort((a, b) => cmpNs(a.ns, b.ns));
      if (Array.isArray(msg.dropped_entries)) serverDropped += msg.dropped_entries.length;
      received += entries.length;
      const stick = list.atBottom() || list.length === 0;
      dropped += list.append(entries, TAIL_CAP, stick);
      setTotal();
      stats.textContent = `${received} line${received === 1 ? '' : 's'} received` +
        (dropped ? `, ${dropped} oldest dropped from view (keeps ${TAIL_CAP})` : '') +
        (serverDropped ? `, ${serverDropped} dropped by the server` : '');
      ctx.ready();
    });
    sock.addEventListener('error', () => {
      if (ws !== sock) return;
      fail('The live tail connection failed.');
    });
    sock.addEventListener('close', (ev) => {
      if (ws !== sock) return;
      ws = null;
      if (ev.code === 1000) setTailStatus('closed', 'Tail ended by the server');
      else fail(`The live tail closed (code ${ev.code}${ev.reason ? ': ' + ev.reason : ''}).`);
    });
  }

  // --- start -----------------------------------------------------------------------

  attachCompletion(editor, wrap, {
    signal: ctx.signal,
    range: () => { const r = timeRange(); return {start: toNs(r.start), end: toNs(r.end)}; },
    onRun: () => run(true),
  });

  if (!state.q) {
    listEl.hidden = true;
    await showExample();
    ctx.ready();
  } else if (state.tail) {
    startTail();
  } else {
    run(false);
  }

  async function showExample() {
    const ex = h('div', {class: 'panel log-example'},
      h('div', null, 'Write a LogQL query and press Enter or Run. Examples:'));
    messages.append(ex);
    let sel = '{service_name=~".+"}';
    try {
      const names = (await getJSON('/loki/api/v1/labels', null, {signal: ctx.signal})).filter((n) => !n.startsWith('__'));
      const name = ['service_name', 'app', 'job', 'filename'].find((n) => names.includes(n)) || names[0];
      if (name) {
        const values = await getJSON('/loki/api/v1/label/' + encodeURIComponent(name) + '/values', null, {signal: ctx.signal});
        if (values.length) sel = `{${name}=${JSON.stringify(values[0])}}`;
      }
    } catch { /* the generic example will do */ }
    const examples = [
      sel,
      sel + ' |= "error"',
      sel + ' | logfmt | level="error"',
      `sum by (level) (count_over_time(${sel} [1m]))`,
    ];
    ex.append(h('ul', null, examples.map((q) => h('li', null,
      h('a', {href: link('logs', {q}), class: 'mono'}, q)))));
  }

  return () => {
    tailGen++;
    if (ws) { const w = ws; ws = null; try { w.close(1000, 'page closed'); } catch { /* closing */ } }
    if (runCtl) runCtl.abort();
    disposeCharts();
    list.dispose();
  };
}
