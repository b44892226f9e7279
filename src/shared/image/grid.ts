/**
 * Pictures of samples: a tiled grid of generated images, and for 2-D point
 * models a scatter plot of samples over the data's modes.
 */
import { encodePng, type RawImage } from './png.js';

/** Maps a value in [-1, 1] to a byte (clamping outside values). */
export function toByte(v: number): number {
  const b = Math.round(((v + 1) / 2) * 255);
  return b < 0 ? 0 : b > 255 ? 255 : Number.isNaN(b) ? 0 : b;
}

export interface GridOptions {
  /** Images per row (default ⌈√n⌉). */
  cols?: number;
  /** Pixels between tiles and around the edge (default 2). */
  padding?: number;
  /** Integer nearest-neighbour magnification of each pixel (default 1). */
  scale?: number;
  /** Background byte value (default 0, black). */
  background?: number;
}

/**
 * Tiles n images (n × H × W × C floats in [-1, 1], row-major, C = 1 or 3)
 * into one picture, row by row.
 */
export function imageGrid(images: Float32Array, n: number, shape: readonly number[], opts: GridOptions = {}): RawImage {
  const [h, w, c] = shape as [number, number, number];
  if (shape.length !== 3 || (c !== 1 && c !== 3)) throw new RangeError(`imageGrid: shape [${shape.join(', ')}] is not [H, W, 1|3]`);
  if (!Number.isInteger(n) || n < 1 || images.length !== n * h * w * c) {
    throw new RangeError(`imageGrid: ${images.length} floats for ${n} images of ${h}×${w}×${c}`);
  }
  const cols = Math.max(1, Math.min(n, opts.cols ?? Math.ceil(Math.sqrt(n))));
  const rows = Math.ceil(n / cols);
  const pad = opts.padding ?? 2;
  const scale = opts.scale ?? 1;
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`imageGrid: scale ${scale} is not a positive integer`);
  const th = h * scale;
  const tw = w * scale;
  const width = cols * tw + (cols + 1) * pad;
  const height = rows * th + (rows + 1) * pad;
  const data = new Uint8Array(width * height * c).fill(opts.background ?? 0);
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % cols) * (tw + pad);
    const y0 = pad + Math.floor(k / cols) * (th + pad);
    const base = k * h * w * c;
    for (let y = 0; y < th; y++) {
      const sy = Math.floor(y / scale);
      for (let x = 0; x < tw; x++) {
        const sx = Math.floor(x / scale);
        const src = base + (sy * w + sx) * c;
        const dst = ((y0 + y) * width + x0 + x) * c;
        for (let ch = 0; ch < c; ch++) data[dst + ch] = toByte(images[src + ch]!);
      }
    }
  }
  return { width, height, channels: c, data };
}

/** imageGrid encoded as PNG bytes. */
export function imageGridPng(images: Float32Array, n: number, shape: readonly number[], opts: GridOptions = {}): Buffer {
  return encodePng(imageGrid(images, n, shape, opts));
}

export interface ScatterOptions {
  /** Side of the square picture, pixels (default 512). */
  size?: number;
  /** Half-width of the plotted square around the origin, data units (default 1.1: the data range [-1, 1] plus a margin). */
  extent?: number;
  /** Data modes to draw as rings of radius 3σ (omit for none). */
  modes?: { centres: ReadonlyArray<readonly [number, number]>; sigma: number };
}

/**
 * Scatter plot of 2-D samples (n × 2 floats) as an RGB picture: white
 * background, grey axes, each mode's 3σ circle in red, samples as 3×3 blue dots.
 */
export function scatterPlot(points: Float32Array, opts: ScatterOptions = {}): RawImage {
  if (points.length % 2 !== 0) throw new RangeError(`scatterPlot: ${points.length} floats are not 2-D points`);
  const size = opts.size ?? 512;
  const extent = opts.extent ?? 1.1;
  if (!Number.isInteger(size) || size < 16) throw new RangeError(`scatterPlot: size ${size} is not an integer ≥ 16`);
  const data = new Uint8Array(size * size * 3).fill(255);
  const put = (x: number, y: number, rgb: readonly [number, number, number]): void => {
    if (x < 0 || y < 0 || x >= size || y >= size) return;
    const i = (y * size + x) * 3;
    data[i] = rgb[0];
    data[i + 1] = rgb[1];
    data[i + 2] = rgb[2];
  };
  // Data x → column, data y → row (y up).
  const px = (v: number): number => Math.round(((v + extent) / (2 * extent)) * (size - 1));
  const py = (v: number): number => Math.round(((extent - v) / (2 * extent)) * (size - 1));
  const grey = [200, 200, 200] as const;
  for (let i = 0; i < size; i++) {
    put(px(0), i, grey);
    put(i, py(0), grey);
  }
  const blue = [30, 80, 200] as const;
  for (let k = 0; k + 1 < points.length; k += 2) {
    const cx = px(points[k]!);
    const cy = py(points[k + 1]!);
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) put(cx + dx, cy + dy, blue);
  }
  if (opts.modes !== undefined) {
    const red = [220, 30, 30] as const;
    const r = Math.max(2, ((3 * opts.modes.sigma) / (2 * extent)) * (size - 1));
    const steps = Math.max(32, Math.ceil(2 * Math.PI * r * 2));
    for (const [mx, my] of opts.modes.centres) {
      for (let s = 0; s < steps; s++) {
        const a = (2 * Math.PI * s) / steps;
        put(Math.round(px(mx) + r * Math.cos(a)), Math.round(py(my) + r * Math.sin(a)), red);
      }
    }
  }
  return { width: size, height: size, channels: 3, data };
}

/** scatterPlot encoded as PNG bytes. */
export function scatterPlotPng(points: Float32Array, opts: ScatterOptions = {}): Buffer {
  return encodePng(scatterPlot(points, opts));
}
