/**
 * kill -9 at seeded random moments while a run checkpoints every step: the
 * launcher (coordinator) is SIGKILLed mid-run, so some kills land inside a
 * checkpoint write. After every kill:
 *   - the newest checkpoint under the real name verifies (atomic rename);
 *   - no worker is left behind (they watch the launcher's IPC channel);
 *   - the next start (--resume) removes the temp files the kill left and
 *     continues; the last round trains to the target.
 * Rounds: 3, or DISTGAN_FUZZ_ROUNDS (the long version uses 13 with
 * DISTGAN_FUZZ_LONG=1). DISTGAN_FUZZ_SEED picks the kill moments.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdir, rm } from 'node:fs/promises';
import { alive, runCli, startCli, tempDir } from '../helpers/cli.js';
import { mulberry32 } from '../helpers/fuzz.js';
import { readCheckpoint } from '../../src/shared/checkpoint.js';
import { isTempFileName } from '../../src/shared/atomic-write.js';

const SEED = Number(process.env.DISTGAN_FUZZ_SEED ?? 7);
const ROUNDS = Number(process.env.DISTGAN_FUZZ_ROUNDS ?? (process.env.DISTGAN_FUZZ_LONG === '1' ? 13 : 3));
const run = ['--dataset', 'ring8', '--model', 'mlp', '--width', '0.25', '--batch-size', '64', '--backend', 'wasm', '--metrics-port', '0', '--log-format', 'json', '--log-every', '1', '--sample-every', '0', '--checkpoint-every', '1', '--keep-checkpoints', '2'];

test(`kill -9 during checkpoint writes (${ROUNDS} rounds) never leaves an unreadable newest checkpoint; the next start cleans up and resumes`, { timeout: 120_000 + ROUNDS * 60_000 }, async () => {
  const rand = mulberry32(SEED);
  const dir = await tempDir('distgan-ckkill-');
  const out = join(dir, 'run');
  const ckdir = join(out, 'checkpoints');
  const target = 100_000;
  let lastStep = 0;
  let tempsSeen = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const args = round === 0 ? ['launch', '--workers', '2', ...run, '--steps', String(target), '--out', out] : ['launch', '--workers', '2', '--resume', out, '--resume-latest-valid', '--steps', String(target), '--metrics-port', '0', '--log-format', 'json', '--log-every', '1', '--checkpoint-every', '1', '--keep-checkpoints', '2'];
      const p = startCli(args, { timeoutMs: 90_000 });
      const pids: number[] = [];
      try {
        for (const r of [0, 1]) pids.push(Number((await p.waitFor(new RegExp(`rank ${r} joined: \\S+ pid (\\d+)`), 60_000))[1]));
        if (round > 0) {
          // The resumed start removed whatever the previous kill left half-written.
          const left = (await readdir(ckdir)).filter(isTempFileName);
          assert.deepEqual(left, [], `round ${round}: temp files removed at start (seed ${SEED})`);
        }
        await p.waitFor(/"event":"checkpoint"/, 60_000);
        // A random moment within the next ~1.5 s of checkpoint-every-step training.
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 1500)));
        p.proc.kill('SIGKILL');
        await p.done;
      } finally {
        if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
      }
      const deadline = Date.now() + 10_000;
      while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(pids.filter(alive), [], `round ${round}: no worker outlives a SIGKILLed launcher`);
      tempsSeen += (await readdir(ckdir)).filter(isTempFileName).length;
      const ck = await readCheckpoint(out); // throws DISTGAN_E_CHECKPOINT if the newest under its real name is bad
      assert.ok(ck.header.step >= lastStep, `round ${round}: checkpoints only move forward (${ck.header.step} after ${lastStep})`);
      lastStep = ck.header.step;
    }
    const final = await runCli(['launch', '--workers', '2', '--resume', out, '--steps', String(lastStep + 3), '--metrics-port', '0', '--log-format', 'json'], { timeoutMs: 90_000 });
    assert.equal(final.code, 0, final.output.slice(-6000));
    assert.equal((await readCheckpoint(out)).header.step, lastStep + 3);
    assert.deepEqual((await readdir(ckdir)).filter(isTempFileName), []);
    process.stdout.write(`# ${ROUNDS} kills (seed ${SEED}); ${tempsSeen} left a temp file behind; final step ${lastStep + 3}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
