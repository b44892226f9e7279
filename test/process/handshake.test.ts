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

test('a worker killed while joining frees its rank: a replacement takes it and the run completes', { timeout: 120_000 }, async () => {
  const dir = await tempDir();
  const endpoint = `ipc://${join(dir, 'coord.sock')}`;
  const coord = startCli(['coordinator', '--bind', endpoint, '--world-size', '2', '--join-timeout', '60', ...run, '--out', join(dir, 'run')], { timeoutMs: 100_000 });
  const first = startCli(['worker', '--connect', endpoint, '--rank', '0', '--backend', 'wasm'], { timeoutMs: 100_000 });
  try {
    await coord.waitFor(/rank 0 joined: \S+ pid \d+/, 30_000);
    // Killed after its Hello, while the coordinator waits for rank 1: nothing tells the ROUTER.
    await first.waitFor(/joined as rank 0/, 30_000);
    first.proc.kill('SIGKILL');
    await coord.waitFor(/rank 0 \(\S+ pid \d+\) went away while joining .*its rank is free again/, 15_000);
    const [a, b] = await Promise.all([
      runCli(['worker', '--connect', endpoint, '--rank', '0', '--backend', 'wasm'], { timeoutMs: 90_000 }),
      runCli(['worker', '--connect', endpoint, '--rank', '1', '--backend', 'wasm'], { timeoutMs: 90_000 }),
    ]);
    assert.equal(a.code, 0, a.stderr.slice(-1500));
    assert.equal(b.code, 0, b.stderr.slice(-1500));
    const c = await coord.done;
    assert.equal(c.code, 0, c.stderr.slice(-2000));
  } finally {
    if (first.proc.exitCode === null) first.proc.kill('SIGKILL');
    if (coord.proc.exitCode === null) coord.proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
