// Trace model and waterfall view. parseTrace reads Tempo's trace-by-ID JSON
// (OTLP/JSON: v1 "batches", v2 {"trace":{"resourceSpans"}}, older
// "instrumentationLibrarySpans"); renderWaterfall draws one .span-row per
// span in tree order, its bar placed by start and duration relative to the
// whole trace (percentages set through el.style, which the CSP allows).

import {h, replace, table} from './dom.js';

// --- values ----------------------------------------------------------------------

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const STATUS = ['unset', 'ok', 'error'];

// enumName reads an OTLP enum written as a number (pdata's JSON) or as its
// proto name (SPAN_KIND_SERVER, STATUS_CODE_ERROR).
function enumName(v, names, prefix) {
  if (v === undefined || v === null || v === '') return names[0];
  if (typeof v === 'number') return names[v] || String(v);
  const t = String(v);
  if (/^\d+$/.test(t)) return names[Number(t)] || t;
  return t.replace(prefix, '').toLowerCase();
}

// anyValue renders an OTLP AnyValue as text.
export function anyValue(v) {
  if (!v || typeof v !== 'object') return v === undefined || v === null ? '' : String(v);
  if ('stringValue' in v) return String(v.stringValue);
  if ('intValue' in v) return String(v.intValue);
  if ('doubleValue' in v) return String(v.doubleValue);
  if ('boolValue' in v) return String(v.boolValue);
  if ('bytesValue' in v) return String(v.bytesValue);
  if ('arrayValue' in v) return '[' + ((v.arrayValue && v.arrayValue.values) || []).map(anyValue).join(', ') + ']';
  if ('kvlistValue' in v) {
    return '{' + ((v.kvlistValue && v.kvlistValue.values) || []).map((kv) => kv.key + ': ' + anyValue(kv.value)).join(', ') + '}';
  }
  return '';
}

function attrs(list) {
  const out = [];
  for (const kv of list || []) out.push([String(kv.key), anyValue(kv.value)]);
  return out;
}

// hexID reads a span or trace ID: hex as Tempo and pdata write it, or the
// base64 of proto-JSON.
export function hexID(v) {
  const t = String(v || '');
  if (t === '') return '';
  if (/^[0-9a-fA-F]+$/.test(t) && (t.length === 16 || t.length === 32)) return t.toLowerCase();
  try {
    const bin = atob(t.replace(/-/g, '+').replace(/_/g, '/'));
    let out = '';
    for (let i = 0; i < bin.length; i++) out += bin.charCodeAt(i).toString(16).padStart(2, '0');
    return out;
  } catch {
    return t;
  }
}

function ns(v) {
  try { return BigInt(String(v || '0')); } catch { return 0n; }
}

// formatNsDuration writes a nanosecond duration: 850ns, 123µs, 1.23ms, 2.5s.
export function formatNsDuration(n) {
  const v = Number(n);
  if (!isFinite(v)) return '';
  const abs = Math.abs(v);
  const fmt = (x) => {
    const t = x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
    return t.includes('.') ? t.replace(/\.?0+$/, '') : t;
  };
  if (abs < 1e3) return `${v}ns`;
  if (abs < 1e6) return fmt(v / 1e3) + 'µs';
  if (abs < 1e9) return fmt(v / 1e6) + 'ms';
  if (abs < 60e9) return fmt(v / 1e9) + 's';
  const sec = Math.round(v / 1e9);
  return `${Math.floor(sec / 60)}m${sec % 60 ? (sec % 60) + 's' : ''}`;
}

// formatNsTime writes an absolute nanosecond time in UTC with its
// sub-millisecond digits.
export function formatNsTime(n) {
  const big = BigInt(n);
  const ms = Number(big / 1000000n);
  const rest = String(big % 1000000n).padStart(6, '0');
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '') + rest + 'Z';
}

// --- the trace -----------------------------------------------------------------

// parseTrace returns {spans, start, end, services} with spans in tree
// order; each span has depth, children and its resource's service name.
export function parseTrace(body) {
  const root = body && body.trace ? body.trace : body;
  const batches = (root && (root.batches || root.resourceSpans)) || [];
  const spans = [];
  for (const rs of batches) {
    const resource = attrs(rs.resource && rs.resource.attributes);
    const svcAttr = resource.find(([k]) => k === 'service.name');
    const service = svcAttr ? svcAttr[1] : 'unknown_service';
    for (const ss of rs.scopeSpans || rs.instrumentationLibrarySpans || []) {
      const scope = ss.scope || ss.instrumentationLibrary || {};
      for (const sp of ss.spans || []) {
        const start = ns(sp.startTimeUnixNano);
        let end = ns(sp.endTimeUnixNano);
        if (end < start) end = start;
        spans.push({
          traceId: hexID(sp.traceId),
          id: hexID(sp.spanId),
          parentId: hexID(sp.parentSpanId),
          name: String(sp.name || ''),
          kind: enumName(sp.kind, KINDS, 'SPAN_KIND_'),
          status: enumName(sp.status && sp.status.code, STATUS, 'STATUS_CODE_'),
          statusMessage: (sp.status && sp.status.message) || '',
          start, end,
          attributes: attrs(sp.attributes),
          resource,
          service,
          scope: [scope.name, scope.version].filter(Boolean).join(' '),
          events: (sp.events || []).map((e) => ({name: String(e.name || ''), time: ns(e.timeUnixNano), attributes: attrs(e.attributes)})),
          links: (sp.links || []).map((l) => ({traceId: hexID(l.traceId), spanId: hexID(l.spanId), attributes: attrs(l.attributes)})),
          children: [],
          depth: 0,
        });
      }
    }
  }
  if (!spans.length) return {spans: [], start: 0n, end: 0n, services: []};
  let start = spans[0].start;
  let end = spans[0].end;
  for (const sp of spans) {
    if (sp.start < start) start = sp.start;
    if (sp.end > end) end = sp.end;
  }
  // The tree: spans whose parent is missing (not received, or the root) are
  // roots; children by start time.
  const byId = new Map(spans.map((sp) => [sp.id, sp]));
  const roots = [];
  for (const sp of spans) {
    const parent = sp.parentId && sp.parentId !== sp.id ? byId.get(sp.parentId) : null;
    if (parent) parent.children.push(sp); else roots.push(sp);
  }
  const byStart = (a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);
  const ordered = [];
  const seen = new Set();
  const walk = (sp, depth, ancestors) => {
    if (seen.has(sp)) return; // a cycle of parent IDs
    seen.add(sp);
    sp.depth = depth;
    sp.ancestors = ancestors;
    ordered.push(sp);
    sp.children.sort(byStart);
    const next = ancestors.concat(sp.id);
    for (const c of sp.children) walk(c, depth + 1, next);
  };
  roots.sort(byStart);
  for (const r of roots) walk(r, 0, []);
  for (const sp of spans) if (!seen.has(sp)) walk(sp, 0, []); // spans only in a cycle
  const services = [...new Set(ordered.map((sp) => sp.service))];
  return {spans: ordered, roots, start, end, services};
}

// Service colours, cycled; the same order as the chart's palette keeps
// pages consistent without depending on it.
const COLOURS = ['#2f6fdb', '#e4572e', '#17a398', '#f3a712', '#8e44ad', '#3d9970', '#c2185b', '#607d8b', '#795548', '#00838f'];

// --- the view --------------------------------------------------------------------

// renderWaterfall draws trace into container; onSelect(span) is called when
// a span is clicked. It returns {select(span)}.
export function renderWaterfall(container, trace, {onSelect} = {}) {
  const total = Number(trace.end - trace.start) || 1;
  const colourOf = new Map(trace.services.map((sv, i) => [sv, COLOURS[i % COLOURS.length]]));
  const collapsed = new Set();
  const rows = new Map();
  let selected = null;

  const pct = (n) => Math.max(0, Math.min(100, (Number(n) / total) * 100));

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) =>
    h('span', {class: 'wf-tick', style: {left: f * 100 + '%'}}, formatNsDuration(Math.round(total * f))));
  const header = h('div', {class: 'wf-header'},
    h('div', {class: 'wf-label'}, 'Service & span'),
    h('div', {class: 'wf-axis'}, ticks));

  function setVisibility() {
    for (const sp of trace.spans) {
      const row = rows.get(sp);
      row.hidden = sp.ancestors.some((a) => collapsed.has(a));
      const btn = row.querySelector('.span-toggle');
      if (btn) {
        const c = collapsed.has(sp.id);
        btn.textContent = c ? '▸' : '▾';
        btn.setAttribute('aria-expanded', c ? 'false' : 'true');
        btn.setAttribute('title', c ? `Show ${countDescendants(sp)} spans below` : 'Hide the spans below');
      }
    }
  }

  function select(sp) {
    if (selected) rows.get(selected).classList.remove('selected');
    selected = sp;
    if (sp) rows.get(sp).classList.add('selected');
    if (onSelect) onSelect(sp);
  }

  const body = h('div', {class: 'wf-body'});
  for (const sp of trace.spans) {
    const off = sp.start - trace.start;
    const dur = sp.end - sp.start;
    const left = pct(off);
    const width = Math.max(pct(dur), 0.15);
    const colour = colourOf.get(sp.service);
    const toggle = sp.children.length
      ? h('button', {type: 'button', class: 'span-toggle', on: {click: (ev) => {
        ev.stopPropagation();
        if (collapsed.has(sp.id)) collapsed.delete(sp.id); else collapsed.add(sp.id);
        setVisibility();
      }}}, '▾')
      : h('span', {class: 'span-toggle-space'});
    const label = h('div', {class: 'wf-label', style: {'padding-left': (sp.depth * 14 + 4) + 'px'}},
      toggle,
      h('span', {class: 'span-service', style: {'border-color': colour}}, sp.service),
      ' ',
      h('span', {class: 'span-name'}, sp.name),
      sp.parentId && sp.depth === 0 ? h('span', {class: 'span-orphan', title: 'Its parent span ' + sp.parentId + ' is not in the trace'}, 'parent missing') : null);
    const bar = h('div', {class: 'span-bar', style: {left: left + '%', width: width + '%', 'background-color': colour}},
      sp.events.map((e) => {
        const at = dur > 0n ? (Number(e.time - sp.start) / Number(dur)) * 100 : 0;
        return h('span', {class: 'span-event', style: {left: Math.max(0, Math.min(100, at)) + '%'}, title: e.name});
      }));
    const durText = h('span', {class: 'span-duration'}, formatNsDuration(dur));
    // The duration goes inside a wide bar, else beside it where there is room.
    if (width >= 15) {
      durText.classList.add('inside');
      durText.style.setProperty('left', left + '%');
    } else if (left + width > 75) {
      durText.style.setProperty('right', (100 - left) + '%');
    } else {
      durText.style.setProperty('left', (left + width) + '%');
    }
    const row = h('div', {
      class: ['span-row', sp.status === 'error' && 'span-error'],
      dataset: {spanId: sp.id, depth: sp.depth, status: sp.status},
      role: 'row',
      tabindex: '0',
      title: `${sp.service}: ${sp.name} (${formatNsDuration(dur)})`,
      on: {
        click: () => select(selected === sp ? null : sp),
        keydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(selected === sp ? null : sp); } },
      },
    }, label, h('div', {class: 'wf-timeline'}, bar, durText));
    rows.set(sp, row);
    body.append(row);
  }
  replace(container, header, body);
  container.classList.add('waterfall');
  container.dataset.spanCount = String(trace.spans.length);
  setVisibility();
  return {select};
}

function countDescendants(sp) {
  let n = 0;
  for (const c of sp.children) n += 1 + countDescendants(c);
  return n;
}

// --- span details ---------------------------------------------------------------

function kvTable(pairs) {
  return table(['Key', 'Value'], pairs.map(([k, v]) => [h('span', {class: 'mono'}, k), h('span', {class: 'mono kv-value'}, v)]));
}

// spanDetails is the key/value view of one span.
export function spanDetails(sp, trace) {
  const off = sp.start - trace.start;
  const main = [
    ['Span ID', sp.id],
    ['Parent span ID', sp.parentId || '(root)'],
    ['Trace ID', sp.traceId],
    ['Service', sp.service],
    ['Name', sp.name],
    ['Kind', sp.kind],
    ['Status', sp.status + (sp.statusMessage ? ': ' + sp.statusMessage : '')],
    ['Start', formatNsTime(sp.start)],
    ['Offset in the trace', formatNsDuration(off)],
    ['Duration', formatNsDuration(sp.end - sp.start)],
  ];
  if (sp.scope) main.push(['Instrumentation scope', sp.scope]);
  return h('div', null,
    h('h2', null, sp.name),
    kvTable(main),
    h('h3', null, 'Span attributes'),
    sp.attributes.length ? kvTable(sp.attributes) : h('div', {class: 'muted'}, 'none'),
    h('h3', null, 'Resource attributes'),
    sp.resource.length ? kvTable(sp.resource) : h('div', {class: 'muted'}, 'none'),
    sp.events.length ? [
      h('h3', null, 'Events'),
      table(['Offset', 'Name', 'Attributes'], sp.events.map((e) => [
        formatNsDuration(e.time - sp.start),
        e.name,
        h('span', {class: 'mono'}, e.attributes.map(([k, v]) => k + '=' + v).join(' ')),
      ])),
    ] : null,
    sp.links.length ? [
      h('h3', null, 'Links'),
      table(['Trace', 'Span', 'Attributes'], sp.links.map((l) => [
        h('a', {href: '/ui/traces?trace=' + encodeURIComponent(l.traceId), class: 'mono'}, l.traceId),
        h('span', {class: 'mono'}, l.spanId),
        h('span', {class: 'mono'}, l.attributes.map(([k, v]) => k + '=' + v).join(' ')),
      ])),
    ] : null);
}

