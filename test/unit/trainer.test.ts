/**
 * TfGanTrainer on the cpu backend with tiny networks (cpu convolution
 * backprop is far too slow at full width): tensor hygiene, bit-exact
 * determinism, exact resume, and the slicing equivalence that makes N workers
 * equal one big-batch process.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { tf } from '../../src/shared/compute/tf.js';
import { ConfigError, NumericError, ProtocolError } from '../../src/shared/errors.js';
import type { PhaseInput, TrainerState } from '../../src/shared/gan/api.js';
import { resolveGanOptions, type GanOptions } from '../../src/shared/gan/options.js';
import { TfGanTrainer } from '../../src/shared/gan/trainer.js';
import { resolveModelSpec, type ModelSpec } from '../../src/shared/models/spec.js';
import { Rng } from '../../src/shared/rng.js';

before(async () => {
  await initBackend('cpu', { log: () => {} });
});

const SHAPE = [28, 28, 1];
/** Channels 2 and 4 instead of 64 and 128: every layer kind, at a cost cpu can bear. */
const tinyBn: ModelSpec = resolveModelSpec('dcgan', SHAPE, { width: 1 / 32, latentDim: 16 });
const tinyNoBn: ModelSpec = resolveModelSpec('dcgan', SHAPE, { width: 1 / 32, latentDim: 16, batchNorm: false });

function makeTrainer(spec: ModelSpec, opts: Partial<GanOptions> = {}): TfGanTrainer {
  return new TfGanTrainer(spec, resolveGanOptions({ seed: 5, lr: 1e-3, ...opts }), SHAPE);
}

/** Deterministic "real" images of a step, in [-1, 1], for global positions. */
function realBatch(step: number, positions: Int32Array): Float32Array {
  const out = new Float32Array(positions.length * 784);
  positions.forEach((p, r) => {
    const rng = new Rng(99, step, p);
    for (let j = 0; j < 784; j++) out[r * 784 + j] = rng.next() * 2 - 1;
  });
  return out;
}

const range = (a: number, b: number): Int32Array => Int32Array.from({ length: b - a }, (_, i) => a + i);

async function trainSteps(t: TfGanTrainer, from: number, to: number, batch = 4): Promise<void> {
  const positions = range(0, batch);
  for (let step = from; step < to; step++) {
    const d = await t.computeDGradients({ step, positions, globalBatch: batch, real: realBatch(step, positions) });
    t.applyDGradients(d.gradients, d.aux);
    const g = await t.computeGGradients({ step, positions, globalBatch: batch });
    t.applyGGradients(g.gradients, g.aux);
  }
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function assertStatesEqual(a: TrainerState, b: TrainerState): void {
  assert.equal(a.step, b.step);
  for (const key of ['gWeights', 'dWeights', 'bnStats', 'gAdamM', 'gAdamV', 'dAdamM', 'dAdamV'] as const) {
    assert.ok(bytes(a[key]).equals(bytes(b[key])), `${key} differs`);
  }
}

describe('TfGanTrainer', () => {
  it('keeps tf.memory().numTensors flat over 20 steps, and frees everything on dispose', async () => {
    const base = tf.memory().numTensors;
    const t = makeTrainer(tinyBn, { instanceNoise: 0.1, labelSmoothing: 0.1, entropyWeight: 0.1 });
    const owned = tf.memory().numTensors;
    await trainSteps(t, 0, 2, 2);
    const steady = tf.memory().numTensors;
    assert.equal(steady, owned, 'a step leaves no tensor behind');
    await trainSteps(t, 2, 20, 2);
    t.generate(new Float32Array(16 * 3), 3);
    t.getState();
    t.setState(t.getState());
    assert.equal(tf.memory().numTensors, steady);
    t.dispose();
    assert.equal(tf.memory().numTensors, base);
  });

  it('reports sizes, stats in range and samples in [-1, 1]', async () => {
    const t = makeTrainer(tinyBn);
    try {
      assert.equal(t.auxCount, 2 * 196 + 2 * 2);
      const positions = range(0, 4);
      const d = await t.computeDGradients({ step: 0, positions, globalBatch: 4, real: realBatch(0, positions) });
      assert.equal(d.gradients.length, t.dParamCount);
      assert.equal(d.aux.length, t.auxCount);
      assert.ok(d.stats.dLoss! > 0 && d.stats.dAccuracyReal! >= 0 && d.stats.dAccuracyFake! <= 1);
      assert.ok(d.computeSeconds > 0);
      const g = await t.computeGGradients({ step: 0, positions, globalBatch: 4 });
      assert.equal(g.gradients.length, t.gParamCount);
      assert.ok(g.stats.gLoss! > 0);
      const samples = t.generate(new Float32Array(5 * 16).fill(0.5), 5);
      assert.equal(samples.length, 5 * 784);
      assert.ok(samples.every((v) => v >= -1 && v <= 1));
    } finally {
      t.dispose();
    }
  });

  it('builds bit-identical replicas from the same seed, which stay identical after training', async () => {
    const a = makeTrainer(tinyBn);
    const b = makeTrainer(tinyBn);
    const c = makeTrainer(tinyBn, { seed: 6 });
    try {
      assert.equal(a.checksum(), b.checksum());
      assert.notEqual(a.checksum(), c.checksum());
      await trainSteps(a, 0, 3);
      await trainSteps(b, 0, 3);
      assertStatesEqual(a.getState(), b.getState());
      assert.equal(a.checksum(), b.checksum());
      assert.equal(a.getState().step, 3);
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  it('continues bit-identically after getState/setState into a fresh trainer', async () => {
    const a = makeTrainer(tinyBn);
    const b = makeTrainer(tinyBn);
    try {
      await trainSteps(a, 0, 2);
      const saved = a.getState();
      b.setState(saved);
      assert.equal(b.checksum(), a.checksum());
      await trainSteps(a, 2, 4);
      await trainSteps(b, 2, 4);
      assertStatesEqual(a.getState(), b.getState());
      // getState hands out copies: training on did not change what was saved.
      assert.equal(saved.step, 2);
      assert.ok(!bytes(saved.gWeights).equals(bytes(a.getState().gWeights)));
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('computes without side effects: a retried request returns the same bits, BN stats included', async () => {
    const t = makeTrainer(tinyBn);
    try {
      const positions = range(0, 4);
      const input: PhaseInput = { step: 3, positions, globalBatch: 4, real: realBatch(3, positions) };
      const before = t.checksum();
      const first = await t.computeDGradients(input);
      const second = await t.computeDGradients(input);
      assert.equal(t.checksum(), before);
      assert.ok(bytes(first.gradients).equals(bytes(second.gradients)));
      assert.ok(bytes(first.aux).equals(bytes(second.aux)));
      // The aux is the moved BN statistics; applying writes them into the state.
      const initial = t.getState().bnStats;
      assert.ok(!bytes(first.aux).equals(bytes(initial)));
      t.applyDGradients(first.gradients, first.aux);
      t.applyGGradients(new Float32Array(t.gParamCount), new Float32Array(0));
      assert.ok(bytes(t.getState().bnStats).equals(bytes(first.aux)));
    } finally {
      t.dispose();
    }
  });

  it('sums half-batch gradients to the full-batch gradient (no-BN model)', async (ctx) => {
    const full = makeTrainer(tinyNoBn, { instanceNoise: 0.05, labelSmoothing: 0.1, entropyWeight: 0.2 });
    const half = makeTrainer(tinyNoBn, { instanceNoise: 0.05, labelSmoothing: 0.1, entropyWeight: 0.2 });
    try {
      const B = 6;
      const all = range(0, B);
      const lo = range(0, 3);
      const hi = range(3, 6);
      const step = 4;
      const real = realBatch(step, all);
      const dFull = await full.computeDGradients({ step, positions: all, globalBatch: B, real });
      const dLo = await half.computeDGradients({ step, positions: lo, globalBatch: B, real: realBatch(step, lo) });
      const dHi = await half.computeDGradients({ step, positions: hi, globalBatch: B, real: realBatch(step, hi) });
      ctx.diagnostic(`D relative L2 error ${assertSumClose(dLo.gradients, dHi.gradients, dFull.gradients, 'D')}`);
      assert.ok(Math.abs((dLo.stats.dLoss! + dHi.stats.dLoss!) / 2 - dFull.stats.dLoss!) < 1e-5);
      full.applyDGradients(dFull.gradients, dFull.aux);
      half.applyDGradients(dFull.gradients, dFull.aux);
      const gFull = await full.computeGGradients({ step, positions: all, globalBatch: B });
      const gLo = await half.computeGGradients({ step, positions: lo, globalBatch: B });
      const gHi = await half.computeGGradients({ step, positions: hi, globalBatch: B });
      ctx.diagnostic(`G relative L2 error ${assertSumClose(gLo.gradients, gHi.gradients, gFull.gradients, 'G')}`);
    } finally {
      full.dispose();
      half.dispose();
    }
  });

  it('rejects malformed input with errors that name the problem, leaving state unchanged', async () => {
    const t = makeTrainer(tinyBn);
    try {
      const positions = range(0, 2);
      await assert.rejects(t.computeDGradients({ step: 0, positions, globalBatch: 2, real: new Float32Array(10) }), (e: unknown) => {
        return e instanceof ProtocolError && /expected 2 × 784/.test(e.message);
      });
      await assert.rejects(t.computeGGradients({ step: 0, positions: range(0, 3), globalBatch: 2 }), ProtocolError);
      const before = t.checksum();
      assert.throws(() => t.applyDGradients(new Float32Array(3), new Float32Array(0)), ProtocolError);
      const nan = new Float32Array(t.dParamCount);
      nan[17] = NaN;
      assert.throws(() => t.applyDGradients(nan, new Float32Array(0)), (e: unknown) => e instanceof NumericError && /element 17/.test(e.message));
      assert.throws(() => t.applyGGradients(new Float32Array(t.gParamCount), new Float32Array(5)), ProtocolError);
      assert.equal(t.checksum(), before);
      // Between the D and G updates of a step, the state is not a checkpoint.
      t.applyDGradients(new Float32Array(t.dParamCount), new Float32Array(0));
      assert.throws(() => t.getState(), /between phases/);
      assert.throws(() => new TfGanTrainer(tinyBn, resolveGanOptions({}), [32, 32, 1]), ConfigError);
      assert.throws(() => resolveGanOptions({ lr: -1 }), /lr: -1/);
      assert.throws(() => resolveGanOptions({ labelSmoothing: 1 }), /labelSmoothing/);
      assert.throws(() => resolveGanOptions({ extra: 1 } as Partial<GanOptions>), /unknown key "extra"/);
    } finally {
      t.dispose();
    }
  });
});

/** Relative L2 error of (a + b) against `full`, which must be ≤ 1e-5. */
function assertSumClose(a: Float32Array, b: Float32Array, full: Float32Array, label: string): number {
  let err = 0;
  let norm = 0;
  for (let i = 0; i < full.length; i++) {
    err += (a[i]! + b[i]! - full[i]!) ** 2;
    norm += full[i]! ** 2;
  }
  assert.ok(norm > 0, `${label} gradient is zero`);
  const rel = Math.sqrt(err / norm);
  assert.ok(rel <= 1e-5, `${label}: relative L2 error ${rel}`);
  return rel;
}

