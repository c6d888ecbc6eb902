// DOM construction that never parses markup: every piece of data becomes a
// text node or an attribute value, so a log line, label value or span
// attribute can not turn into an element or a handler. Nothing in the
// dashboard uses innerHTML, insertAdjacentHTML or document.write.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Attributes that could carry script (event handlers, javascript: URLs in
// href/src/xlink:href, style) are refused; handlers go through `on`.
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      continue;
    }
    if (k === 'class') { el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : String(v)); continue; }
    if (k === 'dataset') { for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv); continue; }
    if (k === 'style') { for (const [sk, sv] of Object.entries(v)) el.style.setProperty(sk, String(sv)); continue; }
    if (k === 'value' && 'value' in el) { el.value = String(v); continue; }
    if (k === 'checked' || k === 'selected' || k === 'disabled') { el[k] = Boolean(v); continue; }
    const name = k.toLowerCase();
    if (name.startsWith('on')) throw new Error('dom: event handler attributes are not allowed: ' + k);
    if ((name === 'href' || name === 'src' || name === 'xlink:href' || name === 'action') && !safeURL(String(v))) {
      throw new Error('dom: unsafe URL in ' + k);
    }
    el.setAttribute(k, v === true ? '' : String(v));
  }
}

// safeURL allows same-origin paths and http(s) URLs only.
export function safeURL(u) {
  if (u.startsWith('/') && !u.startsWith('//')) return true;
  if (u.startsWith('#') || u.startsWith('?')) return true;
  try {
    const p = new URL(u, location.href);
    return p.protocol === 'http:' || p.protocol === 'https:';
  } catch {
    return false;
  }
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) { append(el, c); continue; }
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// h builds an HTML element: h('a', {href: '/x', class: 'y'}, 'text', child).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// s builds an SVG element; text children become text nodes as with h.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// table builds a <table> from column headers and rows of cells (strings or
// nodes); rowAttrs(row, i) gives each <tr>'s attributes.
export function table(headers, rows, rowAttrs) {
  return h('table', {class: 'grid'},
    h('thead', null, h('tr', null, headers.map((x) => h('th', null, x)))),
    h('tbody', null, rows.map((r, i) => h('tr', rowAttrs ? rowAttrs(r, i) : null, r.map((c) => h('td', null, c))))));
}

// labelChips renders a label set as name="value" chips, sorted by name.
export function labelChips(labels, skip) {
  const names = Object.keys(labels || {}).filter((n) => !(skip && skip.includes(n))).sort();
  return h('span', {class: 'labels'}, names.map((n) => h('span', {class: 'chip'}, n, '=', JSON.stringify(String(labels[n])))));
}

export function errorBox(err) {
  return h('div', {class: 'error', role: 'alert'}, String(err && err.message ? err.message : err));
}
