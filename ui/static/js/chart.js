// A small SVG time-series chart (lines or stacked bars) with axes, legend,
// hover values and exemplar points. Everything is built with dom.js, so
// series names, label values and trace IDs only ever become text nodes or
// attribute values.
//
// Sized for 100 series × 250 points: one <path> per line series (no DOM per
// point), hover finds the nearest timestamp by binary search and redraws at
// most once per animation frame.

import {h, s, clear, replace} from './dom.js';

// Distinct colours, cycled by series index.
export const PALETTE = [
  '#2f6fdb', '#e8743b', '#19a979', '#d64e8a', '#945ecf', '#13a4b4', '#bf8b00', '#6c8893',
  '#c62828', '#525df4', '#2e7d32', '#ef6c00', '#8e24aa', '#00838f', '#9e9d24', '#5d4037',
  '#ec407a', '#1565c0', '#7cb342', '#ff8f00',
];

export function colour(i) {
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

const SI = [[1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k'], [1, ''], [1e-3, 'm'], [1e-6, 'µ'], [1e-9, 'n']];

// formatValue writes v with an SI prefix and at most `digits` significant
// digits: 1234 → "1.23k", 0.0042 → "4.2m".
export function formatValue(v, digits = 3, unit = '') {
  if (v === null || v === undefined || Number.isNaN(v)) return 'NaN';
  if (!isFinite(v)) return (v > 0 ? '+Inf' : '-Inf');
  if (v === 0) return '0' + (unit ? ' ' + unit : '');
  const a = Math.abs(v);
  // Between 0.001 and 1 a plain decimal reads better than a milli prefix.
  if (a >= 1e-3 && a < 1) return String(Number(v.toPrecision(digits))) + (unit ? ' ' + unit : '');
  let [div, prefix] = SI.find(([d]) => a >= d) || SI[SI.length - 1];
  if (a >= 1e18 || a < 1e-12) return String(Number(v.toPrecision(digits))) + (unit ? ' ' + unit : '');
  const n = Number((v / div).toPrecision(digits));
  // 999.6 rounds to 1000: move to the next prefix.
  if (Math.abs(n) >= 1000 && div < 1e15) {
    const i = SI.findIndex(([d]) => d === div);
    [div, prefix] = SI[i - 1];
  }
  const text = String(Number((v / div).toPrecision(digits)));
  return unit ? text + ' ' + prefix + unit : text + prefix;
}

// niceStep returns a round tick distance (1, 2 or 5 × 10ⁿ) giving about
// count ticks over [min, max].
export function niceStep(min, max, count) {
  const raw = (max - min) / Math.max(1, count);
  if (!(raw > 0) || !isFinite(raw)) return 1;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
  86400, 172800, 604800, 2592000, 31536000];

// timeTicks picks UTC-aligned tick times about minSpacing pixels apart.
export function timeTicks(start, end, width, minSpacing = 90) {
  const want = Math.max(2, Math.floor(width / minSpacing));
  const span = end - start;
  const iv = TIME_STEPS.find((x) => span / x <= want) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(start / iv) * iv; t <= end; t += iv) ticks.push(t);
  return {ticks, interval: iv};
}

function pad(n) { return String(n).padStart(2, '0'); }

// timeLabel formats a tick in UTC (as formatTime does) with the precision
// the tick interval needs.
export function timeLabel(t, interval, span) {
  const d = new Date(t * 1000);
  const hm = pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
  const md = pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate());
  if (interval >= 86400) return md;
  if (interval < 60) return hm + ':' + pad(d.getUTCSeconds());
  if (span > 86400 && d.getUTCHours() === 0 && d.getUTCMinutes() === 0) return md;
  return hm;
}

function tooltipTime(t) {
  return new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.000Z$/, 'Z').replace(/(\.\d+)Z$/, '$1Z');
}

// lowerBound returns the first index whose timestamp is >= t.
function lowerBound(points, t) {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// nearestIndex returns the index of the timestamp closest to t.
function nearestIndex(times, t) {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && (lo === times.length || t - times[lo - 1] < times[lo] - t)) lo--;
  return lo;
}

// valueAt finds a series' value at exactly time t (within tolerance).
function valueAt(points, t, tol) {
  const i = lowerBound(points, t - tol);
  if (i < points.length && Math.abs(points[i][0] - t) <= tol) return points[i][1];
  return undefined;
}

function normalise(series) {
  return (series || []).map((x, i) => {
    const pts = [];
    for (const p of x.points || []) {
      const t = Number(p[0]);
      const v = typeof p[1] === 'number' ? p[1] : Number(p[1]);
      if (isFinite(t)) pts.push([t, v]);
    }
    pts.sort((a, b) => a[0] - b[0]);
    return {name: String(x.name ?? ''), labels: x.labels || {}, points: pts, index: i};
  });
}

function inferStep(series) {
  const diffs = [];
  for (const x of series) {
    for (let i = 1; i < x.points.length && diffs.length < 2000; i++) {
      const d = x.points[i][0] - x.points[i - 1][0];
      if (d > 0) diffs.push(d);
    }
  }
  if (!diffs.length) return 0;
  diffs.sort((a, b) => a - b);
  return diffs[0];
}

let chartSeq = 0;

// The chart's stylesheet is loaded by the chart itself, once, so that any
// page using it gets it.
function loadStyle() {
  const href = '/ui/assets/css/chart.css';
  if (!document.querySelector(`link[href="${href}"]`)) document.head.append(h('link', {rel: 'stylesheet', href}));
}

// renderChart draws opts.series into container (clearing it) and returns
// a function that stops following the container's size.
//   opts: {series: [{name, labels, points: [[t, v], …]}], kind: 'line'|'bar',
//          start, end, step, exemplars: [{t, v, traceID, labels, seriesIndex}],
//          onExemplar(ex), height, unit, className}
export function renderChart(container, opts) {
  loadStyle();
  const o = opts || {};
  const kind = o.kind === 'bar' ? 'bar' : 'line';
  const series = normalise(o.series);
  const step = Number(o.step) > 0 ? Number(o.step) : inferStep(series);
  const height = Number(o.height) > 0 ? Number(o.height) : 260;
  const unit = o.unit || '';
  const exemplars = (o.exemplars || []).filter((e) => isFinite(Number(e.t)) && isFinite(Number(e.v)));
  const hidden = new Set();
  const id = 'chart' + (++chartSeq);

  let tStart = Number(o.start);
  let tEnd = Number(o.end);
  if (!isFinite(tStart) || !isFinite(tEnd) || !(tEnd > tStart)) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of series) {
      if (x.points.length) {
        lo = Math.min(lo, x.points[0][0]);
        hi = Math.max(hi, x.points[x.points.length - 1][0]);
      }
    }
    if (!isFinite(lo)) { hi = Date.now() / 1000; lo = hi - 3600; }
    if (hi <= lo) { lo -= Math.max(step, 60); hi += Math.max(step, 60); }
    tStart = lo;
    tEnd = hi;
  }

  // All timestamps of all series, sorted and unique: the hover snaps to them.
  const timeSet = new Set();
  for (const x of series) for (const p of x.points) timeSet.add(p[0]);
  const times = Float64Array.from(timeSet).sort();

  const wrap = h('div', {class: ['chart-wrap', o.className ? o.className + '-wrap' : null]});
  const legend = h('div', {class: 'legend', role: 'list'});
  const tooltip = h('div', {class: 'chart-tooltip', role: 'status', hidden: true});
  clear(container);
  container.append(wrap, legend);

  let svg = null;
  let geom = null;
  let lastWidth = -1;
  let frame = 0;
  let hoverX = null;
  let hoverY = 0;

  function draw() {
    lastWidth = container.clientWidth || 0;
    const width = Math.max(200, lastWidth || 800);
    const visible = series.filter((x) => !hidden.has(x.index));

    // Value range over the visible series (stacked totals for bars).
    let vmin = Infinity;
    let vmax = -Infinity;
    const stacks = new Map();
    if (kind === 'bar') {
      for (const x of visible) {
        for (const [t, v] of x.points) if (v > 0 && isFinite(v)) stacks.set(t, (stacks.get(t) || 0) + v);
      }
      vmin = 0;
      vmax = Math.max(0, ...stacks.values());
    } else {
      for (const x of visible) {
        for (const p of x.points) {
          if (isFinite(p[1])) { if (p[1] < vmin) vmin = p[1]; if (p[1] > vmax) vmax = p[1]; }
        }
      }
      for (const e of exemplars) {
        if (e.seriesIndex >= 0 && hidden.has(e.seriesIndex)) continue;
        const v = Number(e.v);
        if (v < vmin) vmin = v;
        if (v > vmax) vmax = v;
      }
    }
    if (!isFinite(vmin)) { vmin = 0; vmax = 1; }
    if (vmax === vmin) {
      const pad = vmin === 0 ? 1 : Math.abs(vmin) * 0.1;
      vmin -= pad;
      vmax += pad;
      if (kind === 'bar') vmin = 0;
    }
    // Extend the domain to whole ticks so the grid frames the data.
    const ystep = niceStep(vmin, vmax, Math.max(2, Math.floor(height / 50)));
    const y0 = Math.floor(vmin / ystep + 1e-9) * ystep;
    const y1 = Math.ceil(vmax / ystep - 1e-9) * ystep;
    const yTicks = [];
    for (let v = y0; v <= y1 + ystep * 1e-6; v += ystep) yTicks.push(Math.abs(v) < ystep * 1e-9 ? 0 : Number(v.toPrecision(12)));
    const yLabels = yTicks.map((v) => formatValue(v, 3, unit));
    const left = Math.max(...yLabels.map((l) => l.length), 1) * 7 + 14;
    const m = {top: 8, right: 14, bottom: 24, left};
    const pw = Math.max(10, width - m.left - m.right);
    const ph = Math.max(10, height - m.top - m.bottom);
    const x = (t) => m.left + ((t - tStart) / (tEnd - tStart)) * pw;
    const y = (v) => m.top + ph - ((v - y0) / (y1 - y0)) * ph;
    const r1 = (n) => Math.round(n * 10) / 10;
    geom = {m, pw, ph, x, y, y0, y1, width, visible};

    const grid = s('g', {class: 'grid'});
    const axes = s('g', {class: 'axis'});
    yTicks.forEach((v, i) => {
      const yy = r1(y(v));
      grid.append(s('line', {x1: m.left, x2: m.left + pw, y1: yy, y2: yy}));
      axes.append(s('text', {x: m.left - 6, y: yy, 'text-anchor': 'end', 'dominant-baseline': 'middle'}, yLabels[i]));
    });
    const {ticks, interval} = timeTicks(tStart, tEnd, pw);
    for (const t of ticks) {
      const xx = r1(x(t));
      grid.append(s('line', {x1: xx, x2: xx, y1: m.top, y2: m.top + ph}));
      axes.append(s('text', {x: xx, y: m.top + ph + 16, 'text-anchor': 'middle'}, timeLabel(t, interval, tEnd - tStart)));
    }
    axes.append(s('line', {class: 'axis-line', x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph}));

    const plot = s('g', {class: 'plot', 'clip-path': `url(#${id}-clip)`});
    if (kind === 'line') {
      const gap = step > 0 ? step * 1.5 : Infinity;
      for (const sr of series) {
        let d = '';
        let prevT = null;
        let run = 0;
        for (const [t, v] of sr.points) {
          if (!isFinite(v)) { prevT = null; continue; }
          const cont = prevT !== null && t - prevT <= gap;
          if (!cont && run === 1) d += 'h0'; // a lone point: a dot (round caps)
          d += (cont ? 'L' : 'M') + r1(x(t)) + ' ' + r1(y(v));
          run = cont ? run + 1 : 1;
          prevT = t;
        }
        if (run === 1) d += 'h0';
        plot.append(s('path', {
          class: ['series-line', hidden.has(sr.index) ? 'hidden' : null],
          d: d || 'M0 0', stroke: colour(sr.index), dataset: {series: sr.index},
        }));
      }
    } else {
      const bw = Math.max(1, (step > 0 ? step / (tEnd - tStart) * pw : pw / Math.max(1, times.length)) * 0.8);
      const base = new Map();
      for (const sr of visible) {
        for (const [t, v] of sr.points) {
          if (!(v > 0) || !isFinite(v)) continue;
          const b = base.get(t) || 0;
          const top = y(b + v);
          const bottom = y(b);
          base.set(t, b + v);
          plot.append(s('rect', {
            class: 'bar', x: r1(x(t) - bw / 2), y: r1(top), width: r1(bw), height: r1(Math.max(1, bottom - top)),
            fill: colour(sr.index), dataset: {series: sr.index},
          }));
        }
      }
    }

    const marks = s('g', {class: 'exemplars', 'clip-path': `url(#${id}-clip)`});
    for (const e of exemplars) {
      if (e.seriesIndex >= 0 && hidden.has(e.seriesIndex)) continue;
      const c = s('circle', {
        class: 'exemplar', cx: r1(x(Number(e.t))), cy: r1(y(Number(e.v))), r: 4,
        fill: e.seriesIndex >= 0 ? colour(e.seriesIndex) : '#444', tabindex: e.traceID ? 0 : null,
        on: {
          click: (ev) => { ev.stopPropagation(); if (o.onExemplar) o.onExemplar(e); },
          keydown: (ev) => { if (ev.key === 'Enter' && o.onExemplar) o.onExemplar(e); },
        },
      }, s('title', null, e.traceID ? String(e.traceID) : 'exemplar ' + formatValue(Number(e.v), 4, unit)));
      marks.append(c);
    }

    const cross = s('line', {class: 'crosshair', x1: 0, x2: 0, y1: m.top, y2: m.top + ph, visibility: 'hidden'});
    const dot = s('circle', {class: 'hover-dot', r: 3.5, cx: 0, cy: 0, visibility: 'hidden'});
    const empty = times.length ? null : s('text', {class: 'no-data', x: m.left + pw / 2, y: m.top + ph / 2, 'text-anchor': 'middle'}, 'no data points');

    const next = s('svg', {
      class: ['chart', o.className], width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-label': kind === 'bar' ? 'bar chart' : `line chart with ${series.length} series`,
      dataset: {seriesCount: series.length},
    },
    s('defs', null, s('clipPath', {id: id + '-clip'}, s('rect', {x: m.left, y: m.top - 4, width: pw, height: ph + 4}))),
    grid, axes, plot, cross, dot, marks, empty);
    next.addEventListener('mousemove', onMove);
    next.addEventListener('mouseleave', onLeave);
    if (svg) svg.replaceWith(next);
    else wrap.append(next, tooltip);
    svg = next;
    geom.cross = cross;
    geom.dot = dot;
    if (hoverX !== null) showHover();
  }

  function onMove(ev) {
    const r = svg.getBoundingClientRect();
    hoverX = ev.clientX - r.left;
    hoverY = ev.clientY - r.top;
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; showHover(); });
  }

  function onLeave() {
    hoverX = null;
    if (frame) { cancelAnimationFrame(frame); frame = 0; }
    tooltip.hidden = true;
    if (geom) {
      geom.cross.setAttribute('visibility', 'hidden');
      geom.dot.setAttribute('visibility', 'hidden');
    }
  }

  function showHover() {
    const g = geom;
    if (hoverX === null || !g || !times.length || hoverX < g.m.left || hoverX > g.m.left + g.pw) {
      tooltip.hidden = true;
      if (g) { g.cross.setAttribute('visibility', 'hidden'); g.dot.setAttribute('visibility', 'hidden'); }
      return;
    }
    const t = tStart + ((hoverX - g.m.left) / g.pw) * (tEnd - tStart);
    const ts = times[nearestIndex(times, t)];
    const tol = step > 0 ? step / 2 : 0;
    const rows = [];
    for (const sr of g.visible) {
      const v = valueAt(sr.points, ts, tol);
      if (v !== undefined) rows.push({sr, v});
    }
    const xx = g.x(ts);
    g.cross.setAttribute('x1', xx);
    g.cross.setAttribute('x2', xx);
    g.cross.setAttribute('visibility', 'visible');
    // The series nearest to the pointer gets a dot and comes first.
    let near = null;
    if (kind === 'line') {
      for (const r of rows) {
        if (!isFinite(r.v)) continue;
        const dy = Math.abs(g.y(r.v) - hoverY);
        if (!near || dy < near.dy) near = {r, dy};
      }
    }
    if (near) {
      g.dot.setAttribute('cx', xx);
      g.dot.setAttribute('cy', g.y(near.r.v));
      g.dot.setAttribute('fill', colour(near.r.sr.index));
      g.dot.setAttribute('visibility', 'visible');
    } else {
      g.dot.setAttribute('visibility', 'hidden');
    }
    rows.sort((a, b) => (b.v - a.v) || 0);
    if (near) {
      rows.splice(rows.indexOf(near.r), 1);
      rows.unshift(near.r);
    }
    const MAX = 15;
    replace(tooltip,
      h('div', {class: 'tt-time'}, tooltipTime(ts)),
      rows.slice(0, MAX).map((r) => h('div', {class: ['tt-row', near && r === near.r ? 'near' : null]},
        swatch(r.sr.index), h('span', {class: 'tt-name'}, r.sr.name || '{}'),
        h('span', {class: 'tt-value'}, formatValue(r.v, 4, unit)))),
      rows.length > MAX ? h('div', {class: 'muted'}, `… ${rows.length - MAX} more`) : null,
      rows.length ? null : h('div', {class: 'muted'}, 'no value'));
    tooltip.hidden = false;
    // Keep the tooltip inside the chart: flip it to the left of the cursor
    // past the middle.
    const tw = tooltip.offsetWidth;
    const left = xx + 14 + tw > g.width ? Math.max(0, xx - 14 - tw) : xx + 14;
    tooltip.style.left = left + 'px';
    tooltip.style.top = Math.max(0, Math.min(hoverY + 10, height - 40)) + 'px';
  }

  function swatch(i) {
    return h('span', {class: 'swatch', style: {'background-color': colour(i)}});
  }

  function toggle(i, only) {
    if (only) {
      const alone = hidden.size === series.length - 1 && !hidden.has(i);
      hidden.clear();
      if (!alone) series.forEach((x) => { if (x.index !== i) hidden.add(x.index); });
    } else if (hidden.has(i)) hidden.delete(i);
    else hidden.add(i);
    for (const item of legend.children) item.classList.toggle('off', hidden.has(Number(item.dataset.series)));
    draw();
  }

  if (series.length && !(kind === 'bar' && series.length === 1 && !series[0].name)) {
    for (const sr of series) {
      legend.append(h('div', {
        class: 'legend-item', role: 'listitem', tabindex: 0, dataset: {series: sr.index},
        title: 'click: show/hide · shift+click: show only this',
        on: {
          click: (ev) => toggle(sr.index, ev.shiftKey),
          keydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); toggle(sr.index, ev.shiftKey); } },
        },
      }, swatch(sr.index), h('span', {class: 'legend-name'}, sr.name || '{}')));
    }
  }

  draw();

  let ro = null;
  let resizeFrame = 0;
  if (typeof ResizeObserver !== 'undefined') {
    ro = new ResizeObserver(() => {
      if ((container.clientWidth || 0) === lastWidth || resizeFrame) return;
      resizeFrame = requestAnimationFrame(() => { resizeFrame = 0; if ((container.clientWidth || 0) !== lastWidth) draw(); });
    });
    ro.observe(container);
  }
  return function dispose() {
    if (ro) ro.disconnect();
    ro = null;
    if (frame) cancelAnimationFrame(frame);
    if (resizeFrame) cancelAnimationFrame(resizeFrame);
    frame = resizeFrame = 0;
  };
}
