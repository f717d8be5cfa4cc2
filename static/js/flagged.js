// The flagged lists the headline links to (rounds some node missed, winner rounds
// that disagree), paged newest first from the server.
import { $, el, row } from './draw.js';
import { getJson } from './api.js';
import { roundRow } from './rounds.js';
import { state } from './state.js';
import { winnerRow } from './winners.js';

const FLAGGED_PAGE = 20;       // rows of a flagged list page

const flagged = { kind: null, before: null, newer: [], next: null };

/** Shows the first page of the `kind` list: `rounds` or `winners`. */
export function openFlagged(kind) {
  Object.assign(flagged, { kind, before: null, newer: [], next: null });
  $('flagged-view').hidden = false;
  loadFlagged().catch(console.warn);
  $('flagged-view').scrollIntoView({ block: 'nearest' });
}

async function loadFlagged() {
  const { kind, before } = flagged;
  const run = state.run;
  const rounds = kind === 'rounds';
  const page = rounds
    ? await getJson('/api/rounds', { run, flagged: true, before, limit: FLAGGED_PAGE })
    : await getJson('/api/winners', { run, disagreeing: true, before, limit: FLAGGED_PAGE });
  if (run !== state.run || kind !== flagged.kind || before !== flagged.before) return;
  flagged.next = page.next;
  const count = rounds ? state.analysis?.rounds_flagged : state.analysis?.winners_disagreeing;
  $('flagged-title').textContent = rounds ? 'Rounds with missing nodes' : 'Winner disagreements';
  $('flagged-note').textContent = `${count ?? '?'} in all · page ${flagged.newer.length + 1} · newest first`;
  const head = rounds
    ? ['kind', '#', 'message', 'p50 ms', 'p95 ms', 'max ms', 'slowest', 'missing']
    : ['round', 'agree', 'winners named (by nodes)'];
  $('flagged').tHead.replaceChildren(row(head.map((h) => el('th', h))));
  $('flagged').tBodies[0].replaceChildren(...(rounds ? page.rounds.map(roundRow) : page.winners.map(winnerRow)));
  $('flagged-older').disabled = page.next == null;
  $('flagged-newer').disabled = !flagged.newer.length;
}

/** Hides the list (its close button, or another run chosen). */
export function closeFlagged() {
  $('flagged-view').hidden = true;
  flagged.kind = null;
}

export function wireFlagged() {
  $('flagged-older').addEventListener('click', () => {
    if (flagged.next == null) return;
    flagged.newer.push(flagged.before);
    flagged.before = flagged.next;
    loadFlagged().catch(console.warn);
  });
  $('flagged-newer').addEventListener('click', () => {
    if (!flagged.newer.length) return;
    flagged.before = flagged.newer.pop();
    loadFlagged().catch(console.warn);
  });
  $('flagged-close').addEventListener('click', closeFlagged);
}
