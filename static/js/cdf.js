// Two runs' latency CDFs of one round kind on one canvas: log-scaled ms against the
// fraction of receipts, with a legend naming the runs.
import { canvasContext } from './draw.js';

/** The two runs compared, and their colours (the compare view's swatches too). */
export const SIDES = ['a', 'b'];
export const SIDE_COLORS = { a: '#1f77b4', b: '#e8710a' };

/**
 * Tick values for a log axis over lo..hi: 1-2-5 (or 1-2-3-5, or every digit, when
 * that gives too few; decades when too many), at least `gap` px apart where `at` puts them.
 */
export function logTicks(lo, hi, at, gap = 34) {
  const series = (steps) => {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e += 1) {
      for (const step of steps) {
        const value = +(step * 10 ** e).toPrecision(6);
        if (value >= lo && value <= hi) out.push(value);
      }
    }
    return out;
  };
  const fits = (values) => values.every((value, i) => i === 0 || at(value) - at(values[i - 1]) >= gap);
  const choices = [[1, 2, 5], [1, 2, 3, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]].map(series);
  const ticks = choices.find((values) => values.length >= 3 && fits(values))
    || [series([1]), choices[0]].find((values) => values.length >= 2 && fits(values));
  if (ticks) return ticks;
  return [+lo.toPrecision(2), +hi.toPrecision(2)].filter((value) => value >= lo && value <= hi);
}

const tickLabel = (value) => (value >= 100 ? String(Math.round(value)) : String(+value.toPrecision(3)));

/** Each run's curve of `kind`: [latency ms, fraction] points (a run without receipts has none). */
function cdfCurves(kind) {
  return SIDES.map((side) => {
    const points = kind.quantiles[side].map((value, i) => [value, (i + 1) / 100]);
    // The slowest receipt is exact: the curve reaches 1 there.
    const max = kind[side].max_ms;
    if (points.length && max != null && max >= points[points.length - 1][0]) points.push([max, 1]);
    return { side, points };
  });
}

/** The curves of `kind` (named `name`) as CSV rows: side, run, fraction, latency. */
export function cdfRows(name, kind, runs) {
  return [['kind', 'side', 'run', 'fraction', 'latency_ms'],
    ...cdfCurves(kind).flatMap(({ side, points }) =>
      points.map(([value, fraction]) => [name, side, runs[side].name, fraction, value]))];
}

/**
 * Both runs' latency CDFs of the kind `name` on a canvas of the page: log-scaled
 * ms against the fraction; `runs` names them (`runs.a.name`, `runs.b.name`) in
 * the legend.
 */
export function drawCdf(canvas, name, kind, runs) {
  const { context, width, height } = canvasContext(canvas, 260);
  plotCdf(context, width, height, name, kind, runs);
}

/** The same on any 2D context (a canvas's, or an SvgContext) of `width` × `height` CSS px. */
export function plotCdf(context, width, height, name, kind, runs) {
  context.fillStyle = '#fff';
  context.fillRect(0, 0, width, height);
  const curves = cdfCurves(kind).filter((curve) => curve.points.length);
  const values = curves.flatMap((curve) => curve.points.map(([value]) => value)).filter((value) => value > 0);
  if (!values.length) return;
  let lo = Math.log10(Math.min(...values));
  let hi = Math.log10(Math.max(...values));
  if (hi - lo < 0.2) { const mid = (hi + lo) / 2; lo = mid - 0.1; hi = mid + 0.1; }
  const pad = (hi - lo) * 0.04;
  lo -= pad;
  hi += pad;
  const [left, right, top, bottom] = [46, 14, 12, 40];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const x = (value) => left + ((Math.log10(Math.max(value, 10 ** lo)) - lo) / (hi - lo)) * plotW;
  const y = (fraction) => top + (1 - fraction) * plotH;
  // Grid, ticks and labels.
  context.lineWidth = 1;
  context.font = '11px system-ui, sans-serif';
  context.textAlign = 'right';
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const at = Math.round(y(fraction)) + 0.5;
    context.strokeStyle = fraction === 0.5 ? '#b9c0cc' : '#e8ebf1';
    context.beginPath(); context.moveTo(left, at); context.lineTo(left + plotW, at); context.stroke();
    context.fillStyle = '#1d2330';
    context.fillText(String(fraction), left - 5, at + 4);
  }
  context.textAlign = 'center';
  for (const value of logTicks(10 ** lo, 10 ** hi, x)) {
    const at = Math.round(x(value)) + 0.5;
    context.strokeStyle = '#e8ebf1';
    context.beginPath(); context.moveTo(at, top); context.lineTo(at, top + plotH); context.stroke();
    context.strokeStyle = '#6b7385';
    context.beginPath(); context.moveTo(at, top + plotH); context.lineTo(at, top + plotH + 4); context.stroke();
    context.fillStyle = '#1d2330';
    context.fillText(tickLabel(value), at, top + plotH + 15);
  }
  context.strokeStyle = '#6b7385';
  context.beginPath();
  context.moveTo(left + 0.5, top); context.lineTo(left + 0.5, top + plotH + 0.5); context.lineTo(left + plotW, top + plotH + 0.5);
  context.stroke();
  context.fillStyle = '#6b7385';
  context.fillText(`${name} latency, ms (log scale)`, left + plotW / 2, height - 6);
  context.save();
  context.translate(12, top + plotH / 2);
  context.rotate(-Math.PI / 2);
  context.fillText('fraction of receipts ≤ latency', 0, 0);
  context.restore();
  // The curves.
  context.save();
  context.beginPath();
  context.rect(left, top - 2, plotW, plotH + 4);
  context.clip();
  context.lineWidth = 2;
  context.lineJoin = 'round';
  for (const { side, points } of curves) {
    context.strokeStyle = SIDE_COLORS[side];
    context.beginPath();
    points.forEach(([value, fraction], i) => {
      if (i) context.lineTo(x(value), y(fraction));
      else context.moveTo(x(value), y(fraction));
    });
    context.stroke();
  }
  context.restore();
  // Legend: bottom right, where a CDF leaves room.
  const drawn = new Set(curves.map((curve) => curve.side));
  const names = SIDES.map((side) => {
    const name = runs[side].name;
    return `${side}: ${name.length > 28 ? `${name.slice(0, 27)}…` : name}${drawn.has(side) ? '' : ' (no receipts)'}`;
  });
  const boxW = Math.max(...names.map((name) => context.measureText(name).width)) + 34;
  const boxH = 40;
  const boxX = left + plotW - boxW - 6;
  const boxY = top + plotH - boxH - 6;
  context.fillStyle = 'rgba(255, 255, 255, 0.92)';
  context.fillRect(boxX, boxY, boxW, boxH);
  context.strokeStyle = '#dde1ea';
  context.strokeRect(boxX + 0.5, boxY + 0.5, boxW - 1, boxH - 1);
  context.textAlign = 'left';
  SIDES.forEach((side, i) => {
    const lineY = boxY + 13 + i * 16;
    context.strokeStyle = SIDE_COLORS[side];
    context.lineWidth = 2;
    context.beginPath(); context.moveTo(boxX + 8, lineY); context.lineTo(boxX + 24, lineY); context.stroke();
    context.fillStyle = '#1d2330';
    context.fillText(names[i], boxX + 29, lineY + 4);
  });
}
