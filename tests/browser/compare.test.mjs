// The compare view (/?compare=a,b) in a real browser: two runs with a real
// difference (the light nodes 40 ms slower in b), their CDFs, deltas, nodes, flags.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch, root, simulate, startServer, stopServer, waitFor } from './harness.mjs';

const WAIT = { timeout: 10000 };
const A_COLOR = [0x1f, 0x77, 0xb4];
const B_COLOR = [0xe8, 0x71, 0x0a];
let server;
let browser;
let page;
const problems = [];
const requests = [];

const api = async (path) => {
  const response = await fetch(`${server.url}${path}`);
  assert.ok(response.ok, `${path}: ${response.status}`);
  return response.json();
};
const texts = (selector) => page.locator(selector).allInnerTexts();
/** Waits until the text of `selector` matches `pattern`. */
const waitForText = (selector, pattern, what) => waitFor(what ?? `${selector} to match ${pattern}`, page.waitForFunction(
  ([wanted, source, flags]) => new RegExp(source, flags).test(document.querySelector(wanted)?.textContent ?? ''),
  [selector, pattern.source, pattern.flags], WAIT));
const signed = (value) => `${value < 0 ? '-' : '+'}${Math.abs(value).toFixed(1)}`;
const fixed = (value) => (value == null ? '–' : value.toFixed(value < 10 ? 2 : 1));

/**
 * POSTs as the page itself would: Node's fetch sends `Sec-Fetch-Mode`, so the server
 * takes it for a browser, and a browser's write must say it is same-origin.
 */
async function post(path, body, type) {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST', headers: { 'content-type': type, origin: server.url, 'sec-fetch-site': 'same-origin' }, body,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${text}`);
  return text;
}
const newRun = async (name) => JSON.parse(await post('/api/runs', JSON.stringify({ name }), 'application/json'));
/** One report through the legacy form endpoint (`time` in ns). */
async function send(sender, eventtype, message, time) {
  const text = await post('/send', new URLSearchParams({ time: String(time), sender, eventtype, message }).toString(),
    'application/x-www-form-urlencoded');
  if (text.trim() !== 'ACK') throw new Error(`POST /send: ${text}`);
}

/** A small deterministic generator (mulberry32), so run b is the same every time. */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Run b through POST /send: the simulated network's shape (node i receives a block
 * 10–30 ms + 8·i ms after it is sent), but the light nodes 4l, 5l, 6l and a new light
 * node 7l (only in b) 40 ms later; problem rounds as in run a; no reveal rounds;
 * 6l misses block 5.
 */
async function fillRunB() {
  const nodes = ['1f', '2f', '3f', '4l', '5l', '6l', '7l'];
  const next = random(42);
  const between = (lo, hi) => lo + (hi - lo) * next();
  const ms = (value) => BigInt(Math.round(value * 1e6));
  const start = BigInt(Date.now()) * 1000000n - 120n * 1000000000n;
  const reports = [];
  nodes.forEach((node, i) => {
    const light = node.endsWith('l');
    let at = 40 + 15 * i;
    reports.push([node, 'EVENT_LIBP2P_NODE_ID_KNOWN', `12D3KooW${node}`, start + ms(at)]);
    at += between(20, 60);
    reports.push([node, 'EVENT_FIRST_PEER_CONNECTED', '12D3KooWRa', start + ms(at)]);
    reports.push([node, 'EVENT_RA_CONNECTED', '12D3KooWRa', start + ms(at)]);
    at += between(100, 300) * (light ? 1.5 : 3);
    reports.push([node, 'EVENT_INITIAL_SYNC_CHAINDB_RECEIVED', 'chaindb 48 MiB', start + ms(at)]);
    at += between(50, 150) * (light ? 1.5 : 4);
    reports.push([node, 'EVENT_INITIAL_SYNC_CHAINDB_VERIFIED', 'height 120', start + ms(at)]);
    at += between(30, 80);
    reports.push([node, 'EVENT_INITIAL_SYNC_COMPLETED', 'synced', start + ms(at)]);
  });
  for (let round = 1; round <= 30; round += 1) {
    const height = 120 + round;
    const at = start + ms(3000 + round * 1000);
    reports.push(['ra', 'EVENT_RA_NEW_PROBLEM_SENT', `problem ${height}`, at]);
    reports.push(['ra', 'EVENT_RA_NEW_BLOCK_SENT', `block ${height}`, at + ms(600)]);
    nodes.forEach((node, i) => {
      reports.push([node, 'EVENT_SIMTASK_RECEIVED', `problem ${height}`, at + ms(between(5, 40))]);
      if (round === 5 && node === '6l') return;
      const latency = between(10, 30) + 8 * i + (node.endsWith('l') ? 40 : 0);
      reports.push([node, 'EVENT_NEW_BLOCK_RECEIVED', `block ${height}`, at + ms(600 + latency)]);
    });
  }
  // A few at a time: the analysis does not depend on the order reports arrive in.
  for (let i = 0; i < reports.length; i += 16) {
    await Promise.all(reports.slice(i, i + 16).map(([sender, event, message, time]) =>
      send(sender, event, message, time)));
  }
  return reports.length;
}

/** Counts the pixels of a canvas near each run's colour, and where each crosses a row. */
function canvasPixels(id) {
  return page.evaluate(([canvasId, colors]) => {
    const canvas = document.getElementById(canvasId);
    if (!canvas || !canvas.width || !canvas.height) return null;
    const { data, width, height } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const near = (i, [r, g, b]) => Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60;
    const counts = { a: 0, b: 0, ink: 0 };
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] === 0) continue;
      if (near(i, colors[0])) counts.a += 1;
      else if (near(i, colors[1])) counts.b += 1;
      if (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240) counts.ink += 1;
    }
    // Where each curve crosses the fraction 0.5: the row at the plot's middle
    // (plot from 12 px below the top to 40 px above the bottom, in CSS pixels).
    const ratio = canvas.width / canvas.clientWidth;
    const row = Math.round((12 + (canvas.clientHeight - 52) / 2) * ratio);
    const crossing = (color) => {
      for (let dy = -2; dy <= 2; dy += 1) {
        for (let x = 0; x < width; x += 1) {
          if (near(((row + dy) * width + x) * 4, color)) return x / ratio;
        }
      }
      return null;
    };
    return { ...counts, width, height, crossA: crossing(colors[0]), crossB: crossing(colors[1]) };
  }, [id, [A_COLOR, B_COLOR]]);
}

/** The compare view's rendered delta table: one array of cell texts per row. */
const deltaRows = () => page.$$eval('#compare-deltas tbody tr',
  (rows) => rows.map((tr) => [...tr.cells].map((cell) => cell.textContent)));

before(async () => {
  server = await startServer(['--listen', '127.0.0.1:0', '--memory']);
  await simulate(server.url, 30, 7);
  await newRun('b');
  await fillRunB();
  browser = await launch();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(WAIT.timeout);
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('request', (request) => requests.push(request.url()));
}, { timeout: 120000 });

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
});

let shown;

test('/?compare=1,b shows the comparison only: deltas, CDFs, nodes, flags', async () => {
  const answer = await api('/api/compare?a=1&b=b');
  assert.ok(answer.kinds.block.real, `the test's runs differ beyond noise: ${JSON.stringify(answer.kinds.block.p50_delta_ci95_ms)}`);
  requests.length = 0;
  await page.goto(`${server.url}/?compare=1,b`);
  await waitFor('the block row of the delta table', page.waitForSelector('#compare-deltas tbody tr[data-kind="block"]', WAIT));
  assert.match(await page.title(), /compare run-1 with b/);
  assert.match(await page.locator('#compare-title').innerText(), /^Compare a: run-1 with b: b$/);
  assert.ok(await page.locator('#live').isHidden(), 'the live view is hidden');
  assert.ok(await page.locator('#run').isHidden(), 'the run picker is hidden');
  assert.equal(await page.locator('#live-link').getAttribute('href'), '/', 'a way back to the live view');

  // The delta table: block beyond noise with its interval; reveal has no rounds in b.
  const block = page.locator('#compare-deltas tbody tr[data-kind="block"]');
  const kind = answer.kinds.block;
  const [lo, hi] = kind.p50_delta_ci95_ms;
  const cells = await block.locator('td').allInnerTexts();
  assert.deepEqual(cells, ['block', String(kind.a.count), String(kind.b.count), fixed(kind.a.p50_ms), fixed(kind.b.p50_ms),
    `${signed(kind.p50_delta_ms)} ms [${lo.toFixed(1)}, ${hi.toFixed(1)}]`, 'beyond noise', fixed(kind.a.p99_ms), fixed(kind.b.p99_ms)]);
  assert.match(cells[5], /^\+\d+\.\d ms \[\d+\.\d, \d+\.\d\]$/, 'b is slower, beyond noise');
  assert.ok(kind.p50_delta_ms > 30, `about +40 ms: ${kind.p50_delta_ms}`);
  assert.equal(await block.getAttribute('class'), 'real', 'the row is highlighted');
  const background = await block.locator('td').first().evaluate((cell) => getComputedStyle(cell).backgroundColor);
  assert.notEqual(background, 'rgba(0, 0, 0, 0)', 'the highlighted row has a background');
  const reveal = await page.locator('#compare-deltas tbody tr[data-kind="reveal"] td').allInnerTexts();
  assert.equal(reveal[6], 'too few', `reveal: no rounds in b: ${reveal}`);
  assert.equal(reveal[5], '–');
  const problem = await page.locator('#compare-deltas tbody tr[data-kind="problem"] td').allInnerTexts();
  assert.match(problem[6], /^(within|beyond) noise$/, 'problem rounds in both runs have an interval');
  assert.equal(problem[6] === 'beyond noise', answer.kinds.problem.real);

  // One CDF canvas per kind with receipts; both curves drawn, b's to the right at the median.
  assert.deepEqual(await page.$$eval('canvas.cdf', (all) => all.map((canvas) => canvas.id)),
    ['cdf-problem', 'cdf-block', 'cdf-reveal']);
  const pixels = await canvasPixels('cdf-block');
  assert.ok(pixels, 'the block CDF canvas has a size');
  assert.ok(pixels.ink > 2000, `the block CDF is drawn: ${JSON.stringify(pixels)}`);
  assert.ok(pixels.a > 300 && pixels.b > 300, `both runs' curves are drawn: ${JSON.stringify(pixels)}`);
  assert.ok(pixels.crossA != null && pixels.crossB != null && pixels.crossB > pixels.crossA + 20,
    `b's median is to the right of a's: ${JSON.stringify(pixels)}`);
  const revealPixels = await canvasPixels('cdf-reveal');
  assert.ok(revealPixels.a > 300, 'reveal: a\'s curve');
  assert.ok(revealPixels.b < 100, `reveal: no curve for b (its legend only): ${JSON.stringify(revealPixels)}`);
  const caption = await page.locator('#compare-cdfs figure:has(#cdf-block) figcaption').innerText();
  assert.match(caption, new RegExp(`a: p50 ${fixed(kind.a.p50_ms)} ms · ${kind.a.count} receipts`));

  // Per-node sync bars, a and b side by side.
  for (const sender of ['4l', '5l', '6l']) {
    const node = answer.nodes.find((entry) => entry.sender === sender);
    const tr = page.locator(`#compare-nodes tbody tr[data-sender="${sender}"]`);
    for (const side of ['a', 'b']) {
      const width = await tr.locator(`.sync-line.${side} .bar.${side}`).evaluate((bar) => bar.getBoundingClientRect().width);
      assert.ok(width > 2, `${sender}: a bar for ${side} (${width} px)`);
      assert.equal(await tr.locator(`.sync-line.${side} .bar-value`).innerText(), `${fixed(node[side].synced_ms)} ms`);
    }
    const row = await tr.locator('td').allInnerTexts();
    assert.equal(row[2], signed(node.synced_delta_ms));
    assert.equal(row[3], fixed(node.a.block_p50_ms));
    assert.equal(row[4], fixed(node.b.block_p50_ms));
    assert.ok(node.b.block_p50_ms - node.a.block_p50_ms > 30, `${sender} is about 40 ms slower in b`);
    assert.match(row[5], /^\+\d+\.\d$/);
  }
  assert.equal(await page.locator('#compare-nodes tbody tr[data-sender="6l"] td').nth(7).innerText(), '1', '6l missed a block in b');
  assert.equal(await page.locator('#compare-nodes tbody tr[data-sender="5l"] td').nth(6).innerText(), '1', '5l missed a block in a');
  // 7l only reported in b: a's side is "–".
  const only = page.locator('#compare-nodes tbody tr[data-sender="7l"]');
  assert.equal(await only.locator('.sync-line.a .bar-value').innerText(), '–');
  assert.equal(await only.locator('.sync-line.a .bar').count(), 0);
  assert.ok((await only.locator('.sync-line.b .bar.b').count()) === 1);
  const onlyCells = await only.locator('td').allInnerTexts();
  assert.deepEqual([onlyCells[2], onlyCells[3], onlyCells[6]], ['–', '–', '–']);

  // Flags of both runs.
  const flags = await page.$$eval('#compare-flags tbody tr', (rows) => rows.map((tr) => [...tr.cells].map((cell) => cell.textContent)));
  assert.deepEqual(flags, [
    ['a: run-1', String(answer.flags.a.rounds_flagged), String(answer.flags.a.winners_disagreeing)],
    ['b: b', String(answer.flags.b.rounds_flagged), String(answer.flags.b.winners_disagreeing)],
  ]);
  assert.deepEqual(flags.map((cells) => cells.slice(1)), [['1', '1'], ['1', '0']]);

  // Only the comparison was read: no live stream, no live reads.
  assert.ok(!requests.some((address) => /\/api\/(stream|analysis|reports|timeline)/.test(address)),
    `no live requests: ${requests.filter((address) => address.includes('/api/'))}`);
  assert.deepEqual(problems, []);
  shown = await deltaRows();
  mkdirSync(join(root, 'target/shots'), { recursive: true });
  await page.screenshot({ path: join(root, 'target/shots/compare.png'), fullPage: true });
});

test('the compare control on the main page leads to the same view', async () => {
  await page.goto(`${server.url}/`);
  await waitFor('the live view', page.waitForSelector('#nodes tbody tr', WAIT));
  await page.click('#compare-open');
  await waitFor('the compare picker with the runs', page.waitForFunction(
    () => !document.getElementById('compare-form').hidden && document.getElementById('compare-b').options.length === 2, null, WAIT));
  // By default: the run shown (b, the current one) against the one before it.
  assert.equal(await page.locator('#compare-a').inputValue(), '1');
  assert.equal(await page.locator('#compare-b').inputValue(), '2');
  await page.selectOption('#compare-b', '1');
  assert.ok(await page.locator('#compare-go').isDisabled(), 'a run is not compared with itself');
  await page.selectOption('#compare-b', '2');
  await Promise.all([
    waitFor('the compare page', page.waitForURL((address) => address.search === '?compare=1,2', WAIT)),
    page.click('#compare-go'),
  ]);
  await waitFor('the delta table', page.waitForSelector('#compare-deltas tbody tr[data-kind="block"]', WAIT));
  assert.ok(shown, 'the first test saw the view by its link');
  assert.deepEqual(await deltaRows(), shown, 'the same comparison as /?compare=1,b');
  assert.equal(await page.locator('#compare-deltas tbody tr.real td.verdict').innerText(), 'beyond noise');
  // And back.
  await Promise.all([
    waitFor('the live view again', page.waitForSelector('#nodes tbody tr', WAIT)),
    page.click('#live-link'),
  ]);
  await waitFor('the live stream', page.waitForSelector('#status.online', WAIT));
  assert.deepEqual(problems, []);
});

test('names in the link are URL-encoded; a wrong run is said so', async () => {
  const odd = 'night run, 2/3 <b>';
  await newRun(odd);
  await page.goto(`${server.url}/?compare=${encodeURIComponent('b')},${encodeURIComponent(odd)}`);
  await waitForText('#compare-title', /^Compare a: b with b: night run, 2\/3 <b>$/, 'the encoded name');
  assert.equal(await page.locator('#compare-title b').count(), 0, 'the name is text');
  const block = await page.locator('#compare-deltas tbody tr[data-kind="block"] td').allInnerTexts();
  assert.deepEqual([block[2], block[5], block[6]], ['0', '–', 'too few'], 'an empty run b');
  assert.deepEqual(problems, []);

  await page.goto(`${server.url}/?compare=1,nope`);
  await waitForText('#compare-error', /no run with id or name "nope"/, 'the error');
  assert.ok(await page.locator('#compare-deltas-view').isHidden());
  const unexpected = problems.filter((text) => !/status of 404/.test(text));
  assert.deepEqual(unexpected, [], 'only the refused request itself is logged');
});
