// The dashboard shell: navigation, then the page named by the path. Each
// page module exports render(root, ctx) and may return a cleanup function
// (closing a live tail, for one) called before the page renders again.
//
// ctx.ready() marks the page's first results as drawn by setting
// <html data-ready="1">: browser tests and people with scripts wait on it.

import {h, replace, errorBox} from './dom.js';
import {getJSON} from './api.js';

const PAGES = [
  ['metrics', 'Metrics'],
  ['logs', 'Logs'],
  ['traces', 'Traces'],
  ['alerts', 'Alerts'],
  ['targets', 'Targets'],
  ['cluster', 'Cluster'],
];

let cleanup = null;
let controller = null;

function current() {
  const name = location.pathname.replace(/^\/ui\//, '').replace(/\/$/, '');
  return PAGES.some(([p]) => p === name) ? name : 'metrics';
}

function drawNav(page) {
  const nav = document.getElementById('nav');
  replace(nav, PAGES.map(([p, title]) =>
    h('a', {href: '/ui/' + p, class: p === page ? 'active' : null, 'aria-current': p === page ? 'page' : null}, title)));
}

async function drawBuild() {
  try {
    const b = await getJSON('/api/v1/status/buildinfo');
    document.getElementById('build').textContent = b.version ? 'v' + b.version : '';
  } catch { /* the query role may not run here */ }
}

async function renderPage() {
  const page = current();
  document.documentElement.dataset.page = page;
  document.documentElement.dataset.ready = '0';
  if (cleanup) {
    try { cleanup(); } catch (e) { console.warn('cleanup', e); }
    cleanup = null;
  }
  if (controller) controller.abort();
  controller = new AbortController();
  const root = document.getElementById('page');
  replace(root);
  const title = PAGES.find(([p]) => p === page)[1];
  document.title = title + ' · Pharos';
  const ctx = {
    signal: controller.signal,
    ready() { document.documentElement.dataset.ready = '1'; },
    rerender: renderPage,
  };
  try {
    const mod = await import('./pages/' + page + '.js');
    cleanup = (await mod.render(root, ctx)) || null;
  } catch (e) {
    if (e && e.name === 'AbortError') return;
    root.append(errorBox(e));
    ctx.ready();
  }
}

window.addEventListener('popstate', renderPage);
drawNav(current());
drawBuild();
renderPage();
