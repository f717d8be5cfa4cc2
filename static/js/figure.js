// Figures out of the page: every chart downloads as SVG and PNG (axes, labels and
// legend included) and its data as CSV, for papers. A chart is one drawing
// function, draw(context, width, height), run on a canvas of the figure's size for
// the PNG and on an SvgContext for the SVG: SvgContext records the calls of
// CanvasRenderingContext2D the charts make as SVG elements, so one drawing code
// gives the page, the PNG and the SVG. Exports have a white background.
import { FONT, el } from './draw.js';

/** The size of an exported figure in CSS pixels unless a chart says otherwise. */
export const FIGURE_WIDTH = 800;
export const FIGURE_HEIGHT = 400;
/** Device pixels per CSS pixel of an exported PNG. */
export const PNG_SCALE = 2;

const SVG_NS = 'http://www.w3.org/2000/svg';
const IDENTITY = [1, 0, 0, 1, 0, 0];

/** A number for SVG: at most two decimals, no "-0". */
const num = (value) => String(Math.round(value * 100) / 100 || 0);

/** Text as XML character data: escaped, without the characters XML 1.0 forbids. */
function xmlText(text) {
  return String(text)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A canvas colour as an SVG paint and its opacity (`rgba(…, a)` splits in two). */
function paint(color) {
  const match = /^rgba\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*\)$/.exec(String(color));
  if (!match) return [String(color), 1];
  return [`rgb(${match[1]}, ${match[2]}, ${match[3]})`, Number(match[4])];
}

/** `11px system-ui, sans-serif` (a canvas font) as SVG font attributes. */
function fontAttributes(font) {
  const match = /^\s*((?:(?:italic|oblique|normal|bold|bolder|lighter|[1-9]00)\s+)*)([\d.]+)px\s+(.+)$/.exec(font);
  if (!match) return { 'font-family': font };
  const attributes = { 'font-size': match[2], 'font-family': match[3] };
  for (const word of match[1].trim().split(/\s+/).filter(Boolean)) {
    if (word === 'italic' || word === 'oblique') attributes['font-style'] = word;
    else if (word !== 'normal') attributes['font-weight'] = word;
  }
  return attributes;
}

const ANCHORS = { left: 'start', start: 'start', center: 'middle', right: 'end', end: 'end' };
const BASELINES = {
  alphabetic: null, top: 'text-before-edge', hanging: 'hanging', middle: 'central',
  ideographic: 'ideographic', bottom: 'text-after-edge',
};

/** `a` then `b`, as canvas transforms compose (b applied first). */
function multiply(a, b) {
  return [
    a[0] * b[0] + a[2] * b[1], a[1] * b[0] + a[3] * b[1],
    a[0] * b[2] + a[2] * b[3], a[1] * b[2] + a[3] * b[3],
    a[0] * b[4] + a[2] * b[5] + a[4], a[1] * b[4] + a[3] * b[5] + a[5],
  ];
}

let measurer = null;

/**
 * A recording stand-in for CanvasRenderingContext2D: the subset the charts use
 * (paths, rects, text, transforms, clipping, dashes, alpha) becomes SVG elements;
 * `toString()` is the SVG document. Paths are kept in figure coordinates (the
 * transform applies when a point is added, as on a canvas); text keeps its own
 * transform so rotated labels stay text. clearRect paints white (the exports'
 * background). A method the charts do not use yet is missing here and throws.
 */
export class SvgContext {
  constructor(width, height) {
    this.width = width;
    this.height = height;
    this.elements = [];
    this.definitions = [];
    this.path = [];      // the current path's commands, in figure coordinates
    this.current = null; // its current point, and where its subpath started
    this.start = null;
    this.stack = [];
    this.state = {
      fillStyle: '#000', strokeStyle: '#000', lineWidth: 1, font: FONT, textAlign: 'start',
      textBaseline: 'alphabetic', globalAlpha: 1, lineJoin: 'miter', lineCap: 'butt', miterLimit: 10,
      lineDash: [], matrix: IDENTITY, clip: null,
    };
  }

  // ---- state ----
  save() { this.stack.push({ ...this.state, lineDash: [...this.state.lineDash] }); }
  restore() { if (this.stack.length) this.state = this.stack.pop(); }
  setLineDash(segments) { this.state.lineDash = [...segments]; }
  getLineDash() { return [...this.state.lineDash]; }

  // ---- transforms ----
  setTransform(a, b, c, d, e, f) {
    this.state.matrix = typeof a === 'object' ? [a.a, a.b, a.c, a.d, a.e, a.f] : [a, b, c, d, e, f];
  }
  resetTransform() { this.state.matrix = IDENTITY; }
  transform(a, b, c, d, e, f) { this.state.matrix = multiply(this.state.matrix, [a, b, c, d, e, f]); }
  translate(x, y) { this.transform(1, 0, 0, 1, x, y); }
  scale(x, y) { this.transform(x, 0, 0, y, 0, 0); }
  rotate(angle) {
    const [cos, sin] = [Math.cos(angle), Math.sin(angle)];
    this.transform(cos, sin, -sin, cos, 0, 0);
  }

  /** A point in figure coordinates. */
  point(x, y) {
    const [a, b, c, d, e, f] = this.state.matrix;
    return [a * x + c * y + e, b * x + d * y + f];
  }

  /** How much the transform scales lengths (for line widths and radii). */
  lengthScale() {
    const [a, b, c, d] = this.state.matrix;
    return Math.sqrt(Math.abs(a * d - b * c));
  }

  // ---- paths ----
  beginPath() { this.path = []; this.current = null; }
  moveTo(x, y) {
    const [px, py] = this.point(x, y);
    this.path.push(`M${num(px)} ${num(py)}`);
    this.current = [px, py];
    this.start = [px, py];
  }
  lineTo(x, y) {
    if (!this.current) { this.moveTo(x, y); return; }
    const [px, py] = this.point(x, y);
    this.path.push(`L${num(px)} ${num(py)}`);
    this.current = [px, py];
  }
  closePath() {
    if (!this.current) return;
    this.path.push('Z');
    this.current = this.start;
  }
  rect(x, y, w, h) {
    this.moveTo(x, y);
    this.lineTo(x + w, y);
    this.lineTo(x + w, y + h);
    this.lineTo(x, y + h);
    this.closePath();
  }
  quadraticCurveTo(cx, cy, x, y) {
    if (!this.current) this.moveTo(cx, cy);
    const [c1x, c1y] = this.point(cx, cy);
    const [px, py] = this.point(x, y);
    this.path.push(`Q${num(c1x)} ${num(c1y)} ${num(px)} ${num(py)}`);
    this.current = [px, py];
  }
  bezierCurveTo(c1x, c1y, c2x, c2y, x, y) {
    if (!this.current) this.moveTo(c1x, c1y);
    const [ax, ay] = this.point(c1x, c1y);
    const [bx, by] = this.point(c2x, c2y);
    const [px, py] = this.point(x, y);
    this.path.push(`C${num(ax)} ${num(ay)} ${num(bx)} ${num(by)} ${num(px)} ${num(py)}`);
    this.current = [px, py];
  }
  /** An arc of a circle (a full one when it spans 2π), in pieces of at most half a turn. */
  arc(x, y, radius, start, end, counterclockwise = false) {
    const turn = 2 * Math.PI;
    const around = (angle) => (angle >= turn ? turn : ((angle % turn) + turn) % turn);
    const sweep = counterclockwise ? -around(start - end) : around(end - start);
    const at = (angle) => [x + radius * Math.cos(angle), y + radius * Math.sin(angle)];
    const [sx, sy] = at(start);
    if (this.current) this.lineTo(sx, sy); else this.moveTo(sx, sy);
    const r = num(radius * this.lengthScale());
    const pieces = Math.max(1, Math.ceil(Math.abs(sweep) / Math.PI - 1e-9));
    for (let i = 1; i <= pieces; i += 1) {
      const [px, py] = this.point(...at(start + (sweep * i) / pieces));
      this.path.push(`A${r} ${r} 0 0 ${sweep > 0 ? 1 : 0} ${num(px)} ${num(py)}`);
      this.current = [px, py];
    }
  }

  // ---- drawing ----
  /** The attributes every element carries: opacity and the clip in force. */
  common(opacity = 1) {
    const attributes = {};
    const alpha = this.state.globalAlpha * opacity;
    if (alpha < 1) attributes.opacity = num(alpha);
    if (this.state.clip) attributes['clip-path'] = `url(#${this.state.clip})`;
    return attributes;
  }

  fillAttributes() {
    const [color, opacity] = paint(this.state.fillStyle);
    return { fill: color, ...this.common(opacity) };
  }

  strokeAttributes() {
    const [color, opacity] = paint(this.state.strokeStyle);
    const attributes = { fill: 'none', stroke: color, 'stroke-width': num(this.state.lineWidth * this.lengthScale()) };
    if (this.state.lineDash.length) attributes['stroke-dasharray'] = this.state.lineDash.map(num).join(' ');
    if (this.state.lineJoin !== 'miter') attributes['stroke-linejoin'] = this.state.lineJoin;
    if (this.state.lineCap !== 'butt') attributes['stroke-linecap'] = this.state.lineCap;
    return { ...attributes, ...this.common(opacity) };
  }

  emit(tag, attributes, text) {
    const list = Object.entries(attributes).map(([name, value]) => ` ${name}="${xmlText(value)}"`).join('');
    this.elements.push(text == null ? `<${tag}${list}/>` : `<${tag}${list}>${xmlText(text)}</${tag}>`);
  }

  fill(rule) {
    if (!this.path.length) return;
    this.emit('path', { d: this.path.join(''), ...this.fillAttributes(), ...(rule === 'evenodd' ? { 'fill-rule': 'evenodd' } : {}) });
  }
  stroke() {
    if (!this.path.length) return;
    this.emit('path', { d: this.path.join(''), ...this.strokeAttributes() });
  }
  clip() {
    const id = `clip-${this.definitions.length + 1}`;
    const outer = this.state.clip ? ` clip-path="url(#${this.state.clip})"` : '';
    this.definitions.push(`<clipPath id="${id}"${outer}><path d="${this.path.join('')}"/></clipPath>`);
    this.state.clip = id;
  }

  /** A rectangle as <rect> when the transform keeps it one, else as a path. */
  shape(x, y, w, h, attributes) {
    if (!w || !h) return;
    const [a, b, c, d] = this.state.matrix;
    if (b === 0 && c === 0) {
      const [x0, y0] = this.point(x, y);
      const [x1, y1] = this.point(x + w, y + h);
      this.emit('rect', {
        x: num(Math.min(x0, x1)), y: num(Math.min(y0, y1)), width: num(Math.abs(x1 - x0)), height: num(Math.abs(y1 - y0)),
        ...attributes,
      });
      return;
    }
    const saved = [this.path, this.current];
    this.beginPath();
    this.rect(x, y, w, h);
    this.emit('path', { d: this.path.join(''), ...attributes });
    [this.path, this.current] = saved;
  }
  fillRect(x, y, w, h) { this.shape(x, y, w, h, this.fillAttributes()); }
  strokeRect(x, y, w, h) { this.shape(x, y, w, h, this.strokeAttributes()); }
  clearRect(x, y, w, h) { this.shape(x, y, w, h, { fill: '#fff', ...(this.state.clip ? { 'clip-path': `url(#${this.state.clip})` } : {}) }); }

  text(text, x, y, attributes) {
    const placed = { ...attributes, ...fontAttributes(this.state.font) };
    const anchor = ANCHORS[this.state.textAlign] || 'start';
    if (anchor !== 'start') placed['text-anchor'] = anchor;
    const baseline = BASELINES[this.state.textBaseline];
    if (baseline) placed['dominant-baseline'] = baseline;
    const [a, b, c, d, e, f] = this.state.matrix;
    if (a === 1 && b === 0 && c === 0 && d === 1) {
      this.emit('text', { x: num(x + e), y: num(y + f), ...placed }, text);
    } else {
      this.emit('text', { x: num(x), y: num(y), transform: `matrix(${[a, b, c, d, e, f].map(num).join(' ')})`, ...placed }, text);
    }
  }
  fillText(text, x, y) { this.text(text, x, y, this.fillAttributes()); }
  strokeText(text, x, y) { this.text(text, x, y, this.strokeAttributes()); }

  /** Text measured as a canvas of the page measures it, in the current font. */
  measureText(text) {
    measurer = measurer || document.createElement('canvas').getContext('2d');
    measurer.font = this.state.font;
    return measurer.measureText(text);
  }

  /** The SVG document. */
  toString() {
    const defs = this.definitions.length ? `<defs>${this.definitions.join('')}</defs>\n` : '';
    return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="${SVG_NS}" width="${this.width}" height="${this.height}" `
      + `viewBox="0 0 ${this.width} ${this.height}">\n${defs}${this.elements.join('\n')}\n</svg>\n`;
  }
}

for (const name of ['fillStyle', 'strokeStyle', 'lineWidth', 'font', 'textAlign', 'textBaseline', 'globalAlpha',
  'lineJoin', 'lineCap', 'miterLimit']) {
  Object.defineProperty(SvgContext.prototype, name, {
    get() { return this.state[name]; },
    set(value) { this.state[name] = value; },
  });
}

/** Runs `draw` for a figure of `width` × `height` on a white background. */
function paintFigure(context, draw, width, height) {
  context.fillStyle = '#fff';
  context.fillRect(0, 0, width, height);
  context.fillStyle = '#000';
  context.strokeStyle = '#000';
  context.lineWidth = 1;
  context.font = FONT;
  draw(context, width, height);
}

/** The figure as SVG text. */
export function figureSvg(draw, width = FIGURE_WIDTH, height = FIGURE_HEIGHT) {
  const context = new SvgContext(width, height);
  paintFigure(context, draw, width, height);
  return context.toString();
}

/** The figure as a PNG blob, `PNG_SCALE` device pixels per CSS pixel. */
export function figurePng(draw, width = FIGURE_WIDTH, height = FIGURE_HEIGHT) {
  const canvas = document.createElement('canvas');
  canvas.width = Math.round(width * PNG_SCALE);
  canvas.height = Math.round(height * PNG_SCALE);
  const context = canvas.getContext('2d');
  context.setTransform(PNG_SCALE, 0, 0, PNG_SCALE, 0, 0);
  paintFigure(context, draw, width, height);
  return new Promise((resolve, reject) => canvas.toBlob(
    (blob) => (blob ? resolve(blob) : reject(new Error('PNG: the canvas gave no image'))), 'image/png'));
}

/** One CSV field, quoted as the server's export quotes (when it holds , " CR or LF). */
function csvField(value) {
  const text = value == null ? '' : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Rows (the header first) as CSV text, CRLF line ends like the server's export. */
export function csvText(rows) {
  return rows.map((cells) => `${cells.map(csvField).join(',')}\r\n`).join('');
}

/** A file name out of run and chart names: letters, digits, `.`, `_` and `-` only. */
export function fileName(text) {
  return String(text).replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'figure';
}

function saveFile(blob, name) {
  const href = URL.createObjectURL(blob);
  const link = el('a');
  link.href = href;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // Long enough for the browser to have taken the file.
  setTimeout(() => URL.revokeObjectURL(href), 60000);
}

/**
 * Adds "SVG · PNG · CSV" download buttons for one chart to `container`:
 * `name()` the file name without extension (made file-safe here), `draw(context,
 * width, height)` the chart drawn on any context (a canvas's or an SvgContext),
 * `csv()` its data as rows of cells, the header first; `size()` (optional) the
 * figure's `{width, height}` in CSS pixels (default FIGURE_WIDTH × FIGURE_HEIGHT).
 * Returns the element added (`data-chart` is `chart`, for tests and styles).
 */
export function addDownloads(container, { chart, name, draw, csv, size }) {
  const box = el('span', 'download', 'downloads');
  box.dataset.chart = chart;
  const dimensions = () => ({ width: FIGURE_WIDTH, height: FIGURE_HEIGHT, ...(size ? size() : {}) });
  const formats = {
    svg: () => {
      const { width, height } = dimensions();
      return new Blob([figureSvg(draw, width, height)], { type: 'image/svg+xml' });
    },
    png: () => {
      const { width, height } = dimensions();
      return figurePng(draw, width, height);
    },
    csv: () => new Blob([csvText(csv())], { type: 'text/csv' }),
  };
  for (const [format, make] of Object.entries(formats)) {
    const button = el('button', format.toUpperCase(), 'link');
    button.type = 'button';
    button.dataset.format = format;
    button.title = `download this ${format === 'csv' ? "chart's data" : 'chart'} as ${format.toUpperCase()}`;
    button.addEventListener('click', async () => {
      try {
        saveFile(await make(), `${fileName(name())}.${format}`);
      } catch (error) {
        console.error(`${chart}: ${format} download: ${error.message}`);
      }
    });
    box.append(' ', button);
  }
  container.append(box);
  return box;
}
