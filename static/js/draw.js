// Shared helpers of every view: elements whose text is only ever set as text (never
// parsed as HTML), table rows, canvases at the screen's resolution, and the formats
// of names, times and milliseconds.

export const $ = (id) => document.getElementById(id);

export const short = (name) => name.replace(/^EVENT_/, '').toLowerCase().replace(/_/g, ' ');
export const clock = (ns) => new Date(ns / 1e6).toISOString().slice(11, 23);
export const ms = (value) => (value == null ? '–' : value.toFixed(value < 10 ? 2 : 1));
export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
/** A run's labels as `k=v k=v` (in key order, as the server gives them). */
export const labelText = (labels) => Object.entries(labels ?? {}).map(([key, value]) => `${key}=${value}`).join(' ');

/** An element whose text is set as text. */
export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function row(cells, className) {
  const tr = el('tr', null, className);
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el('td', cell));
  return tr;
}

export function num(value) { return el('td', value, 'num'); }

/** The font of every chart's text, on the page and in exported figures. */
export const FONT = '11px system-ui, sans-serif';

/** A canvas sized to its box in CSS pixels, drawn at the screen's resolution. */
export function canvasContext(canvas, height) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.height = `${height}px`;
  const context = canvas.getContext('2d');
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  context.font = FONT;
  return { context, width, height };
}
