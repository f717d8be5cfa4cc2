// The dashboard in a real browser: headless Chromium against a real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, newRun, report, root, send, simulate, startServer, stopServer, waitFor } from './harness.mjs';

const db = join(mkdtempSync(join(tmpdir(), 'perfstats-browser-')), 'dash.db');
const WAIT = { timeout: 10000 };
let server;
let browser;
let page;
const problems = [];
const requests = [];
let dialogs = 0;

const api = async (path) => {
  const response = await fetch(`${server.url}${path}`);
  assert.ok(response.ok, `${path}: ${response.status}`);
  return response.json();
};
const count = (selector) => page.locator(selector).count();
const texts = (selector) => page.locator(selector).allInnerTexts();
/** Waits until `selector` matches exactly `n` elements. */
const waitForCount = (selector, n, what) => waitFor(what ?? `${n} × ${selector}`, page.waitForFunction(
  ([wanted, number]) => document.querySelectorAll(wanted).length === number, [selector, n], WAIT));
/** Waits until the text of `selector` matches `pattern`. */
const waitForText = (selector, pattern, what) => waitFor(what ?? `${selector} to match ${pattern}`, page.waitForFunction(
  ([wanted, source, flags]) => new RegExp(source, flags).test(document.querySelector(wanted)?.textContent ?? ''),
  [selector, pattern.source, pattern.flags], WAIT));
const waitForLog = (text) => waitFor(`"${text}" in the log`, page.waitForFunction(
  (wanted) => [...document.querySelectorAll('#log tbody td.message')].some((cell) => cell.textContent === wanted),
  text, WAIT));
const fixed = (value) => value.toFixed(value < 10 ? 2 : 1);
const logSeqs = async () => (await texts('#log tbody tr td:first-child')).map(Number);

/** Opens the page afresh (on the current run) and waits for its overview. */
async function open() {
  await page.goto(`${server.url}/`);
  await waitFor('the nodes table', page.waitForSelector('#nodes tbody tr', WAIT));
  await waitFor('the live stream', page.waitForSelector('#status.online', WAIT));
}

before(async () => {
  server = await startServer(['--listen', '127.0.0.1:0', '--db', db]);
  await simulate(server.url, 6);
  browser = await launch();
  page = await browser.newPage({ viewport: { width: 1400, height: 1700 }, acceptDownloads: true });
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('dialog', async (dialog) => { dialogs += 1; await dialog.dismiss(); });
  page.on('request', (request) => requests.push(request.url()));
  await page.goto(`${server.url}/`);
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
});

test('the page loads with a populated overview and no console errors', async () => {
  await waitForCount('#nodes tbody tr', 7, 'seven nodes');
  await waitForCount('#log tbody tr', 100, 'a full first page of the log');
  await waitForText('#headline', /winner disagreement/, 'the headline');
  const headline = await page.locator('#headline').innerText();
  assert.match(headline, /slowest sync: 3f/);
  assert.match(headline, /missed: 1 round — 5l missed block 122/);
  assert.match(headline, /winner disagreement in round 3/);
  assert.match(headline, /block propagation: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms/);
  assert.equal(await count('#rounds tbody tr.bad'), 1, 'one round with a missing node');
  assert.equal(await count('#winners tbody tr.bad'), 1, 'one disagreeing round');
  const { block } = (await api('/api/analysis')).distributions;
  assert.equal(await page.locator('#hist-stats').innerText(),
    `${block.count} receipts · p50 ${fixed(block.p50_ms)} · p90 ${fixed(block.p90_ms)} · p99 ${fixed(block.p99_ms)} · max ${fixed(block.max_ms)} ms`);
  const runs = await api('/api/runs');
  assert.match(await page.locator('#totals').innerText(), new RegExp(`^${runs[0].reports} reports · 7 nodes`));
  await waitFor('the live stream', page.waitForSelector('#status.online', WAIT));
  mkdirSync(join(root, 'target/shots'), { recursive: true });
  await page.screenshot({ path: join(root, 'target/shots/dashboard.png') });
  // A server without --nats has no cluster: the badge stays hidden once answered.
  await waitFor('the cluster badge to be answered', page.waitForSelector('#cluster-badge[data-health="none"]',
    { ...WAIT, state: 'attached' }));
  assert.equal(await page.locator('#cluster-badge').isHidden(), true, 'no cluster badge without --nats');
  assert.deepEqual(problems, []);
  assert.ok(!requests.some((address) => /\/api\/reports\?(?!.*order=desc)/.test(address)),
    `the page only reads log pages newest first: ${requests.filter((address) => address.includes('/api/reports'))}`);
});

test('a report sent over gRPC appears without a reload', async () => {
  const before = Number((await page.locator('#totals').innerText()).split(' ')[0]);
  await report(server.url, '2f', 'new-block-received', 'live block 999');
  await waitForLog('live block 999');
  const first = await page.locator('#log tbody tr').first().innerText();
  assert.match(first, /2f\s+new block received\s+live block 999/);
  assert.equal(await count('#log tbody tr'), 100, 'the log keeps one page');
  await waitForText('#totals', new RegExp(`^${before + 1} reports`), 'the total counted live');
});

test('filters narrow the log on the server', async () => {
  requests.length = 0;
  await page.selectOption('#f-sender', '4l');
  await waitFor('only 4l in the log', page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('#log tbody tr td:nth-child(3)')];
    return cells.length > 0 && cells.every((cell) => cell.textContent === '4l');
  }, null, WAIT));
  await page.selectOption('#f-event', 'EVENT_NEW_BLOCK_RECEIVED');
  await Promise.all([
    waitFor('the log page with the text filter', page.waitForResponse(
      (response) => new URL(response.url()).searchParams.get('q') === 'block 12', WAIT)),
    page.fill('#f-text', 'block 12'),
  ]);
  await waitForText('#log-count', /^6 shown/, 'six blocks of 4l');
  const messages = await texts('#log tbody td.message');
  assert.equal(messages.length, 6, messages.join());
  assert.ok(messages.every((message) => message.startsWith('block 12')));
  const asked = requests.filter((address) => address.includes('/api/reports')).map((address) => new URL(address).searchParams);
  assert.ok(asked.some((params) => params.get('sender') === '4l' && params.get('event') === 'EVENT_NEW_BLOCK_RECEIVED'
    && params.get('q') === 'block 12' && params.get('order') === 'desc'), 'the filters went to the server');
  const exported = new URL(await page.locator('#export-csv').getAttribute('href'), server.url).searchParams;
  assert.equal(exported.get('sender'), '4l', 'the export carries the filters');
  assert.equal(exported.get('q'), 'block 12');
  await page.selectOption('#f-sender', '');
  await page.selectOption('#f-event', '');
  await page.fill('#f-text', '');
  await waitForCount('#log tbody tr', 100, 'the unfiltered log');
});

test('the log pages through the run with older and newer', async () => {
  const total = (await api('/api/runs'))[0].reports;
  const pages = [];
  for (;;) {
    const seqs = await logSeqs();
    pages.push(seqs);
    assert.ok(seqs.length <= 100, 'at most one page of rows');
    if (await page.locator('#next').isDisabled()) break;
    const oldest = seqs[seqs.length - 1];
    await page.click('#next');
    await waitFor('the older page', page.waitForFunction(
      (last) => Number(document.querySelector('#log tbody tr td')?.textContent) < last, oldest, WAIT));
    assert.ok(pages.length < 10, 'no endless paging');
  }
  const all = pages.flat();
  assert.equal(all.length, total, `every report once over ${pages.length} pages`);
  assert.ok(all.every((seq, i) => i === 0 || seq < all[i - 1]), 'newest first, no repeats');
  assert.match(await page.locator('#log-count').innerText(), new RegExp(`page ${pages.length}`));
  await page.click('#prev');
  await waitFor('the newer page', page.waitForFunction(
    (first) => Number(document.querySelector('#log tbody tr td')?.textContent) === first, pages[pages.length - 2][0], WAIT));
  assert.deepEqual(await logSeqs(), pages[pages.length - 2]);
  // Away from the newest page, live reports do not move the rows.
  await report(server.url, '1f', 'new-peer-connected', 'while paging');
  await page.waitForTimeout(300);
  assert.deepEqual(await logSeqs(), pages[pages.length - 2]);
  await page.click('#newest');
  await waitForLog('while paging');
});

test('picking a round shows its propagation across the nodes', async () => {
  const windowBefore = await page.locator('#window').innerText();
  await page.locator('#rounds tbody tr', { hasText: 'block 122' }).click();
  await waitForCount('#round-bars .bar-row', 5, 'five nodes received block 122');
  assert.match(await page.locator('#round-title').innerText(), /block round 2: block 122/);
  assert.match(await page.locator('#round-missing').innerText(), /^missing \(1\): 5l$/);
  const names = await texts('#round-bars .bar-name');
  assert.deepEqual(names.slice().sort(), ['1f', '2f', '3f', '4l', '6l']);
  const latencies = (await texts('#round-bars .bar-value')).map((text) => Number.parseFloat(text));
  assert.ok(latencies.every((value, i) => i === 0 || value >= latencies[i - 1]), `sorted: ${latencies}`);
  const round = (await api('/api/rounds?kind=block&number=2')).rounds[0];
  assert.deepEqual(Object.keys(round.latency_ms).sort(), names.slice().sort());
  await waitForText('#window', /^window: /, 'the timeline zoomed to the round');
  assert.notEqual(await page.locator('#window').innerText(), windowBefore);
});

test('reported text is shown as text and runs nothing', async () => {
  const attack = '<img src=x onerror=alert(1)><script>alert(2)</script>';
  await report(server.url, 'evil', 'new-peer-connected', attack);
  await waitForLog(attack);
  await page.waitForTimeout(300);
  assert.equal(await page.locator('#log img, #nodes img, #log script').count(), 0);
  assert.equal(dialogs, 0, 'no dialog opened');
});

test('the CSV export matches /api/reports', async () => {
  const [download] = await Promise.all([waitFor('the CSV download', page.waitForEvent('download', WAIT)), page.click('#export-csv')]);
  const lines = readFileSync(await download.path(), 'utf8').trimEnd().split('\r\n');
  const [header, ...rows] = lines.flatMap((line) => line.split('\n'));
  assert.equal(header, 'seq,run,time_unix_nano,received_unix_nano,sender,event,message,report_id');
  const reports = (await api('/api/reports?limit=10000')).reports;
  assert.equal(rows.length, reports.length);
  rows.forEach((row, index) => {
    const expected = reports[index];
    assert.ok(row.startsWith(`${expected.seq},${expected.run},`), row);
    assert.ok(row.endsWith(`,${expected.report_id}`), row);
    assert.ok(row.includes(`,${expected.sender},${expected.event},`), row);
  });
});

test('after a server restart the page resumes and shows new reports', async () => {
  const port = new URL(server.url).port;
  await stopServer(server);
  await waitFor('the disconnected status', page.waitForSelector('#status.offline', WAIT));
  assert.match(await page.locator('#status').innerText(), /disconnected/);
  server = await startServer(['--listen', `127.0.0.1:${port}`, '--db', db]);
  await report(server.url, '6l', 'new-block-received', 'after the restart');
  await waitForLog('after the restart');
  await waitFor('the live status', page.waitForSelector('#status.online', WAIT));
  const seqs = await logSeqs();
  assert.equal(new Set(seqs).size, seqs.length, 'no report shown twice after resuming');
  assert.deepEqual(problems.filter((text) => !/ERR_CONNECTION_REFUSED|net::ERR/.test(text)), []);
});

test('the headline stays bounded and flagged rounds are listed page by page', async () => {
  await newRun(server.url, 'flagged');
  // 30 rounds of two nodes: b receives no block after one from before the first
  // send (so it takes part in block rounds and is missing from all 30), and names
  // another winner.
  const start = Date.now() * 1e6 - 60e9;
  await send(server.url, 'b', 'EVENT_FIRST_PEER_CONNECTED', 'hello', start);
  await send(server.url, 'b', 'EVENT_NEW_BLOCK_RECEIVED', 'block 0', start + 500e6);
  for (let round = 1; round <= 30; round += 1) {
    const at = start + round * 1e9;
    await send(server.url, 'ra', 'EVENT_RA_NEW_PROBLEM_SENT', `problem ${round}`, at);
    await send(server.url, 'a', 'EVENT_SIMTASK_RECEIVED', `problem ${round}`, at + 5e6);
    await send(server.url, 'b', 'EVENT_SIMTASK_RECEIVED', `problem ${round}`, at + 6e6);
    await send(server.url, 'a', 'EVENT_BLOCK_WINNER_FOUND', 'a', at + 100e6);
    await send(server.url, 'b', 'EVENT_BLOCK_WINNER_FOUND', 'b', at + 100e6);
    await send(server.url, 'ra', 'EVENT_RA_NEW_BLOCK_SENT', `block ${round}`, at + 200e6);
    await send(server.url, 'a', 'EVENT_NEW_BLOCK_RECEIVED', `block ${round}`, at + 210e6);
  }
  const analysis = await api('/api/analysis');
  assert.equal(analysis.rounds_flagged, 30);
  assert.equal(analysis.winners_disagreeing, 30);
  await open();
  await waitForText('#headline', /missed: 30 rounds/, 'the flagged count in the headline');
  const headline = await page.locator('#headline').innerText();
  assert.match(headline, /missed: 30 rounds — b missed block 30; b missed block 29; b missed block 28 … and 27 more/);
  assert.match(headline, /winner disagreement in round 30, 29, 28 … and 27 more/);
  assert.ok(headline.length < 400, `the headline stays short: ${headline}`);

  await page.click('#headline button[data-list="rounds"]');
  await waitForCount('#flagged tbody tr', 20, 'the first page of flagged rounds');
  assert.match(await page.locator('#flagged tbody tr').first().innerText(), /block\s+30\s+block 30/);
  assert.ok(await page.locator('#flagged-newer').isDisabled());
  await page.click('#flagged-older');
  await waitForCount('#flagged tbody tr', 10, 'the second page of flagged rounds');
  assert.match(await page.locator('#flagged tbody tr').first().innerText(), /block\s+10\s+block 10/);
  assert.ok(await page.locator('#flagged-older').isDisabled(), 'no third page');
  await page.click('#flagged-newer');
  await waitForCount('#flagged tbody tr', 20, 'back to the first page');

  await page.click('#headline button[data-list="winners"]');
  await waitForText('#flagged-title', /Winner disagreements/);
  await waitForCount('#flagged tbody tr.bad', 20, 'the first page of disagreements');
  await page.click('#flagged-older');
  await waitForCount('#flagged tbody tr.bad', 10, 'the second page of disagreements');
  await page.click('#flagged-close');
  assert.ok(await page.locator('#flagged-view').isHidden());
});

test('the timeline zooms in to single reports, with a tooltip for each', async () => {
  await newRun(server.url, 'zoom');
  await simulate(server.url, 80);
  await open();
  await waitForText('#window', /^whole run: .* buckets of /, 'the whole run in buckets');
  const canvas = await page.locator('#timeline').boundingBox();
  const lane = canvas.y + 11; // the first lane: 1f
  await page.mouse.move(canvas.x + canvas.width * 0.5, lane);
  const windows = [await page.locator('#window').innerText()];
  for (let i = 0; i < 40 && !/single reports/.test(windows[windows.length - 1]); i += 1) {
    requests.length = 0;
    await page.mouse.wheel(0, -300);
    await waitFor('a new window', page.waitForFunction(
      (previous) => document.getElementById('window').textContent !== previous, windows[windows.length - 1], WAIT));
    await page.waitForTimeout(250);
    windows.push(await page.locator('#window').innerText());
  }
  assert.match(windows[windows.length - 1], /^window: .* single reports/, windows.join('\n'));
  const timelineAsks = requests.filter((address) => address.includes('/api/timeline'));
  assert.ok(timelineAsks.every((address) => new URL(address).searchParams.has('from')), 'windows are asked of the server');
  let tip = null;
  for (let x = canvas.x + 66; x < canvas.x + canvas.width - 10 && !tip; x += 3) {
    await page.mouse.move(x, lane);
    if (await page.locator('#tip').isVisible()) tip = await page.locator('#tip').innerText();
  }
  assert.ok(tip, 'a mark of 1f shows its report when hovered');
  assert.match(tip, /^#\d+ 1f [a-z0-9 ]+\n\d\d:\d\d:\d\d\.\d{3}\n./);
  // Drag pans the window; "whole run" goes back.
  const zoomed = await page.locator('#window').innerText();
  await page.mouse.move(canvas.x + canvas.width * 0.5, lane);
  await page.mouse.down();
  await page.mouse.move(canvas.x + canvas.width * 0.3, lane, { steps: 5 });
  await page.mouse.up();
  await waitFor('the panned window', page.waitForFunction(
    (previous) => document.getElementById('window').textContent !== previous, zoomed, WAIT));
  await page.click('#whole-run');
  await waitForText('#window', /^whole run: /, 'the whole run again');
  // Shift-drag selects a window: a fifth of the run.
  await page.keyboard.down('Shift');
  await page.mouse.move(canvas.x + 64 + (canvas.width - 74) * 0.4, lane);
  await page.mouse.down();
  await page.mouse.move(canvas.x + 64 + (canvas.width - 74) * 0.6, lane, { steps: 5 });
  await page.mouse.up();
  await page.keyboard.up('Shift');
  await waitForText('#window', /^window: /, 'the selected window');
  const seconds = (text) => Number(text.match(/\(([\d.]+) s\)/)?.[1]);
  const whole = (await api('/api/timeline?buckets=1'));
  const selected = seconds(await page.locator('#window').innerText());
  const expected = (whole.run_to - whole.run_from) / 5e9;
  assert.ok(Math.abs(selected - expected) < expected * 0.1, `selected ${selected} s, expected about ${expected} s`);
  assert.deepEqual(problems.filter((text) => !/ERR_CONNECTION_REFUSED|net::ERR/.test(text)), []);
});

test('with a read token the page passes ?token= on every read', async () => {
  const guarded = await startServer(['--listen', '127.0.0.1:0', '--memory', '--read-token', 'sesame']);
  const other = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  other.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  other.on('pageerror', (error) => errors.push(error.message));
  try {
    await simulate(guarded.url, 3);
    assert.equal((await fetch(`${guarded.url}/api/analysis`)).status, 401, 'reads need the token');
    await other.goto(`${guarded.url}/?token=sesame`);
    await waitFor('seven nodes with the token', other.waitForFunction(
      () => document.querySelectorAll('#nodes tbody tr').length === 7, null, WAIT));
    await waitFor('the live stream with the token', other.waitForSelector('#status.online', WAIT));
    await waitFor('the timeline with the token', other.waitForFunction(
      () => /^whole run: /.test(document.getElementById('window').textContent), null, WAIT));
    await other.locator('#rounds tbody tr').first().click();
    await waitFor('a round with the token', other.waitForSelector('#round-bars .bar-row', WAIT));
    const csv = new URL(await other.locator('#export-csv').getAttribute('href'), guarded.url);
    assert.equal(csv.searchParams.get('token'), 'sesame', 'the export link carries the token');
    assert.equal((await fetch(csv)).status, 200);
    assert.deepEqual(errors, []);
  } finally {
    await other.close();
    await stopServer(guarded);
  }
});

test('the nodes table shows the first 50, slowest sync first, and how many more', async () => {
  const crowded = await startServer(['--listen', '127.0.0.1:0', '--memory']);
  const other = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  const asked = [];
  other.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  other.on('pageerror', (error) => errors.push(error.message));
  other.on('request', (request) => asked.push(new URL(request.url())));
  try {
    // 60 nodes; node k syncs in k + 1 ms, so n59 is the slowest.
    const start = Date.now() * 1e6;
    for (let k = 0; k < 60; k += 1) {
      const sender = `n${String(k).padStart(2, '0')}`;
      await send(crowded.url, sender, 'EVENT_LIBP2P_NODE_ID_KNOWN', 'id', start);
      await send(crowded.url, sender, 'EVENT_INITIAL_SYNC_COMPLETED', 'synced', start + (k + 1) * 1e6);
    }
    await other.goto(`${crowded.url}/`);
    await waitFor('the first 50 nodes', other.waitForFunction(
      () => document.querySelectorAll('#nodes tbody tr').length === 50, null, WAIT));
    const rows = await other.locator('#nodes tbody tr td:first-child').allInnerTexts();
    assert.deepEqual(rows.slice(0, 3), ['n59', 'n58', 'n57'], 'slowest sync first');
    assert.equal(await other.locator('#nodes-more').innerText(), '… and 10 more');
    assert.match(await other.locator('#totals').innerText(), /· 60 nodes$/);
    assert.match(await other.locator('#headline').innerText(), /slowest sync: n59 \(60\.0+ ms\)/);
    // A new node's report does not add a row; the next summary counts it.
    await waitFor('the live stream', other.waitForSelector('#status.online', WAIT));
    await send(crowded.url, 'late', 'EVENT_TRANSACTION_RECEIVED', 'hello');
    await waitFor('61 nodes counted', other.waitForFunction(
      () => /· 61 nodes$/.test(document.getElementById('totals').textContent), null, WAIT));
    assert.equal(await other.locator('#nodes tbody tr').count(), 50);
    assert.equal(await other.locator('#nodes-more').innerText(), '… and 11 more');
    const summaries = asked.filter((address) => address.pathname === '/api/analysis');
    assert.ok(summaries.length >= 2, 'the summary was read again');
    assert.ok(summaries.every((address) => address.searchParams.get('nodes') === '50'),
      `the page asks only for the nodes it shows: ${summaries}`);
    assert.ok(!asked.some((address) => address.pathname === '/api/nodes'), 'no page of every node');
    // Opening the sender filter lists every sender, not only the 50 shown.
    await other.focus('#f-sender');
    await waitFor('every sender in the filter', other.waitForFunction(
      () => document.querySelectorAll('#f-sender option').length === 62, null, WAIT));
    assert.ok(asked.some((address) => address.pathname === '/api/nodes'
      && address.searchParams.get('order') === 'sender'), 'the list asked for by name');
    assert.deepEqual(errors, []);
  } finally {
    await other.close();
    await stopServer(crowded);
  }
});
