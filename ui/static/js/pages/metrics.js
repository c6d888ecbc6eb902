// Metrics: PromQL queries as graphs (query_range, with exemplars) or tables
// (instant query), several at once. State lives in the URL:
//   q (repeated, one per panel), range (1h), end (empty = now),
//   step (empty = auto), tab (graph | table).

import {h, replace, errorBox, labelChips, table} from '../dom.js';
import {getEnvelope, getJSON} from '../api.js';
import {params, update, link} from '../state.js';
import {parseDuration, parseTime, formatDuration, formatTime, autoStep} from '../time.js';
import {renderChart, formatValue} from '../chart.js';
import {attachCompletion} from '../promql-complete.js';

// Beyond this many series a graph is unreadable and the DOM heavy.
const MAX_SERIES = 1000;
const RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '2d', '7d', '14d', '30d'];
const EXAMPLES = ['up', 'rate(pharos_query_requests_total[5m])', 'sum by (job) (rate(pharos_bus_published_messages_total[5m]))'];

function loadStyle(href) {
  if (!document.querySelector(`link[href="${href}"]`)) document.head.append(h('link', {rel: 'stylesheet', href}));
}

// seriesName formats a label set as Prometheus does: name{a="b", c="d"}.
export function seriesName(metric) {
  const m = metric || {};
  const names = Object.keys(m).filter((n) => n !== '__name__').sort();
  const inner = names.map((n) => `${n}=${JSON.stringify(String(m[n]))}`).join(', ');
  return (m.__name__ || '') + (inner || !m.__name__ ? '{' + inner + '}' : '');
}

// traceIDOf finds the trace ID among an exemplar's labels.
function traceIDOf(labels) {
  const l = labels || {};
  return l.trace_id || l.traceID || l.traceId || l.TraceID || l['trace.id'] || '';
}

// matchSeries returns the index of the graphed series an exemplar belongs
// to: the one whose labels all agree with the exemplar's series labels
// (the name only when the graphed series has one), most labels winning.
function matchSeries(series, seriesLabels) {
  let best = -1;
  let bestN = -1;
  series.forEach((sr, i) => {
    let n = 0;
    for (const [k, v] of Object.entries(sr.labels)) {
      if (seriesLabels[k] !== v) return;
      n++;
    }
    if (n > bestN) { best = i; bestN = n; }
  });
  return best;
}

// histogramValue gives a native histogram sample ([t, {count, sum, …}]) a
// plottable number: its count.
function histogramCount(hist) {
  return Number(hist && hist[1] && hist[1].count);
}

function histogramText(hist) {
  const x = (hist && hist[1]) || {};
  const buckets = Array.isArray(x.buckets) ? `, ${x.buckets.length} buckets` : '';
  return `histogram: count=${x.count ?? '?'} sum=${x.sum ?? '?'}${buckets}`;
}

export async function render(root, ctx) {
  loadStyle('/ui/assets/css/metrics.css');
  loadStyle('/ui/assets/css/chart.css');
  const p = params();
  let tab = p.get('tab') === 'table' ? 'table' : 'graph';
  const queries = p.getAll('q');
  const panels = [];
  let runCtl = null;

  const rangeIn = h('input', {type: 'text', class: 'range', value: p.get('range') || '1h', size: 6, list: 'metrics-ranges',
    'aria-label': 'Range', title: 'How far back from the end: 5m, 1h, 2d…'});
  const endIn = h('input', {type: 'text', class: 'end', value: p.get('end') || '', size: 20, placeholder: 'now',
    'aria-label': 'End', title: 'End of the range: empty for now, Unix seconds or RFC 3339'});
  const stepIn = h('input', {type: 'text', class: 'step', value: p.get('step') || '', size: 8, 'aria-label': 'Step',
    title: 'Resolution: seconds or a duration; empty picks one for about 250 points'});
  const controlsErr = h('div', {class: 'controls-error'});
  const tabButtons = {
    graph: h('button', {type: 'button', class: 'tab-graph', on: {click: () => switchTab('graph')}}, 'Graph'),
    table: h('button', {type: 'button', class: 'tab-table', on: {click: () => switchTab('table')}}, 'Table'),
  };
  const panelsEl = h('div', {class: 'query-panels'});
  const hint = h('p', {class: 'muted hint'}, 'Enter a PromQL expression (Enter runs, Shift+Enter adds a line, Ctrl+Space completes). Examples: ',
    EXAMPLES.map((ex, i) => [i ? ', ' : '', h('a', {href: link('metrics', {q: ex, range: '1h'}), class: 'mono'}, ex)]));

  const onEnter = (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); run(true); } };
  for (const el of [rangeIn, endIn, stepIn]) el.addEventListener('keydown', onEnter);
  const updateStepHint = () => {
    const r = parseDuration(rangeIn.value);
    stepIn.placeholder = r > 0 ? `auto (${formatDuration(autoStep(r))})` : 'auto';
  };
  rangeIn.addEventListener('input', updateStepHint);
  updateStepHint();

  replace(root,
    h('div', {class: 'panel metrics-controls'},
      h('div', {class: 'row'},
        h('label', null, 'Range ', rangeIn),
        h('datalist', {id: 'metrics-ranges'}, RANGES.map((r) => h('option', {value: r}))),
        h('label', null, 'End ', endIn),
        h('label', null, 'Step ', stepIn),
        h('button', {type: 'button', class: 'run', on: {click: () => run(true)}}, 'Run'),
        h('button', {type: 'button', class: 'secondary add-query', on: {click: () => { addPanel('').textarea.focus(); }}}, 'Add query'),
        h('span', {class: 'grow'}),
        h('div', {class: 'tabs', role: 'tablist'}, tabButtons.graph, tabButtons.table)),
      controlsErr),
    panelsEl);
  markTab();

  function markTab() {
    for (const [k, b] of Object.entries(tabButtons)) {
      b.classList.toggle('active', k === tab);
      b.setAttribute('aria-selected', String(k === tab));
    }
  }

  function switchTab(t) {
    if (t === tab) return;
    tab = t;
    markTab();
    run(true);
  }

  function addPanel(expr) {
    const textarea = h('textarea', {class: 'query', rows: Math.min(8, Math.max(1, String(expr).split('\n').length)),
      placeholder: 'PromQL expression, e.g. rate(pharos_query_requests_total[5m])', 'aria-label': 'PromQL expression', value: expr});
    const status = h('div', {class: 'panel-status muted'});
    const out = h('div', {class: 'panel-output'});
    const panel = {textarea, status, out, dispose: null, detach: null, lastExpr: expr.trim()};
    const remove = h('button', {type: 'button', class: 'secondary remove-query', title: 'Remove this query',
      on: {click: () => removePanel(panel)}}, 'Remove');
    panel.el = h('div', {class: 'panel query-panel'},
      h('div', {class: 'query-row'}, h('div', {class: 'autocomplete grow'}, textarea), remove),
      status, out);
    // Grow the editor with its content (no inline style attribute: CSSOM).
    const fit = () => { textarea.rows = Math.min(12, Math.max(1, textarea.value.split('\n').length)); };
    textarea.addEventListener('input', fit);
    panelsEl.append(panel.el);
    panel.detach = attachCompletion(textarea, {onRun: () => run(true)});
    panels.push(panel);
    syncRemove();
    return panel;
  }

  function removePanel(panel) {
    if (panels.length <= 1) return;
    disposePanel(panel);
    panel.el.remove();
    panels.splice(panels.indexOf(panel), 1);
    syncRemove();
    // The URL keeps what is shown: the remaining panels' last run queries.
    update({...urlState(), q: panels.map((pn) => pn.lastExpr || '')}, true);
  }

  function syncRemove() {
    for (const pn of panels) pn.el.querySelector('.remove-query').disabled = panels.length <= 1;
  }

  function disposePanel(panel) {
    if (panel.dispose) panel.dispose();
    panel.dispose = null;
    if (panel.detach) panel.detach();
    panel.detach = null;
  }

  function urlState() {
    return {q: panels.map((pn) => pn.textarea.value.trim()), range: rangeIn.value.trim() || '1h',
      end: endIn.value.trim(), step: stepIn.value.trim(), tab};
  }

  // run reads the controls, writes them to the URL and runs every panel;
  // the page is ready again once all of them have drawn or failed.
  async function run(push) {
    const st = urlState();
    update(st, push);
    document.documentElement.dataset.ready = '0';
    if (runCtl) runCtl.abort();
    const ctl = new AbortController();
    runCtl = ctl;
    const signal = AbortSignal.any ? AbortSignal.any([ctx.signal, ctl.signal]) : ctl.signal;
    replace(controlsErr);
    hint.remove();

    const range = parseDuration(st.range);
    const end = parseTime(st.end);
    const step = st.step ? parseDuration(st.step) : autoStep(range);
    const problems = [];
    if (!(range > 0)) problems.push(`range: "${st.range}" is not a duration like 1h or 30m`);
    if (!isFinite(end)) problems.push(`end: "${st.end}" is not a time (Unix seconds or RFC 3339)`);
    if (!(step > 0)) problems.push(`step: "${st.step}" is not a positive duration`);
    if (problems.length) {
      replace(controlsErr, errorBox(problems.join('\n')));
      ctx.ready();
      return;
    }
    const win = {start: end - range, end, step};
    await Promise.allSettled(panels.map((pn) => runPanel(pn, win, signal)));
    if (!signal.aborted) {
      if (!panels.some((pn) => pn.textarea.value.trim())) panelsEl.after(hint);
      ctx.ready();
    }
  }

  async function runPanel(panel, w, signal) {
    const expr = panel.textarea.value.trim();
    panel.lastExpr = expr;
    if (panel.dispose) { panel.dispose(); panel.dispose = null; }
    if (!expr) {
      replace(panel.status);
      replace(panel.out);
      return;
    }
    replace(panel.status, 'Loading…');
    try {
      if (tab === 'graph') await drawGraph(panel, expr, w, signal);
      else await drawTable(panel, expr, w, signal);
    } catch (e) {
      if (signal.aborted) return;
      replace(panel.status);
      replace(panel.out, errorBox(e));
    }
  }

  async function drawGraph(panel, expr, w, signal) {
    const start = Math.floor(w.start);
    const end = Math.floor(w.end);
    // Exemplars are extra: a failure there is noted, never fatal.
    const [env, ex] = await Promise.all([
      getEnvelope('/api/v1/query_range', {query: expr, start, end, step: w.step}, {signal}),
      getJSON('/api/v1/query_exemplars', {query: expr, start, end}, {signal}).then((d) => ({data: d}), (err) => ({err})),
    ]);
    if (signal.aborted) return;
    const data = env.data || {};
    let result = data.result || [];
    if (data.resultType === 'scalar' || data.resultType === 'string') {
      result = [{metric: {}, values: [data.result]}];
    }
    const total = result.length;
    let hasHist = false;
    const series = result.slice(0, MAX_SERIES).map((r) => {
      const points = (r.values || []).map(([t, v]) => [t, Number(v)]);
      if (r.histograms && r.histograms.length) {
        hasHist = true;
        for (const hst of r.histograms) points.push([hst[0], histogramCount(hst)]);
        points.sort((a, b) => a[0] - b[0]);
      }
      return {name: seriesName(r.metric), labels: r.metric || {}, points};
    });

    const exemplars = [];
    let exNote = null;
    if (ex.err) {
      if (ex.err.name !== 'AbortError') exNote = 'exemplars unavailable: ' + ex.err.message;
    } else {
      for (const grp of ex.data || []) {
        const idx = matchSeries(series, grp.seriesLabels || {});
        for (const e of grp.exemplars || []) {
          const t = Number(e.timestamp);
          if (t < start || t > end) continue;
          exemplars.push({t, v: Number(e.value), traceID: traceIDOf(e.labels), labels: e.labels || {}, seriesIndex: idx});
        }
      }
    }

    replace(panel.status, statusLine(env, total, exemplars.length, [
      hasHist ? 'native histograms are plotted as their observation count' : null, exNote]));
    const box = h('div', {class: 'chart-box'});
    replace(panel.out, box);
    panel.dispose = renderChart(box, {
      series, kind: 'line', start, end, step: w.step, exemplars, height: 280,
      onExemplar: (e) => { if (e.traceID) location.assign(link('traces', {trace: e.traceID})); },
    });
  }

  async function drawTable(panel, expr, w, signal) {
    const env = await getEnvelope('/api/v1/query', {query: expr, time: w.end}, {signal});
    if (signal.aborted) return;
    const data = env.data || {};
    const type = data.resultType;
    let rows;
    let total;
    if (type === 'scalar' || type === 'string') {
      total = 1;
      rows = [[h('span', {class: 'muted'}, type), h('span', {class: 'mono'}, String(data.result && data.result[1]))]];
    } else {
      const result = data.result || [];
      total = result.length;
      rows = result.slice(0, MAX_SERIES).map((r) => [seriesCell(r.metric), valueCell(r, type)]);
    }
    replace(panel.status, statusLine(env, total, 0, [`evaluated at ${formatTime(w.end)}`]));
    replace(panel.out, rows.length
      ? table(['Series', 'Value'], rows, () => ({class: 'series-row'}))
      : h('p', {class: 'muted empty'}, 'Empty query result.'));
  }

  // The first panel's completion list closes on blur; keep the page's
  // shape even with no queries.
  (queries.length ? queries : ['']).forEach((q) => addPanel(q));

  if (queries.some((q) => q.trim())) {
    await run(false);
  } else {
    panelsEl.after(hint);
    panels[0].textarea.focus();
    ctx.ready();
  }

  return () => {
    if (runCtl) runCtl.abort();
    for (const pn of panels) disposePanel(pn);
  };
}

function seriesCell(metric) {
  const m = metric || {};
  return h('span', {class: 'series-cell'}, m.__name__ ? h('span', {class: 'metric-name mono'}, m.__name__) : null,
    Object.keys(m).some((k) => k !== '__name__') ? labelChips(m, ['__name__']) : (m.__name__ ? null : h('span', {class: 'mono'}, '{}')));
}

function valueCell(r, type) {
  if (type === 'matrix') {
    const lines = (r.values || []).map(([t, v]) => `${v} @ ${t}`)
      .concat((r.histograms || []).map((hst) => `${histogramText(hst)} @ ${hst[0]}`));
    return h('span', {class: 'mono matrix-values'}, lines.join('\n'));
  }
  if (r.histogram) return h('span', {class: 'mono'}, histogramText(r.histogram));
  const v = r.value ? r.value[1] : '';
  const n = Number(v);
  return h('span', {class: 'mono', title: isFinite(n) && Math.abs(n) >= 1000 ? formatValue(n, 4) : null}, String(v));
}

// statusLine tells how many series came back (and how many are shown) and
// carries the API's warnings and infos.
function statusLine(env, total, exemplarCount, notes) {
  const shown = Math.min(total, MAX_SERIES);
  return h('div', null,
    h('span', {class: 'result-count', dataset: {total}}, `${total} series` + (exemplarCount ? `, ${exemplarCount} exemplars` : '')),
    total > MAX_SERIES ? h('span', {class: 'warning'}, ` — showing the first ${shown}; narrow the query to see the rest`) : null,
    notes.filter(Boolean).map((n) => h('span', {class: 'note'}, ' · ' + n)),
    (env.warnings || []).map((w) => h('div', {class: 'warning'}, 'Warning: ' + w)),
    (env.infos || []).map((i) => h('div', {class: 'info'}, 'Info: ' + i)));
}
