// The whole run's latency histogram of one round kind, drawn from the server's
// distribution, with its p50 and p99 marked and a legend; downloads as a figure.
import { $, canvasContext, ms } from './draw.js';
import { addDownloads } from './figure.js';
import { state } from './state.js';

const HEIGHT = 230; // CSS px on the page

/** The kind chosen in #hist-kind and its distribution in the analysis shown. */
function shown() {
  const kind = $('hist-kind').value;
  return { kind, dist: state.analysis?.distributions?.[kind] };
}

/** Draws the kind chosen in #hist-kind from the analysis shown. */
export function renderHistogram() {
  const { kind, dist } = shown();
  $('hist-stats').textContent = dist?.count
    ? `${dist.count} receipts · p50 ${ms(dist.p50_ms)} · p90 ${ms(dist.p90_ms)} · p99 ${ms(dist.p99_ms)} · max ${ms(dist.max_ms)} ms`
    : 'no receipts yet';
  const { context, width, height } = canvasContext($('histogram'), HEIGHT);
  plotHistogram(context, width, height, kind, dist);
}

/**
 * One kind's whole-run histogram on any 2D context (a canvas's, or an SvgContext)
 * of `width` × `height` CSS px: bars over log-spaced bins, p50 and p99 marked,
 * axes with their labels, and a legend.
 */
export function plotHistogram(context, width, height, kind, dist) {
  const [left, right, topPad, bottomPad] = [48, 18, 30, 36];
  const plotW = width - left - right;
  const plotH = height - topPad - bottomPad;
  const bottom = topPad + plotH;
  context.strokeStyle = '#6b7385';
  context.beginPath(); context.moveTo(left, topPad); context.lineTo(left, bottom); context.lineTo(left + plotW, bottom); context.stroke();
  context.fillStyle = '#1d2330';
  context.textAlign = 'center';
  context.fillText('latency (ms, upper bound of each bin)', left + plotW / 2, height - 6);
  context.save();
  context.translate(12, topPad + plotH / 2);
  context.rotate(-Math.PI / 2);
  context.fillText('receipts', 0, 0);
  context.restore();
  if (!dist?.count || !dist.histogram.length) {
    context.fillStyle = '#6b7385';
    context.fillText(`no ${kind} receipts yet`, left + plotW / 2, topPad + plotH / 2);
    return;
  }
  const bins = dist.histogram;
  const top = bins.reduce((m, bin) => Math.max(m, bin.count), 0);
  const binW = plotW / bins.length;
  // Bars.
  context.fillStyle = '#1f77b4';
  bins.forEach((bin, i) => {
    const h = (bin.count / top) * plotH;
    context.fillRect(left + i * binW + 1, bottom - h, Math.max(1, binW - 2), h);
  });
  // Percentile markers, placed within their bin on a log scale.
  const lower = (i) => (i > 0 ? bins[i - 1].le_ms : bins[0].le_ms / 2);
  const xOf = (value) => {
    let i = bins.findIndex((bin) => value <= bin.le_ms);
    if (i < 0) i = bins.length - 1;
    const lo = Math.max(lower(i), 1e-6);
    const fraction = Math.min(1, Math.max(0, Math.log(Math.max(value, lo) / lo) / Math.log(bins[i].le_ms / lo)));
    return left + (i + fraction) * binW;
  };
  const marks = [['p50', dist.p50_ms, '#2e7d32'], ['p99', dist.p99_ms, '#c62828']].filter(([, value]) => value != null);
  context.textAlign = 'center';
  for (const [label, value, mark] of marks) {
    const x = xOf(value);
    context.strokeStyle = mark;
    context.setLineDash([3, 3]);
    context.beginPath(); context.moveTo(x, topPad); context.lineTo(x, bottom); context.stroke();
    context.setLineDash([]);
    context.fillStyle = mark;
    context.fillText(label, x, topPad - 4);
  }
  // Ticks.
  context.fillStyle = '#1d2330';
  const every = Math.max(1, Math.ceil(bins.length / Math.floor(plotW / 36)));
  // The first bin's lower bound is the step before it in the 1-2-5 series.
  const first = bins[0].le_ms;
  const mantissa = first / 10 ** Math.floor(Math.log10(first) + 1e-9);
  const floor = first * (Math.abs(mantissa - 2) < 1e-6 ? 0.5 : Math.abs(mantissa - 5) < 1e-6 ? 0.4 : 0.5);
  bins.forEach((bin, i) => {
    if ((bins.length - 1 - i) % every) return;
    context.fillText(String(bin.le_ms), left + (i + 1) * binW, bottom + 13);
  });
  if (bins.length % every === 0 || every === 1) context.fillText(String(+floor.toPrecision(3)), left, bottom + 13);
  context.textAlign = 'right';
  for (const value of [0, Math.round(top / 2), top]) {
    const y = bottom - (value / top) * plotH;
    context.fillText(String(value), left - 4, y + 4);
  }
  // Legend: one row above the plot, at its right.
  const items = [[`${kind} rounds, ${dist.count} receipts`, '#1f77b4', false],
    ...marks.map(([label, value, mark]) => [`${label} ${ms(value)} ms`, mark, true])];
  const widths = items.map(([text]) => context.measureText(text).width + 24);
  let x = Math.max(4, left + plotW - widths.reduce((sum, w) => sum + w, 0));
  context.textAlign = 'left';
  items.forEach(([text, color, dashed], i) => {
    if (dashed) {
      context.strokeStyle = color;
      context.setLineDash([3, 3]);
      context.beginPath(); context.moveTo(x, 10); context.lineTo(x + 14, 10); context.stroke();
      context.setLineDash([]);
    } else {
      context.fillStyle = color;
      context.fillRect(x + 2, 5, 10, 10);
    }
    context.fillStyle = '#1d2330';
    context.fillText(text, x + 18, 14);
    x += widths[i];
  });
}

/** The histogram shown, as CSV rows: kind, each bin's upper bound, its count. */
function histogramRows() {
  const { kind, dist } = shown();
  return [['kind', 'le_ms', 'count'], ...(dist?.histogram ?? []).map((bin) => [kind, bin.le_ms, bin.count])];
}

export function wireHistogram() {
  $('hist-kind').addEventListener('change', renderHistogram);
  window.addEventListener('resize', renderHistogram);
  addDownloads($('hist-stats').parentElement, {
    chart: 'histogram',
    name: () => `${state.runName}-${shown().kind}-histogram`,
    draw: (context, width, height) => { const { kind, dist } = shown(); plotHistogram(context, width, height, kind, dist); },
    csv: histogramRows,
  });
}
