/**
 * Every single-bit flip of a checkpoint is refused: all bits of the 12-byte
 * prefix, of the header and of the 32-byte trailer, and a seeded sample of the
 * array bits. Parsing is done from memory (parseCheckpoint), flipping the bit
 * in place and back, so the whole sweep takes well under a second per thousand
 * flips.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCheckpoint, writeCheckpoint } from '../../src/shared/checkpoint.js';
import { CheckpointError } from '../../src/shared/errors.js';
import { resolveConfig, trainingPart } from '../../src/shared/config.js';
import type { TrainerState } from '../../src/shared/gan/api.js';

/** Seeded so a failure names a bit that can be tried again (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function smallState(step: number): TrainerState {
  const r = rng(7);
  const f = (n: number): Float32Array => Float32Array.from({ length: n }, () => (r() - 0.5) * 0.2);
  const g = 400;
  const d = 300;
  return { step, gWeights: f(g), dWeights: f(d), bnStats: f(64), gAdamM: f(g), gAdamV: f(g).map(Math.abs), dAdamM: f(d), dAdamV: f(d).map(Math.abs) };
}

test('every single-bit flip of prefix, header and trailer, and ≥ 2,000 sampled array bits, is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-flip-'));
  try {
    const step = 1500;
    const cfg = resolveConfig({ dataset: 'mnist', model: 'dcgan', seed: 12345, batchSize: 64 });
    const path = await writeCheckpoint(
      dir,
      {
        step,
        runId: '0b7c5b0e-4a8e-4f1a-9a57-1f2d3c4b5a69',
        training: trainingPart(cfg),
        model: { kind: 'dcgan', width: 1, latentDim: 100, batchNorm: true, imageShape: [28, 28, 1] },
        modelFingerprint: 'dcgan:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
        datasetFingerprint: '60000:sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
        sampler: { epoch: 1, cursor: 38016 },
        rng: { kind: 'counter', seed: 12345, step },
      },
      smallState(1497),
      3,
    );
    const buf = await readFile(path);
    const good = parseCheckpoint(buf, path);
    assert.equal(good.header.optimizerStep, 1497);

    const hlen = buf.readUInt32LE(8);
    const arraysStart = 12 + hlen;
    const trailerStart = buf.length - 32;
    const counts = { prefix: 0, header: 0, arrays: 0, trailer: 0 };
    let refused = 0;

    const flip = (bit: number, region: keyof typeof counts): void => {
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
      counts[region]++;
    };

    for (let bit = 0; bit < 12 * 8; bit++) flip(bit, 'prefix');
    for (let bit = 12 * 8; bit < arraysStart * 8; bit++) flip(bit, 'header');
    for (let bit = trailerStart * 8; bit < buf.length * 8; bit++) flip(bit, 'trailer');
    const r = rng(20250101);
    const arrayBits = (trailerStart - arraysStart) * 8;
    const sample = new Set<number>();
    while (sample.size < 2500) sample.add(arraysStart * 8 + Math.floor(r() * arrayBits));
    for (const bit of [...sample].sort((a, b) => a - b)) flip(bit, 'arrays');

    // The buffer is back to what was written, and still loads.
    assert.equal(parseCheckpoint(buf, path).header.step, step);
    const tried = counts.prefix + counts.header + counts.arrays + counts.trailer;
    const line =
      `file ${buf.length} bytes (header ${hlen}, arrays ${trailerStart - arraysStart}); bits flipped: prefix ${counts.prefix}, ` +
      `header ${counts.header}, trailer ${counts.trailer}, arrays ${counts.arrays} of ${arrayBits} (seeded sample); ${refused} of ${tried} refused`;
    t.diagnostic(line);
    assert.equal(counts.prefix, 96);
    assert.equal(counts.header, hlen * 8);
    assert.equal(counts.trailer, 256);
    assert.ok(counts.arrays >= 2000);
    assert.equal(refused, tried);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
