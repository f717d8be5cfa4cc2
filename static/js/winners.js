// Winner agreement: the newest winner rounds, those where nodes named different
// winners standing out.
import { $, el, num, row } from './draw.js';
import { state } from './state.js';

/** A winner round's row (also the flagged list's). */
export function winnerRow(round) {
  const named = Object.entries(round.by_winner).map(([winner, nodes]) => `${winner} ← ${nodes.join(', ')}`).join('   |   ');
  return row([num(round.round), el('td', round.agree ? 'yes' : 'NO'), el('td', named, 'message')], round.agree ? '' : 'bad');
}

/** The analysis's newest winner rounds, newest first. */
export function renderWinners() {
  const { winners, winners_total: total } = state.analysis;
  $('winners-note').textContent = total > winners.length ? `(newest ${winners.length} of ${total} rounds)` : '';
  $('winners').tBodies[0].replaceChildren(...winners.slice().reverse().map(winnerRow));
}
