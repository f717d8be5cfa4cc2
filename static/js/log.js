// The event log: one server page at a time, newest first, filtered on the server;
// live reports join at the top of the newest page. Also the export links, which
// carry the same filters.
import { $, clock, el, num, row, short } from './draw.js';
import { getJson, url } from './api.js';
import { EVENTS } from './events.js';
import { state } from './state.js';

/** Rows of the event log (one server page); also what the live stream keeps per frame. */
export const LOG_PAGE = 100;

const log = { before: null, newer: [], next: null, rows: [], request: 0 };

/** The run's senders by name (at most 1,000), asked for when the sender list is
 *  opened: the nodes the page keeps are only the ones it shows. */
let runSenders = [];

async function loadSenderChoices() {
  const page = await getJson('/api/nodes', { run: state.run, order: 'sender', limit: 1000 });
  runSenders = page.nodes.map((node) => node.sender);
  renderFilterChoices();
}

function filters() {
  return { sender: $('f-sender').value, event: $('f-event').value, q: $('f-text').value };
}

/** Reads the page the log is on (the newest unless paged back), with the filters. */
export async function loadLog() {
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
export function prependLive(reports) {
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

/** The filters' choices: the senders known, every event. */
export function renderFilterChoices() {
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
  const senders = [...new Set([...state.nodes.keys(), ...runSenders])].sort();
  const known = [...$('f-sender').options].slice(1).map((option) => option.value);
  if (senders.join('\n') !== known.join('\n')) keep($('f-sender'), senders, 'all senders');
  if ($('f-event').options.length <= 1) keep($('f-event'), EVENTS, 'all events');
}

function updateExports() {
  const params = { run: state.run, ...filters() };
  $('export-csv').href = url('/api/export', { ...params, format: 'csv' });
  $('export-ndjson').href = url('/api/export', { ...params, format: 'ndjson' });
}

/** Forgets the page the log was on (another run was chosen). */
export function clearLog() {
  Object.assign(log, { before: null, newer: [], next: null, rows: [] });
  runSenders = [];
}

export function wireLog() {
  let typing = null;
  $('f-sender').addEventListener('input', resetLog);
  $('f-sender').addEventListener('focus', () => loadSenderChoices().catch(console.warn));
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
}
