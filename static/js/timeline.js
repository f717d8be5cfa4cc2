// The timeline: one lane per node over a window of the run, counts per bucket or,
// zoomed in far enough, the single reports; wheel zooms, drag pans, shift-drag
// selects, hover tells what is there. The window is read from the server, and
// downloads as a figure (with a legend of its events) and as CSV.
import { $, canvasContext, clock, el, ms, short } from './draw.js';
import { getJson } from './api.js';
import { EVENTS, color, colorAt } from './events.js';
import { FIGURE_WIDTH, addDownloads } from './figure.js';
import { state } from './state.js';

const TIMELINE_FOLLOW_MS = 2000; // live refresh of a window showing the run's end
const TIMELINE_DEBOUNCE_MS = 200; // at most ~5 window fetches a second while interacting
const MIN_WINDOW_NS = 1e5;     // 0.1 ms: the narrowest timeline window
const LANE = 22;
const LEFT = 64;
const RIGHT = 10;
const AXIS = 36;           // the time axis: ticks, times and its label
const LEGEND_COLUMN = 180; // an exported figure's legend: px per column
const LEGEND_ROW = 16;     // and per row
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

/** Reads the window shown (live: slid along with the run's end when following it). */
export async function fetchTimeline(live = false) {
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

/** Shows `from..to` (ns), or the whole run when that covers it. */
export function setView(from, to) {
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

/** The lanes: every sender of the window and of the run's nodes, by name. */
function laneSenders() {
  const data = timeline.data;
  const senders = data ? data.senders.map((lane) => lane.sender) : [];
  for (const sender of state.nodes.keys()) if (!senders.includes(sender)) senders.push(sender);
  return senders.sort();
}

function renderTimeline() {
  const canvas = $('timeline');
  const senders = laneSenders();
  const height = Math.max(60, senders.length * LANE + AXIS + 4);
  const { context, width } = canvasContext(canvas, height);
  timeline.width = width;
  timeline.lanes = senders;
  const view = currentView();
  renderWindowLabel(view);
  renderLegend();
  plotTimeline(context, width, { data: timeline.data, view, senders });
  if (timeline.drag?.select) {
    const { startX, nowX } = timeline.drag;
    context.fillStyle = 'rgba(31, 119, 180, 0.15)';
    context.fillRect(Math.min(startX, nowX), 0, Math.abs(nowX - startX), senders.length * LANE);
  }
}

/** The events a window shows, in the server's order. */
function eventsShown(data) {
  const shown = new Set(data.reports ? data.reports.map((report) => report.event)
    : data.senders.flatMap((lane) => Object.keys(lane.counts)));
  return EVENTS.filter((event) => shown.has(event));
}

/**
 * The window `view` of `data` (an /api/timeline answer) on any 2D context (a
 * canvas's, or an SvgContext) `width` CSS px wide: one lane per sender of
 * `senders`, the time axis and its label; with `legend`, the events shown below it
 * (the page has its own legend under the canvas), LEGEND_COLUMN px a column.
 */
function plotTimeline(context, width, { data, view, senders, legend = false }) {
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
  const ticks = Math.max(2, Math.floor(plot / 140));
  for (let i = 0; i <= ticks; i += 1) {
    const t = view.from + ((view.to - view.from) * i) / ticks;
    const at = LEFT + (plot * i) / ticks;
    context.fillRect(at, axis, 1, 4);
    context.textAlign = i === 0 ? 'left' : i === ticks ? 'right' : 'center';
    context.fillText(clock(t), at, axis + 15);
  }
  context.textAlign = 'center';
  context.fillText('time of day (UTC)', LEFT + plot / 2, axis + 29);
  context.textAlign = 'left';
  if (!legend) return;
  eventsShown(data).forEach((event, i) => {
    const columns = Math.max(1, Math.floor((width - 8) / LEGEND_COLUMN));
    const left = 8 + (i % columns) * LEGEND_COLUMN;
    const y = axis + AXIS + 4 + Math.floor(i / columns) * LEGEND_ROW;
    context.fillStyle = color(event);
    context.fillRect(left, y, 10, 10);
    context.fillStyle = '#1d2330';
    context.fillText(short(event), left + 14, y + 9);
  });
}

/** The size of the exported timeline: its lanes, the axis and the legend's rows. */
function figureSize(senders) {
  const data = timeline.data;
  const columns = Math.max(1, Math.floor((FIGURE_WIDTH - 8) / LEGEND_COLUMN));
  const rows = data ? Math.ceil(eventsShown(data).length / columns) : 0;
  return { width: FIGURE_WIDTH, height: senders.length * LANE + AXIS + 8 + rows * LEGEND_ROW };
}

/** The window shown as CSV rows: its single reports, or its counts per bucket. */
function timelineRows() {
  const data = timeline.data;
  if (data?.reports) {
    return [['time_unix_nano', 'seq', 'sender', 'event', 'message'],
      ...data.reports.map((report) => [report.time_unix_nano, report.seq, report.sender, report.event, report.message])];
  }
  const rows = [['bucket_from_unix_nano', 'bucket_to_unix_nano', 'sender', 'event', 'count']];
  for (const lane of data?.senders ?? []) {
    for (const [event, counts] of Object.entries(lane.counts)) {
      counts.forEach((count, i) => {
        const from = data.from + i * data.bucket_ns;
        if (count) rows.push([from, from + data.bucket_ns, lane.sender, event, count]);
      });
    }
  }
  return rows;
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
    swatch.style.background = colorAt(i);
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

/** Forgets the window shown (another run was chosen): the whole run, following it. */
export function clearTimeline() {
  Object.assign(timeline, { view: null, data: null, follow: true });
}

/** A live report: the run now reaches its time; a window following the run's end is read again. */
export function timelineReport(report) {
  if (timeline.data && timeline.data.run_to != null) {
    timeline.data.run_to = Math.max(timeline.data.run_to, report.time_unix_nano);
  }
  if (timeline.follow) scheduleTimeline(TIMELINE_FOLLOW_MS, true);
}

export function wireTimeline() {
  $('whole-run').addEventListener('click', () => { timeline.view = null; renderTimeline(); scheduleTimeline(0); });
  const canvas = $('timeline');
  canvas.addEventListener('mousemove', hover);
  canvas.addEventListener('mouseleave', () => { $('tip').hidden = true; });
  canvas.addEventListener('wheel', wheel, { passive: false });
  canvas.addEventListener('mousedown', dragStart);
  window.addEventListener('mousemove', dragMove);
  window.addEventListener('mouseup', dragEnd);
  window.addEventListener('resize', renderTimeline);
  addDownloads($('whole-run').parentElement, {
    chart: 'timeline',
    name: () => `${state.runName}-timeline`,
    size: () => figureSize(laneSenders()),
    draw: (context, width) => plotTimeline(context, width,
      { data: timeline.data, view: currentView(), senders: laneSenders(), legend: true }),
    csv: timelineRows,
  });
}
