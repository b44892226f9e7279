/**
 * `distgan bench --suite compute` as a user runs it (a real process tree):
 * the last stdout line is one JSON object with the documented fields, and a
 * bad suite name exits 2 naming it. Tiny batch and one step: this checks the
 * plumbing, never a speed (speeds are measured by the bench, not asserted).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';

describe('distgan bench', () => {
  it('--suite compute ends stdout with one JSON line: suite, backend, batchSize, imagesPerSecond, machine reference', async () => {
    const r = await runCli(['bench', '--suite', 'compute', '--batch-size', '4', '--steps', '1', '--no-side-by-side'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const last = r.stdout.trim().split('\n').at(-1)!;
    const result = JSON.parse(last) as Record<string, unknown>;
    assert.equal(result['suite'], 'compute');
    assert.equal(result['backend'], 'wasm');
    assert.equal(result['batchSize'], 4);
    assert.ok(typeof result['imagesPerSecond'] === 'number' && result['imagesPerSecond'] > 0);
    const ref = result['referenceConv2dGmacPerSecond'] as { before: number; after: number };
    assert.ok(ref.before > 0 && ref.after > 0, JSON.stringify(ref));
    assert.ok(typeof result['sideBySide'] === 'object');
  });

  it('a bad --suite exits 2 and names it', async () => {
    const r = await runCli(['bench', '--suite', 'nonsense'], { timeoutMs: 30_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nonsense/);
  });
});
