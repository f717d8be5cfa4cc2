// The compare view (/?compare=a,b): two runs side by side, their latency per round
// kind with the difference's interval, CDFs (each downloadable as a figure), nodes
// and flags. No live reads.
import { $, el, ms, num, plural, row } from './draw.js';
import { get, token, url } from './api.js';
import { SIDES, SIDE_COLORS, cdfRows, drawCdf, plotCdf } from './cdf.js';
import { addDownloads } from './figure.js';

/** The runs the address names, and the server's comparison of them. */
export const compare = { pair: null, data: null };

/** The runs of `?compare=a,b` (ids or names, each URL-encoded), or null. */
export function compareParam() {
  const raw = location.search.slice(1).split('&').find((part) => part.split('=')[0] === 'compare');
  if (raw == null) return null;
  const value = raw.slice('compare'.length + 1);
  const decode = (text) => decodeURIComponent(text.replace(/\+/g, ' '));
  try {
    const parts = value.split(',');
    // A literal comma separates the two; with it encoded too, split the decoded value.
    return parts.length === 1 ? decode(value).split(',') : parts.map(decode);
  } catch {
    return [];
  }
}

/** The shareable address of a comparison, with a literal comma between the runs. */
export function compareHref(a, b) {
  const tokenPart = token ? `&token=${encodeURIComponent(token)}` : '';
  return `/?compare=${encodeURIComponent(a)},${encodeURIComponent(b)}${tokenPart}`;
}

/** "+40.2" / "-3.1" */
const signed = (value) => `${value < 0 ? '-' : '+'}${Math.abs(value).toFixed(1)}`;

function deltaText(kind) {
  if (kind.p50_delta_ms == null) return '–';
  const ci = kind.p50_delta_ci95_ms;
  return `${signed(kind.p50_delta_ms)} ms${ci ? ` [${ci[0].toFixed(1)}, ${ci[1].toFixed(1)}]` : ''}`;
}

function verdict(kind) {
  if (!kind.p50_delta_ci95_ms) return 'too few';
  return kind.real ? 'beyond noise' : 'within noise';
}

const hasReceipts = (kind) => kind.a.count + kind.b.count > 0;

function swatch(side) {
  const mark = el('i', null, `swatch ${side}`);
  mark.style.background = SIDE_COLORS[side];
  return mark;
}

/** Shows the compare view instead of the live one, for the runs `pair`. */
export async function showCompare(pair) {
  for (const node of document.querySelectorAll('.live-only')) node.hidden = true;
  $('live').hidden = true;
  $('compare').hidden = false;
  $('live-link').hidden = false;
  $('live-link').href = url('/');
  compare.pair = pair;
  if (pair.length !== 2 || pair.some((name) => !name)) {
    compareError('The address should name two runs: /?compare=A,B (ids or names, URL-encoded).');
    return;
  }
  document.title = `perfstats: compare ${pair[0]} with ${pair[1]}`;
  $('compare-title').textContent = `Compare ${pair[0]} with ${pair[1]}`;
  const response = await get('/api/compare', { a: pair[0], b: pair[1] });
  if (!response.ok) {
    compareError(`Cannot compare: ${await response.text()}`);
    return;
  }
  compare.data = await response.json();
  renderCompare();
  window.addEventListener('resize', renderCdfs);
}

/** Says why there is no comparison to show. */
export function compareError(text) {
  $('compare-error').textContent = text;
  $('compare-error').hidden = false;
}

function renderCompare() {
  const data = compare.data;
  $('compare-title').textContent = `Compare a: ${data.a.name} with b: ${data.b.name}`;
  document.title = `perfstats: compare ${data.a.name} with ${data.b.name}`;
  const runs = $('compare-runs');
  runs.replaceChildren();
  for (const side of SIDES) {
    const info = data[side];
    const item = el('span', null, 'run-info');
    item.append(swatch(side), el('b', `${side}: ${info.name}`),
      ` (#${info.id}) · ${plural(info.reports, 'report')}${info.evicted ? ` (${info.evicted} evicted)` : ''}`
      + ` · started ${new Date(info.started_unix_nano / 1e6).toISOString().replace('T', ' ').slice(0, 19)} UTC`
      + `${info.current ? ' · current run' : ''}`);
    runs.append(item);
  }
  const swap = el('a', 'swap a and b');
  swap.href = compareHref(data.b.id, data.a.id);
  runs.append(swap);
  renderDeltas();
  renderCdfFigures();
  renderCompareNodes();
  renderCompareFlags();
}

function renderDeltas() {
  const kinds = Object.entries(compare.data.kinds).filter(([, kind]) => hasReceipts(kind));
  $('compare-deltas-view').hidden = false;
  const rows = kinds.map(([name, kind]) => {
    const said = verdict(kind);
    const delta = el('td', deltaText(kind), 'num delta');
    if (kind.real) delta.classList.add(kind.p50_delta_ms > 0 ? 'slower' : 'faster');
    const tr = row([
      el('td', name), num(kind.a.count), num(kind.b.count), num(ms(kind.a.p50_ms)), num(ms(kind.b.p50_ms)),
      delta, el('td', said, `verdict ${said.replace(' ', '-')}`), num(ms(kind.a.p99_ms)), num(ms(kind.b.p99_ms)),
    ], kind.real ? 'real' : '');
    tr.dataset.kind = name;
    return tr;
  });
  if (!rows.length) {
    const cell = el('td', 'no propagation rounds in either run');
    cell.colSpan = 9;
    rows.push(row([cell]));
  }
  $('compare-deltas').tBodies[0].replaceChildren(...rows);
}

function renderCdfFigures() {
  const kinds = Object.entries(compare.data.kinds)
    .filter(([, kind]) => kind.quantiles.a.length || kind.quantiles.b.length);
  $('compare-cdfs-view').hidden = !kinds.length;
  $('compare-cdfs').replaceChildren(...kinds.map(([name, kind]) => {
    const figure = el('figure', null, 'cdf-figure');
    const caption = el('figcaption');
    caption.append(el('b', `${name} rounds`));
    for (const side of SIDES) {
      const dist = kind[side];
      const item = el('span', `${side}: ${dist.count ? `p50 ${ms(dist.p50_ms)} ms · ${plural(dist.count, 'receipt')}` : 'no receipts'}`);
      item.prepend(swatch(side));
      caption.append(item);
    }
    const canvas = el('canvas', null, 'cdf');
    canvas.id = `cdf-${name}`;
    canvas.dataset.kind = name;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `${name} latency CDF of a (${compare.data.a.name}) and b (${compare.data.b.name})`);
    const runs = compare.data;
    addDownloads(caption, {
      chart: `cdf-${name}`,
      name: () => `${runs.a.name}-vs-${runs.b.name}-${name}-cdf`,
      draw: (context, width, height) => plotCdf(context, width, height, name, kind, runs),
      csv: () => cdfRows(name, kind, runs),
    });
    figure.append(caption, canvas);
    return figure;
  }));
  renderCdfs();
}

function renderCdfs() {
  if (!compare.data) return;
  for (const canvas of document.querySelectorAll('canvas.cdf')) {
    const name = canvas.dataset.kind;
    drawCdf(canvas, name, compare.data.kinds[name], compare.data);
  }
}

function renderCompareNodes() {
  const { nodes } = compare.data;
  $('compare-nodes-view').hidden = !nodes.length;
  const top = Math.max(1, ...nodes.flatMap((node) => SIDES.map((side) => node[side]?.synced_ms ?? 0)));
  const rows = nodes.map((node) => {
    const bars = el('td', null, 'sync-bars');
    for (const side of SIDES) {
      const info = node[side];
      const line = el('div', null, `sync-line ${side}`);
      const track = el('span', null, 'track');
      if (info?.synced_ms != null) {
        const bar = el('span', null, `bar ${side}`);
        bar.style.width = `${Math.max(0.5, (info.synced_ms / top) * 100)}%`;
        track.append(bar);
      }
      const value = !info ? '–' : info.synced_ms == null ? 'not synced' : `${ms(info.synced_ms)} ms`;
      line.title = !info ? `${node.sender} did not report in ${side}` : '';
      line.append(el('span', side, `side ${side}`), track, el('span', value, 'bar-value'));
      bars.append(line);
    }
    const both = node.a && node.b;
    const blockDelta = both && node.a.block_p50_ms != null && node.b.block_p50_ms != null
      ? `${signed(node.b.block_p50_ms - node.a.block_p50_ms)}` : '–';
    const missed = (side) => {
      const cell = num(node[side] ? node[side].blocks_missed : '–');
      if (node[side]?.blocks_missed) cell.classList.add('missing');
      return cell;
    };
    const tr = row([
      el('td', node.sender, 'node-name'), bars,
      num(node.synced_delta_ms == null ? '–' : signed(node.synced_delta_ms)),
      num(node.a ? ms(node.a.block_p50_ms) : '–'), num(node.b ? ms(node.b.block_p50_ms) : '–'),
      num(blockDelta), missed('a'), missed('b'),
    ], both ? '' : 'one-side');
    tr.dataset.sender = node.sender;
    return tr;
  });
  $('compare-nodes').tBodies[0].replaceChildren(...rows);
}

function renderCompareFlags() {
  const { flags } = compare.data;
  $('compare-flags-view').hidden = false;
  $('compare-flags').tBodies[0].replaceChildren(...SIDES.map((side) => {
    const name = el('td', `${side}: ${compare.data[side].name}`);
    name.prepend(swatch(side));
    const count = (value) => {
      const cell = num(value);
      if (value) cell.classList.add('missing');
      return cell;
    };
    const tr = row([name, count(flags[side].rounds_flagged), count(flags[side].winners_disagreeing)]);
    tr.dataset.side = side;
    return tr;
  }));
}
