/**
 * The join handshake over real sockets and processes: a worker whose dataset
 * copy differs is refused with the reason and exits non-zero, and the
 * coordinator's join deadline names how many workers never came.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { startCli, runCli, tempDir } from '../helpers/cli.js';

const run = ['--dataset', 'ring8', '--model', 'mlp', '--width', '0.25', '--steps', '5', '--backend', 'wasm', '--metrics-port', '0', '--log-format', 'plain'];

test('a worker with a different dataset is refused, prints why and exits non-zero; the join deadline names the missing workers', { timeout: 120_000 }, async () => {
  const dir = await tempDir();
  try {
    const port = 20000 + (process.pid % 20000);
    const coord = startCli(['coordinator', '--bind', `tcp://127.0.0.1:${port}`, '--world-size', '1', '--join-timeout', '20', ...run, '--out', join(dir, 'run')], { timeoutMs: 60_000 });
    await coord.waitFor(/coordinator listening on/, 30_000);
    const w = await runCli(['worker', '--connect', `tcp://127.0.0.1:${port}`, '--backend', 'wasm', '--dataset', 'grid25', '--join-timeout', '20'], { timeoutMs: 60_000 });
    assert.notEqual(w.code, 0);
    assert.match(w.stderr, /refused this worker: dataset fingerprint .* differs .*not the same data \[DISTGAN_E_JOIN_REFUSED\]/);
    const c = await coord.done;
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /join deadline \(20 s, --join-timeout\) passed: 1 of 1 workers never joined/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a worker whose coordinator never answers gives up at its deadline', { timeout: 60_000 }, async () => {
  const port = 40000 + (process.pid % 20000);
  const w = await runCli(['worker', '--connect', `tcp://127.0.0.1:${port}`, '--backend', 'wasm', '--join-timeout', '3'], { timeoutMs: 30_000 });
  assert.equal(w.code, 1);
  assert.match(w.stderr, /no answer from the coordinator at tcp:\/\/127\.0\.0\.1:\d+ within 3 s/);
});
