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
import { star, starReduction, sumInRankOrder } from '../../src/coordinator/reduction/star.js';
import { shardedReduction } from '../../src/coordinator/reduction/sharded.js';
import { REDUCTIONS, DEFAULT_REDUCTION } from '../../src/coordinator/reduction/index.js';
import { NumericError } from '../../src/shared/errors.js';
import type { GanTrainer } from '../../src/shared/gan/api.js';

/** Records apply calls; refuses a gradient whose first element is NaN, as Adam would. */
function recordingTrainer(): { trainer: GanTrainer; calls: string[] } {
  const calls: string[] = [];
  const check = (network: string, g: Float32Array): void => {
    if (Number.isNaN(g[0])) throw new NumericError(`${network} refused`);
  };
  const trainer = {
    checkUpdate: (network: 'd' | 'g', g: Float32Array) => check(network, g),
    applyGradients: (network: 'd' | 'g', g: Float32Array) => {
      check(network, g);
      calls.push(`${network.toUpperCase()}${g[0]}`);
    },
    skipUpdate: (network: 'd' | 'g') => calls.push(`${network.toUpperCase()}-skip`),
  } as unknown as GanTrainer;
  return { trainer, calls };
}

const u = (x: number) => ({ grad: Float32Array.of(x), aux: new Float32Array(0) });
const step = (n: number, ...updates: Array<['d' | 'g', number | 'skip']>) => ({ step: n, updates: updates.map(([network, x]) => ({ network, update: x === 'skip' ? ('skip' as const) : u(x) })) });

test('Mirror: updates wait until a reader needs them, then apply in the workers\' order; readers see the step they hold', () => {
  const { trainer, calls } = recordingTrainer();
  const m = new Mirror(trainer, 10);
  m.queue(step(11, ['d', 1], ['g', 2]));
  assert.deepEqual(calls, [], 'nothing applied on queue');
  assert.equal(m.step, 11);
  assert.equal(m.appliedStep, 10);
  m.current();
  assert.deepEqual(calls, ['D1', 'G2']);
  assert.equal(m.appliedStep, 11);
  m.queue(step(12, ['d', 3], ['g', 'skip']));
  m.queue(step(13, ['d', 'skip'], ['g', 'skip'])); // queuing flushes the previous step first
  assert.deepEqual(calls, ['D1', 'G2', 'D3', 'G-skip']);
  m.current();
  assert.deepEqual(calls.slice(-2), ['D-skip', 'G-skip'], 'a step discarded whole: every optimizer counts it');
  assert.equal(m.step, 13);
});

test('Mirror: a step with a refused update applies nothing of it, and stays refused', () => {
  const { trainer, calls } = recordingTrainer();
  const m = new Mirror(trainer, 0);
  m.queue(step(1, ['d', 1], ['g', NaN]));
  assert.throws(() => m.current(), NumericError);
  assert.deepEqual(calls, [], 'D was not applied either: all or nothing');
  assert.equal(m.appliedStep, 0);
  assert.equal(m.pendingStep, 1);
  assert.throws(() => m.current(), NumericError);
  assert.equal(m.asApplied(), trainer, 'the state as applied stays readable for a failure checkpoint');
});

test('star: rank-order sum of pre-scaled gradients, BN weighted by share; an overflowing sum is refused', () => {
  assert.equal(REDUCTIONS[DEFAULT_REDUCTION], starReduction);
  assert.equal(REDUCTIONS['sharded'], shardedReduction);
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
