// Propagation rounds: the newest rounds' table, and one round's propagation across
// the nodes (its bars, who missed it, and the timeline zoomed to it).
import { $, clock, el, ms, num, row } from './draw.js';
import { getJson } from './api.js';
import { state } from './state.js';
import { setView } from './timeline.js';

/** A round's row (also the flagged list's); a click shows its propagation. */
export function roundRow(round) {
  const slowest = Object.entries(round.latency_ms).sort((a, b) => b[1] - a[1])[0];
  const tr = row([
    el('td', round.kind), num(round.number), el('td', round.message, 'message'),
    num(ms(round.p50_ms)), num(ms(round.p95_ms)), num(ms(round.max_ms)),
    el('td', slowest ? slowest[0] : ''),
    el('td', round.missing_count ? missedNames(round) : '', 'missing'),
  ], `pick${round.missing_count ? ' bad' : ''}`);
  tr.title = 'show this round\'s propagation';
  tr.addEventListener('click', () => showRound(round.kind, round.number));
  return tr;
}

function missedNames(round) {
  const more = round.missing_count - round.missing.length;
  return `${round.missing.join(' ')}${more > 0 ? ` +${more} more` : ''}`;
}

/** The analysis's newest rounds, newest first. */
export function renderRounds() {
  const { rounds, rounds_total: total } = state.analysis;
  $('rounds-note').textContent = total > rounds.length ? `(newest ${rounds.length} of ${total} rounds)` : '';
  $('rounds').tBodies[0].replaceChildren(...rounds.slice().reverse().map(roundRow));
}

/** One round's propagation: a bar per node that received it, who missed it. */
async function showRound(kind, number) {
  const run = state.run;
  const answer = await getJson('/api/rounds', { run, kind, number });
  const round = answer.rounds[0];
  if (run !== state.run || !round) return;
  $('round-detail').hidden = false;
  $('round-title').textContent = `${round.kind} round ${round.number}: ${round.message}`;
  const received = Object.entries(round.latency_ms).sort((a, b) => a[1] - b[1]);
  $('round-summary').textContent = `sent by ${round.sender} at ${clock(round.sent_unix_nano)} · received by `
    + `${received.length} of ${received.length + round.missing_count} nodes · p50 ${ms(round.p50_ms)} · `
    + `p95 ${ms(round.p95_ms)} · max ${ms(round.max_ms)} ms`;
  const max = received.length ? received[received.length - 1][1] : 1;
  $('round-bars').replaceChildren(...received.map(([node, latency]) => {
    const line = el('div', null, 'bar-row');
    const bar = el('span', null, 'bar');
    bar.style.width = `${Math.max(1, (latency / (max || 1)) * 100)}%`;
    const track = el('span', null, 'track');
    track.append(bar);
    line.append(el('span', node, 'bar-name'), track, el('span', `${ms(latency)} ms`, 'bar-value'));
    return line;
  }));
  $('round-missing').textContent = round.missing_count
    ? `missing (${round.missing_count}): ${round.missing.join(', ')}` : '';
  // The timeline shows the round: from a little before it was sent to its last receipt.
  const span = Math.max((round.max_ms ?? 0) * 1e6, 50e6);
  setView(round.sent_unix_nano - span * 0.25, round.sent_unix_nano + span * 1.25);
  $('round-detail').scrollIntoView({ block: 'nearest' });
}

/** Hides the round shown (another run was chosen). */
export function hideRound() {
  $('round-detail').hidden = true;
}
