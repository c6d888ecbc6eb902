// Alerts: rule groups and their rules, firing and pending alerts, and
// notification delivery per receiver. URL state: filter (text), state
// (comma-separated firing,pending,inactive; absent = all). Refreshes every
// 15 seconds.

import {h, replace, errorBox, labelChips, table} from '../dom.js';
import {getJSON} from '../api.js';
import {params, update, link} from '../state.js';
import {since, formatTime, formatDuration} from '../time.js';

const STATES = ['firing', 'pending', 'inactive'];
const REFRESH_MS = 15000;
const MAX_FAILURES = 50;

function loadStyle(href) {
  if (!document.querySelector(`link[href="${href}"]`)) document.head.append(h('link', {rel: 'stylesheet', href}));
}

// toSeconds reads an RFC 3339 time or Unix seconds; Go's zero time and
// empty strings are "never".
function toSeconds(v) {
  if (v === undefined || v === null || v === '') return NaN;
  if (typeof v === 'number') return v > 0 ? v : NaN;
  if (String(v).startsWith('0001-01-01')) return NaN;
  const ms = Date.parse(v);
  return isNaN(ms) ? NaN : ms / 1000;
}

// ago shows "3m ago" with the absolute time as the title.
function ago(v) {
  const t = toSeconds(v);
  if (!isFinite(t)) return h('span', {class: 'muted'}, 'never');
  return h('span', {class: 'time', title: formatTime(t)}, since(t));
}

function badge(text, cls) {
  return h('span', {class: ['badge', cls || text]}, text || 'unknown');
}

function isNotFound(e) {
  return e && e.status === 404;
}

// settle turns a promise into {data} or {err} so one failing API leaves
// the other sections intact.
function settle(p) {
  return p.then((data) => ({data}), (err) => ({err}));
}

export async function render(root, ctx) {
  loadStyle('/ui/assets/css/alerts.css');
  const p = params();
  let filter = p.get('filter') || '';
  const stateParam = p.getAll('state').flatMap((x) => x.split(',')).map((x) => x.trim()).filter((x) => STATES.includes(x));
  const shown = new Set(stateParam.length ? stateParam : STATES);
  let last = null; // the last fetched {rules, alerts, notif}
  let timer = 0;
  let inflight = null;

  const filterIn = h('input', {type: 'search', class: 'filter grow', value: filter, placeholder: 'Filter by name, label, query…',
    'aria-label': 'Filter'});
  const boxes = STATES.map((st) => h('input', {type: 'checkbox', class: 'state-' + st, checked: shown.has(st), value: st}));
  const updated = h('span', {class: 'muted updated'});
  const refreshBtn = h('button', {type: 'button', class: 'secondary refresh', on: {click: () => refresh(true)}}, 'Refresh');
  const alertsEl = h('section', {class: 'alerts-section'});
  const rulesEl = h('section', {class: 'rules-section'});
  const notifEl = h('section', {class: 'notifications-section'});

  filterIn.addEventListener('input', () => { filter = filterIn.value; writeURL(); draw(); });
  boxes.forEach((b) => b.addEventListener('change', () => {
    if (b.checked) shown.add(b.value);
    else shown.delete(b.value);
    writeURL();
    draw();
  }));

  replace(root,
    h('div', {class: 'panel alerts-toolbar'},
      h('div', {class: 'row'},
        filterIn,
        boxes.map((b) => h('label', {class: 'state-box'}, b, ' ', badge(b.value))),
        refreshBtn, updated)),
    alertsEl, rulesEl, notifEl);

  function writeURL() {
    const st = STATES.filter((x) => shown.has(x));
    update({filter: filter.trim(), state: st.length === STATES.length ? '' : st.join(',')}, false);
  }

  // matches: every word of the filter occurs in one of the texts.
  function matches(texts) {
    const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return true;
    const hay = texts.filter((x) => x !== undefined && x !== null).join('\n').toLowerCase();
    return words.every((w) => hay.includes(w));
  }

  function labelTexts(l) {
    return Object.entries(l || {}).map(([k, v]) => `${k}=${v} ${k}="${v}"`);
  }

  async function refresh(manual) {
    if (inflight) inflight.abort();
    const ctl = new AbortController();
    inflight = ctl;
    const signal = AbortSignal.any ? AbortSignal.any([ctx.signal, ctl.signal]) : ctl.signal;
    if (manual) document.documentElement.dataset.ready = '0';
    refreshBtn.disabled = true;
    const [rules, alerts, notif] = await Promise.all([
      settle(getJSON('/api/v1/rules', null, {signal})),
      settle(getJSON('/api/v1/alerts', null, {signal})),
      settle(getJSON('/api/v1/status/notifications', null, {signal})),
    ]);
    if (signal.aborted) return;
    inflight = null;
    refreshBtn.disabled = false;
    last = {rules, alerts, notif};
    updated.textContent = 'updated ' + new Date().toISOString().slice(11, 19) + 'Z';
    draw();
    ctx.ready();
  }

  function draw() {
    if (!last) return;
    drawAlerts(last.alerts);
    drawRules(last.rules);
    drawNotifications(last.notif);
  }

  function drawAlerts(res) {
    const title = h('h2', null, 'Firing and pending alerts');
    if (res.err) {
      replace(alertsEl, title, isNotFound(res.err)
        ? h('p', {class: 'muted'}, 'No rule evaluation in this process.')
        : errorBox(res.err));
      return;
    }
    const all = (res.data && res.data.alerts) || [];
    const counts = {firing: 0, pending: 0};
    all.forEach((a) => { if (a.state in counts) counts[a.state]++; });
    const list = all.filter((a) => shown.has(a.state) && matches([a.state, ...labelTexts(a.labels), ...labelTexts(a.annotations)]))
      .sort((a, b) => (a.state === b.state ? 0 : a.state === 'firing' ? -1 : 1) ||
        String(a.labels?.alertname).localeCompare(String(b.labels?.alertname)) || toSeconds(a.activeAt) - toSeconds(b.activeAt));
    title.append(' ', h('span', {class: 'muted count'}, `(${counts.firing} firing, ${counts.pending} pending)`));
    const rows = list.map((a) => [
      badge(a.state),
      h('span', {class: 'alertname'}, String(a.labels?.alertname ?? '')),
      labelChips(a.labels, ['alertname']),
      annotations(a.annotations),
      ago(a.activeAt),
      h('span', {class: 'mono'}, String(a.value ?? '')),
    ]);
    replace(alertsEl, title, rows.length
      ? table(['State', 'Alert', 'Labels', 'Annotations', 'Active since', 'Value'], rows, () => ({class: 'alert-row'}))
      : h('p', {class: 'muted empty'}, all.length ? 'No alert matches the filter.' : 'No alert is firing or pending.'));
  }

  function drawRules(res) {
    const title = h('h2', null, 'Rules');
    if (res.err) {
      replace(rulesEl, title, isNotFound(res.err)
        ? h('p', {class: 'muted'}, 'No rule evaluation in this process (rules run where -rules.files or -rules.log-files is set).')
        : errorBox(res.err));
      return;
    }
    const groups = (res.data && res.data.groups) || [];
    if (!groups.length) {
      replace(rulesEl, title, h('p', {class: 'muted empty'}, 'No rule groups are loaded.'));
      return;
    }
    const out = [];
    let total = 0;
    for (const g of groups) {
      const rules = (g.rules || []).filter((r) =>
        (r.type !== 'alerting' || shown.has(r.state)) &&
        matches([g.name, g.file, r.name, r.query, r.type, r.state, r.health, r.lastError, ...labelTexts(r.labels), ...labelTexts(r.annotations)]));
      if (!rules.length) continue;
      total += rules.length;
      out.push(h('div', {class: 'panel rule-group'},
        h('div', {class: 'group-head row'},
          h('h3', null, g.name),
          h('span', {class: 'muted mono'}, g.file || ''),
          h('span', {class: 'grow'}),
          h('span', {class: 'muted'}, `every ${formatDuration(g.interval)}`, ' · last evaluated ', ago(g.lastEvaluation),
            isFinite(g.evaluationTime) ? ` in ${formatDuration(g.evaluationTime)}` : '')),
        table(['Name', 'Type', 'State', 'Health', 'Last evaluation', 'Query', 'Labels', 'Error'], rules.map((r) => [
          h('span', {class: 'rule-name'}, r.name),
          h('span', {class: 'muted'}, r.type),
          r.type === 'alerting'
            ? [badge(r.state), r.duration ? h('span', {class: 'muted for'}, ` for ${formatDuration(r.duration)}`) : null]
            : h('span', {class: 'muted'}, '—'),
          badge(r.health, r.health === 'ok' ? 'ok' : r.health === 'err' ? 'err' : 'unknown'),
          ago(r.lastEvaluation),
          h('a', {class: 'mono query-link', href: link('metrics', {q: r.query}), title: 'Graph this expression'}, r.query),
          labelChips(r.labels),
          r.lastError ? h('span', {class: 'error-text'}, r.lastError) : null,
        ]), () => ({class: 'rule-row'}))));
    }
    replace(rulesEl, title, out.length ? out : h('p', {class: 'muted empty'}, 'No rule matches the filter.'));
    if (total) title.append(' ', h('span', {class: 'muted count'}, `(${total})`));
  }

  function drawNotifications(res) {
    const title = h('h2', null, 'Notification delivery');
    if (res.err) {
      replace(notifEl, title, isNotFound(res.err)
        ? h('p', {class: 'muted'}, 'No notifier in this process.')
        : errorBox(res.err));
      return;
    }
    const d = res.data || {};
    const receivers = d.receivers || [];
    const failures = d.failures || [];
    const ams = d.alertmanagers || [];
    const parts = [title];
    if (receivers.length) {
      parts.push(table(['Receiver', 'Sent', 'Failed', 'Queued', 'Breaker', 'Last success', 'Last failure', 'Last error'],
        receivers.map((r) => [
          h('span', {class: 'receiver-name'}, r.name),
          String(r.sent ?? 0),
          h('span', {class: r.failed ? 'bad' : null}, String(r.failed ?? 0)),
          String(r.queued ?? 0),
          badge(r.breaker || 'unknown', r.breaker === 'closed' ? 'ok' : r.breaker === 'open' ? 'err' : 'warn'),
          ago(r.lastSuccess),
          ago(r.lastFailure),
          r.lastError ? h('span', {class: 'error-text'}, r.lastError) : null,
        ]), () => ({class: 'receiver-row'})));
    } else if (!ams.length) {
      parts.push(h('p', {class: 'muted empty'}, 'No receivers are configured.'));
    }
    if (ams.length) {
      parts.push(h('h3', null, 'Alertmanagers'), table(['URL', 'Sent', 'Errors', 'Dropped', 'Queued'], ams.map((a) => [
        h('span', {class: 'mono'}, a.url), String(a.sent ?? 0), String(a.errors ?? 0), String(a.dropped ?? 0), String(a.queued ?? 0),
      ]), () => ({class: 'alertmanager-row'})));
    }
    if (failures.length) {
      const recent = failures.slice().sort((a, b) => toSeconds(b.time) - toSeconds(a.time)).slice(0, MAX_FAILURES);
      parts.push(h('h3', null, 'Recent failures ', h('span', {class: 'muted count'},
        failures.length > recent.length ? `(latest ${recent.length} of ${failures.length})` : `(${failures.length})`)),
      table(['Time', 'Receiver', 'Group', 'Attempts', 'Alerts', 'Error'],
        recent.map((f) => [
          ago(f.time),
          f.receiver,
          h('span', {class: 'mono'}, f.groupKey || ''),
          String(f.attempts ?? ''),
          Array.isArray(f.alerts) ? String(f.alerts.length) : String(f.alerts ?? ''),
          h('span', {class: 'error-text'}, f.error || ''),
        ]), () => ({class: 'failure-row'})));
    }
    replace(notifEl, parts);
  }

  function schedule() {
    timer = setTimeout(async () => {
      if (!document.hidden) await refresh(false);
      if (!ctx.signal.aborted) schedule();
    }, REFRESH_MS);
  }

  await refresh(false);
  schedule();
  return () => {
    clearTimeout(timer);
    if (inflight) inflight.abort();
  };
}

// annotations shows summary and description first, then the others.
function annotations(a) {
  const ann = a || {};
  const rest = Object.keys(ann).filter((k) => k !== 'summary' && k !== 'description').sort();
  return h('div', {class: 'annotations'},
    ann.summary ? h('div', {class: 'summary'}, ann.summary) : null,
    ann.description ? h('div', {class: 'description muted'}, ann.description) : null,
    rest.map((k) => h('div', {class: 'annotation'}, h('span', {class: 'muted'}, k + ': '), ann[k])));
}
