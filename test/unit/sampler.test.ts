import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EpochSampler, sliceBounds } from '../../src/shared/data/sampler.js';
import { ConfigError } from '../../src/shared/errors.js';

test('slices cover the batch exactly, uneven slices differ by at most one', () => {
  assert.deepEqual(sliceBounds(64, 3), [[0, 22], [22, 43], [43, 64]]);
  assert.deepEqual(sliceBounds(64, 2), [[0, 32], [32, 64]]);
  assert.deepEqual(sliceBounds(5, 1), [[0, 5]]);
});

test('each epoch is a permutation; the position is derivable from the step', () => {
  const s = new EpochSampler(10, 3, 42);
  assert.equal(s.stepsPerEpoch, 3);
  const seen = new Set<number>();
  for (let step = 0; step < 3; step++) for (const i of s.indices(step)) seen.add(i);
  assert.equal(seen.size, 9, 'no repeats within an epoch (one sample dropped)');
  assert.deepEqual(s.position(4), { epoch: 1, cursor: 3 });
  const again = new EpochSampler(10, 3, 42);
  assert.deepEqual([...again.indices(4)], [...s.indices(4)], 'same seed and step, same indices');
  assert.notDeepEqual([...new EpochSampler(10, 3, 43).indices(0)], [...s.indices(0)]);
});

test('a batch larger than the dataset is a config error', () => {
  assert.throws(() => new EpochSampler(10, 11, 1), ConfigError);
});
