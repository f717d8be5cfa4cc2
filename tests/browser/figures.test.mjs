// Figures out of the page, in a real browser: every chart (the whole-run latency
// histogram, compare's CDFs, the timeline) downloads as SVG (well-formed, its axis
// labels and legend as text), PNG (decodes, at twice the figure's size) and CSV
// (a header and the chart's data); and the SVG recording context turns canvas
// calls into the SVG elements they mean.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { launch, newRun, simulate, startServer, stopServer, waitFor } from './harness.mjs';

const WAIT = { timeout: 10000 };
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const fixed = (value) => value.toFixed(value < 10 ? 2 : 1);
let server;
let browser;
let page;
const problems = [];

const api = async (path) => {
  const response = await fetch(`${server.url}${path}`);
  assert.ok(response.ok, `${path}: ${response.status}`);
  return response.json();
};

before(async () => {
  server = await startServer(['--listen', '127.0.0.1:0', '--memory']);
  await simulate(server.url, 20, 7);             // run-1
  await newRun(server.url, 'light+40ms');
  await simulate(server.url, 60, 8);             // the current run, a name that needs care in file names
  browser = await launch();
  page = await browser.newPage({ viewport: { width: 1280, height: 1200 }, acceptDownloads: true });
  page.setDefaultTimeout(WAIT.timeout);
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(error.message));
}, { timeout: 120000 });

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
});

/** Clicks one chart's download button; resolves with the file's name and bytes. */
async function download(chart, format) {
  const button = page.locator(`.downloads[data-chart="${chart}"] button[data-format="${format}"]`);
  const [file] = await Promise.all([
    waitFor(`the ${format} download of ${chart}`, page.waitForEvent('download', WAIT)),
    button.click(),
  ]);
  const failure = await file.failure();
  assert.equal(failure, null, `${chart} ${format}: the download failed`);
  return { name: file.suggestedFilename(), bytes: readFileSync(await file.path()) };
}

/** An SVG file as the browser reads it: parse errors, size, texts, paths; and whether it renders as an image. */
function readSvg(bytes) {
  return page.evaluate(async (source) => {
    const doc = new DOMParser().parseFromString(source, 'image/svg+xml');
    const root = doc.documentElement;
    const image = new Image();
    const url = URL.createObjectURL(new Blob([source], { type: 'image/svg+xml' }));
    const rendered = await new Promise((done) => {
      image.onload = () => done({ width: image.naturalWidth, height: image.naturalHeight });
      image.onerror = () => done(null);
      image.src = url;
    });
    URL.revokeObjectURL(url);
    return {
      parseError: doc.querySelector('parsererror')?.textContent ?? null,
      root: root.localName,
      namespace: root.namespaceURI,
      width: Number(root.getAttribute('width')),
      height: Number(root.getAttribute('height')),
      texts: [...doc.querySelectorAll('text')].map((text) => text.textContent),
      strokes: [...doc.querySelectorAll('path[stroke]')].map((path) => [path.getAttribute('stroke'), path.getAttribute('d')]),
      fills: [...doc.querySelectorAll('rect')].map((rect) => rect.getAttribute('fill')),
      rendered,
    };
  }, bytes.toString('utf8'));
}

/** A PNG file decoded by the browser: its size, and its pixels that are not white and near `color`. */
function readPng(bytes, color) {
  return page.evaluate(async ([base64, [r, g, b]]) => {
    const data = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([data], { type: 'image/png' }));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext('2d');
    context.drawImage(bitmap, 0, 0);
    const pixels = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
    let ink = 0;
    let near = 0;
    let transparent = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] < 255) transparent += 1;
      if (pixels[i] < 240 || pixels[i + 1] < 240 || pixels[i + 2] < 240) ink += 1;
      if (Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) < 30) near += 1;
    }
    return { width: bitmap.width, height: bitmap.height, ink, near, transparent };
  }, [bytes.toString('base64'), color]);
}

/** CSV text as rows of fields (the quoting the page writes: "…" with "" inside). */
function parseCsv(text) {
  assert.ok(text.endsWith('\r\n'), 'rows end with CRLF');
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 1; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field); rows.push(row); row = []; field = ''; i += 1;
    } else field += c;
  }
  return rows;
}

/** The three downloads of `chart`, each checked for what every figure must have. */
async function downloads(chart, base) {
  const svgFile = await download(chart, 'svg');
  const pngFile = await download(chart, 'png');
  const csvFile = await download(chart, 'csv');
  assert.deepEqual([svgFile.name, pngFile.name, csvFile.name], [`${base}.svg`, `${base}.png`, `${base}.csv`]);
  const svg = await readSvg(svgFile.bytes);
  assert.equal(svg.parseError, null, `${chart}: the SVG is well-formed XML`);
  assert.equal(svg.root, 'svg');
  assert.equal(svg.namespace, 'http://www.w3.org/2000/svg');
  assert.deepEqual(svg.rendered, { width: svg.width, height: svg.height }, `${chart}: the SVG renders as an image`);
  assert.equal(svg.fills[0], '#fff', `${chart}: a white background first`);
  assert.deepEqual([...pngFile.bytes.subarray(0, 8)], PNG_MAGIC, `${chart}: a PNG file`);
  const csv = parseCsv(csvFile.bytes.toString('utf8'));
  assert.ok(csv.length >= 2, `${chart}: a header and at least one row: ${csvFile.bytes.toString('utf8').slice(0, 200)}`);
  assert.ok(csv.every((row) => row.length === csv[0].length), `${chart}: every row has the header's fields`);
  return { svg, png: pngFile.bytes, csv };
}

test('the histogram downloads as SVG, PNG and CSV with its axes and legend', async () => {
  await page.goto(`${server.url}/`);
  await waitFor('the histogram stats', page.waitForFunction(
    () => /receipts · p50/.test(document.getElementById('hist-stats').textContent), null, WAIT));
  const { block } = (await api('/api/analysis?run=light%2B40ms')).distributions;
  assert.ok(block.count > 50, `a run with block rounds: ${block.count} receipts`);
  const { svg, png, csv } = await downloads('histogram', 'light-40ms-block-histogram');
  for (const label of ['latency (ms, upper bound of each bin)', 'receipts', `block rounds, ${block.count} receipts`,
    `p50 ${fixed(block.p50_ms)} ms`, `p99 ${fixed(block.p99_ms)} ms`]) {
    assert.ok(svg.texts.includes(label), `the SVG has the text "${label}": ${JSON.stringify(svg.texts)}`);
  }
  assert.deepEqual([svg.width, svg.height], [800, 400]);
  const bars = svg.fills.filter((fill) => fill === '#1f77b4').length;
  const filled = block.histogram.filter((bin) => bin.count > 0).length;
  assert.equal(bars, filled + 1, 'one bar per bin that holds receipts, and the legend\'s swatch');
  assert.deepEqual(svg.strokes.filter(([stroke]) => stroke === '#2e7d32' || stroke === '#c62828').length, 4,
    'p50 and p99: a marker and a legend line each');
  const pixels = await readPng(png, [0x1f, 0x77, 0xb4]);
  assert.deepEqual([pixels.width, pixels.height], [1600, 800], 'twice the figure size');
  assert.equal(pixels.transparent, 0, 'a white background, not a transparent one');
  assert.ok(pixels.near > 5000, `the bars are drawn: ${JSON.stringify(pixels)}`);
  assert.deepEqual(csv[0], ['kind', 'le_ms', 'count']);
  assert.deepEqual(csv.slice(1), block.histogram.map((bin) => ['block', String(bin.le_ms), String(bin.count)]));

  // Another kind: the name and the data follow the choice.
  await page.selectOption('#hist-kind', 'problem');
  const problem = await download('histogram', 'csv');
  assert.equal(problem.name, 'light-40ms-problem-histogram.csv');
  assert.match(problem.bytes.toString('utf8').split('\r\n')[1], /^problem,/);
  await page.selectOption('#hist-kind', 'block');
  assert.deepEqual(problems, []);
});

test('the timeline downloads as a figure with its lanes, time axis and event legend', async () => {
  // The current run (2,000 reports and more): the whole run in buckets.
  await waitFor('the whole run in the timeline', page.waitForFunction(
    () => /^whole run: .* buckets of /.test(document.getElementById('window').textContent), null, WAIT));
  const { svg, png, csv } = await downloads('timeline', 'light-40ms-timeline');
  const whole = await api('/api/timeline?run=light%2B40ms&buckets=1');
  const senders = whole.senders.map((lane) => lane.sender);
  for (const label of ['time of day (UTC)', 'new block received', 'ra new block sent', ...senders]) {
    assert.ok(svg.texts.includes(label), `the SVG has the text "${label}": ${JSON.stringify(svg.texts)}`);
  }
  assert.ok(svg.texts.some((text) => /^\d\d:\d\d:\d\d\.\d{3}$/.test(text)), 'times of day on the axis');
  assert.equal(svg.width, 800);
  assert.ok(svg.height > senders.length * 22 + 36, `lanes, axis and legend fit: ${svg.height}`);
  const pixels = await readPng(png, [0x1f, 0x77, 0xb4]);
  assert.deepEqual([pixels.width, pixels.height], [svg.width * 2, svg.height * 2], 'the PNG is the SVG\'s size, twice');
  assert.ok(pixels.ink > 2000, `the lanes are drawn: ${JSON.stringify(pixels)}`);
  assert.deepEqual(csv[0], ['bucket_from_unix_nano', 'bucket_to_unix_nano', 'sender', 'event', 'count']);
  const runs = await api('/api/runs');
  const total = (name) => runs.find((run) => run.name === name).reports;
  assert.ok(total('light+40ms') > 2000, 'a run the timeline shows in buckets');
  assert.equal(csv.slice(1).reduce((sum, row) => sum + Number(row[4]), 0), total('light+40ms'),
    'the whole run\'s reports are counted');
  assert.ok(csv.slice(1).every((row) => senders.includes(row[2]) && row[3].startsWith('EVENT_') && Number(row[4]) > 0));

  // run-1 (fewer than 2,000 reports): its single reports, named after it.
  await page.selectOption('#run', '1');
  await waitFor('run-1\'s single reports', page.waitForFunction(
    () => /^whole run: .* single reports/.test(document.getElementById('window').textContent), null, WAIT));
  const single = await downloads('timeline', 'run-1-timeline');
  assert.ok(single.svg.texts.includes('time of day (UTC)') && single.svg.texts.includes('new block received'));
  assert.deepEqual(single.csv[0], ['time_unix_nano', 'seq', 'sender', 'event', 'message']);
  assert.equal(single.csv.length - 1, total('run-1'), 'every report of the window');
  const reports = (await api('/api/reports?run=1&limit=10000')).reports;
  const bySeq = new Map(reports.map((report) => [String(report.seq), report]));
  for (const [, seq, sender, event, message] of single.csv.slice(1)) {
    const report = bySeq.get(seq);
    assert.deepEqual([sender, event, message], [report.sender, report.event, report.message], `report ${seq}`);
  }
  assert.deepEqual(problems, []);
});

test('compare\'s CDFs download as figures with both runs in the legend', async () => {
  await page.goto(`${server.url}/?compare=1,light%2B40ms`);
  await waitFor('the block CDF', page.waitForSelector('.downloads[data-chart="cdf-block"]', WAIT));
  const answer = await api('/api/compare?a=1&b=light%2B40ms');
  const { svg, png, csv } = await downloads('cdf-block', 'run-1-vs-light-40ms-block-cdf');
  for (const label of ['block latency, ms (log scale)', 'fraction of receipts ≤ latency', 'a: run-1', 'b: light+40ms', '0.5']) {
    assert.ok(svg.texts.includes(label), `the SVG has the text "${label}": ${JSON.stringify(svg.texts)}`);
  }
  // Each run's curve is one path of many points, in its colour (and the legend's short line).
  for (const color of ['#1f77b4', '#e8710a']) {
    const longest = Math.max(...svg.strokes.filter(([stroke]) => stroke === color).map(([, d]) => d.split('L').length));
    assert.ok(longest >= 99, `${color}: a curve of ${longest} points`);
  }
  const pixels = await readPng(png, [0xe8, 0x71, 0x0a]);
  assert.deepEqual([pixels.width, pixels.height], [1600, 800]);
  assert.ok(pixels.near > 1000, `b's curve is drawn: ${JSON.stringify(pixels)}`);
  assert.deepEqual(csv[0], ['kind', 'side', 'run', 'fraction', 'latency_ms']);
  const kind = answer.kinds.block;
  for (const [side, name] of [['a', 'run-1'], ['b', 'light+40ms']]) {
    const rows = csv.filter((row) => row[1] === side);
    assert.deepEqual(rows.slice(0, 99).map((row) => [row[0], row[2], Number(row[3]), Number(row[4])]),
      kind.quantiles[side].map((value, i) => ['block', name, (i + 1) / 100, value]), `${side}'s quantiles`);
    assert.deepEqual(rows[rows.length - 1].slice(3), ['1', String(kind[side].max_ms)], `${side} reaches 1 at its slowest receipt`);
  }
  assert.deepEqual(problems, []);
});

test('the SVG recording context turns canvas calls into the SVG they mean', async () => {
  const result = await page.evaluate(async () => {
    const { SvgContext, figureSvg } = await import('/js/figure.js');
    const context = new SvgContext(200, 100);
    context.strokeStyle = '#123456';
    context.lineWidth = 2;
    context.beginPath(); context.moveTo(10, 20); context.lineTo(30, 40.257); context.lineTo(50, 20); context.closePath();
    context.stroke();
    context.save();
    context.translate(5, 6);
    context.fillStyle = 'rgba(255, 0, 0, 0.5)';
    context.fillRect(0, 0, 10, 20);
    context.setLineDash([3, 3]);
    context.beginPath(); context.moveTo(0, 0); context.lineTo(10, 0); context.stroke();
    context.restore();
    context.save();
    context.translate(12, 50);
    context.rotate(-Math.PI / 2);
    context.textAlign = 'center';
    context.fillStyle = '#1d2330';
    context.fillText('a < b & "c"', 0, 0);
    context.restore();
    context.save();
    context.beginPath(); context.rect(100, 0, 50, 50); context.clip();
    context.fillStyle = '#00ff00';
    context.fillRect(90, 10, 30, 30);
    context.restore();
    context.fillRect(0, 90, 5, 5);
    context.beginPath(); context.arc(150, 50, 10, 0, 2 * Math.PI); context.fill();
    const text = context.toString();
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    const attributes = (node) => Object.fromEntries([...node.attributes].map((a) => [a.name, a.value]));
    return {
      parseError: doc.querySelector('parsererror')?.textContent ?? null,
      elements: [...doc.documentElement.children].map((node) => [node.localName, attributes(node), node.textContent]),
      clipPaths: [...doc.querySelectorAll('clipPath')].map((node) => [node.id, node.firstElementChild.getAttribute('d')]),
      measured: context.measureText('mmmm').width,
      figure: figureSvg((c, width, height) => { c.fillStyle = '#abcdef'; c.fillRect(0, 0, width / 2, height / 2); }, 80, 40),
    };
  });
  assert.equal(result.parseError, null);
  const [defs, ...elements] = result.elements;
  assert.equal(defs[0], 'defs');
  assert.deepEqual(result.clipPaths, [['clip-1', 'M100 0L150 0L150 50L100 50Z']]);
  assert.deepEqual(elements.map(([name, attributes, text]) => [name, attributes, text]), [
    ['path', { d: 'M10 20L30 40.26L50 20Z', fill: 'none', stroke: '#123456', 'stroke-width': '2' }, ''],
    ['rect', { x: '5', y: '6', width: '10', height: '20', fill: 'rgb(255, 0, 0)', opacity: '0.5' }, ''],
    ['path', { d: 'M5 6L15 6', fill: 'none', stroke: '#123456', 'stroke-width': '2', 'stroke-dasharray': '3 3' }, ''],
    ['text', {
      x: '0', y: '0', transform: 'matrix(0 -1 1 0 12 50)', fill: '#1d2330', 'font-size': '11',
      'font-family': 'system-ui, sans-serif', 'text-anchor': 'middle',
    }, 'a < b & "c"'],
    ['rect', { x: '90', y: '10', width: '30', height: '30', fill: '#00ff00', 'clip-path': 'url(#clip-1)' }, ''],
    ['rect', { x: '0', y: '90', width: '5', height: '5', fill: '#000' }, ''],
    ['path', { d: 'M160 50A10 10 0 0 1 140 50A10 10 0 0 1 160 50', fill: '#000' }, ''],
  ]);
  assert.ok(result.measured > 20, `text is measured as the page measures it: ${result.measured}`);
  assert.match(result.figure, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="80" height="40" viewBox="0 0 80 40">\n<rect x="0" y="0" width="80" height="40" fill="#fff"\/>\n<rect x="0" y="0" width="40" height="20" fill="#abcdef"\/>\n<\/svg>\n$/);
  assert.deepEqual(problems, []);
});
