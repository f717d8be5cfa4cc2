// The headline (the answers a researcher looks for first, with links to the flagged
// lists) and the header's totals.
import { $, el, ms, plural } from './draw.js';
import { getJson } from './api.js';
import { SYNCED } from './events.js';
import { openFlagged } from './flagged.js';
import { state } from './state.js';

const HEADLINE_ITEMS = 3;      // flagged items named in the headline

/** The first few flagged items of `run` for the headline; never the whole list. */
export async function headlineLists(run, analysis) {
  const [flaggedRounds, disagreeing] = await Promise.all([
    analysis.rounds_flagged ? getJson('/api/rounds', { run, flagged: true, limit: HEADLINE_ITEMS }) : { rounds: [] },
    analysis.winners_disagreeing ? getJson('/api/winners', { run, disagreeing: true, limit: HEADLINE_ITEMS }) : { winners: [] },
  ]);
  return { flaggedRounds: flaggedRounds.rounds, disagreeing: disagreeing.winners };
}

/** "5l, 6l +3 missed block 122" */
function missedText(round) {
  const more = round.missing_count - round.missing.length;
  return `${round.missing.join(', ')}${more > 0 ? ` +${more}` : ''} missed ${round.message}`;
}

/** The answers a researcher looks for first; a fixed size whatever the run's length. */
export function renderHeadline({ flaggedRounds, disagreeing }) {
  const { analysis } = state;
  const items = [];
  const sync = (node) => node.phases_ms?.[SYNCED];
  const synced = [...state.nodes.values()].filter((node) => sync(node) != null);
  if (synced.length) {
    const slowest = synced.reduce((a, b) => (sync(b) > sync(a) ? b : a));
    items.push([`slowest sync: ${slowest.sender} (${ms(sync(slowest))} ms)`]);
  }
  const blocks = analysis.distributions?.block;
  if (blocks?.count) {
    items.push([`block propagation: p50 ${ms(blocks.p50_ms)} ms, p99 ${ms(blocks.p99_ms)} ms, max ${ms(blocks.max_ms)} ms`]);
  }
  if (analysis.rounds_total) {
    const n = analysis.rounds_flagged;
    items.push(n
      ? [`missed: ${plural(n, 'round')} — ${flaggedRounds.map(missedText).join('; ')}`, 'bad', n, 'rounds']
      : ['no missed rounds']);
  }
  if (analysis.winners_total) {
    const n = analysis.winners_disagreeing;
    items.push(n
      ? [`winner disagreement in round ${disagreeing.map((round) => round.round).join(', ')}`, 'bad', n, 'winners']
      : ['all nodes agreed on every winner']);
  }
  $('headline').replaceChildren(...items.map(([text, className, count, list]) => {
    const item = el('span', text, className);
    if (list) {
      const shown = list === 'rounds' ? flaggedRounds.length : disagreeing.length;
      if (count > shown) item.append(` … and ${count - shown} more`);
      const button = el('button', 'list', 'link');
      button.type = 'button';
      button.dataset.list = list;
      button.addEventListener('click', () => openFlagged(list));
      item.append(' ', button);
    }
    return item;
  }));
}

/** The header's "N reports · M nodes". */
export function renderTotals() {
  $('totals').textContent = `${state.total} reports · ${state.nodesTotal} nodes`;
}
