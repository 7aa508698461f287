// A small hand-written SVG chart: stored size as bars (left axis) and duration as a line
// (right axis), one point per backup in time order. No library: a few dozen elements.

import { fmtBytes, fmtDuration, fmtTime } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A "nice" upper bound for an axis: a round multiple of a power of ten (of 1024 for bytes). */
function niceMax(v, base = 10) {
  if (!(v > 0)) return 1;
  const p = base ** Math.floor(Math.log(v) / Math.log(base));
  // Steps that divide by the 4 grid lines into round labels.
  const steps = base === 1024 ? [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] : [1, 2, 4, 8, 10, 20, 40, 80, 100];
  for (const m of steps) if (m * p >= v) return m * p;
  return v;
}

/**
 * Draws points [{at, bytes, seconds, label}] (oldest first) into a new <svg> with a <title>
 * and a description that says the same in words.
 */
export function sizeDurationChart(points, { width = 720, height = 220 } = {}) {
  const pad = { l: 64, r: 56, t: 14, b: 34 };
  const w = width - pad.l - pad.r;
  const hgt = height - pad.t - pad.b;
  const maxB = niceMax(Math.max(0, ...points.map((p) => p.bytes ?? 0)), 1024);
  const maxS = niceMax(Math.max(0, ...points.map((p) => p.seconds ?? 0)));
  const n = points.length;
  const step = w / Math.max(n, 1);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-labelledby': 'chart-title chart-desc' });
  const total = points.reduce((a, p) => a + (p.bytes ?? 0), 0);
  svg.append(s('title', { id: 'chart-title' }, 'Stored size and duration of each backup over time'));
  svg.append(s('desc', { id: 'chart-desc' },
    `${n} backups from ${fmtTime(points[0]?.at)} to ${fmtTime(points[n - 1]?.at)}; ` +
    `${fmtBytes(total)} stored in all; largest ${fmtBytes(Math.max(0, ...points.map((p) => p.bytes ?? 0)))}, ` +
    `longest ${fmtDuration(Math.max(0, ...points.map((p) => p.seconds ?? 0)))}.`));

  // Axes and grid: 4 lines, labelled on both sides.
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + hgt - (hgt * i) / 4;
    svg.append(s('line', { x1: pad.l, x2: pad.l + w, y1: y, y2: y, class: 'axis', 'stroke-dasharray': i ? '2 4' : '' }));
    svg.append(s('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end' }, fmtBytes((maxB * i) / 4)));
    svg.append(s('text', { x: pad.l + w + 6, y: y + 4 }, fmtDuration((maxS * i) / 4)));
  }

  const bw = Math.max(2, Math.min(36, step * 0.6));
  const line = [];
  points.forEach((p, i) => {
    const cx = pad.l + step * i + step / 2;
    const bh = ((p.bytes ?? 0) / maxB) * hgt;
    const bar = s('rect', { x: cx - bw / 2, y: pad.t + hgt - bh, width: bw, height: Math.max(bh, 0.5), class: 'bar-size' });
    bar.append(s('title', {}, `${p.label}: ${fmtBytes(p.bytes)} stored, ${fmtDuration(p.seconds)}`));
    svg.append(bar);
    if (p.seconds !== null && p.seconds !== undefined) line.push([cx, pad.t + hgt - (p.seconds / maxS) * hgt]);
  });
  if (line.length > 1) svg.append(s('polyline', { points: line.map((q) => q.join(',')).join(' '), class: 'line-dur' }));
  for (const [x, y] of line) svg.append(s('circle', { cx: x, cy: y, r: 3, class: 'dot-dur' }));

  if (n) {
    const day = (iso) => (iso ? fmtTime(iso).slice(0, 16) : '');
    svg.append(s('text', { x: pad.l, y: height - 10 }, day(points[0].at)));
    if (n > 1) svg.append(s('text', { x: pad.l + w, y: height - 10, 'text-anchor': 'end' }, day(points[n - 1].at)));
  }
  return svg;
}
