// Targets: what this process's agent scrapes (Prometheus's
// /api/v1/targets) and the files it tails, with how far each is read and
// acknowledged and what was lost.

import {h, replace, table, labelChips, errorBox} from '../dom.js';
import {getJSON, APIError} from '../api.js';
import {params, update} from '../state.js';
import {since, formatTime, formatDuration} from '../time.js';

function healthBadge(health) {
  return h('span', {class: ['badge', health]}, health || 'unknown');
}

function timeCell(iso) {
  if (!iso || iso.startsWith('0001-')) return h('span', {class: 'muted'}, 'never');
  const t = Date.parse(iso) / 1000;
  return h('span', {title: formatTime(t)}, since(t));
}

function bytes(n) {
  if (!isFinite(n)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}

// absent reads a 404 as "this process does not run that part".
async function optional(path, signal) {
  try {
    return await getJSON(path, null, {signal});
  } catch (e) {
    if (e instanceof APIError && e.status === 404) return null;
    throw e;
  }
}

function targetsSection(data, filter) {
  if (!data) return h('p', {class: 'muted'}, 'No scraper in this process: targets are listed by the agents (their own /api/v1/targets).');
  const pools = new Map();
  for (const t of data.activeTargets || []) {
    const text = (t.scrapeUrl + ' ' + JSON.stringify(t.labels)).toLowerCase();
    if (filter && !text.includes(filter)) continue;
    if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
    pools.get(t.scrapePool).push(t);
  }
  const out = [];
  const names = [...pools.keys()].sort();
  if (names.length === 0) out.push(h('p', {class: 'muted'}, 'No active targets.'));
  for (const name of names) {
    const ts = pools.get(name).sort((a, b) => a.scrapeUrl.localeCompare(b.scrapeUrl));
    const up = ts.filter((t) => t.health === 'up').length;
    out.push(h('h2', null, name, ' ', h('span', {class: 'muted'}, `(${up}/${ts.length} up)`)));
    out.push(table(['Endpoint', 'State', 'Labels', 'Last scrape', 'Duration', 'Error'],
      ts.map((t) => [
        h('span', {class: 'mono'}, t.scrapeUrl),
        healthBadge(t.health),
        labelChips(t.labels),
        timeCell(t.lastScrape),
        t.lastScrapeDuration ? formatDuration(t.lastScrapeDuration) : '',
        t.lastError ? h('span', {class: 'warning mono'}, t.lastError) : '',
      ]), () => ({class: 'target-row'})));
  }
  const dropped = Object.values(data.droppedTargetCounts || {}).reduce((a, b) => a + b, 0);
  if (dropped) out.push(h('p', {class: 'muted'}, `${dropped} discovered targets dropped by relabelling.`));
  return out;
}

function filesSection(data, filter) {
  if (!data) return h('p', {class: 'muted'}, 'No log tailing in this process (-agent.tail.enabled).');
  const files = (data.files || []).filter((f) => !filter || (f.path + ' ' + JSON.stringify(f.labels)).toLowerCase().includes(filter));
  if (files.length === 0) return h('p', {class: 'muted'}, 'No files tailed.');
  return table(['File', 'State', 'Labels', 'Size', 'Read', 'Acknowledged', 'Behind', 'Lost', 'Last read'],
    files.map((f) => {
      const lost = Object.entries(f.lostBytes || {}).filter(([, n]) => n > 0);
      return [
        h('span', {class: 'mono', title: f.source && f.source !== f.path ? 'source: ' + f.source : null}, f.path),
        h('span', {class: ['badge', f.state === 'gone' ? 'warn' : 'ok']}, f.state || ''),
        labelChips(f.labels),
        bytes(f.size),
        bytes(f.readOffset),
        bytes(f.ackedOffset),
        bytes(Math.max(0, (f.size || 0) - (f.ackedOffset || 0))),
        lost.length ? h('span', {class: 'warning'}, lost.map(([r, n]) => `${r}: ${bytes(n)}`).join(', ')) : '0',
        timeCell(f.lastRead),
      ];
    }), () => ({class: 'file-row'}));
}

export async function render(root, ctx) {
  const p = params();
  const filterInput = h('input', {type: 'search', placeholder: 'Filter by URL, path or label', value: p.get('filter') || '', class: 'grow'});
  const body = h('div');
  const draw = async () => {
    const filter = filterInput.value.trim().toLowerCase();
    update({filter: filterInput.value.trim()});
    try {
      const [targets, tail] = await Promise.all([
        optional('/api/v1/targets', ctx.signal),
        optional('/api/v1/status/tail', ctx.signal),
      ]);
      replace(body,
        h('h1', null, 'Scrape targets'), targetsSection(targets, filter),
        h('h1', {class: 'section'}, 'Tailed files'), filesSection(tail, filter));
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(body, errorBox(e));
    }
    ctx.ready();
  };
  filterInput.addEventListener('input', () => draw());
  root.append(h('div', {class: 'row panel'}, filterInput, h('button', {class: 'secondary', on: {click: draw}}, 'Refresh')), body);
  await draw();
  const timer = setInterval(draw, 15000);
  return () => clearInterval(timer);
}

export {bytes};
