import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../../src/shared/checkpoint.js';
import { CheckpointError } from '../../src/shared/errors.js';
import { resolveConfig, trainingPart } from '../../src/shared/config.js';
import type { TrainerState } from '../../src/shared/gan/api.js';

function state(step: number): TrainerState {
  const f = (n: number, k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + step));
  return { step, gWeights: f(10, 1), dWeights: f(7, 2), bnStats: f(0, 3), gAdamM: f(10, 4), gAdamV: f(10, 5), dAdamM: f(7, 6), dAdamV: f(7, 7) };
}

const header = (step: number) => ({
  step,
  runId: 'r',
  training: trainingPart(resolveConfig({})),
  model: { kind: 'mlp' },
  modelFingerprint: 'm',
  datasetFingerprint: 'd',
  sampler: { epoch: 0, cursor: step * 64 },
  rng: { kind: 'counter' as const, seed: 1, step },
});

test('round trip is bit-exact, only the newest K are kept, no temp files remain', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
  try {
    for (const s of [10, 20, 30, 40]) await writeCheckpoint(dir, header(s), state(s), 2);
    assert.deepEqual((await readdir(dir)).sort(), ['step-00000030.ckpt', 'step-00000040.ckpt']);
    const c = await readCheckpoint(dir);
    assert.equal(c.header.step, 40);
    const want = state(40);
    for (const k of ['gWeights', 'dWeights', 'gAdamV', 'dAdamM'] as const) assert.deepEqual([...c.state[k]], [...want[k]], k);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('truncated, corrupted and foreign files are refused with CheckpointError', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-'));
  try {
    const path = await writeCheckpoint(dir, header(1), state(1), 3);
    const good = await readFile(path);
    await writeFile(path, good.subarray(0, good.length - 4));
    await assert.rejects(readCheckpoint(path), (e: unknown) => e instanceof CheckpointError && /truncated/.test((e as Error).message));
    const flipped = Buffer.from(good);
    flipped[flipped.length - 1]! ^= 0xff;
    await writeFile(path, flipped);
    await assert.rejects(readCheckpoint(path), /SHA-256/);
    await writeFile(path, 'hello');
    await assert.rejects(readCheckpoint(path), /bad magic/);
    await assert.rejects(readCheckpoint(join(dir, 'nope')), /does not exist/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
