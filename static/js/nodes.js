// The nodes table: the first nodes of the run, slowest sync first (the answer never
// grows with the senders), one row each with its sync phases (ms since its start),
// the slowest to sync marked, and "and N more" under it.
import { $, clock, el, ms, num, row, short } from './draw.js';
import { PHASES, SYNCED } from './events.js';
import { state } from './state.js';

/** The table's header (once), a row per node shown, and how many are not shown. */
export function renderNodes() {
  const head = $('nodes').tHead;
  if (!head.rows.length) {
    head.append(row(['node', 'reports', 'last event', 'at', 'last message', ...PHASES.map((phase) => phase.label)]
      .map((h) => el('th', h))));
  }
  const sync = (node) => node.phases_ms?.[SYNCED];
  const synced = [...state.nodes.values()].filter((node) => sync(node) != null);
  const slowest = synced.length > 1 ? synced.reduce((a, b) => (sync(b) > sync(a) ? b : a)) : null;
  const rows = [...state.nodes.values()].map((node) => row([
    el('td', node.sender),
    num(node.reports),
    el('td', node.last_event ? short(node.last_event) : ''),
    el('td', node.last_unix_nano ? clock(node.last_unix_nano) : ''),
    el('td', node.last_message || '', 'message'),
    ...PHASES.map((phase) => num(ms(node.phases_ms?.[phase.name]))),
  ], node === slowest ? 'slowest' : ''));
  $('nodes').tBodies[0].replaceChildren(...rows);
  const more = state.nodesTotal - state.nodes.size;
  $('nodes-more').hidden = more <= 0;
  $('nodes-more').textContent = more > 0 ? `… and ${more} more` : '';
}
