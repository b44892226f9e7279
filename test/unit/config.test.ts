import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RUN_OPTIONS, parseGpuList, resolveConfig } from '../../src/shared/config.js';
import { ConfigError } from '../../src/shared/errors.js';

test('defaults resolve and the result is deeply frozen', () => {
  const c = resolveConfig({});
  assert.equal(c.batchSize, 64);
  assert.equal(c.dataset, 'mnist');
  assert.equal(c.lr, 2e-4);
  assert.equal(c.beta1, 0.5);
  assert.equal(c.metricsPort, 9464);
  assert.match(c.out, /^runs\/\d{8}-\d{6}$/);
  assert.ok(Object.isFrozen(c));
  assert.throws(() => {
    (c as { steps: number }).steps = 3;
  }, TypeError);
});

test('bad values name the flag and the value', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ batchSize: '0' }, /--batch-size: "0" is not an integer/],
    [{ batchSize: '12.5' }, /--batch-size/],
    [{ lr: 'fast' }, /--lr: "fast" is not a number/],
    [{ backend: 'tpu' }, /--backend: "tpu" is not one of auto, tensorflow, webgpu, wasm, cpu/],
    [{ metricsPort: '70000' }, /--metrics-port/],
    [{ labelSmoothing: '0.9' }, /--label-smoothing/],
    [{ bogus: 1 }, /unknown option 'bogus'/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(() => resolveConfig(raw), (e: unknown) => e instanceof ConfigError && re.test((e as Error).message) && e.exitCode === 2, JSON.stringify(raw));
  }
});

test('every option documents its default', () => {
  for (const o of RUN_OPTIONS) assert.match(o.description, /default|\(default/, `${o.flags} has no default in its description`);
});

test('GPU lists', () => {
  assert.deepEqual(parseGpuList('0,1, 3'), [0, 1, 3]);
  assert.throws(() => parseGpuList('0,0'), /twice/);
  assert.throws(() => parseGpuList('a'), /--gpus/);
});
