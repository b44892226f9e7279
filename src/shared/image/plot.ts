/**
 * Drawing into an RGB pixel buffer, for plots written as PNG (png.ts) without
 * a native image library: filled rectangles, anti-aliased thick polylines,
 * translucent fills, dashed rules and text in a built-in 5×7 bitmap font
 * (digits, A–Z, a little punctuation; lower case is drawn as upper case).
 *
 * Coordinates are pixels, x to the right and y down, (0, 0) the top-left
 * corner; a pixel's centre is at (x + 0.5, y + 0.5). Everything outside the
 * canvas is clipped.
 */
import { encodePng, type RawImage } from './png.js';

export type Rgb = readonly [number, number, number];

/** "#f5a524" → [245, 165, 36]. Throws RangeError on anything else. */
export function hexColor(hex: string): Rgb {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new RangeError(`hexColor: ${JSON.stringify(hex)} is not #rrggbb`);
  return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
}

/** Glyph cell of the font, in font pixels (before `scale`). */
export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Font pixels from one glyph's left edge to the next one's. */
const ADVANCE = GLYPH_WIDTH + 1;

/* The font: 7 rows of 5 columns per glyph, '#' on. */
const FONT_ROWS: Record<string, string> = {
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '####. ....# ....# .###. ....# ....# ####.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '###.. #..#. #...# #...# #...# #..#. ###..',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  '-': '..... ..... ..... ##### ..... ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '/': '..... ....# ...#. ..#.. .#... #.... .....',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...##',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '=': '..... ..... ##### ..... ##### ..... .....',
  '_': '..... ..... ..... ..... ..... ..... #####',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
};

/** Glyph bitmaps: GLYPH_HEIGHT rows of GLYPH_WIDTH bits, bit 4 the leftmost column. */
const FONT: ReadonlyMap<string, readonly number[]> = new Map(
  Object.entries(FONT_ROWS).map(([ch, rows]) => [ch, rows.split(' ').map((r) => [...r].reduce((bits, c) => (bits << 1) | (c === '#' ? 1 : 0), 0))]),
);

function glyph(ch: string): readonly number[] {
  return FONT.get(ch) ?? FONT.get(ch.toUpperCase()) ?? FONT.get('?')!;
}

export type TextAlign = 'left' | 'center' | 'right';

export class PixelCanvas {
  readonly data: Uint8Array;

  constructor(readonly width: number, readonly height: number, background: Rgb = [255, 255, 255]) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width * height > 64 * 1024 * 1024) {
      throw new RangeError(`PixelCanvas: ${width}×${height} is not a positive size of at most 64 Mpx`);
    }
    this.data = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, background);
  }

  /** Mixes `rgb` into one pixel with opacity `alpha` (0–1). */
  blend(x: number, y: number, rgb: Rgb, alpha = 1): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || !(alpha > 0)) return;
    const i = (y * this.width + x) * 3;
    const a = alpha >= 1 ? 1 : alpha;
    const d = this.data;
    d[i] = Math.round(d[i]! + (rgb[0] - d[i]!) * a);
    d[i + 1] = Math.round(d[i + 1]! + (rgb[1] - d[i + 1]!) * a);
    d[i + 2] = Math.round(d[i + 2]! + (rgb[2] - d[i + 2]!) * a);
  }

  /** Fills the pixels [x, x+w) × [y, y+h) (rounded to whole pixels). */
  fillRect(x: number, y: number, w: number, h: number, rgb: Rgb, alpha = 1): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let py = y0; py < y1; py++) for (let px = x0; px < x1; px++) this.blend(px, py, rgb, alpha);
  }

  /** A one-pixel horizontal rule at row `y` from x0 to x1 (inclusive), dashed when `dash` > 0. */
  hline(x0: number, x1: number, y: number, rgb: Rgb, dash = 0, alpha = 1): void {
    const row = Math.round(y);
    for (let x = Math.round(Math.min(x0, x1)); x <= Math.round(Math.max(x0, x1)); x++) {
      if (dash > 0 && Math.floor((x - x0) / dash) % 2 === 1) continue;
      this.blend(x, row, rgb, alpha);
    }
  }

  /** A one-pixel vertical rule at column `x`, dashed when `dash` > 0. */
  vline(x: number, y0: number, y1: number, rgb: Rgb, dash = 0, alpha = 1): void {
    const col = Math.round(x);
    for (let y = Math.round(Math.min(y0, y1)); y <= Math.round(Math.max(y0, y1)); y++) {
      if (dash > 0 && Math.floor((y - y0) / dash) % 2 === 1) continue;
      this.blend(col, y, rgb, alpha);
    }
  }

  /**
   * An anti-aliased polyline `lineWidth` pixels thick through the points
   * ([x, y] pairs, at least one). Coverage is the largest over the segments,
   * so joints are not painted twice (no dark knots on translucent colours).
   * A single point draws a dot.
   */
  polyline(points: ReadonlyArray<readonly [number, number]>, rgb: Rgb, lineWidth = 2): void {
    if (points.length === 0) return;
    const half = lineWidth / 2;
    const cover = new Map<number, number>();
    const segs = points.length === 1 ? [[points[0]!, points[0]!] as const] : points.slice(1).map((p, i) => [points[i]!, p] as const);
    for (const [a, b] of segs) {
      const minX = Math.max(0, Math.floor(Math.min(a[0], b[0]) - half - 1));
      const maxX = Math.min(this.width - 1, Math.ceil(Math.max(a[0], b[0]) + half + 1));
      const minY = Math.max(0, Math.floor(Math.min(a[1], b[1]) - half - 1));
      const maxY = Math.min(this.height - 1, Math.ceil(Math.max(a[1], b[1]) + half + 1));
      const dx = b[0] - a[0];
      const dy = b[1] - a[1];
      const len2 = dx * dx + dy * dy;
      for (let y = minY; y <= maxY; y++) {
        for (let x = minX; x <= maxX; x++) {
          const cx = x + 0.5 - a[0];
          const cy = y + 0.5 - a[1];
          const t = len2 > 0 ? Math.max(0, Math.min(1, (cx * dx + cy * dy) / len2)) : 0;
          const ex = cx - t * dx;
          const ey = cy - t * dy;
          const c = Math.min(1, Math.max(0, half + 0.5 - Math.sqrt(ex * ex + ey * ey)));
          if (c <= 0) continue;
          const k = y * this.width + x;
          if (c > (cover.get(k) ?? 0)) cover.set(k, c);
        }
      }
    }
    for (const [k, c] of cover) this.blend(k % this.width, Math.floor(k / this.width), rgb, c);
  }

  /**
   * Fills between a polyline and the row `baseY` with a translucent colour
   * (an area chart), column by column; points must have increasing x.
   */
  fillUnder(points: ReadonlyArray<readonly [number, number]>, baseY: number, rgb: Rgb, alpha: number): void {
    for (let i = 1; i < points.length; i++) {
      const [x0, y0] = points[i - 1]!;
      const [x1, y1] = points[i]!;
      const from = Math.max(0, Math.ceil(x0 - 0.5));
      const to = Math.min(this.width - 1, Math.ceil(x1 - 0.5) - 1);
      for (let x = from; x <= to; x++) {
        const t = x1 > x0 ? (x + 0.5 - x0) / (x1 - x0) : 0;
        const y = y0 + t * (y1 - y0);
        for (let py = Math.max(0, Math.round(Math.min(y, baseY))); py < Math.min(this.height, Math.round(Math.max(y, baseY))); py++) this.blend(x, py, rgb, alpha);
      }
    }
  }

  /** Pixel width of `text` at `scale`. */
  static textWidth(text: string, scale = 1): number {
    return text.length === 0 ? 0 : (text.length * ADVANCE - 1) * scale;
  }

  /** Draws `text` with its top at `y`; `x` is its left edge, centre or right edge per `align`. */
  text(x: number, y: number, text: string, rgb: Rgb, scale = 1, align: TextAlign = 'left'): void {
    const w = PixelCanvas.textWidth(text, scale);
    let left = Math.round(align === 'left' ? x : align === 'center' ? x - w / 2 : x - w);
    const top = Math.round(y);
    for (const ch of text) {
      const rows = glyph(ch);
      for (let r = 0; r < GLYPH_HEIGHT; r++) {
        const bits = rows[r]!;
        for (let c = 0; c < GLYPH_WIDTH; c++) {
          if (((bits >> (GLYPH_WIDTH - 1 - c)) & 1) === 0) continue;
          this.fillRect(left + c * scale, top + r * scale, scale, scale, rgb);
        }
      }
      left += ADVANCE * scale;
    }
  }

  toRawImage(): RawImage {
    return { width: this.width, height: this.height, channels: 3, data: this.data };
  }

  toPng(): Buffer {
    return encodePng(this.toRawImage());
  }
}
