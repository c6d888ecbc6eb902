// A virtualized list: however many items it holds, only the rows in view
// (plus an overscan margin) exist in the DOM, positioned over a spacer as
// tall as the whole list. Rows have one fixed height, except expanded ones,
// whose height is measured once drawn and remembered per item, so a 10k-line
// log result scrolls as cheaply as a 50-line one.

import {h, clear} from './dom.js';

export class VList {
  // container: the scrolling element (its CSS gives it a height and
  // overflow: auto). render(item, index, expanded) returns the row element.
  constructor(container, {rowHeight = 20, overscan = 12, render}) {
    this.el = container;
    this.rowHeight = rowHeight;
    this.overscan = overscan;
    this.render = render;
    this.items = [];
    this.expanded = new Set(); // items shown expanded
    this.heights = new Map(); // item → measured height of its expanded row
    this.rows = new Map(); // item → its row element while it is drawn
    this.spacer = h('div', {class: 'vlist-spacer'});
    clear(container).append(this.spacer);
    this.frame = 0;
    this.onScroll = () => this.schedule();
    container.addEventListener('scroll', this.onScroll, {passive: true});
    // The list's height changes with the window; what is in view with it.
    this.resize = typeof ResizeObserver === 'function' ? new ResizeObserver(() => this.schedule()) : null;
    if (this.resize) this.resize.observe(container);
  }

  get length() { return this.items.length; }

  setItems(items) {
    this.items = items;
    this.expanded.clear();
    this.heights.clear();
    this.redraw();
    this.el.scrollTop = 0;
  }

  // append adds items at the end and drops the oldest beyond cap; it
  // returns how many were dropped. The view stays on the same items unless
  // it was at the bottom, where it follows the new ones (stick).
  append(items, cap, stick) {
    let dropped = 0;
    for (const it of items) this.items.push(it);
    if (cap && this.items.length > cap) {
      dropped = this.items.length - cap;
      const gone = this.items.splice(0, dropped);
      for (const it of gone) { this.expanded.delete(it); this.heights.delete(it); }
      if (!stick) this.el.scrollTop = Math.max(0, this.el.scrollTop - dropped * this.rowHeight);
    }
    this.redraw();
    if (stick) this.scrollToBottom();
    return dropped;
  }

  atBottom() {
    const e = this.el;
    return e.scrollHeight - e.scrollTop - e.clientHeight < this.rowHeight * 2;
  }

  scrollToBottom() {
    this.el.scrollTop = this.el.scrollHeight;
    this.layout();
  }

  isExpanded(item) { return this.expanded.has(item); }

  toggle(item) {
    if (this.expanded.has(item)) { this.expanded.delete(item); this.heights.delete(item); } else this.expanded.add(item);
    const row = this.rows.get(item);
    if (row) { row.remove(); this.rows.delete(item); }
    this.layout();
  }

  // redraw forgets every drawn row (the items changed) and draws again.
  redraw() {
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.layout();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.layout(); });
  }

  // extras lists [index, extra height] of the expanded items by index, so
  // that offsets stay exact with a few rows expanded among thousands.
  extras() {
    if (this.expanded.size === 0) return [];
    const out = [];
    for (const it of this.expanded) {
      const i = this.items.indexOf(it);
      if (i < 0) { this.expanded.delete(it); continue; }
      out.push([i, Math.max(0, (this.heights.get(it) || this.rowHeight * 4) - this.rowHeight)]);
    }
    return out.sort((a, b) => a[0] - b[0]);
  }

  offset(i, extras) {
    let y = i * this.rowHeight;
    for (const [j, x] of extras) { if (j < i) y += x; else break; }
    return y;
  }

  // indexAt is the item at height y: binary search over offsets.
  indexAt(y, extras) {
    let lo = 0;
    let hi = this.items.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.offset(mid, extras) <= y) lo = mid; else hi = mid - 1;
    }
    return Math.max(0, lo);
  }

  layout(again = 2) {
    const n = this.items.length;
    const extras = this.extras();
    const total = this.offset(n, extras);
    this.spacer.style.height = total + 'px';
    const view = this.el.clientHeight || 600;
    const top = this.el.scrollTop;
    const first = Math.max(0, this.indexAt(top, extras) - this.overscan);
    const last = Math.min(n - 1, this.indexAt(top + view, extras) + this.overscan);
    const keep = new Set();
    let remeasure = false;
    for (let i = first; i <= last && n > 0; i++) {
      const it = this.items[i];
      keep.add(it);
      let row = this.rows.get(it);
      if (!row) {
        row = this.render(it, i, this.expanded.has(it));
        row.classList.add('vlist-row');
        this.rows.set(it, row);
        this.el.append(row);
      }
      row.style.transform = `translateY(${this.offset(i, extras)}px)`;
      if (this.expanded.has(it)) {
        const hgt = row.offsetHeight;
        if (hgt && hgt !== this.heights.get(it)) { this.heights.set(it, hgt); remeasure = true; }
      }
    }
    for (const [it, row] of this.rows) {
      if (!keep.has(it)) { row.remove(); this.rows.delete(it); }
    }
    // A newly measured expanded row moves the rows below it: place again.
    if (remeasure && again > 0) this.layout(again - 1);
  }

  dispose() {
    this.el.removeEventListener('scroll', this.onScroll);
    if (this.resize) this.resize.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
    this.rows.clear();
  }
}
