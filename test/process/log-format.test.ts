/**
 * --log-format json is for machines: every line on stdout is one JSON object
 * (jq must never break), the coordinator's notices and the workers' own lines
 * included (log events naming their source); people's formats stay on stderr.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { runCli, tempDir } from '../helpers/cli.js';

const tiny = ['--workers', '2', '--dataset', 'ring8', '--model', 'mlp', '--width', '0.25', '--batch-size', '32', '--steps', '3', '--backend', 'wasm', '--metrics-port', '0', '--log-every', '1'];

test('launch --log-format json: pure JSON lines on stdout, workers\' lines included; plain stays on stderr', { timeout: 120_000 }, async () => {
  const dir = await tempDir();
  try {
    const r = await runCli(['launch', ...tiny, '--log-format', 'json', '--out', join(dir, 'json')]);
    assert.equal(r.code, 0, r.output.slice(-2000));
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    assert.ok(lines.length > 10, `${lines.length} lines`);
    const events = lines.map((l, i) => {
      try {
        return JSON.parse(l) as { event: string; source?: string; message?: string };
      } catch {
        assert.fail(`stdout line ${i + 1} is not JSON: ${l}`);
      }
    });
    const kinds = new Set(events.map((e) => e.event));
    for (const k of ['run_started', 'worker_joined', 'step', 'checkpoint', 'run_ended', 'log']) assert.ok(kinds.has(k), `a ${k} event`);
    for (const rank of [0, 1]) assert.ok(events.some((e) => e.event === 'log' && e.source === `rank ${rank}`), `rank ${rank}'s own lines arrive as log events`);
    assert.ok(events.some((e) => e.event === 'log' && /coordinator listening on/.test(e.message ?? '')), "the coordinator's notices too");
    assert.equal(r.stderr.trim(), '', 'nothing on stderr in a successful json run');

    const plain = await runCli(['launch', ...tiny, '--log-format', 'plain', '--out', join(dir, 'plain')]);
    assert.equal(plain.code, 0, plain.output.slice(-2000));
    assert.equal(plain.stdout.trim(), '', 'plain output is for people: stderr, stdout stays free');
    assert.match(plain.stderr, /^\[rank 1\] /m, "workers' lines named by rank");
    assert.match(plain.stderr, /step 3\/3/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
