// PromQL autocompletion: metric names, label names of the metric being
// typed, label values, and function names, fetched from the Prometheus API.
//
// The pure part (completionContext, filterCandidates, applyCompletion) has no
// DOM access, so Node can import this module to check it; attachCompletion
// wires it to a textarea.

import {h, replace} from './dom.js';
import {getJSON} from './api.js';

export const FUNCTIONS = [
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'avg_over_time',
  'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh', 'count_over_time', 'day_of_month',
  'day_of_week', 'day_of_year', 'days_in_month', 'deg', 'delta', 'deriv', 'double_exponential_smoothing', 'exp',
  'floor', 'histogram_avg', 'histogram_count', 'histogram_fraction', 'histogram_quantile', 'histogram_stddev',
  'histogram_stdvar', 'histogram_sum', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join',
  'label_replace', 'last_over_time', 'ln', 'log10', 'log2', 'mad_over_time', 'max_over_time', 'min_over_time',
  'minute', 'month', 'pi', 'predict_linear', 'present_over_time', 'quantile_over_time', 'rad', 'rate', 'resets',
  'round', 'scalar', 'sgn', 'sin', 'sinh', 'sort', 'sort_by_label', 'sort_by_label_desc', 'sort_desc', 'sqrt',
  'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh', 'time', 'timestamp', 'vector', 'year',
];
export const AGGREGATIONS = ['avg', 'bottomk', 'count', 'count_values', 'group', 'limit_ratio', 'limitk', 'max', 'min',
  'quantile', 'stddev', 'stdvar', 'sum', 'topk'];
export const KEYWORDS = ['and', 'bool', 'by', 'group_left', 'group_right', 'ignoring', 'offset', 'on', 'or', 'unless', 'without'];

// Label lists of these modifiers name labels: `sum by (job)`.
const LABEL_LIST = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const IDENT = /[a-zA-Z_:][a-zA-Z0-9_:]*$/;

// completionContext says what can be completed at cursor in text:
//   {kind: 'metric', prefix, from, to}             a metric or function name
//   {kind: 'label', prefix, from, to, metric}      a label name (metric may be null)
//   {kind: 'value', prefix, from, to, metric, label, quoted}
//                                                  a label value; quoted: the opening
//                                                  quote is typed (from is after it)
//   null                                           nothing (inside a range, a comment, a number…)
export function completionContext(text, cursor) {
  text = String(text ?? '');
  if (cursor === undefined || cursor === null) cursor = text.length;
  cursor = Math.max(0, Math.min(cursor, text.length));
  const stack = []; // open brackets: {ch, pos, word, sep}
  let quote = null;
  let strStart = -1;
  for (let i = 0; i < cursor; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote !== '`') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') { quote = c; strStart = i; continue; }
    if (c === '#') {
      const nl = text.indexOf('\n', i);
      if (nl < 0 || nl >= cursor) return null; // in a comment
      i = nl;
      continue;
    }
    if (c === '{' || c === '(' || c === '[') {
      const m = IDENT.exec(text.slice(0, i).trimEnd());
      stack.push({ch: c, pos: i, word: m ? m[0] : '', sep: i});
    } else if (c === '}' || c === ')' || c === ']') {
      stack.pop();
    } else if (c === ',' && stack.length) {
      stack[stack.length - 1].sep = i;
    }
  }
  const top = stack[stack.length - 1];
  const wordEnd = () => {
    let to = cursor;
    while (to < text.length && /[a-zA-Z0-9_:]/.test(text[to])) to++;
    return to;
  };

  if (quote) {
    if (!top || top.ch !== '{') return null;
    const m = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(text.slice(top.sep + 1, strStart));
    if (!m) return null;
    let to = cursor;
    while (to < text.length && text[to] !== quote && text[to] !== '\n') to++;
    return {kind: 'value', prefix: text.slice(strStart + 1, cursor), from: strStart + 1, to, quoted: quote,
      label: m[1], metric: selectorMetric(text, top)};
  }
  if (!top) return identContext(text, cursor, wordEnd);
  if (top.ch === '[') return null;
  if (top.ch === '{') {
    const seg = text.slice(top.sep + 1, cursor);
    let m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)?$/.exec(seg);
    if (m) {
      const prefix = m[1] || '';
      return {kind: 'label', prefix, from: cursor - prefix.length, to: wordEnd(), metric: selectorMetric(text, top)};
    }
    m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(seg);
    if (m) return {kind: 'value', prefix: '', from: cursor, to: cursor, quoted: null, label: m[1], metric: selectorMetric(text, top)};
    return null;
  }
  if (top.ch === '(' && LABEL_LIST.has(top.word)) {
    const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)?$/.exec(text.slice(top.sep + 1, cursor));
    if (!m) return null;
    const prefix = m[1] || '';
    const to = wordEnd();
    return {kind: 'label', prefix, from: cursor - prefix.length, to, metric: firstMetric(text.slice(0, top.pos) + ' ' + text.slice(to))};
  }
  return identContext(text, cursor, wordEnd);
}

function identContext(text, cursor, wordEnd) {
  const before = text.slice(0, cursor);
  const m = IDENT.exec(before);
  const prefix = m ? m[0] : '';
  const prev = before[before.length - prefix.length - 1];
  // "5m" in "offset 5m" or "1e3" is a number, not a name.
  if (prefix && prev && /[0-9.]/.test(prev)) return null;
  return {kind: 'metric', prefix, from: cursor - prefix.length, to: wordEnd()};
}

// selectorMetric is the metric name of the selector whose braces are open:
// the name before `{`, or a __name__="…" matcher inside them.
function selectorMetric(text, brace) {
  if (brace.word && !FUNCTIONS.includes(brace.word) && !AGGREGATIONS.includes(brace.word) && !KEYWORDS.includes(brace.word)) {
    return brace.word;
  }
  const m = /__name__\s*=\s*"((?:[^"\\]|\\.)*)"/.exec(text.slice(brace.pos));
  return m ? m[1] : null;
}

// firstMetric guesses the metric of an expression (for `by (` label lists):
// the first name that is not a function, aggregation or keyword.
function firstMetric(text) {
  const re = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*([({]?)/g;
  let m;
  const plain = text.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  while ((m = re.exec(plain)) !== null) {
    const w = m[1];
    if (m[2] === '(' || FUNCTIONS.includes(w) || AGGREGATIONS.includes(w) || KEYWORDS.includes(w)) continue;
    if (/^\d/.test(w) || /[0-9.]$/.test(plain.slice(0, m.index))) continue;
    return w;
  }
  return null;
}

// filterCandidates keeps candidates containing prefix: those starting with
// it first, each group in input order; at most limit.
export function filterCandidates(list, prefix, limit = 50) {
  const p = String(prefix || '').toLowerCase();
  const starts = [];
  const contains = [];
  for (const c of list) {
    const n = String(c.text ?? c).toLowerCase();
    if (n.startsWith(p)) starts.push(c);
    else if (p && n.includes(p)) contains.push(c);
    if (starts.length >= limit) break;
  }
  return starts.concat(contains).slice(0, limit);
}

// quoteValue writes a label value as a double-quoted PromQL string.
export function quoteValue(v) {
  return '"' + String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') + '"';
}

// applyCompletion replaces the context's range with candidate ({text, type})
// and returns the new text and cursor position.
export function applyCompletion(text, ctx, candidate) {
  const value = String(candidate.text ?? candidate);
  let insert = value;
  let to = ctx.to;
  let cursorAfter;
  if (ctx.kind === 'value') {
    if (ctx.quoted) {
      const q = ctx.quoted;
      // Escape for the quote in use; raw (`) strings take the text as is.
      const body = q === '`' ? value : value.replace(/\\/g, '\\\\').replace(new RegExp(q, 'g'), '\\' + q);
      insert = body + q;
      if (text[to] === q) to++; // the closing quote is already there
    } else {
      insert = quoteValue(value);
    }
  } else if (candidate.type === 'function') {
    insert = value + '(';
    if (text[to] === '(') to++;
  }
  cursorAfter = ctx.from + insert.length;
  return {text: text.slice(0, ctx.from) + insert + text.slice(to), cursor: cursorAfter};
}

// candidatesFor builds the candidate list ({text, type}) for a context from
// fetched names; metric contexts mix in functions and aggregations.
export function candidatesFor(ctx, names) {
  if (ctx.kind === 'metric') {
    const fn = FUNCTIONS.map((f) => ({text: f, type: 'function'}))
      .concat(AGGREGATIONS.map((f) => ({text: f, type: 'function'})));
    const kw = KEYWORDS.map((k) => ({text: k, type: 'keyword'}));
    const metrics = (names || []).map((n) => ({text: n, type: 'metric'}));
    return filterCandidates(metrics.concat(fn, kw), ctx.prefix);
  }
  const type = ctx.kind === 'label' ? 'label' : 'value';
  return filterCandidates((names || []).map((n) => ({text: n, type})), ctx.prefix);
}

// Responses are cached for a minute: typing asks the same questions often.
const CACHE_TTL = 60000;
const cache = new Map();

function cached(path, params) {
  const key = path + '?' + JSON.stringify(params || {});
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < CACHE_TTL) return hit.promise;
  const promise = getJSON(path, params).catch((e) => { cache.delete(key); throw e; });
  cache.set(key, {at: Date.now(), promise});
  return promise;
}

// namesFor fetches the names a context completes from.
export async function namesFor(ctx) {
  if (ctx.kind === 'metric') return cached('/api/v1/label/__name__/values');
  const match = ctx.metric ? {'match[]': `{__name__=${quoteValue(ctx.metric)}}`} : null;
  if (ctx.kind === 'label') {
    const names = await cached('/api/v1/labels', match);
    return (names || []).filter((n) => n !== '__name__');
  }
  return cached('/api/v1/label/' + encodeURIComponent(ctx.label) + '/values', match);
}

// attachCompletion adds a dropdown to textarea (whose parent should be a
// .autocomplete element). onRun is called on Enter when no completion is
// chosen. Returns a function that detaches it.
export function attachCompletion(textarea, {onRun} = {}) {
  const list = h('ul', {role: 'listbox', hidden: true});
  textarea.parentNode.append(list);
  textarea.setAttribute('autocomplete', 'off');
  textarea.setAttribute('spellcheck', 'false');
  let items = [];
  let selected = 0;
  let ctxNow = null;
  let timer = 0;
  let seq = 0;

  function close() {
    items = [];
    ctxNow = null;
    list.hidden = true;
    replace(list);
  }

  function show(ctx, candidates) {
    ctxNow = ctx;
    items = candidates;
    selected = 0;
    if (!items.length) { close(); return; }
    replace(list, items.map((c, i) => h('li', {
      role: 'option', class: i === selected ? 'selected' : null, dataset: {index: i},
      on: {mousedown: (ev) => { ev.preventDefault(); accept(i); }},
    }, c.text, c.type && c.type !== 'label' && c.type !== 'value' ? h('span', {class: 'ac-type muted'}, ' ' + c.type) : null)));
    list.hidden = false;
  }

  function highlight(i) {
    selected = (i + items.length) % items.length;
    [...list.children].forEach((li, j) => li.classList.toggle('selected', j === selected));
    const li = list.children[selected];
    if (li && li.scrollIntoView) li.scrollIntoView({block: 'nearest'});
  }

  function accept(i) {
    const c = items[i];
    const ctx = ctxNow;
    if (!c || !ctx) return;
    const r = applyCompletion(textarea.value, ctx, c);
    textarea.value = r.text;
    textarea.setSelectionRange(r.cursor, r.cursor);
    textarea.focus();
    close();
    // After a label name or an opened function there is more to complete.
    if (ctx.kind === 'label' || c.type === 'function') schedule(false);
  }

  // schedule looks up completions after a short pause in typing; explicit
  // (Ctrl+Space) also completes an empty metric prefix.
  function schedule(explicit) {
    clearTimeout(timer);
    timer = setTimeout(() => update(explicit), 120);
  }

  async function update(explicit) {
    const my = ++seq;
    const ctx = completionContext(textarea.value, textarea.selectionStart);
    if (!ctx || (ctx.kind === 'metric' && !ctx.prefix && !explicit)) { close(); return; }
    let names;
    try {
      names = await namesFor(ctx);
    } catch {
      names = []; // completion is a convenience; the query itself reports errors
    }
    if (my !== seq || document.activeElement !== textarea) return;
    const cands = candidatesFor(ctx, names);
    // Nothing left to offer when the only candidate is what is typed.
    if (cands.length === 1 && cands[0].text === ctx.prefix && ctx.kind !== 'value') { close(); return; }
    show(ctx, cands);
  }

  function onKey(ev) {
    const open = !list.hidden && items.length > 0;
    if (ev.key === ' ' && ev.ctrlKey) { ev.preventDefault(); schedule(true); return; }
    if (open) {
      if (ev.key === 'ArrowDown') { ev.preventDefault(); highlight(selected + 1); return; }
      if (ev.key === 'ArrowUp') { ev.preventDefault(); highlight(selected - 1); return; }
      if (ev.key === 'Escape') { ev.preventDefault(); close(); return; }
      if (ev.key === 'Tab' && !ev.shiftKey) { ev.preventDefault(); accept(selected); return; }
      if (ev.key === 'Enter' && !ev.shiftKey) {
        const c = items[selected];
        // Enter on what is already typed runs the query instead.
        if (c && ctxNow && c.text !== ctxNow.prefix) { ev.preventDefault(); accept(selected); return; }
      }
    }
    if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      clearTimeout(timer);
      seq++;
      close();
      if (onRun) onRun();
    }
  }

  const onInput = () => schedule(false);
  const onBlur = () => { clearTimeout(timer); seq++; close(); };
  textarea.addEventListener('keydown', onKey);
  textarea.addEventListener('input', onInput);
  textarea.addEventListener('blur', onBlur);
  return () => {
    clearTimeout(timer);
    textarea.removeEventListener('keydown', onKey);
    textarea.removeEventListener('input', onInput);
    textarea.removeEventListener('blur', onBlur);
    list.remove();
  };
}
