// Small canvas charts (no libraries): a line chart with optional area fill
// and a stacked bar chart. Colours come from the CSS variables of style.css.
// A pointer over a chart shows the values under it; each canvas carries a
// text summary (role="img", aria-label) for screen readers. Why not Chart.js:
// docs/dashboard.md, "The charts".

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

function setup(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(50, canvas.clientWidth);
  const h = Math.max(50, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = '11px system-ui, sans-serif';
  return { ctx, w, h };
}

export function niceTicks(min, max, n = 4) {
  if (!isFinite(min) || !isFinite(max)) return [0, 1];
  if (min === max) {
    const d = Math.abs(min) > 0 ? Math.abs(min) * 0.05 : 1;
    min -= d;
    max += d;
  }
  const raw = (max - min) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
  return ticks;
}

export function fmtNum(v) {
  if (v == null || !isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1).replace(/\.0$/, '') + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1).replace(/\.0$/, '') + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(1).replace(/\.0$/, '') + 'k';
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return String(+v.toPrecision(3));
}

// Frame shared by both charts: y grid and labels, x labels; returns the
// plotting area and the scales.
function frame(canvas, { xs, yMin, yMax, xLabel, yFmt = fmtNum, emptyText, padX = 0 }) {
  const { ctx, w, h } = setup(canvas);
  const muted = cssVar('--muted');
  if (!xs.length) {
    ctx.fillStyle = muted;
    ctx.textAlign = 'center';
    ctx.fillText(emptyText || 'no data yet', w / 2, h / 2);
    return null;
  }
  const ticks = niceTicks(yMin, yMax);
  const y0 = ticks[0], y1 = ticks[ticks.length - 1];
  const left = Math.ceil(Math.max(...ticks.map((t) => ctx.measureText(yFmt(t)).width))) + 10;
  const top = 8, right = 12, bottom = 22;
  const pw0 = w - left - right, ph = h - top - bottom;
  // padX: room for half a bar at each end.
  const pad = padX ? pw0 / (xs.length + 1) / 2 : 0;
  const pw = pw0 - 2 * pad;
  const x0 = xs[0], x1 = xs[xs.length - 1];
  const sx = (x) => left + pad + (x1 === x0 ? pw / 2 : ((x - x0) / (x1 - x0)) * pw);
  const sy = (y) => top + ph - ((y - y0) / (y1 - y0 || 1)) * ph;
  ctx.strokeStyle = cssVar('--chart-grid');
  ctx.lineWidth = 1;
  ctx.fillStyle = muted;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const t of ticks) {
    const y = Math.round(sy(t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(w - right, y);
    ctx.stroke();
    ctx.fillText(yFmt(t), left - 6, y);
  }
  // x labels: as many as fit, spread evenly over the points.
  ctx.textBaseline = 'top';
  const nLabels = Math.max(2, Math.min(xs.length, Math.floor(pw / 110)));
  for (let i = 0; i < nLabels; i++) {
    const k = Math.round((i * (xs.length - 1)) / (nLabels - 1 || 1));
    ctx.textAlign = i === 0 ? 'left' : i === nLabels - 1 ? 'right' : 'center';
    ctx.fillText(xLabel(xs[k], k), sx(xs[k]), top + ph + 6);
  }
  return { ctx, sx, sy, left, top, pw, ph, y0 };
}

// --- Hover values and text summary ------------------------------------------

// Per canvas: how to draw it again and which point a pointer is over.
const hovers = new WeakMap();

// Remembers how the chart on canvas was drawn (redraw) and how to find the
// point nearest to an x in CSS pixels (nearest); returns the index of the
// point the pointer is over, or null.
function hoverState(canvas, redraw, nearest, n) {
  let st = hovers.get(canvas);
  if (!st) {
    st = { index: null };
    hovers.set(canvas, st);
    const move = (ev) => {
      const i = st.nearest ? st.nearest(ev.clientX - canvas.getBoundingClientRect().left) : null;
      if (i !== st.index) ((st.index = i), st.redraw());
    };
    canvas.addEventListener('pointermove', move);
    canvas.addEventListener('pointerdown', move); // a tap, on a phone
    canvas.addEventListener('pointerleave', () => st.index != null && ((st.index = null), st.redraw()));
  }
  st.redraw = redraw;
  st.nearest = nearest;
  if (st.index != null && st.index >= n) st.index = null;
  canvas.dataset.hover = st.index == null ? '' : String(st.index);
  return st.index;
}

// The index of the x position nearest to px, over xs positions pos(i).
function nearestOf(n, pos) {
  return (px) => {
    let best = null, dist = Infinity;
    for (let i = 0; i < n; i++) {
      const d = Math.abs(pos(i) - px);
      if (d < dist) (best = i), (dist = d);
    }
    return best;
  };
}

// A box with a title and one line per [color, text], next to x (flipped to
// the left of it near the right edge), within the plotting area.
function readout(f, x, title, rows) {
  const { ctx, top, left, pw } = f;
  ctx.save();
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  const lh = 15, pad = 7, sw = 10;
  const w = Math.ceil(Math.max(ctx.measureText(title).width, ...rows.map(([, t]) => sw + 6 + ctx.measureText(t).width))) + 2 * pad;
  const hgt = lh * (rows.length + 1) + 2 * pad - 4;
  let bx = x + 10;
  if (bx + w > left + pw) bx = Math.max(left, x - 10 - w);
  const by = top + 4;
  ctx.fillStyle = cssVar('--panel');
  ctx.strokeStyle = cssVar('--line');
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.rect(Math.round(bx) + 0.5, Math.round(by) + 0.5, w, hgt);
  ctx.fill();
  ctx.stroke();
  ctx.fillStyle = cssVar('--text');
  ctx.fillText(title, bx + pad, by + pad);
  rows.forEach(([color, text], k) => {
    const y = by + pad + lh * (k + 1);
    ctx.fillStyle = color;
    ctx.fillRect(bx + pad, y + 4, sw, 3);
    ctx.fillStyle = cssVar('--text');
    ctx.fillText(text, bx + pad + sw + 6, y);
  });
  ctx.restore();
}

// role="img" and a one-sentence summary: what a screen reader says for the
// canvas, whose pixels it cannot read.
function describe(canvas, name, text) {
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', name ? `${name}: ${text}` : text);
}

const finite = (v) => v != null && isFinite(v);

// --- Charts -------------------------------------------------------------------

// series: [{values: [numbers aligned with xs], color: '--chart-1', label}];
// name: what the chart shows, for its text summary; tipLabel(x, i): the
// title of the hover box (default xLabel).
export function lineChart(canvas, opts) {
  const { xs, series, xLabel, yFmt = fmtNum, area = false, zero = false, emptyText, name } = opts;
  const all = series.flatMap((s) => s.values).filter((v) => v != null && isFinite(v));
  let yMin = all.length ? Math.min(...all) : 0;
  let yMax = all.length ? Math.max(...all) : 1;
  if (zero) yMin = Math.min(0, yMin);
  if (zero && yMax <= 0) yMax = 1;
  const f = frame(canvas, { xs, yMin, yMax, xLabel, yFmt, emptyText });
  canvas.dataset.points = String(xs.length);
  const hover = hoverState(canvas, () => lineChart(canvas, opts), f && nearestOf(xs.length, (i) => f.sx(xs[i])), xs.length);
  if (!f) {
    describe(canvas, name, emptyText || 'no data yet');
    return;
  }
  describe(canvas, name, `${xLabel(xs[0], 0)} to ${xLabel(xs[xs.length - 1], xs.length - 1)}; ` + series.map((s) => {
    const vs = s.values.filter(finite);
    return `${s.label || 'value'} ${vs.length ? `${yFmt(vs[0])} to ${yFmt(vs[vs.length - 1])}, lowest ${yFmt(Math.min(...vs))}, highest ${yFmt(Math.max(...vs))}` : 'none'}`;
  }).join('; '));
  const { ctx, sx, sy, top, ph } = f;
  for (const s of series) {
    const color = cssVar(s.color || '--chart-1');
    ctx.beginPath();
    let started = false;
    s.values.forEach((v, i) => {
      if (v == null || !isFinite(v)) return;
      const x = sx(xs[i]), y = sy(v);
      if (!started) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
      started = true;
    });
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    ctx.stroke();
    if (area && started) {
      const firstI = s.values.findIndex((v) => v != null && isFinite(v));
      let lastI = s.values.length - 1;
      while (lastI > 0 && !(s.values[lastI] != null && isFinite(s.values[lastI]))) lastI--;
      ctx.lineTo(sx(xs[lastI]), top + ph);
      ctx.lineTo(sx(xs[firstI]), top + ph);
      ctx.closePath();
      const grad = ctx.createLinearGradient(0, top, 0, top + ph);
      grad.addColorStop(0, color + '40');
      grad.addColorStop(1, color + '05');
      ctx.fillStyle = color.startsWith('#') && color.length === 7 ? grad : color;
      if (!(color.startsWith('#') && color.length === 7)) ctx.globalAlpha = 0.12;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
  }
  if (hover != null) {
    const x = sx(xs[hover]);
    ctx.strokeStyle = cssVar('--muted');
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(Math.round(x) + 0.5, top);
    ctx.lineTo(Math.round(x) + 0.5, top + ph);
    ctx.stroke();
    const rows = [];
    for (const s of series) {
      const v = s.values[hover], color = cssVar(s.color || '--chart-1');
      if (!finite(v)) continue;
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.arc(x, sy(v), 3.5, 0, 2 * Math.PI);
      ctx.fill();
      rows.push([color, `${s.label ? `${s.label}: ` : ''}${yFmt(v)}`]);
    }
    readout(f, x, (opts.tipLabel || xLabel)(xs[hover], hover), rows);
  }
}

// stacks: [{values: [numbers aligned with xs], color, label}], drawn bottom
// up; name and tipLabel as for lineChart.
export function barChart(canvas, opts) {
  const { xs, stacks, xLabel, yFmt = fmtNum, emptyText, name } = opts;
  const totals = xs.map((_, i) => stacks.reduce((a, s) => a + (s.values[i] || 0), 0));
  const f = frame(canvas, { xs, yMin: 0, yMax: Math.max(1, ...totals), xLabel, yFmt, emptyText, padX: 1 });
  canvas.dataset.points = String(xs.length);
  const hover = hoverState(canvas, () => barChart(canvas, opts), f && nearestOf(xs.length, (i) => f.sx(xs[i])), xs.length);
  if (!f) {
    describe(canvas, name, emptyText || 'no data yet');
    return;
  }
  describe(canvas, name, `${xLabel(xs[0], 0)} to ${xLabel(xs[xs.length - 1], xs.length - 1)}; ` +
    stacks.map((s) => `${s.label || 'value'} ${yFmt(s.values.reduce((a, v) => a + (v || 0), 0))} in all`).join('; '));
  const { ctx, sx, sy, top, ph, pw } = f;
  const bw = Math.max(1, (pw / xs.length) * 0.7);
  if (hover != null) {
    ctx.fillStyle = cssVar('--chart-grid');
    ctx.fillRect(sx(xs[hover]) - bw / 2 - 2, top, bw + 4, ph);
  }
  xs.forEach((x, i) => {
    let base = 0;
    for (const s of stacks) {
      const v = s.values[i] || 0;
      if (v > 0) {
        ctx.fillStyle = cssVar(s.color);
        const yTop = sy(base + v), yBot = sy(base);
        ctx.fillRect(sx(x) - bw / 2, yTop, bw, Math.max(1, yBot - yTop));
      }
      base += v;
    }
  });
  if (hover != null) {
    const rows = stacks.map((s) => [cssVar(s.color), `${s.label ? `${s.label}: ` : ''}${yFmt(s.values[hover] || 0)}`]);
    readout(f, sx(xs[hover]), (opts.tipLabel || xLabel)(xs[hover], hover), rows);
  }
}
