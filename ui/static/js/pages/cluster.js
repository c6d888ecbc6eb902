// Cluster: the ring's members, who owns which partition, how far behind
// each consumer is, the JetStream streams, and the agents' spools. The
// first four come from /cluster/status; spools cluster-wide from the
// agents' own metrics (pharos_agent_spool_*), which reach the TSDB when
// agents are scraped.

import {h, replace, table, errorBox} from '../dom.js';
import {getJSON, APIError} from '../api.js';
import {since, formatTime} from '../time.js';
import {bytes} from './targets.js';

function badge(text, kind) {
  return h('span', {class: ['badge', kind || text]}, text);
}

function members(st) {
  const ms = (st.members || []).slice().sort((a, b) => a.id.localeCompare(b.id));
  return table(['Member', 'Address', 'State', 'Health', 'Last heartbeat', 'Error'], ms.map((m) => {
    const hb = Date.parse(m.last_heartbeat) / 1000;
    return [
      h('span', {class: 'mono'}, m.id, m.id === st.instance ? h('span', {class: 'muted'}, ' (this process)') : null),
      h('span', {class: 'mono'}, m.addr),
      badge(String(m.state)),
      m.healthy ? badge('healthy', 'ok') : badge('unhealthy'),
      isFinite(hb) ? h('span', {title: formatTime(hb)}, since(hb)) : '',
      m.error ? h('span', {class: 'warning'}, m.error) : '',
    ];
  }), () => ({class: 'member-row'}));
}

function owners(st) {
  const rows = [];
  for (let p = 0; p < st.partitions; p++) {
    const os = (st.owners && st.owners[String(p)]) || [];
    rows.push([String(p), ...Array.from({length: st.replicas}, (_, r) =>
      os[r] ? h('span', {class: 'mono'}, os[r]) : h('span', {class: 'warning'}, 'unowned'))]);
  }
  const heads = ['Partition', ...Array.from({length: st.replicas}, (_, r) => 'Replica ' + r)];
  return table(heads, rows, () => ({class: 'partition-row'}));
}

function consumers(st) {
  const cs = (st.consumers || []).slice().sort((a, b) =>
    (a.signal || '').localeCompare(b.signal || '') || a.partition - b.partition || a.replica - b.replica);
  if (cs.length === 0) return h('p', {class: 'muted'}, 'No consumers reported.');
  return table(['Signal', 'Partition', 'Replica', 'Aggregator', 'Lag (messages)', 'Awaiting ack', 'Error'], cs.map((c) => [
    c.signal || 'metrics', String(c.partition), String(c.replica), h('span', {class: 'mono'}, c.instance || st.instance || ''),
    h('span', {class: c.lag > 0 ? 'warning' : null}, String(c.lag ?? '')),
    c.ackPending === undefined ? '' : String(c.ackPending),
    c.error ? h('span', {class: 'warning'}, c.error) : '',
  ]), () => ({class: 'consumer-row'}));
}

function streams(st) {
  const ss = st.streams || [];
  if (ss.length === 0) return h('p', {class: 'muted'}, 'No stream statistics (this process has no NATS connection).');
  return table(['Stream', 'Subjects', 'Messages', 'Size', 'First seq', 'Last seq', 'Consumers', 'Replicas', 'Leader', 'Error'], ss.map((s) => [
    h('span', {class: 'mono'}, s.name), h('span', {class: 'mono'}, (s.subjects || []).join(' ')),
    String(s.messages ?? ''), bytes(s.bytes), String(s.firstSeq ?? ''), String(s.lastSeq ?? ''),
    String(s.consumers ?? ''), String(s.replicas ?? ''), s.leader || '', s.error ? h('span', {class: 'warning'}, s.error) : '',
  ]), () => ({class: 'stream-row'}));
}

// agentSpools asks the TSDB for every agent's spool size by instance.
async function agentSpools(signal) {
  const [size, records] = await Promise.all([
    getJSON('/api/v1/query', {query: 'sum by (instance, job) (pharos_agent_spool_bytes)'}, {signal}),
    getJSON('/api/v1/query', {query: 'sum by (instance, job) (pharos_agent_spool_records)'}, {signal}),
  ]);
  const key = (m) => (m.job || '') + '/' + (m.instance || '');
  const recs = new Map((records.result || []).map((r) => [key(r.metric), r.value[1]]));
  return (size.result || []).map((r) => ({agent: key(r.metric), bytes: Number(r.value[1]), records: recs.get(key(r.metric)), at: r.value[0]}));
}

function spools(st, fromMetrics) {
  const rows = [];
  for (const s of st.spools || []) {
    rows.push(['this process', s.signal || '', bytes(s.bytes), s.segments === undefined ? '' : String(s.segments), s.limitBytes ? bytes(s.limitBytes) : '']);
  }
  for (const a of fromMetrics || []) {
    rows.push([h('span', {class: 'mono'}, a.agent), 'all', bytes(a.bytes), a.records === undefined ? '' : a.records + ' records', '']);
  }
  if (rows.length === 0) return h('p', {class: 'muted'}, 'No agent spools reported (agents are seen here when their /metrics are scraped).');
  return table(['Agent', 'Signal', 'On disk', 'Segments / records', 'Bound'], rows, () => ({class: 'spool-row'}));
}

export async function render(root, ctx) {
  const body = h('div');
  const draw = async () => {
    let st = null;
    let stErr = null;
    try {
      st = await getJSON('/cluster/status', null, {signal: ctx.signal});
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (!(e instanceof APIError && e.status === 404)) stErr = e;
    }
    let fromMetrics = [];
    let spoolErr = null;
    try {
      fromMetrics = await agentSpools(ctx.signal);
    } catch (e) {
      if (e.name === 'AbortError') return;
      spoolErr = e;
    }
    const out = [];
    if (stErr) out.push(errorBox(stErr));
    if (st) st.replicas = Math.max(1, st.replication_factor || st.replicas || 1);
    if (st && st.members && st.members.length) {
      out.push(h('h1', null, 'Ring members'), members(st));
      out.push(h('h2', null, `Partition owners (${st.partitions} partitions, replication ${st.replicas})`), owners(st));
    } else if (!stErr) {
      out.push(h('h1', null, 'Cluster'), h('p', {class: 'muted'}, 'This process is not in a ring: it runs every role itself (all-in-one).'));
      if (st && st.partitions) out.push(h('h2', null, `Partitions (${st.partitions})`), owners(st));
    }
    const local = st || {};
    out.push(h('h2', null, 'Consumers'), consumers(local));
    out.push(h('h2', null, 'JetStream streams'), streams(local));
    out.push(h('h2', null, 'Agent spools'), spools(local, fromMetrics));
    if (spoolErr) out.push(errorBox(spoolErr));
    replace(body, out);
    ctx.ready();
  };
  root.append(h('div', {class: 'row panel'}, h('span', {class: 'grow muted'}, 'Refreshes every 10 s.'),
    h('button', {class: 'secondary', on: {click: draw}}, 'Refresh')), body);
  await draw();
  const timer = setInterval(draw, 10000);
  return () => clearInterval(timer);
}
