// perfstats dashboard: plain JS, no build step. Reported text is only ever set as
// textContent, never parsed as HTML.
//
// The page holds a bounded amount whatever the run's length: one page of the log,
// the newest rounds, one timeline window (counts per bucket, or the raw reports
// once zoomed in far enough), the run's summaries. Everything else is read from the
// server on demand; the live stream only updates what is on screen.
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
  '#b8b8b8', '#bcbd22', '#e377c2', '#8c564b', '#d62728', '#ff9896', '#7f0000', '#f7b6d2', '#98df8a'];
const color = (event) => COLORS[EVENTS.indexOf(event)] || '#000';
const LOG_PAGE = 100;          // rows of the event log (one server page)
const SHOWN_ROUNDS = 60;       // newest rounds and winner rounds in the tables
const FLAGGED_PAGE = 20;       // rows of a flagged list page
const HEADLINE_ITEMS = 3;      // flagged items named in the headline
const SUMMARY_EVERY_MS = 2000; // analysis refresh while reports arrive
const TIMELINE_FOLLOW_MS = 2000; // live refresh of a window showing the run's end
const TIMELINE_DEBOUNCE_MS = 200; // at most ~5 window fetches a second while interacting
const MIN_WINDOW_NS = 1e5;     // 0.1 ms: the narrowest timeline window
const token = new URLSearchParams(location.search).get('token');

const $ = (id) => document.getElementById(id);
const state = {
  run: null, total: 0, nodes: new Map(), analysis: null, source: null, lastSeq: 0,
  summaryTimer: null, frame: 0, pending: [],
};

const short = (name) => name.replace(/^EVENT_/, '').toLowerCase().replace(/_/g, ' ');
const clock = (ns) => new Date(ns / 1e6).toISOString().slice(11, 23);
const ms = (value) => (value == null ? '–' : value.toFixed(value < 10 ? 2 : 1));
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

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

/** An element whose text is set as text. */
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

/** A canvas sized to its box in CSS pixels, drawn at the screen's resolution. */
function canvasContext(canvas, height) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.height = `${height}px`;
  const context = canvas.getContext('2d');
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  context.font = '11px system-ui, sans-serif';
  return { context, width, height };
}

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
  const response = await fetch(url('/api/runs'), { method: 'POST', headers, body: JSON.stringify(name ? { name } : {}) });
  if (!response.ok) { alert(await response.text()); return; }
  const run = await response.json();
  await loadRuns(run.id);
  await selectRun(run.id);
}

async function selectRun(id) {
  if (state.source) state.source.close();
  Object.assign(state, { run: String(id), total: 0, nodes: new Map(), analysis: null, lastSeq: 0, pending: [] });
  Object.assign(log, { before: null, newer: [], next: null, rows: [] });
  Object.assign(timeline, { view: null, data: null, follow: true });
  flagged.kind = null;
  $('flagged-view').hidden = true;
  $('round-detail').hidden = true;
  connect();
  await Promise.all([refreshSummary(), loadLog(), fetchTimeline()]);
}

// ---- summary: totals, nodes, headline, rounds, winners, histogram --------

async function refreshSummary() {
  const run = state.run;
  const [analysis, runs] = await Promise.all([
    getJson('/api/analysis', { run, recent: SHOWN_ROUNDS }), getJson('/api/runs')]);
  // The first few flagged items for the headline; never the whole list.
  const [flaggedRounds, disagreeing] = await Promise.all([
    analysis.rounds_flagged ? getJson('/api/rounds', { run, flagged: true, limit: HEADLINE_ITEMS }) : { rounds: [] },
    analysis.winners_disagreeing ? getJson('/api/winners', { run, disagreeing: true, limit: HEADLINE_ITEMS }) : { winners: [] },
  ]);
  if (run !== state.run) return;
  state.analysis = analysis;
  state.total = runs.find((info) => String(info.id) === run)?.reports ?? state.total;
  state.nodes = new Map(analysis.nodes.map((node) => [node.sender, node]));
  renderNodes();
  renderFilterChoices();
  renderTotals();
  renderRounds();
  renderWinners();
  renderHistogram();
  renderHeadline(flaggedRounds.rounds, disagreeing.winners);
}

function scheduleSummary() {
  if (state.summaryTimer) return;
  state.summaryTimer = setTimeout(async () => {
    state.summaryTimer = null;
    try { await refreshSummary(); } catch (error) { console.warn(error); }
  }, SUMMARY_EVERY_MS);
}

/** "5l, 6l +3 missed block 122" */
function missedText(round) {
  const more = round.missing_count - round.missing.length;
  return `${round.missing.join(', ')}${more > 0 ? ` +${more}` : ''} missed ${round.message}`;
}

/** The answers a researcher looks for first; a fixed size whatever the run's length. */
function renderHeadline(flaggedRounds, disagreeing) {
  const { analysis } = state;
  const items = [];
  const sync = (node) => node.phases_ms?.EVENT_INITIAL_SYNC_COMPLETED;
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

function renderTotals() {
  $('totals').textContent = `${state.total} reports · ${state.nodes.size} nodes`;
}

function renderNodes() {
  const head = $('nodes').tHead;
  if (!head.rows.length) {
    head.append(row(['node', 'reports', 'last event', 'at', 'last message', ...PHASE_LABELS]
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

function roundRow(round) {
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

function renderRounds() {
  const { rounds, rounds_total: total } = state.analysis;
  $('rounds-note').textContent = total > rounds.length ? `(newest ${rounds.length} of ${total} rounds)` : '';
  $('rounds').tBodies[0].replaceChildren(...rounds.slice().reverse().map(roundRow));
}

function winnerRow(round) {
  const named = Object.entries(round.by_winner).map(([winner, nodes]) => `${winner} ← ${nodes.join(', ')}`).join('   |   ');
  return row([num(round.round), el('td', round.agree ? 'yes' : 'NO'), el('td', named, 'message')], round.agree ? '' : 'bad');
}

function renderWinners() {
  const { winners, winners_total: total } = state.analysis;
  $('winners-note').textContent = total > winners.length ? `(newest ${winners.length} of ${total} rounds)` : '';
  $('winners').tBodies[0].replaceChildren(...winners.slice().reverse().map(winnerRow));
}

// ---- latency histogram (whole run, from the server's distribution) -------

function renderHistogram() {
  const kind = $('hist-kind').value;
  const dist = state.analysis?.distributions?.[kind];
  const { context, width, height } = canvasContext($('histogram'), 230);
  $('hist-stats').textContent = dist?.count
    ? `${dist.count} receipts · p50 ${ms(dist.p50_ms)} · p90 ${ms(dist.p90_ms)} · p99 ${ms(dist.p99_ms)} · max ${ms(dist.max_ms)} ms`
    : 'no receipts yet';
  if (!dist?.count || !dist.histogram.length) return;
  const bins = dist.histogram;
  const top = bins.reduce((m, bin) => Math.max(m, bin.count), 0);
  const [left, right, topPad, bottomPad] = [48, 10, 18, 36];
  const plotW = width - left - right;
  const plotH = height - topPad - bottomPad;
  const bottom = topPad + plotH;
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
  context.textAlign = 'center';
  for (const [label, value, mark] of [['p50', dist.p50_ms, '#2e7d32'], ['p99', dist.p99_ms, '#c62828']]) {
    if (value == null) continue;
    const x = xOf(value);
    context.strokeStyle = mark;
    context.setLineDash([3, 3]);
    context.beginPath(); context.moveTo(x, topPad); context.lineTo(x, bottom); context.stroke();
    context.setLineDash([]);
    context.fillStyle = mark;
    context.fillText(label, x, topPad - 6);
  }
  // Axes, ticks and labels.
  context.strokeStyle = '#6b7385';
  context.beginPath(); context.moveTo(left, topPad); context.lineTo(left, bottom); context.lineTo(left + plotW, bottom); context.stroke();
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
  context.fillText('latency (ms, upper bound of each bin)', left + plotW / 2, height - 6);
  context.textAlign = 'right';
  for (const value of [0, Math.round(top / 2), top]) {
    const y = bottom - (value / top) * plotH;
    context.fillText(String(value), left - 4, y + 4);
  }
  context.save();
  context.translate(12, topPad + plotH / 2);
  context.rotate(-Math.PI / 2);
  context.textAlign = 'center';
  context.fillText('count', 0, 0);
  context.restore();
}

// ---- flagged lists (paged from the server) ---------------------------------

const flagged = { kind: null, before: null, newer: [], next: null };

function openFlagged(kind) {
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

// ---- one round's propagation ----------------------------------------------

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

// ---- event log (server pages) ---------------------------------------------

const log = { before: null, newer: [], next: null, rows: [], request: 0 };

function filters() {
  return { sender: $('f-sender').value, event: $('f-event').value, q: $('f-text').value };
}

async function loadLog() {
  const request = ++log.request;
  const page = await getJson('/api/reports', {
    run: state.run, ...filters(), order: 'desc', before: log.before, limit: LOG_PAGE,
  });
  if (request !== log.request) return;
  log.rows = page.reports;
  log.next = page.next;
  renderLog();
}

function passes(report) {
  const { sender, event, q } = filters();
  return (!sender || report.sender === sender) && (!event || report.event === event)
    && (!q || report.message.includes(q) || report.sender.includes(q));
}

/** Live reports, newest last: shown at the top when the log is on its newest page. */
function prependLive(reports) {
  if (log.before != null) return;
  const top = log.rows.length ? log.rows[0].seq : 0;
  const fresh = reports.filter((report) => report.seq > top && passes(report)).reverse();
  if (!fresh.length) return;
  log.rows = fresh.concat(log.rows);
  if (log.rows.length > LOG_PAGE) {
    log.rows.length = LOG_PAGE;
    log.next = log.rows[LOG_PAGE - 1].seq;
  }
  renderLog();
}

function renderLog() {
  $('log').tBodies[0].replaceChildren(...log.rows.map((report) => row([
    num(report.seq), el('td', clock(report.time_unix_nano)), el('td', report.sender),
    el('td', short(report.event)), el('td', report.message, 'message')])));
  const page = log.newer.length + 1;
  $('log-count').textContent = `${log.rows.length} shown · page ${page}${page === 1 ? ' (newest, live)' : ''}`;
  $('prev').disabled = !log.newer.length;
  $('newest').disabled = !log.newer.length;
  $('next').disabled = log.next == null;
  updateExports();
}

function resetLog() {
  Object.assign(log, { before: null, newer: [] });
  loadLog().catch(console.warn);
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
  const senders = [...state.nodes.keys()];
  const known = [...$('f-sender').options].slice(1).map((option) => option.value);
  if (senders.join('\n') !== known.join('\n')) keep($('f-sender'), senders, 'all senders');
  if ($('f-event').options.length <= 1) keep($('f-event'), EVENTS, 'all events');
}

function updateExports() {
  const params = { run: state.run, ...filters() };
  $('export-csv').href = url('/api/export', { ...params, format: 'csv' });
  $('export-ndjson').href = url('/api/export', { ...params, format: 'ndjson' });
}

// ---- live stream ------------------------------------------------------------

function connect() {
  const source = new EventSource(url('/api/stream', { run: state.run, after: state.lastSeq || null }));
  state.source = source;
  source.onopen = () => {
    // Back after a disconnection: what was missed comes over the stream; the
    // summaries are read again.
    if ($('status').classList.contains('offline') && state.analysis) scheduleSummary();
    setStatus(true);
  };
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
  state.lastSeq = report.seq;
  state.total += 1;
  const node = state.nodes.get(report.sender) || { sender: report.sender, reports: 0, phases_ms: {}, counts: {} };
  node.reports += 1;
  node.last_event = report.event;
  node.last_unix_nano = report.time_unix_nano;
  node.last_message = report.message;
  state.nodes.set(report.sender, node);
  if (timeline.data && timeline.data.run_to != null) {
    timeline.data.run_to = Math.max(timeline.data.run_to, report.time_unix_nano);
  }
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
  if (timeline.follow) scheduleTimeline(TIMELINE_FOLLOW_MS, true);
  scheduleSummary();
}

// ---- timeline: a window of the run, counts per bucket or single reports ------

const LANE = 22;
const LEFT = 64;
const RIGHT = 10;
const AXIS = 22;
const timeline = {
  view: null,   // {from, to} in ns; null: the whole run
  data: null,   // the last /api/timeline answer
  follow: true, // the window shows the run's end: live reports refresh it
  request: 0, timer: null, timerDue: 0, lanes: [], width: 0, drag: null,
};

/**
 * Fetches the window after `delay` ms; a pending fetch due sooner is kept. A live
 * refresh never postpones a pending fetch.
 */
function scheduleTimeline(delay = TIMELINE_DEBOUNCE_MS, live = false) {
  if (timeline.timer) {
    if (live || timeline.timerDue <= Date.now() + delay) return;
    clearTimeout(timeline.timer);
  }
  timeline.timerDue = Date.now() + delay;
  timeline.timer = setTimeout(() => {
    timeline.timer = null;
    fetchTimeline(live).catch(console.warn);
  }, delay);
}

function plotWidth() {
  return Math.max(100, ($('timeline').clientWidth || 800) - LEFT - RIGHT);
}

async function fetchTimeline(live = false) {
  const request = ++timeline.request;
  const runTo = timeline.data?.run_to;
  if (live && timeline.view && timeline.follow && runTo != null && runTo > timeline.view.to) {
    // A window at the run's end slides along with it.
    const shift = runTo - timeline.view.to + (timeline.view.to - timeline.view.from) * 0.02;
    timeline.view = { from: timeline.view.from + shift, to: timeline.view.to + shift };
  }
  const view = timeline.view;
  const buckets = Math.min(2000, Math.max(50, Math.floor(plotWidth() / 3)));
  const data = await getJson('/api/timeline', {
    run: state.run, from: view ? Math.floor(view.from) : null, to: view ? Math.ceil(view.to) : null, buckets,
  });
  if (request !== timeline.request) return;
  timeline.data = data;
  timeline.follow = !view || data.run_to == null || view.to >= data.run_to;
  renderTimeline();
}

/** The window drawn: the one asked for, else the whole run's answer. */
function currentView() {
  if (timeline.view) return timeline.view;
  const data = timeline.data;
  if (!data || data.run_from == null) return null;
  return { from: data.run_from, to: Math.max(data.run_to, data.run_from + MIN_WINDOW_NS) };
}

function setView(from, to) {
  const data = timeline.data;
  let width = Math.max(to - from, MIN_WINDOW_NS);
  if (data && data.run_from != null) {
    const span = data.run_to - data.run_from;
    // Past the whole run: show the whole run.
    if (width >= span * 1.02 && from <= data.run_from && from + width >= data.run_to) {
      timeline.view = null;
      renderTimeline();
      scheduleTimeline();
      return;
    }
    width = Math.min(width, Math.max(span * 1.5, MIN_WINDOW_NS));
  }
  timeline.view = { from, to: from + width };
  renderTimeline();
  scheduleTimeline();
}

function renderTimeline() {
  const canvas = $('timeline');
  const data = timeline.data;
  const senders = data ? data.senders.map((lane) => lane.sender) : [];
  for (const sender of state.nodes.keys()) if (!senders.includes(sender)) senders.push(sender);
  senders.sort();
  const height = Math.max(60, senders.length * LANE + AXIS + 4);
  const { context, width } = canvasContext(canvas, height);
  timeline.width = width;
  timeline.lanes = senders;
  const view = currentView();
  renderWindowLabel(view);
  renderLegend();
  senders.forEach((sender, lane) => {
    context.fillStyle = lane % 2 ? '#f6f7fb' : '#fff';
    context.fillRect(0, lane * LANE, width, LANE);
    context.fillStyle = '#1d2330';
    context.fillText(sender, 4, lane * LANE + 15);
  });
  if (!data || !view) return;
  const plot = width - LEFT - RIGHT;
  const x = (ns) => LEFT + ((ns - view.from) / (view.to - view.from)) * plot;
  context.save();
  context.beginPath();
  context.rect(LEFT, 0, plot, senders.length * LANE);
  context.clip();
  const index = new Map(senders.map((sender, lane) => [sender, lane]));
  if (data.reports) {
    for (const report of data.reports) {
      const lane = index.get(report.sender);
      context.fillStyle = color(report.event);
      context.fillRect(x(report.time_unix_nano) - 1, lane * LANE + 4, 3, LANE - 8);
    }
  } else {
    // One column per bucket and lane: its height grows with the count (log scale),
    // split by event in proportion to their counts.
    let top = 1;
    const totals = data.senders.map((lane) => {
      const sums = new Array(data.buckets).fill(0);
      for (const counts of Object.values(lane.counts)) counts.forEach((c, i) => { sums[i] += c; });
      for (const sum of sums) if (sum > top) top = sum;
      return sums;
    });
    const w = Math.max(1, x(data.from + data.bucket_ns) - x(data.from));
    data.senders.forEach((lane, n) => {
      const base = index.get(lane.sender) * LANE + LANE - 3;
      const events = Object.entries(lane.counts);
      totals[n].forEach((sum, i) => {
        if (!sum) return;
        const left = x(data.from + i * data.bucket_ns);
        if (left > LEFT + plot || left + w < LEFT) return;
        const h = 3 + (LANE - 9) * (Math.log1p(sum) / Math.log1p(top));
        let y = base;
        for (const [event, counts] of events) {
          if (!counts[i]) continue;
          const part = (counts[i] / sum) * h;
          context.fillStyle = color(event);
          context.fillRect(left, y - part, Math.max(1, w - (w > 3 ? 1 : 0)), part);
          y -= part;
        }
      });
    });
  }
  context.restore();
  // Time axis.
  const axis = senders.length * LANE;
  context.fillStyle = '#6b7385';
  context.fillRect(LEFT, axis, plot, 1);
  context.textAlign = 'center';
  const ticks = Math.max(2, Math.floor(plot / 140));
  for (let i = 0; i <= ticks; i += 1) {
    const t = view.from + ((view.to - view.from) * i) / ticks;
    const at = LEFT + (plot * i) / ticks;
    context.fillRect(at, axis, 1, 4);
    context.textAlign = i === 0 ? 'left' : i === ticks ? 'right' : 'center';
    context.fillText(clock(t), at, axis + 15);
  }
  if (timeline.drag?.select) {
    const { startX, nowX } = timeline.drag;
    context.fillStyle = 'rgba(31, 119, 180, 0.15)';
    context.fillRect(Math.min(startX, nowX), 0, Math.abs(nowX - startX), axis);
  }
}

function duration(ns) {
  const value = ns / 1e6;
  if (value < 1000) return `${ms(value)} ms`;
  if (value < 120e3) return `${(value / 1000).toFixed(1)} s`;
  if (value < 7200e3) return `${(value / 60e3).toFixed(1)} min`;
  return `${(value / 3600e3).toFixed(1)} h`;
}

function renderWindowLabel(view) {
  const data = timeline.data;
  if (!view || !data) { $('window').textContent = 'no reports yet'; return; }
  const what = data.reports ? `${data.reports.length} single reports`
    : `${data.buckets} buckets of ${duration(data.bucket_ns)}`;
  $('window').textContent = `${timeline.view ? 'window' : 'whole run'}: ${clock(view.from)} – ${clock(view.to)} `
    + `(${duration(view.to - view.from)}) · ${what}${timeline.follow ? ' · following live' : ''}`;
  $('whole-run').disabled = !timeline.view;
}

function renderLegend() {
  if ($('legend').childElementCount) return;
  $('legend').replaceChildren(...EVENTS.map((event, i) => {
    const item = el('span', short(event));
    const swatch = el('i');
    swatch.style.background = COLORS[i];
    item.prepend(swatch);
    return item;
  }));
}

function timeAt(offsetX) {
  const view = currentView();
  const plot = timeline.width - LEFT - RIGHT;
  return view.from + ((offsetX - LEFT) / plot) * (view.to - view.from);
}

function hover(event) {
  const tip = $('tip');
  const data = timeline.data;
  const view = currentView();
  const sender = timeline.lanes[Math.floor(event.offsetY / LANE)];
  if (!data || !view || !sender || event.offsetX < LEFT || timeline.drag) { tip.hidden = true; return; }
  const time = timeAt(event.offsetX);
  const plot = timeline.width - LEFT - RIGHT;
  let text = null;
  if (data.reports) {
    const slack = (4 / plot) * (view.to - view.from);
    let best = null;
    for (const report of data.reports) {
      if (report.sender !== sender) continue;
      const distance = Math.abs(report.time_unix_nano - time);
      if (distance <= slack && (!best || distance < Math.abs(best.time_unix_nano - time))) best = report;
    }
    if (best) text = `#${best.seq} ${best.sender} ${short(best.event)}\n${clock(best.time_unix_nano)}\n${best.message}`;
  } else {
    const i = Math.floor((time - data.from) / data.bucket_ns);
    const lane = data.senders.find((entry) => entry.sender === sender);
    const counts = lane ? Object.entries(lane.counts).filter(([, values]) => values[i]) : [];
    if (counts.length) {
      const from = data.from + i * data.bucket_ns;
      text = `${sender} · ${clock(from)} – ${clock(from + data.bucket_ns)}\n`
        + counts.map(([name, values]) => `${values[i]} ${short(name)}`).join('\n')
        + '\n(zoom in for single reports)';
    }
  }
  if (!text) { tip.hidden = true; return; }
  tip.textContent = text;
  tip.style.left = `${Math.min(event.offsetX + 12, timeline.width - 300)}px`;
  tip.style.top = `${event.offsetY + 12}px`;
  tip.hidden = false;
}

function wheel(event) {
  const view = currentView();
  if (!view || event.offsetX < LEFT) return;
  event.preventDefault();
  $('tip').hidden = true;
  const factor = Math.pow(1.2, event.deltaY / 100);
  const at = timeAt(event.offsetX);
  setView(at - (at - view.from) * factor, at + (view.to - at) * factor);
}

function dragStart(event) {
  const view = currentView();
  if (!view || event.button !== 0 || event.offsetX < LEFT) return;
  timeline.drag = { startX: event.offsetX, nowX: event.offsetX, view, select: event.shiftKey };
  $('tip').hidden = true;
  event.preventDefault();
}

function dragMove(event) {
  const drag = timeline.drag;
  if (!drag) return;
  const box = $('timeline').getBoundingClientRect();
  drag.nowX = Math.min(Math.max(event.clientX - box.left, LEFT), timeline.width - RIGHT);
  if (drag.select) { renderTimeline(); return; }
  const plot = timeline.width - LEFT - RIGHT;
  const shift = ((drag.nowX - drag.startX) / plot) * (drag.view.to - drag.view.from);
  if (Math.abs(drag.nowX - drag.startX) < 2) return;
  timeline.view = { from: drag.view.from - shift, to: drag.view.to - shift };
  renderTimeline();
  scheduleTimeline();
}

function dragEnd() {
  const drag = timeline.drag;
  if (!drag) return;
  timeline.drag = null;
  if (drag.select && Math.abs(drag.nowX - drag.startX) > 3) {
    const plot = timeline.width - LEFT - RIGHT;
    const at = (px) => drag.view.from + ((px - LEFT) / plot) * (drag.view.to - drag.view.from);
    setView(at(Math.min(drag.startX, drag.nowX)), at(Math.max(drag.startX, drag.nowX)));
  } else {
    renderTimeline();
  }
}

// ---- wiring -----------------------------------------------------------------

function wire() {
  $('run').addEventListener('change', () => selectRun($('run').value).catch(console.warn));
  $('new-run').addEventListener('click', newRun);
  let typing = null;
  $('f-sender').addEventListener('input', resetLog);
  $('f-event').addEventListener('input', resetLog);
  $('f-text').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(resetLog, 250);
  });
  $('filters').addEventListener('submit', (event) => event.preventDefault());
  $('newest').addEventListener('click', resetLog);
  $('prev').addEventListener('click', () => {
    if (!log.newer.length) return;
    log.before = log.newer.pop();
    loadLog().catch(console.warn);
  });
  $('next').addEventListener('click', () => {
    if (log.next == null) return;
    log.newer.push(log.before);
    log.before = log.next;
    loadLog().catch(console.warn);
  });
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
  $('flagged-close').addEventListener('click', () => { $('flagged-view').hidden = true; flagged.kind = null; });
  $('hist-kind').addEventListener('change', renderHistogram);
  $('whole-run').addEventListener('click', () => { timeline.view = null; renderTimeline(); scheduleTimeline(0); });
  const canvas = $('timeline');
  canvas.addEventListener('mousemove', hover);
  canvas.addEventListener('mouseleave', () => { $('tip').hidden = true; });
  canvas.addEventListener('wheel', wheel, { passive: false });
  canvas.addEventListener('mousedown', dragStart);
  window.addEventListener('mousemove', dragMove);
  window.addEventListener('mouseup', dragEnd);
  window.addEventListener('resize', () => { renderTimeline(); renderHistogram(); });
}

// ---- compare view: two runs side by side (/?compare=a,b) ----------------------

const SIDES = ['a', 'b'];
const SIDE_COLORS = { a: '#1f77b4', b: '#e8710a' };
const compare = { pair: null, data: null };

/** The runs of `?compare=a,b` (ids or names, each URL-encoded), or null. */
function compareParam() {
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
function compareHref(a, b) {
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

async function showCompare(pair) {
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
  const response = await fetch(url('/api/compare', { a: pair[0], b: pair[1] }));
  if (!response.ok) {
    compareError(`Cannot compare: ${await response.text()}`);
    return;
  }
  compare.data = await response.json();
  renderCompare();
  window.addEventListener('resize', renderCdfs);
}

function compareError(text) {
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
    figure.append(caption, canvas);
    return figure;
  }));
  renderCdfs();
}

function renderCdfs() {
  if (!compare.data) return;
  for (const canvas of document.querySelectorAll('canvas.cdf')) {
    drawCdf(canvas, compare.data.kinds[canvas.dataset.kind]);
  }
}

/**
 * Tick values for a log axis over lo..hi: 1-2-5 (or 1-2-3-5, or every digit, when
 * that gives too few; decades when too many), at least `gap` px apart where `at` puts them.
 */
function logTicks(lo, hi, at, gap = 34) {
  const series = (steps) => {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e += 1) {
      for (const step of steps) {
        const value = +(step * 10 ** e).toPrecision(6);
        if (value >= lo && value <= hi) out.push(value);
      }
    }
    return out;
  };
  const fits = (values) => values.every((value, i) => i === 0 || at(value) - at(values[i - 1]) >= gap);
  const choices = [[1, 2, 5], [1, 2, 3, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]].map(series);
  const ticks = choices.find((values) => values.length >= 3 && fits(values))
    || [series([1]), choices[0]].find((values) => values.length >= 2 && fits(values));
  if (ticks) return ticks;
  return [+lo.toPrecision(2), +hi.toPrecision(2)].filter((value) => value >= lo && value <= hi);
}

const tickLabel = (value) => (value >= 100 ? String(Math.round(value)) : String(+value.toPrecision(3)));

/** Both runs' latency CDFs of one kind on one canvas: log-scaled ms against the fraction. */
function drawCdf(canvas, kind) {
  const { context, width, height } = canvasContext(canvas, 260);
  context.fillStyle = '#fff';
  context.fillRect(0, 0, width, height);
  const curves = SIDES.map((side) => {
    const points = kind.quantiles[side].map((value, i) => [value, (i + 1) / 100]);
    // The slowest receipt is exact: the curve reaches 1 there.
    const max = kind[side].max_ms;
    if (points.length && max != null && max >= points[points.length - 1][0]) points.push([max, 1]);
    return { side, points };
  }).filter((curve) => curve.points.length);
  const values = curves.flatMap((curve) => curve.points.map(([value]) => value)).filter((value) => value > 0);
  if (!values.length) return;
  let lo = Math.log10(Math.min(...values));
  let hi = Math.log10(Math.max(...values));
  if (hi - lo < 0.2) { const mid = (hi + lo) / 2; lo = mid - 0.1; hi = mid + 0.1; }
  const pad = (hi - lo) * 0.04;
  lo -= pad;
  hi += pad;
  const [left, right, top, bottom] = [46, 14, 12, 40];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const x = (value) => left + ((Math.log10(Math.max(value, 10 ** lo)) - lo) / (hi - lo)) * plotW;
  const y = (fraction) => top + (1 - fraction) * plotH;
  // Grid, ticks and labels.
  context.lineWidth = 1;
  context.font = '11px system-ui, sans-serif';
  context.textAlign = 'right';
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const at = Math.round(y(fraction)) + 0.5;
    context.strokeStyle = fraction === 0.5 ? '#b9c0cc' : '#e8ebf1';
    context.beginPath(); context.moveTo(left, at); context.lineTo(left + plotW, at); context.stroke();
    context.fillStyle = '#1d2330';
    context.fillText(String(fraction), left - 5, at + 4);
  }
  context.textAlign = 'center';
  for (const value of logTicks(10 ** lo, 10 ** hi, x)) {
    const at = Math.round(x(value)) + 0.5;
    context.strokeStyle = '#e8ebf1';
    context.beginPath(); context.moveTo(at, top); context.lineTo(at, top + plotH); context.stroke();
    context.strokeStyle = '#6b7385';
    context.beginPath(); context.moveTo(at, top + plotH); context.lineTo(at, top + plotH + 4); context.stroke();
    context.fillStyle = '#1d2330';
    context.fillText(tickLabel(value), at, top + plotH + 15);
  }
  context.strokeStyle = '#6b7385';
  context.beginPath();
  context.moveTo(left + 0.5, top); context.lineTo(left + 0.5, top + plotH + 0.5); context.lineTo(left + plotW, top + plotH + 0.5);
  context.stroke();
  context.fillStyle = '#6b7385';
  context.fillText('latency, ms (log scale)', left + plotW / 2, height - 6);
  context.save();
  context.translate(12, top + plotH / 2);
  context.rotate(-Math.PI / 2);
  context.fillText('fraction of receipts ≤ latency', 0, 0);
  context.restore();
  // The curves.
  context.save();
  context.beginPath();
  context.rect(left, top - 2, plotW, plotH + 4);
  context.clip();
  context.lineWidth = 2;
  context.lineJoin = 'round';
  for (const { side, points } of curves) {
    context.strokeStyle = SIDE_COLORS[side];
    context.beginPath();
    points.forEach(([value, fraction], i) => {
      if (i) context.lineTo(x(value), y(fraction));
      else context.moveTo(x(value), y(fraction));
    });
    context.stroke();
  }
  context.restore();
  // Legend: bottom right, where a CDF leaves room.
  const drawn = new Set(curves.map((curve) => curve.side));
  const names = SIDES.map((side) => {
    const name = compare.data[side].name;
    return `${side}: ${name.length > 28 ? `${name.slice(0, 27)}…` : name}${drawn.has(side) ? '' : ' (no receipts)'}`;
  });
  const boxW = Math.max(...names.map((name) => context.measureText(name).width)) + 34;
  const boxH = 40;
  const boxX = left + plotW - boxW - 6;
  const boxY = top + plotH - boxH - 6;
  context.fillStyle = 'rgba(255, 255, 255, 0.92)';
  context.fillRect(boxX, boxY, boxW, boxH);
  context.strokeStyle = '#dde1ea';
  context.strokeRect(boxX + 0.5, boxY + 0.5, boxW - 1, boxH - 1);
  context.textAlign = 'left';
  SIDES.forEach((side, i) => {
    const lineY = boxY + 13 + i * 16;
    context.strokeStyle = SIDE_COLORS[side];
    context.lineWidth = 2;
    context.beginPath(); context.moveTo(boxX + 8, lineY); context.lineTo(boxX + 24, lineY); context.stroke();
    context.fillStyle = '#1d2330';
    context.fillText(names[i], boxX + 29, lineY + 4);
  });
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

// The header's "compare…" control: pick run a and run b, then go to /?compare=a,b.

async function toggleComparePicker() {
  const form = $('compare-form');
  if (!form.hidden) { closeComparePicker(); return; }
  const runs = await getJson('/api/runs');
  const options = () => runs.map((run) => {
    const option = el('option', `${run.name} (${run.reports})`);
    option.value = run.id;
    return option;
  });
  $('compare-a').replaceChildren(...options());
  $('compare-b').replaceChildren(...options());
  let a;
  let b;
  if (compare.data) {
    [a, b] = [compare.data.a.id, compare.data.b.id];
  } else {
    // By default the run shown (b) against the one before it (a).
    const shown = runs.findIndex((run) => String(run.id) === String(state.run ?? ''));
    const at = shown >= 0 ? shown : runs.length - 1;
    b = runs[at]?.id;
    a = runs[at - 1]?.id ?? runs[at + 1]?.id ?? b;
  }
  if (a != null) $('compare-a').value = a;
  if (b != null) $('compare-b').value = b;
  form.hidden = false;
  $('compare-open').setAttribute('aria-expanded', 'true');
  updateComparePicker();
  $('compare-a').focus();
}

function closeComparePicker() {
  $('compare-form').hidden = true;
  $('compare-open').setAttribute('aria-expanded', 'false');
}

function updateComparePicker() {
  const [a, b] = [$('compare-a').value, $('compare-b').value];
  const ready = a !== '' && b !== '' && a !== b;
  $('compare-go').disabled = !ready;
  $('compare-pick-note').textContent = $('compare-a').options.length < 2 ? 'only one run so far'
    : ready ? '' : 'pick two different runs';
}

function wireComparePicker() {
  $('compare-open').addEventListener('click', () => toggleComparePicker().catch(console.warn));
  $('compare-cancel').addEventListener('click', closeComparePicker);
  $('compare-a').addEventListener('change', updateComparePicker);
  $('compare-b').addEventListener('change', updateComparePicker);
  $('compare-form').addEventListener('keydown', (event) => { if (event.key === 'Escape') closeComparePicker(); });
  $('compare-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const [a, b] = [$('compare-a').value, $('compare-b').value];
    if (a === '' || b === '' || a === b) return;
    location.assign(compareHref(a, b));
  });
}

async function main() {
  wireComparePicker();
  const pair = compareParam();
  if (pair) {
    // Only the comparison: no live stream, no live reads.
    await showCompare(pair);
    return;
  }
  wire();
  const run = await loadRuns();
  await selectRun(run.id);
}

main().catch((error) => {
  if (compare.pair) { compareError(`error: ${error.message}`); return; }
  setStatus(false);
  $('status').textContent = `error: ${error.message}`;
});
