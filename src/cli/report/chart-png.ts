/**
 * A chart as a PNG picture (the plots written beside report.html), drawn into
 * a pixel buffer with shared/image/plot.ts on the status page's dark palette:
 * title and legend on top, y tick labels on the left, step numbers below.
 */
import { PixelCanvas, hexColor, GLYPH_HEIGHT, type Rgb } from '../../shared/image/plot.js';
import { layoutChart, type ChartSpec } from './chart.js';

export const PNG_WIDTH = 1000;
export const PNG_HEIGHT = 340;

const BG = hexColor('#151a23');
const GRID = hexColor('#252c3b');
const MUTED = hexColor('#8a93a6');
const TEXT = hexColor('#e7eaf0');
const BAD = hexColor('#f1607d');

/** Font scale: 5×7 glyphs drawn 2× (10×14 px). */
const S = 2;

/** Text for the bitmap font: its characters only ("∞" → "INF", "—" → "-", "−" → "-"). */
function plain(s: string): string {
  return s.replace(/−∞/g, '-INF').replace(/∞/g, 'INF').replace(/[—−–]/g, '-').replace(/µ/g, 'U').replace(/[^\x20-\x7e]/g, '?');
}

/** The chart as PNG bytes. */
export function chartPng(spec: ChartSpec): Buffer {
  const c = new PixelCanvas(PNG_WIDTH, PNG_HEIGHT, BG);
  const glyphH = GLYPH_HEIGHT * S;

  // Legend items (a swatch, the label and the last value), wrapped into rows under the title.
  const items = spec.series.map((s) => {
    const v = s.values.length ? spec.valueFormat(s.values[s.values.length - 1]!) : '-';
    const label = plain(`${s.label} ${v}`).toUpperCase();
    return { color: hexColor(s.color), label, width: 22 + PixelCanvas.textWidth(label, S) };
  });
  const rows: Array<Array<(typeof items)[number] & { x: number }>> = [[]];
  let x = 16;
  for (const it of items) {
    if (x > 16 && x + it.width > PNG_WIDTH - 16) {
      rows.push([]);
      x = 16;
    }
    rows[rows.length - 1]!.push({ ...it, x });
    x += it.width + 26;
  }
  const legendTop = 16 + glyphH + 10;
  const rowH = glyphH + 8;
  const L = layoutChart(spec, PNG_WIDTH, PNG_HEIGHT, { l: 104, r: 24, t: legendTop + rows.length * rowH + 14, b: 44 });
  const { plot } = L;

  c.text(16, 16, plain(spec.title).toUpperCase(), TEXT, S);
  if (spec.stride > 1) c.text(PNG_WIDTH - 16, 16, `MEAN OF ${spec.stride} POINTS`, MUTED, S, 'right');
  rows.forEach((row, i) => {
    const y = legendTop + i * rowH;
    for (const it of row) {
      c.fillRect(it.x, y + glyphH / 2 - 2, 16, 4, it.color);
      c.text(it.x + 22, y, it.label, MUTED, S);
    }
  });
  c.text(16, PNG_HEIGHT - 8 - glyphH, 'STEP', MUTED, S);

  for (const t of L.yTicks) {
    c.hline(plot.x0, plot.x1, t.y, GRID);
    c.text(plot.x0 - 10, t.y - glyphH / 2, plain(t.label).toUpperCase(), MUTED, S, 'right');
  }
  for (const t of L.xTicks) c.text(t.x, PNG_HEIGHT - 8 - glyphH, plain(t.label).toUpperCase(), MUTED, S, 'center');
  for (const m of L.markers) {
    c.vline(m.x, plot.y0, plot.y1, MUTED, 4);
    c.text(m.x + 6, plot.y0 + 2, plain(m.label).toUpperCase(), MUTED, S);
  }
  if (L.empty) {
    c.text((plot.x0 + plot.x1) / 2, (plot.y0 + plot.y1) / 2 - glyphH / 2, 'NO STEP WAS LOGGED', MUTED, S, 'center');
    return c.toPng();
  }
  for (const line of L.lines) {
    const rgb: Rgb = hexColor(line.color);
    if (line.area) for (const run of line.runs) c.fillUnder(run, L.baseY, rgb, 0.12);
    for (const run of line.runs) c.polyline(run, rgb, run.length === 1 ? 6 : 2.2);
  }
  for (const n of L.nanMarks) {
    for (let r = 0; r < 7; r++) c.hline(n.x - 4 + r * 0.6, n.x + 4 - r * 0.6, plot.y0 + r, BAD);
  }
  return c.toPng();
}
