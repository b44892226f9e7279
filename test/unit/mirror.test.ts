/**
 * The coordinator's mirror (queued, all-or-nothing updates; readers bring it
 * up to date) and the star reduction (rank order, BN weighted by share, an
 * overflowing sum refused). The mirror is driven through a recording test
 * double of GanTrainer: what matters here is the order of calls and that a
 * refused update changes nothing, not the maths (trainer.test.ts has that).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Mirror } from '../../src/coordinator/mirror.js';
import { star, sumInRankOrder } from '../../src/coordinator/reduction/star.js';
import { REDUCTIONS, DEFAULT_REDUCTION } from '../../src/coordinator/reduction/index.js';
import { NumericError } from '../../src/shared/errors.js';
import type { GanTrainer } from '../../src/shared/gan/api.js';

/** Records apply calls; refuses a gradient whose first element is NaN, as Adam would. */
function recordingTrainer(): { trainer: GanTrainer; calls: string[] } {
  const calls: string[] = [];
  const check = (phase: string, g: Float32Array): void => {
    if (Number.isNaN(g[0])) throw new NumericError(`${phase} refused`);
  };
  const trainer = {
    checkUpdate: (phase: 'd' | 'g', g: Float32Array) => check(phase, g),
    applyDGradients: (g: Float32Array) => {
      check('d', g);
      calls.push(`D${g[0]}`);
    },
    applyGGradients: (g: Float32Array) => {
      check('g', g);
      calls.push(`G${g[0]}`);
    },
    skipGUpdate: () => calls.push('G-skip'),
  } as unknown as GanTrainer;
  return { trainer, calls };
}

const u = (x: number) => ({ grad: Float32Array.of(x), aux: new Float32Array(0) });

test('Mirror: updates wait until a reader needs them, then apply D then G; readers see the step they hold', () => {
  const { trainer, calls } = recordingTrainer();
  const m = new Mirror(trainer, 10);
  m.queue({ step: 11, d: u(1), g: u(2) });
  assert.deepEqual(calls, [], 'nothing applied on queue');
  assert.equal(m.step, 11);
  assert.equal(m.appliedStep, 10);
  m.current();
  assert.deepEqual(calls, ['D1', 'G2']);
  assert.equal(m.appliedStep, 11);
  m.queue({ step: 12, d: u(3), g: 'skip' });
  m.queue({ step: 13, d: u(4), g: u(5) }); // queuing flushes the previous step first
  assert.deepEqual(calls, ['D1', 'G2', 'D3', 'G-skip']);
  m.skipped(14);
  assert.deepEqual(calls.slice(-2), ['D4', 'G5']);
  assert.equal(m.step, 14, 'a step skipped before any update: the state is the next step\'s start');
});

test('Mirror: a step whose G update is refused applies nothing of it, and stays refused', () => {
  const { trainer, calls } = recordingTrainer();
  const m = new Mirror(trainer, 0);
  m.queue({ step: 1, d: u(1), g: u(NaN) });
  assert.throws(() => m.current(), NumericError);
  assert.deepEqual(calls, [], 'D was not applied either: all or nothing');
  assert.equal(m.appliedStep, 0);
  assert.equal(m.pendingStep, 1);
  assert.throws(() => m.current(), NumericError);
  assert.equal(m.asApplied(), trainer, 'the state as applied stays readable for a failure checkpoint');
});

test('star: rank-order sum of pre-scaled gradients, BN weighted by share; an overflowing sum is refused', () => {
  assert.equal(REDUCTIONS[DEFAULT_REDUCTION], star);
  const parts = [
    { grad: Float32Array.of(1e8, 1), aux: Float32Array.of(2, 4) },
    { grad: Float32Array.of(-1e8, 1e-8), aux: Float32Array.of(6, 8) },
    { grad: Float32Array.of(1, 0), aux: Float32Array.of(10, 12) },
  ];
  const out = star.reduce(parts, { gradLength: 2, shares: [0.5, 0.25, 0.25] });
  // (1e8 + -1e8) + 1 = 1 in rank order (1e8 + 1 would lose the 1 in float32).
  assert.deepEqual([...out.grad], [1, Math.fround(Math.fround(1 + 1e-8) + 0)]);
  assert.deepEqual([...out.aux], [0.5 * 2 + 0.25 * 6 + 0.25 * 10, 0.5 * 4 + 0.25 * 8 + 0.25 * 12]);
  assert.deepEqual([...sumInRankOrder([Float32Array.of(1), Float32Array.of(2)], 1)], [3]);
  const big = { grad: Float32Array.of(3e38), aux: new Float32Array(0) };
  assert.throws(() => star.reduce([big, big], { gradLength: 1, shares: [0.5, 0.5] }), (e: unknown) => e instanceof NumericError && /overflowed at element 0/.test(e.message));
});
