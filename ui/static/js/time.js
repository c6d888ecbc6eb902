// Durations and times as Prometheus writes them: "5m", "1h30m", "2d".

const UNITS = {ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000};

// parseDuration returns seconds, or NaN when text is not a duration.
export function parseDuration(text) {
  const t = String(text || '').trim();
  if (!t) return NaN;
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let m;
  let pos = 0;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * UNITS[m[2]];
    pos = re.lastIndex;
  }
  return pos === t.length ? total : NaN;
}

export function formatDuration(seconds) {
  if (!isFinite(seconds)) return '';
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  const parts = [];
  let rest = Math.round(seconds);
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (rest >= n) {
      parts.push(Math.floor(rest / n) + u);
      rest %= n;
    }
  }
  return parts.join('') || '0s';
}

// parseTime reads an end time as RFC 3339, Unix seconds, or "now".
export function parseTime(text) {
  const t = String(text || '').trim();
  if (!t || t === 'now') return Date.now() / 1000;
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const ms = Date.parse(t);
  return isNaN(ms) ? NaN : ms / 1000;
}

export function formatTime(seconds) {
  const d = new Date(seconds * 1000);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// since describes how long ago a time was ("3m ago").
export function since(seconds) {
  const d = Date.now() / 1000 - seconds;
  return d < 0 ? 'in ' + formatDuration(-d) : formatDuration(d) + ' ago';
}

// autoStep picks a step giving about 250 points over range seconds.
export function autoStep(range) {
  return Math.max(1, Math.round(range / 250));
}
