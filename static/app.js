// perfstats dashboard: plain JS, no build step. Reported text is only ever set as
// textContent, never parsed as HTML.
'use strict';

const PHASES = ['EVENT_LIBP2P_NODE_ID_KNOWN', 'EVENT_FIRST_PEER_CONNECTED', 'EVENT_RA_CONNECTED',
  'EVENT_INITIAL_SYNC_CHAINDB_RECEIVED', 'EVENT_INITIAL_SYNC_CHAINDB_VERIFIED', 'EVENT_INITIAL_SYNC_COMPLETED'];
const PHASE_LABELS = ['id known', 'first peer', 'ra connected', 'chaindb received', 'chaindb verified', 'synced'];
const EVENTS = ['EVENT_LIBP2P_NODE_ID_KNOWN', 'EVENT_FIRST_PEER_CONNECTED', 'EVENT_NEW_PEER_CONNECTED',
  'EVENT_RA_CONNECTED', 'EVENT_INITIAL_SYNC_CHAINDB_RECEIVED', 'EVENT_INITIAL_SYNC_CHAINDB_VERIFIED',
  'EVENT_INITIAL_SYNC_COMPLETED', 'EVENT_SIMTASK_RECEIVED', 'EVENT_TRANSACTION_RECEIVED',
  'EVENT_MINER_COMMIT_RECEIVED', 'EVENT_RA_COMMIT_REVEALED', 'EVENT_BLOCK_WINNER_FOUND',
  'EVENT_NEW_BLOCK_RECEIVED', 'EVENT_RA_NEW_PROBLEM_SENT', 'EVENT_RA_NEW_BLOCK_SENT',
  'EVENT_RA_COMMIT_REVEAL_SENT', 'EVENT_RA_RECEIVED_SIMULATION_DATA'];
const COLORS = ['#8e99ab', '#1f77b4', '#aec7e8', '#17becf', '#9467bd', '#c5b0d5', '#2ca02c', '#ff7f0e',
  '#d9d9d9', '#bcbd22', '#e377c2', '#8c564b', '#d62728', '#ff9896', '#7f0000', '#f7b6d2', '#98df8a'];
const PAGE = 100;
const PAGE_LOAD = 10000;
const SHOWN_ROUNDS = 60;
const SUMMARY_EVERY_MS = 2000;
const token = new URLSearchParams(location.search).get('token');

const $ = (id) => document.getElementById(id);
const state = {
  run: null, reports: [], lastSeq: 0, nodes: new Map(), analysis: null,
  page: 0, source: null, summaryTimer: null, frame: 0, timelineTimer: null,
};

const short = (name) => name.replace(/^EVENT_/, '').toLowerCase().replace(/_/g, ' ');
const clock = (ns) => new Date(ns / 1e6).toISOString().slice(11, 23);
const ms = (value) => (value == null ? '–' : value.toFixed(value < 10 ? 2 : 1));

function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== '' && value != null) query.set(key, value);
  }
  if (token) query.set('token', token);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function getJson(path, params) {
  const response = await fetch(url(path, params));
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** A cell or element whose text is set as text. */
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells, className) {
  const tr = el('tr', null, className);
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el('td', cell));
  return tr;
}

function num(value) { return el('td', value, 'num'); }

// ---- runs ---------------------------------------------------------------

async function loadRuns(select) {
  const runs = await getJson('/api/runs');
  const picker = $('run');
  picker.replaceChildren(...runs.map((run) => {
    const option = el('option', `${run.name} (${run.reports}${run.evicted ? `, ${run.evicted} evicted` : ''})`);
    option.value = run.id;
    return option;
  }));
  const chosen = runs.find((run) => String(run.id) === String(select)) || runs.find((run) => run.current);
  picker.value = chosen.id;
  return chosen;
}

async function newRun() {
  const name = prompt('Name of the new run (empty: automatic)');
  if (name === null) return;
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch('/api/runs', { method: 'POST', headers, body: JSON.stringify(name ? { name } : {}) });
  if (!response.ok) { alert(await response.text()); return; }
  const run = await response.json();
  await loadRuns(run.id);
  await selectRun(run.id);
}

async function selectRun(id) {
  if (state.source) state.source.close();
  Object.assign(state, { run: String(id), reports: [], lastSeq: 0, nodes: new Map(), analysis: null, page: 0 });
  updateExports();
  await refreshSummary();
  await loadReports();
  connect();
}

// ---- data ---------------------------------------------------------------

async function refreshSummary() {
  const run = state.run;
  const analysis = await getJson('/api/analysis', { run, recent: SHOWN_ROUNDS });
  if (run !== state.run) return;
  state.analysis = analysis;
  state.nodes = new Map(analysis.nodes.map((node) => [node.sender, node]));
  renderNodes();
  renderFilterChoices();
  renderTotals();
  renderRounds();
  renderWinners();
  renderHeadline();
}

/** The answers a researcher looks for first, in one line. */
function renderHeadline() {
  const items = [];
  const synced = [...state.nodes.values()].filter((node) => node.phases_ms?.EVENT_INITIAL_SYNC_COMPLETED != null);
  if (synced.length) {
    const slowest = synced.reduce((a, b) => (b.phases_ms.EVENT_INITIAL_SYNC_COMPLETED > a.phases_ms.EVENT_INITIAL_SYNC_COMPLETED ? b : a));
    items.push([`slowest sync: ${slowest.sender} (${ms(slowest.phases_ms.EVENT_INITIAL_SYNC_COMPLETED)} ms)`, '']);
  }
  const blocks = state.analysis.rounds.filter((round) => round.kind === 'block');
  if (blocks.length) {
    const worst = blocks.reduce((a, b) => ((b.max_ms ?? 0) > (a.max_ms ?? 0) ? b : a));
    items.push([`block propagation: p95 ≤ ${ms(blocks.reduce((m, b) => Math.max(m, b.p95_ms ?? 0), 0))} ms, slowest ${ms(worst.max_ms)} ms (${worst.message})`, '']);
    const missed = blocks.filter((round) => round.missing.length);
    items.push([missed.length
      ? `missed blocks: ${missed.map((round) => `${round.missing.join(', ')} missed ${round.message}`).join('; ')}`
      : 'no missed blocks', missed.length ? 'bad' : '']);
  }
  const disagreements = state.analysis.winners.filter((round) => !round.agree);
  if (state.analysis.winners.length) {
    items.push([disagreements.length
      ? `winner disagreement in round ${disagreements.map((round) => round.round).join(', ')}`
      : 'all nodes agreed on every winner', disagreements.length ? 'bad' : '']);
  }
  $('headline').replaceChildren(...items.map(([text, className]) => el('span', text, className)));
}

function scheduleSummary() {
  if (state.summaryTimer) return;
  state.summaryTimer = setTimeout(async () => {
    state.summaryTimer = null;
    try { await refreshSummary(); } catch (error) { console.warn(error); }
  }, SUMMARY_EVERY_MS);
}

async function loadReports() {
  const run = state.run;
  for (;;) {
    const page = await getJson('/api/reports', { run, after: state.lastSeq, limit: PAGE_LOAD });
    if (run !== state.run) return;
    for (const report of page.reports) state.reports.push(report);
    if (page.reports.length) state.lastSeq = page.reports[page.reports.length - 1].seq;
    if (page.next == null) break;
  }
  renderLog();
  renderTimeline();
  renderTotals();
}

function connect() {
  const source = new EventSource(url('/api/stream', { run: state.run, after: state.lastSeq }));
  state.source = source;
  source.onopen = () => setStatus(true);
  source.onerror = () => {
    setStatus(false);
    // The browser retries by itself (sending Last-Event-ID); if it gave up, start again.
    if (source.readyState === EventSource.CLOSED && state.source === source) setTimeout(connect, 1000);
  };
  source.addEventListener('report', (event) => onReport(JSON.parse(event.data)));
}

function setStatus(online) {
  const status = $('status');
  status.textContent = online ? 'live' : 'disconnected: reconnecting…';
  status.className = `status ${online ? 'online' : 'offline'}`;
}

function onReport(report) {
  if (String(report.run) !== state.run || report.seq <= state.lastSeq) return;
  state.reports.push(report);
  state.lastSeq = report.seq;
  const node = state.nodes.get(report.sender) || { sender: report.sender, reports: 0, phases_ms: {}, counts: {} };
  node.reports += 1;
  node.last_event = report.event;
  node.last_unix_nano = report.time_unix_nano;
  node.last_message = report.message;
  state.nodes.set(report.sender, node);
  if (!state.frame) {
    state.frame = requestAnimationFrame(() => {
      state.frame = 0;
      renderNodes();
      renderLog();
      renderTotals();
    });
  }
  if (!state.timelineTimer) {
    state.timelineTimer = setTimeout(() => { state.timelineTimer = null; renderTimeline(); }, 500);
  }
  scheduleSummary();
}

// ---- views --------------------------------------------------------------

function renderTotals() {
  $('totals').textContent = `${state.reports.length} reports · ${state.nodes.size} nodes`;
}

function renderNodes() {
  const head = $('nodes').tHead;
  if (!head.rows.length) {
    head.append(row(['node', 'reports', 'last event', 'at', 'last message', ...PHASE_LABELS.map((label) => `${label} ms`)]
      .map((h) => el('th', h))));
  }
  const sync = (node) => node.phases_ms?.EVENT_INITIAL_SYNC_COMPLETED;
  const synced = [...state.nodes.values()].filter((node) => sync(node) != null);
  const slowest = synced.length > 1 ? synced.reduce((a, b) => (sync(b) > sync(a) ? b : a)) : null;
  const rows = [...state.nodes.values()].map((node) => row([
    el('td', node.sender),
    num(node.reports),
    el('td', node.last_event ? short(node.last_event) : ''),
    el('td', node.last_unix_nano ? clock(node.last_unix_nano) : ''),
    el('td', node.last_message || '', 'message'),
    ...PHASES.map((phase) => num(ms(node.phases_ms?.[phase]))),
  ], node === slowest ? 'slowest' : ''));
  $('nodes').tBodies[0].replaceChildren(...rows);
}

function filtered() {
  const sender = $('f-sender').value;
  const event = $('f-event').value;
  const text = $('f-text').value;
  if (!sender && !event && !text) return state.reports;
  return state.reports.filter((report) => (!sender || report.sender === sender)
    && (!event || report.event === event)
    && (!text || report.message.includes(text) || report.sender.includes(text)));
}

function renderLog() {
  const shown = filtered();
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  const end = shown.length - state.page * PAGE;
  const rows = [];
  for (let index = end - 1; index >= Math.max(0, end - PAGE); index -= 1) {
    const report = shown[index];
    rows.push(row([num(report.seq), el('td', clock(report.time_unix_nano)), el('td', report.sender),
      el('td', short(report.event)), el('td', report.message, 'message')]));
  }
  $('log').tBodies[0].replaceChildren(...rows);
  $('log-count').textContent = `${shown.length} shown · page ${state.page + 1} of ${pages}`;
  updateExports();
}

function renderFilterChoices() {
  const keep = (select, values, label) => {
    const current = select.value;
    const options = [el('option', label), ...values.map((value) => {
      const option = el('option', value.startsWith('EVENT_') ? short(value) : value);
      option.value = value;
      return option;
    })];
    options[0].value = '';
    select.replaceChildren(...options);
    select.value = current;
  };
  keep($('f-sender'), [...state.nodes.keys()], 'all senders');
  if ($('f-event').options.length <= 1) keep($('f-event'), EVENTS, 'all events');
}

function updateExports() {
  const params = { run: state.run, sender: $('f-sender').value, event: $('f-event').value, q: $('f-text').value };
  $('export-csv').href = url('/api/export', { ...params, format: 'csv' });
  $('export-ndjson').href = url('/api/export', { ...params, format: 'ndjson' });
}

function renderRounds() {
  const { rounds, rounds_total: total } = state.analysis;
  $('rounds-note').textContent = total > rounds.length
    ? `(newest ${SHOWN_ROUNDS} of ${total} rounds, and every older one with a missing node)` : '';
  const rows = rounds.slice().reverse().map((round) => {
    const slowest = Object.entries(round.latency_ms).sort((a, b) => b[1] - a[1])[0];
    return row([
      el('td', round.kind), num(round.number), el('td', round.message, 'message'),
      num(ms(round.p50_ms)), num(ms(round.p95_ms)), num(ms(round.max_ms)),
      el('td', slowest ? slowest[0] : ''),
      el('td', round.missing.join(' '), 'missing'),
    ], round.missing.length ? 'bad' : '');
  });
  $('rounds').tBodies[0].replaceChildren(...rows);
  renderHistogram();
}

function renderHistogram() {
  const canvas = $('histogram');
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  const values = state.analysis.rounds.filter((round) => round.kind === 'block')
    .flatMap((round) => Object.values(round.latency_ms));
  if (!values.length) return;
  const max = values.reduce((a, b) => Math.max(a, b), 0);
  const bins = 20;
  const width = max > 0 ? max / bins : 1;
  const counts = new Array(bins).fill(0);
  for (const value of values) counts[Math.min(bins - 1, Math.floor(value / width))] += 1;
  const top = counts.reduce((a, b) => Math.max(a, b), 0);
  const [left, bottom, plotW, plotH] = [30, canvas.height - 20, canvas.width - 40, canvas.height - 30];
  context.fillStyle = '#1f77b4';
  counts.forEach((count, index) => {
    const h = (count / top) * plotH;
    context.fillRect(left + (index * plotW) / bins + 1, bottom - h, plotW / bins - 2, h);
  });
  context.fillStyle = '#1d2330';
  context.font = '11px system-ui';
  context.fillText('0', left, bottom + 14);
  context.fillText(`${ms(max)} ms`, left + plotW - 40, bottom + 14);
  context.fillText(String(top), 4, bottom - plotH + 10);
}

function renderWinners() {
  const { winners, winners_total: total } = state.analysis;
  $('winners-note').textContent = total > winners.length
    ? `(newest ${SHOWN_ROUNDS} of ${total} rounds, and every older one with a disagreement)` : '';
  const rows = winners.slice().reverse().map((round) => {
    const named = Object.entries(round.by_winner).map(([winner, nodes]) => `${winner} ← ${nodes.join(', ')}`).join('   |   ');
    return row([num(round.round), el('td', round.agree ? 'yes' : 'NO'), el('td', named, 'message')], round.agree ? '' : 'bad');
  });
  $('winners').tBodies[0].replaceChildren(...rows);
}

// ---- timeline -----------------------------------------------------------

const timeline = { lanes: [], from: 0, to: 1, laneHeight: 22, left: 60 };

function renderTimeline() {
  const canvas = $('timeline');
  const senders = [...new Set(state.reports.map((report) => report.sender))].sort();
  const height = Math.max(60, senders.length * timeline.laneHeight + 24);
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 800;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext('2d');
  context.scale(ratio, ratio);
  context.clearRect(0, 0, width, height);
  if (!state.reports.length) return;
  let from = Infinity;
  let to = -Infinity;
  for (const report of state.reports) {
    if (report.time_unix_nano < from) from = report.time_unix_nano;
    if (report.time_unix_nano > to) to = report.time_unix_nano;
  }
  Object.assign(timeline, { from, to: Math.max(to, from + 1), width });
  const index = new Map(senders.map((sender, lane) => [sender, lane]));
  timeline.lanes = senders.map((sender) => ({ sender, reports: [] }));
  const plot = width - timeline.left - 10;
  context.font = '11px system-ui';
  senders.forEach((sender, lane) => {
    context.fillStyle = lane % 2 ? '#f6f7fb' : '#fff';
    context.fillRect(0, lane * timeline.laneHeight, width, timeline.laneHeight);
    context.fillStyle = '#1d2330';
    context.fillText(sender, 4, lane * timeline.laneHeight + 15);
  });
  for (const report of state.reports) {
    const lane = index.get(report.sender);
    timeline.lanes[lane].reports.push(report);
    const x = timeline.left + ((report.time_unix_nano - from) / (timeline.to - from)) * plot;
    context.fillStyle = COLORS[EVENTS.indexOf(report.event)] || '#000';
    context.fillRect(x - 1, lane * timeline.laneHeight + 4, 3, timeline.laneHeight - 8);
  }
  context.fillStyle = '#6b7385';
  const axis = senders.length * timeline.laneHeight + 16;
  context.fillText(clock(from), timeline.left, axis);
  context.fillText(clock(timeline.to), width - 90, axis);
  if (!$('legend').childElementCount) {
    $('legend').replaceChildren(...EVENTS.map((event, i) => {
      const item = el('span', short(event));
      const swatch = el('i');
      swatch.style.background = COLORS[i];
      item.prepend(swatch);
      return item;
    }));
  }
}

function hover(event) {
  const tip = $('tip');
  const lane = timeline.lanes[Math.floor(event.offsetY / timeline.laneHeight)];
  const plot = timeline.width - timeline.left - 10;
  const time = timeline.from + ((event.offsetX - timeline.left) / plot) * (timeline.to - timeline.from);
  const slack = (4 / plot) * (timeline.to - timeline.from);
  let best = null;
  for (const report of lane ? lane.reports : []) {
    const distance = Math.abs(report.time_unix_nano - time);
    if (distance <= slack && (!best || distance < Math.abs(best.time_unix_nano - time))) best = report;
  }
  if (!best) { tip.hidden = true; return; }
  tip.textContent = `#${best.seq} ${best.sender} ${short(best.event)}\n${clock(best.time_unix_nano)}\n${best.message}`;
  tip.style.left = `${Math.min(event.offsetX + 12, timeline.width - 300)}px`;
  tip.style.top = `${event.offsetY + 12}px`;
  tip.hidden = false;
}

// ---- wiring -------------------------------------------------------------

function wire() {
  $('run').addEventListener('change', () => selectRun($('run').value));
  $('new-run').addEventListener('click', newRun);
  for (const id of ['f-sender', 'f-event', 'f-text']) {
    $(id).addEventListener('input', () => { state.page = 0; renderLog(); });
  }
  $('filters').addEventListener('submit', (event) => event.preventDefault());
  $('prev').addEventListener('click', () => { state.page = Math.max(0, state.page - 1); renderLog(); });
  $('next').addEventListener('click', () => { state.page += 1; renderLog(); });
  const canvas = $('timeline');
  canvas.addEventListener('mousemove', hover);
  canvas.addEventListener('mouseleave', () => { $('tip').hidden = true; });
  window.addEventListener('resize', () => renderTimeline());
}

async function main() {
  wire();
  const run = await loadRuns();
  await selectRun(run.id);
}

main().catch((error) => {
  setStatus(false);
  $('status').textContent = `error: ${error.message}`;
});
