// Fetch helpers for the public APIs. Errors carry the server's message
// (Prometheus's {"error": …}, Tempo's and Loki's plain text) so that the
// page can show what was wrong with a query instead of a status code.

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function withParams(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, String(x)));
    else q.set(k, String(v));
  }
  const qs = q.toString();
  return qs ? path + '?' + qs : path;
}

async function failure(res) {
  const text = await res.text();
  let msg = text.trim();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') msg = body.error || body.message || msg;
  } catch { /* plain text */ }
  return new APIError(res.status, `${res.status} ${res.statusText}: ${msg || 'no message'}`);
}

// getJSON fetches path with params; a Prometheus-style envelope
// ({status, data}) is unwrapped to data.
export async function getJSON(path, params, opts) {
  const res = await fetch(withParams(path, params), {headers: {Accept: 'application/json'}, signal: opts && opts.signal});
  if (!res.ok) throw await failure(res);
  const body = await res.json();
  if (body && typeof body === 'object' && 'status' in body && 'data' in body) {
    if (body.status !== 'success') throw new APIError(res.status, body.error || 'request failed');
    return body.data;
  }
  return body;
}

export async function getText(path, params, opts) {
  const res = await fetch(withParams(path, params), {signal: opts && opts.signal});
  if (!res.ok) throw await failure(res);
  return res.text();
}

// getEnvelope is getJSON for callers that need the whole Prometheus
// response ({status, data, warnings, infos}), not just data.
export async function getEnvelope(path, params, opts) {
  const res = await fetch(withParams(path, params), {headers: {Accept: 'application/json'}, signal: opts && opts.signal});
  if (!res.ok) throw await failure(res);
  const body = await res.json();
  if (!body || body.status !== 'success') throw new APIError(res.status, (body && body.error) || 'request failed');
  return body;
}
