// The sweep view (/?sweep=LABEL[&label=k=v…]): a series of runs against one label's
// value. Per round kind, each run's p50 with its 95% interval as whiskers and its
// p99 against the value (linear or log ms), with the Theil–Sen fit when the values
// are numbers; a point opens its run; the table of every run beneath. Also the
// header's "sweep…" control, which offers the labels the runs have.
import { $, el, ms, num, row, canvasContext, labelText } from './draw.js';
import { getJson, url } from './api.js';
import { addDownloads } from './figure.js';
import { logTicks } from './cdf.js';

/** The kinds in the server's order, and the colours of the two marks. */
const KINDS = ['problem', 'block', 'reveal'];
const P50_COLOR = '#1f77b4';
const P99_COLOR = '#e8710a';
const FIT_COLOR = '#6b7385';
const CHART_HEIGHT = 300;

/** The sweep the address asks for: `{ by, labels }`, or null. */
export function sweepParam() {
  const params = new URLSearchParams(location.search);
  const by = params.get('sweep');
  return by == null ? null : { by, labels: params.getAll('label') };
}

/** The address of the sweep of `by` (with the page's token). */
export function sweepHref(by) {
  return url('/', { sweep: by });
}

const sweep = { data: null, log: false };

/** A run's page (the live view showing it). */
const runHref = (run) => url('/', { run: run.id });

/** The x position of each run: its value as a number, or its rank among lexical values. */
function xOf(data) {
  if (data.numeric) return data.runs.map((run) => Number(run.value));
  const distinct = [...new Set(data.runs.map((run) => run.value))];
  return data.runs.map((run) => distinct.indexOf(run.value));
}

/** The Theil–Sen line's intercept: the median of p50 − slope·x over the runs. */
function intercept(data, kind, slope) {
  const xs = xOf(data);
  const rest = data.runs
    .map((run, i) => (run.kinds[kind].p50_ms == null ? null : run.kinds[kind].p50_ms - slope * xs[i]))
    .filter((value) => value != null && Number.isFinite(value))
    .sort((a, b) => a - b);
  if (!rest.length) return null;
  const mid = rest.length >> 1;
  return rest.length % 2 ? rest[mid] : (rest[mid - 1] + rest[mid]) / 2;
}

/**
 * Draws `kind`'s sweep on `context` (a canvas's or an SvgContext) of `width` ×
 * `height` CSS px; returns where each run's p50 mark is, for clicks.
 */
export function plotSweep(context, width, height, kind, data, log) {
  const left = 58; const right = 16; const top = 44; const bottom = 42;
  const plotW = width - left - right; const plotH = height - top - bottom;
  const xs = xOf(data);
  const marks = data.runs.map((run, i) => ({ run, x: xs[i], figures: run.kinds[kind] }))
    .filter((mark) => mark.figures.p50_ms != null);
  context.fillStyle = '#1d2330';
  context.textAlign = 'left';
  context.fillText(`${kind} latency by ${data.by}`, left, 14);
  if (!marks.length) {
    context.fillText('no receipts of this kind in these runs', left, top + 20);
    return [];
  }
  const values = marks.flatMap(({ figures }) => [figures.p50_ms, figures.p99_ms, ...(figures.p50_ci95_ms ?? [])])
    .filter((value) => value != null);
  let lo = log ? Math.max(1e-3, Math.min(...values) / 1.3) : 0;
  let hi = Math.max(...values) * (log ? 1.3 : 1.1);
  if (!(hi > lo)) hi = lo + 1;
  const y = (value) => {
    const v = log ? Math.log10(Math.max(value, lo)) : value;
    const [a, b] = log ? [Math.log10(lo), Math.log10(hi)] : [lo, hi];
    return top + plotH - ((v - a) / (b - a)) * plotH;
  };
  const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  const pad = (xMax - xMin) * 0.06 || 1;
  const x = (value) => left + ((value - (xMin - pad)) / (xMax - xMin + 2 * pad)) * plotW;

  // Axes, ticks and their labels.
  context.strokeStyle = '#9aa1b1';
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(left, top); context.lineTo(left, top + plotH); context.lineTo(left + plotW, top + plotH);
  context.stroke();
  const yTicks = log ? logTicks(lo, hi, (value) => -y(value), 24)
    : Array.from({ length: 6 }, (_, i) => lo + ((hi - lo) * i) / 5);
  context.textAlign = 'right';
  for (const tick of yTicks) {
    context.fillStyle = '#1d2330';
    context.fillText(ms(tick), left - 6, y(tick) + 4);
    context.strokeStyle = '#eef0f5';
    context.beginPath(); context.moveTo(left + 1, y(tick)); context.lineTo(left + plotW, y(tick)); context.stroke();
  }
  context.textAlign = 'center';
  context.fillStyle = '#1d2330';
  const labels = new Map(data.runs.map((run, i) => [xs[i], run.value]));
  for (const [at, text] of labels) context.fillText(text, x(at), top + plotH + 16);
  context.fillText(data.by, left + plotW / 2, height - 6);
  context.save();
  context.translate(14, top + plotH / 2);
  context.rotate(-Math.PI / 2);
  context.fillText('latency (ms)', 0, 0);
  context.restore();

  // The fit, then each run's p99 (hollow) and p50 with its whiskers.
  const slope = data.slopes?.[kind];
  const base = slope ? intercept(data, kind, slope.per_unit_ms) : null;
  if (data.numeric && slope && base != null) {
    context.strokeStyle = FIT_COLOR;
    context.setLineDash([5, 4]);
    context.beginPath();
    const steps = 40;
    for (let i = 0; i <= steps; i += 1) {
      const at = xMin + ((xMax - xMin) * i) / steps;
      const value = base + slope.per_unit_ms * at;
      if (log && value <= 0) continue;
      const [px, py] = [x(at), Math.min(top + plotH, Math.max(top, y(value)))];
      if (i === 0) context.moveTo(px, py); else context.lineTo(px, py);
    }
    context.stroke();
    context.setLineDash([]);
  }
  const where = [];
  for (const { run, x: at, figures } of marks) {
    const px = x(at);
    if (figures.p99_ms != null) {
      context.strokeStyle = P99_COLOR;
      context.beginPath(); context.arc(px, y(figures.p99_ms), 4, 0, 2 * Math.PI); context.stroke();
    }
    if (figures.p50_ci95_ms) {
      const [low, high] = figures.p50_ci95_ms.map(y);
      context.strokeStyle = P50_COLOR;
      context.beginPath();
      context.moveTo(px, low); context.lineTo(px, high);
      context.moveTo(px - 4, low); context.lineTo(px + 4, low);
      context.moveTo(px - 4, high); context.lineTo(px + 4, high);
      context.stroke();
    }
    context.fillStyle = P50_COLOR;
    context.beginPath(); context.arc(px, y(figures.p50_ms), 3.5, 0, 2 * Math.PI); context.fill();
    where.push({ run, px, py: y(figures.p50_ms) });
  }

  // The legend, under the title.
  const items = [['p50 with 95% interval', P50_COLOR, 'dot'], ['p99', P99_COLOR, 'ring']];
  if (data.numeric && slope && base != null) items.push(['Theil–Sen fit of p50', FIT_COLOR, 'dash']);
  let lx = left;
  const ly = 28;
  context.textAlign = 'left';
  for (const [text, color, mark] of items) {
    context.strokeStyle = color; context.fillStyle = color;
    context.beginPath();
    if (mark === 'dot') { context.arc(lx + 5, ly, 3.5, 0, 2 * Math.PI); context.fill(); }
    if (mark === 'ring') { context.arc(lx + 5, ly, 4, 0, 2 * Math.PI); context.stroke(); }
    if (mark === 'dash') { context.setLineDash([5, 4]); context.moveTo(lx, ly); context.lineTo(lx + 14, ly); context.stroke(); context.setLineDash([]); }
    context.fillStyle = '#1d2330';
    context.fillText(text, lx + 18, ly + 4);
    lx += 36 + context.measureText(text).width;
  }
  return where;
}

/** "+0.98 ms [0.95, 1.01] to block p50 per unit of netem_ms" */
function slopeText(data, kind) {
  const slope = data.slopes?.[kind];
  if (!slope) return '';
  const fixed = (value) => (Math.abs(value) < 0.005 ? '0.00' : value.toFixed(2));
  const ci = slope.ci95_ms ? ` [${slope.ci95_ms.map(fixed).join(', ')}]` : ' (fewer than 5 runs: no interval)';
  return `each unit of ${data.by} adds ${fixed(slope.per_unit_ms)} ms${ci} to ${kind} p50 (Theil–Sen, ${slope.runs} runs)`;
}

/** The sweep as CSV rows: one a run and kind, the header first. */
function sweepRows(data) {
  const header = ['value', 'run_id', 'run', 'kind', 'count', 'p50_ms', 'p50_ci95_low_ms', 'p50_ci95_high_ms',
    'p90_ms', 'p99_ms', 'max_ms', 'rounds_flagged', 'winners_disagreeing'];
  return [header, ...data.runs.flatMap((run) => KINDS.map((kind) => {
    const f = run.kinds[kind];
    return [run.value, run.id, run.name, kind, f.count, f.p50_ms, f.p50_ci95_ms?.[0], f.p50_ci95_ms?.[1],
      f.p90_ms, f.p99_ms, f.max_ms, run.rounds_flagged, run.winners_disagreeing];
  }))];
}

const kindsSeen = (data) => KINDS.filter((kind) => data.runs.some((run) => run.kinds[kind].count > 0));

function renderCharts() {
  const data = sweep.data;
  for (const canvas of document.querySelectorAll('canvas.sweep-chart')) {
    const kind = canvas.dataset.kind;
    const { context, width, height } = canvasContext(canvas, CHART_HEIGHT);
    canvas.marks = plotSweep(context, width, height, kind, data, sweep.log);
  }
}

function renderTable(data) {
  const kinds = kindsSeen(data);
  $('sweep-table').querySelector('thead').replaceChildren(row([
    data.by, 'run', 'reports', ...kinds.flatMap((kind) => [`${kind} p50 [95%] ms`, `${kind} p99 ms`]),
    'flagged', 'disagreeing', 'sync p50 ms', 'slowest sync ms',
  ].map((text) => el('th', text))));
  $('sweep-table').querySelector('tbody').replaceChildren(...data.runs.map((run) => {
    const link = el('a', run.name);
    link.href = runHref(run);
    link.title = labelText(run.labels);
    const cells = kinds.flatMap((kind) => {
      const f = run.kinds[kind];
      const ci = f.p50_ci95_ms ? ` [${ms(f.p50_ci95_ms[0])}, ${ms(f.p50_ci95_ms[1])}]` : '';
      return [num(`${ms(f.p50_ms)}${ci}`), num(ms(f.p99_ms))];
    });
    const slowest = run.sync.slowest_ms == null ? '–' : `${ms(run.sync.slowest_ms)} (${run.sync.slowest_node})`;
    return row([run.value, el('td', null).appendChild(link).parentNode, num(run.reports), ...cells,
      num(run.rounds_flagged), num(run.winners_disagreeing), num(ms(run.sync.median_ms)), num(slowest)]);
  }));
}

/** Shows the sweep view instead of the live one. */
export async function showSweep({ by, labels }) {
  for (const node of document.querySelectorAll('.live-only')) node.hidden = true;
  $('live').hidden = true;
  $('sweep').hidden = false;
  $('live-link').hidden = false;
  $('live-link').href = url('/');
  const data = await getJson('/api/sweep', { by, label: labels });
  sweep.data = data;
  $('sweep-title').textContent = `Sweep of ${data.by}${labels.length ? ` (${labels.join(', ')})` : ''}`;
  $('sweep-note').textContent = data.runs_matching > data.runs.length
    ? `the newest ${data.runs.length} of ${data.runs_matching} runs with this label`
    : `${data.runs.length} runs with this label, ordered ${data.numeric ? 'numerically' : 'lexically'} by its value`;
  const charts = $('sweep-charts');
  charts.replaceChildren();
  for (const kind of kindsSeen(data)) {
    const figure = el('figure');
    const caption = el('figcaption', slopeText(data, kind));
    const canvas = el('canvas', null, 'sweep-chart');
    canvas.dataset.kind = kind;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `${kind} p50 and p99 by ${data.by}`);
    canvas.addEventListener('click', (event) => {
      const box = canvas.getBoundingClientRect();
      const [cx, cy] = [event.clientX - box.left, event.clientY - box.top];
      const near = (canvas.marks ?? []).find(({ px, py }) => Math.hypot(px - cx, py - cy) < 8);
      if (near) location.assign(runHref(near.run));
    });
    figure.append(canvas, caption);
    addDownloads(caption, {
      chart: `sweep-${kind}`,
      name: () => `sweep-${data.by}-${kind}`,
      draw: (context, width, height) => plotSweep(context, width, height, kind, data, sweep.log),
      csv: () => sweepRows(data),
    });
    charts.append(figure);
  }
  if (!data.runs.length) charts.append(el('p', `no run has the label ${data.by}`));
  renderTable(data);
  renderCharts();
  window.addEventListener('resize', renderCharts);
}

/** Wires the header's sweep… control and the view's scale toggle. */
export function wireSweepPicker() {
  $('sweep-log').addEventListener('change', () => { sweep.log = $('sweep-log').checked; renderCharts(); });
  const close = () => { $('sweep-form').hidden = true; $('sweep-open').setAttribute('aria-expanded', 'false'); };
  $('sweep-open').addEventListener('click', async () => {
    if (!$('sweep-form').hidden) { close(); return; }
    const runs = await getJson('/api/runs');
    const keys = [...new Set(runs.flatMap((run) => Object.keys(run.labels ?? {})))].sort();
    $('sweep-by').replaceChildren(...keys.map((key) => el('option', key)));
    $('sweep-go').disabled = !keys.length;
    $('sweep-pick-note').textContent = keys.length ? '' : 'no run has labels yet';
    $('sweep-form').hidden = false;
    $('sweep-open').setAttribute('aria-expanded', 'true');
  });
  $('sweep-cancel').addEventListener('click', close);
  $('sweep-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if ($('sweep-by').value) location.assign(sweepHref($('sweep-by').value));
  });
}
