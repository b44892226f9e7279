/**
 * Sample grids from fixed noise: the same 64 latents (drawn once from the run
 * seed) every time, so successive grids show how G evolves rather than noise.
 */
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-write.js';
import { join } from 'node:path';
import { Stream, normalRows } from './rng.js';
import type { ModelSpec } from './models/spec.js';
import type { GanTrainer } from './gan/api.js';
import { imageGridPng, scatterPlotPng } from './image/grid.js';
import { MIXTURES } from './data/mixtures.js';
import { positionRange } from './data/sampler.js';

export const SAMPLE_COUNT = 64;

export function fixedLatents(spec: ModelSpec, seed: number, count = SAMPLE_COUNT): Float32Array {
  return normalRows(new Float32Array(count * spec.latentDim), seed, Stream.FixedSampleLatent, 0, positionRange(0, count), spec.latentDim);
}

/** Renders `count` samples of G as a PNG (an image grid, or a scatter plot for 2-D points). */
export function renderSamples(trainer: GanTrainer, spec: ModelSpec, seed: number, count = SAMPLE_COUNT, dataset?: string): Buffer {
  const n = spec.kind === 'mlp' ? Math.max(count, 1000) : count;
  const latents = spec.kind === 'mlp'
    ? normalRows(new Float32Array(n * spec.latentDim), seed, Stream.FixedSampleLatent, 0, positionRange(0, n), spec.latentDim)
    : fixedLatents(spec, seed, n);
  const out = trainer.generate(latents, n);
  if (spec.kind === 'mlp') {
    const mix = dataset ? MIXTURES[dataset] : undefined;
    return scatterPlotPng(out, mix ? { modes: { centres: mix.centres, sigma: mix.sigma } } : {});
  }
  // Small images are hard to see: magnify so the grid is at least ~500 px wide.
  const scale = Math.max(1, Math.floor(500 / (Math.ceil(Math.sqrt(n)) * (spec.resolution + 2))));
  return imageGridPng(out, n, [spec.resolution, spec.resolution, spec.channels], { scale });
}

/** Writes samples/step-XXXXXXXX.png and refreshes samples/latest.png atomically. Returns the step file's path. */
export async function writeSampleGrid(run: { trainer: GanTrainer; spec: ModelSpec; training: { seed: number; dataset: string } }, dir: string, step: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const png = renderSamples(run.trainer, run.spec, run.training.seed, SAMPLE_COUNT, run.training.dataset);
  const file = join(dir, `step-${String(step).padStart(8, '0')}.png`);
  await writeFileAtomic(file, png);
  await writeFileAtomic(join(dir, 'latest.png'), png);
  return file;
}
