// The live view: the run picker and "new run", choosing a run (every view starts
// over), the summaries read again while reports arrive (asking only for what is
// shown: the first nodes, the newest rounds), and the live stream, whose reports
// update only what is on screen.
import { $, el, labelText } from './draw.js';
import { getJson, openStream, postJson } from './api.js';
import { loadEvents } from './events.js';
import { closeFlagged, wireFlagged } from './flagged.js';
import { renderHistogram, wireHistogram } from './histogram.js';
import { LOG_PAGE, clearLog, loadLog, prependLive, renderFilterChoices, wireLog } from './log.js';
import { renderNodes } from './nodes.js';
import { hideRound, renderRounds } from './rounds.js';
import { state } from './state.js';
import { headlineLists, renderHeadline, renderTotals } from './summary.js';
import { clearTimeline, fetchTimeline, timelineReport, wireTimeline } from './timeline.js';
import { renderWinners } from './winners.js';

const SHOWN_ROUNDS = 60;       // newest rounds and winner rounds in the tables
const SHOWN_NODES = 50;        // first nodes (slowest sync first) in the nodes table
const SUMMARY_EVERY_MS = 2000; // analysis refresh while reports arrive

// ---- runs ---------------------------------------------------------------

async function loadRuns(select) {
  const runs = await getJson('/api/runs');
  const picker = $('run');
  picker.replaceChildren(...runs.map((run) => {
    const labels = labelText(run.labels);
    const option = el('option', `${run.name} (${run.reports}${run.evicted ? `, ${run.evicted} evicted` : ''})${labels ? ` ${labels}` : ''}`);
    option.value = run.id;
    option.dataset.name = run.name;
    return option;
  }));
  const chosen = runs.find((run) => String(run.id) === String(select) || run.name === select)
    || runs.find((run) => run.current);
  picker.value = chosen.id;
  $('run-labels').textContent = labelText(chosen.labels);
  return chosen;
}

async function newRun() {
  const name = prompt('Name of the new run (empty: automatic)');
  if (name === null) return;
  const response = await postJson('/api/runs', name ? { name } : {});
  if (!response.ok) { alert(await response.text()); return; }
  const run = await response.json();
  await loadRuns(run.id);
  await selectRun(run.id);
}

async function selectRun(id) {
  if (state.source) state.source.close();
  const option = [...$('run').options].find((choice) => choice.value === String(id));
  Object.assign(state, { run: String(id), runName: option?.dataset.name ?? `run-${id}`, total: 0, nodes: new Map(), nodesTotal: 0, analysis: null, lastSeq: 0, pending: [] });
  clearLog();
  clearTimeline();
  closeFlagged();
  hideRound();
  connect();
  await Promise.all([refreshSummary(), loadLog(), fetchTimeline()]);
}

// ---- summaries: totals, nodes, headline, rounds, winners, histogram -------

async function refreshSummary() {
  const run = state.run;
  const [analysis, runs] = await Promise.all([
    getJson('/api/analysis', { run, recent: SHOWN_ROUNDS, nodes: SHOWN_NODES }), getJson('/api/runs')]);
  const lists = await headlineLists(run, analysis);
  if (run !== state.run) return;
  state.analysis = analysis;
  const shown = runs.find((info) => String(info.id) === run);
  state.total = shown?.reports ?? state.total;
  if (shown) $('run-labels').textContent = labelText(shown.labels);
  state.nodes = new Map(analysis.nodes.map((node) => [node.sender, node]));
  state.nodesTotal = analysis.nodes_total;
  renderNodes();
  renderFilterChoices();
  renderTotals();
  renderRounds();
  renderWinners();
  renderHistogram();
  renderHeadline(lists);
}

function scheduleSummary() {
  if (state.summaryTimer) return;
  state.summaryTimer = setTimeout(async () => {
    state.summaryTimer = null;
    try { await refreshSummary(); } catch (error) { console.warn(error); }
  }, SUMMARY_EVERY_MS);
}

// ---- live stream ------------------------------------------------------------

function connect() {
  const source = openStream(state.run, state.lastSeq, {
    onOpen: () => {
      // Back after a disconnection: what was missed comes over the stream; the
      // summaries are read again.
      if ($('status').classList.contains('offline') && state.analysis) scheduleSummary();
      setStatus(true);
    },
    onError: () => {
      setStatus(false);
      // The browser retries by itself (sending Last-Event-ID); if it gave up, start again.
      if (source.readyState === EventSource.CLOSED && state.source === source) setTimeout(connect, 1000);
    },
    onReport,
  });
  state.source = source;
}

function setStatus(online) {
  const status = $('status');
  status.textContent = online ? 'live' : 'disconnected: reconnecting…';
  status.className = `status ${online ? 'online' : 'offline'}`;
}

function onReport(report) {
  if (String(report.run) !== state.run || report.seq <= state.lastSeq) return;
  state.lastSeq = report.seq;
  state.total += 1;
  // A node shown is brought up to date; one not shown (or new) waits for the next
  // summary, which places it in the order.
  const node = state.nodes.get(report.sender);
  if (node) {
    node.reports += 1;
    node.last_event = report.event;
    node.last_unix_nano = report.time_unix_nano;
    node.last_message = report.message;
  }
  timelineReport(report);
  // Only the newest page's worth is kept until the next frame.
  state.pending.push(report);
  if (state.pending.length > LOG_PAGE) state.pending.splice(0, state.pending.length - LOG_PAGE);
  if (!state.frame) {
    state.frame = requestAnimationFrame(() => {
      state.frame = 0;
      const reports = state.pending;
      state.pending = [];
      prependLive(reports);
      renderNodes();
      renderTotals();
    });
  }
  scheduleSummary();
}

// ---- start ------------------------------------------------------------------

/** Wires the live view's controls, reads the names and the runs, shows the current run. */
export async function showLive() {
  $('run').addEventListener('change', () => selectRun($('run').value).catch(console.warn));
  $('new-run').addEventListener('click', newRun);
  wireLog();
  wireFlagged();
  wireHistogram();
  wireTimeline();
  const [run] = await Promise.all([loadRuns(new URLSearchParams(location.search).get('run')), loadEvents()]);
  await selectRun(run.id);
}

/** Shows an error that stopped the live view in the header's status. */
export function showLiveError(error) {
  setStatus(false);
  $('status').textContent = `error: ${error.message}`;
}
