// Small canvas charts (no libraries): a line chart with optional area fill
// and a stacked bar chart. Colours come from the CSS variables of style.css.

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

// series: [{values: [numbers aligned with xs], color: '--chart-1'}]
export function lineChart(canvas, { xs, series, xLabel, yFmt, area = false, zero = false, emptyText }) {
  const all = series.flatMap((s) => s.values).filter((v) => v != null && isFinite(v));
  let yMin = all.length ? Math.min(...all) : 0;
  let yMax = all.length ? Math.max(...all) : 1;
  if (zero) yMin = Math.min(0, yMin);
  if (zero && yMax <= 0) yMax = 1;
  const f = frame(canvas, { xs, yMin, yMax, xLabel, yFmt, emptyText });
  canvas.dataset.points = String(xs.length);
  if (!f) return;
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
}

// stacks: [{values: [numbers aligned with xs], color}], drawn bottom up.
export function barChart(canvas, { xs, stacks, xLabel, yFmt, emptyText }) {
  const totals = xs.map((_, i) => stacks.reduce((a, s) => a + (s.values[i] || 0), 0));
  const f = frame(canvas, { xs, yMin: 0, yMax: Math.max(1, ...totals), xLabel, yFmt, emptyText, padX: 1 });
  canvas.dataset.points = String(xs.length);
  if (!f) return;
  const { ctx, sx, sy, pw } = f;
  const bw = Math.max(1, (pw / xs.length) * 0.7);
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
}
