// Page state lives in the query string so that every view is a shareable
// URL: pages read it with params() and write it with update().

export function params() {
  return new URLSearchParams(location.search);
}

// update replaces (or with push, adds) a history entry whose query string
// holds values; arrays become repeated parameters, empty values are dropped.
export function update(values, push) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.filter((x) => x !== '').forEach((x) => q.append(k, String(x)));
    else q.set(k, String(v));
  }
  const url = location.pathname + (q.toString() ? '?' + q.toString() : '');
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

// link builds a dashboard URL for page with its query parameters.
export function link(page, values) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, String(x)));
    else q.set(k, String(v));
  }
  return '/ui/' + page + (q.toString() ? '?' + q.toString() : '');
}
