/**
 * Every single-bit flip of a checkpoint is refused with DISTGAN_E_CHECKPOINT.
 *
 * Format 3 (safetensors, what distgan writes): all bits of the 8-byte header
 * length and of the JSON header (tensor entries, metadata, the digest value
 * itself, the padding), and a seeded sample of the tensor bits, of a real
 * DCGAN checkpoint whose G is split per layer.
 * Format 2 (DGANCKPT, still read): all bits of the 12-byte prefix, of the
 * header and of the 32-byte trailer, and a seeded sample of the array bits.
 *
 * Parsing is done from memory (parseCheckpoint), flipping the bit in place
 * and back, so each sweep takes a few seconds at most.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCheckpoint, writeCheckpoint } from '../../src/shared/checkpoint.js';
import { CheckpointError } from '../../src/shared/errors.js';
import { resolveConfig, trainingPart } from '../../src/shared/config.js';
import { TRAINER_STATE_ARRAYS, type TrainerState } from '../../src/shared/gan/api.js';
import type { ModelSpec } from '../../src/shared/models/spec.js';
import { arrayBytes, format2Bytes, stateFor } from '../helpers/checkpoint-files.js';
import { mulberry32 } from '../helpers/fuzz.js';


function smallState(step: number): TrainerState {
  const r = mulberry32(7);
  const f = (n: number): Float32Array => Float32Array.from({ length: n }, () => (r() - 0.5) * 0.2);
  const g = 400;
  const d = 300;
  return { step, gWeights: f(g), dWeights: f(d), bnStats: f(64), gAdamM: f(g), gAdamV: f(g).map(Math.abs), dAdamM: f(d), dAdamV: f(d).map(Math.abs) };
}

const STEP = 1500;
/** A real (tiny) DCGAN spec: the file holds G per layer, as a run's checkpoint does. */
const SPEC: ModelSpec = { kind: 'dcgan', resolution: 28, channels: 1, latentDim: 8, width: 0.05, batchNorm: true };

function headerInput(model: Record<string, unknown>) {
  const cfg = resolveConfig({ dataset: 'mnist', model: 'dcgan', seed: 12345, batchSize: 64 });
  return {
    step: STEP,
    runId: '0b7c5b0e-4a8e-4f1a-9a57-1f2d3c4b5a69',
    training: trainingPart(cfg),
    model,
    modelFingerprint: 'dcgan:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    datasetFingerprint: '60000:sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
    sampler: { epoch: 1, cursor: 38016 },
    rng: { kind: 'counter' as const, seed: 12345, step: STEP },
  };
}

/**
 * Flips every bit of the `whole` regions and `sampled` random bits of the
 * `sample` region, one at a time, asserting each is refused; returns the
 * counts per region.
 */
function sweep(
  t: TestContext,
  buf: Buffer,
  path: string,
  whole: Record<string, [number, number]>,
  sample: { name: string; range: [number, number]; count: number; seed: number },
): Record<string, number> {
  const counts: Record<string, number> = {};
  let refused = 0;
  const flip = (bit: number, region: string): void => {
    const byte = bit >>> 3;
    const mask = 1 << (bit & 7);
    buf[byte]! ^= mask;
    try {
      assert.throws(
        () => parseCheckpoint(buf, path),
        (e: unknown) => e instanceof CheckpointError && e.code === 'DISTGAN_E_CHECKPOINT',
        `flipping bit ${bit & 7} of byte ${byte} (${region}) was not refused with a CheckpointError`,
      );
      refused++;
    } finally {
      buf[byte]! ^= mask;
    }
    counts[region] = (counts[region] ?? 0) + 1;
  };
  for (const [region, [from, to]] of Object.entries(whole)) for (let bit = from * 8; bit < to * 8; bit++) flip(bit, region);
  const r = mulberry32(sample.seed);
  const [from, to] = sample.range;
  const bits = new Set<number>();
  while (bits.size < sample.count) bits.add(from * 8 + Math.floor(r() * (to - from) * 8));
  for (const bit of [...bits].sort((a, b) => a - b)) flip(bit, sample.name);
  const tried = Object.values(counts).reduce((a, b) => a + b, 0);
  t.diagnostic(
    `file ${buf.length} bytes; bits flipped: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')} ` +
      `(${sample.name}: seeded sample of ${(to - from) * 8}); ${refused} of ${tried} refused`,
  );
  assert.equal(refused, tried);
  return counts;
}

test('format 3 (safetensors): every bit of the length and the JSON header, and ≥ 2,000 sampled tensor bits, is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-flip-'));
  try {
    const path = await writeCheckpoint(dir, headerInput(SPEC as unknown as Record<string, unknown>), stateFor(SPEC, 1497), 3);
    const buf = await readFile(path);
    const good = parseCheckpoint(buf, path);
    assert.equal(good.header.format, 3);
    assert.equal(good.header.optimizerStep, 1497);
    const n = Number(buf.readBigUInt64LE(0));
    assert.match(buf.toString('latin1', 8, 8 + n), /"generator\.dense\.weight"/, 'G is stored per layer');

    const counts = sweep(t, buf, path, { length: [0, 8], header: [8, 8 + n] }, { name: 'tensors', range: [8 + n, buf.length], count: 2500, seed: 20250101 });
    // The buffer is back to what was written, and still loads.
    assert.equal(parseCheckpoint(buf, path).header.step, STEP);
    assert.equal(counts['length'], 64);
    assert.equal(counts['header'], n * 8);
    assert.ok(counts['tensors']! >= 2000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('format 2 (DGANCKPT, still read): every bit of prefix, header and trailer, and ≥ 2,000 sampled array bits, is refused', async (t) => {
  const state = smallState(1497);
  const model = { kind: 'dcgan', width: 1, latentDim: 100, batchNorm: true, imageShape: [28, 28, 1] };
  const arrays = Object.fromEntries(TRAINER_STATE_ARRAYS.map((k) => [k, state[k].length]));
  const h = { format: 2, optimizerStep: state.step, createdAt: '2025-01-01T00:00:00.000Z', ...headerInput(model), arrays };
  const buf = format2Bytes(JSON.stringify(h), arrayBytes(state));
  const path = 'step-00001500.ckpt';
  const good = parseCheckpoint(buf, path);
  assert.equal(good.header.format, 2);
  assert.equal(good.header.optimizerStep, 1497);

  const hlen = buf.readUInt32LE(8);
  const arraysStart = 12 + hlen;
  const trailerStart = buf.length - 32;
  const counts = sweep(t, buf, path, { prefix: [0, 12], header: [12, arraysStart], trailer: [trailerStart, buf.length] }, { name: 'arrays', range: [arraysStart, trailerStart], count: 2500, seed: 20250101 });
  assert.equal(parseCheckpoint(buf, path).header.step, STEP);
  assert.equal(counts['prefix'], 96);
  assert.equal(counts['header'], hlen * 8);
  assert.equal(counts['trailer'], 256);
  assert.ok(counts['arrays']! >= 2000);
});
