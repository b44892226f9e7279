/**
 * Whole-process faults with the sharded reduction in the mix (issue: "the
 * kill, hang and link-cut tests still pass, with reducers in the mix"):
 *  - SIGKILL of a worker while the shard owners are threads: the rank is
 *    named as before, nothing is left behind, the checkpoint resumes;
 *  - SIGKILL of a `distgan reducer` process: the coordinator names that
 *    reducer, exits non-zero in time, stops the workers and the other
 *    reducer, and its checkpoint resumes bit for bit with the star reduction;
 *  - SIGSTOP of a reducer (alive but silent): the run ends at the step
 *    deadline; the reducer is named (or, when it stopped mid-phase after
 *    reporting some parts, a rank is, and the log names the reducer: telling
 *    the two apart needs a heartbeat).
 * The network-namespace tests (netns.test.ts) cut a link with reducers on
 * the worker hosts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { alive, runCli, startCli, tempDir } from '../helpers/cli.js';
import { readCheckpoint } from '../../src/shared/checkpoint.js';

const tiny = ['--dataset', 'ring8', '--model', 'mlp', '--width', '0.25', '--batch-size', '64', '--backend', 'wasm', '--metrics-port', '0', '--log-format', 'json', '--log-every', '1', '--sample-every', '0'];
const stepAt = (n: number): RegExp => new RegExp(`"event":"step","ts":[\\d.]+,"step":${n},`);

async function pidsOf(run: ReturnType<typeof startCli>): Promise<{ workers: number[]; reducers: number[] }> {
  const workers: number[] = [];
  for (const r of [0, 1]) workers.push(Number((await run.waitFor(new RegExp(`rank ${r} joined: \\S+ pid (\\d+)`), 120_000))[1]));
  const line = await run.waitFor(/sharded reduction: \d+ shard owners at [^\n]*/, 60_000);
  const reducers = [...line[0].matchAll(/pid (\d+)\)/g)].map((m) => Number(m[1]));
  return { workers, reducers };
}

test('sharded (threads): SIGKILL of a worker names the rank, leaves nothing behind, and the checkpoint resumes', { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const run = startCli(['launch', '--workers', '2', ...tiny, '--reduction', 'sharded', '--steps', '100000', '--step-timeout', '15', '--checkpoint-every', '10', '--out', out], { timeoutMs: 200_000 });
  try {
    const { workers } = await pidsOf(run);
    await run.waitFor(stepAt(12), 120_000);
    process.kill(workers[1]!, 'SIGKILL');
    const res = await run.done;
    assert.notEqual(res.code, 0);
    assert.match(res.output, /rank 1 \(pid \d+\) exited on signal SIGKILL/);
    await new Promise((r) => setTimeout(r, 500));
    for (const pid of workers) assert.equal(alive(pid), false, `worker pid ${pid} left behind`);
    const ck = await readCheckpoint(out);
    const resumed = await runCli(['launch', '--workers', '2', '--resume', out, '--steps', String(ck.header.step + 3), '--metrics-port', '0', '--log-format', 'json', '--reduction', 'sharded'], { timeoutMs: 120_000 });
    assert.equal(resumed.code, 0, resumed.output.slice(-2000));
  } finally {
    if (run.proc.exitCode === null) run.proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('reducer processes: SIGKILL of one is named, the run stops cleanly, and its checkpoint resumes with either reduction', { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const run = startCli(['launch', '--workers', '2', ...tiny, '--reduction', 'sharded', '--reducers', '2', '--steps', '100000', '--step-timeout', '15', '--checkpoint-every', '10', '--out', out], { timeoutMs: 200_000 });
  try {
    const { workers, reducers } = await pidsOf(run);
    assert.equal(reducers.length, 2, 'two reducer pids in the log');
    await run.waitFor(stepAt(12), 120_000);
    const killedAt = Date.now();
    process.kill(reducers[1]!, 'SIGKILL');
    const res = await run.done;
    const took = (Date.now() - killedAt) / 1000;
    assert.notEqual(res.code, 0, res.output.slice(-1500));
    assert.ok(took < 25, `exited ${took.toFixed(1)} s after the kill`);
    assert.match(res.output, new RegExp(`a reducer process \\(pid ${reducers[1]}\\) exited on signal SIGKILL before the run ended.*DISTGAN_E_REDUCER_LOST`));
    await new Promise((r) => setTimeout(r, 1000));
    for (const pid of [...workers, ...reducers]) assert.equal(alive(pid), false, `pid ${pid} left behind`);
    const ck = await readCheckpoint(out);
    assert.ok(ck.header.step >= 10, `checkpoint at step ${ck.header.step}`);
    // The mirror lived in the reducers: the checkpoint they gave back resumes with threads and with star, to the same bits.
    const a = await runCli(['launch', '--workers', '2', '--resume', out, '--steps', String(ck.header.step + 3), '--metrics-port', '0', '--reduction', 'sharded', '--out', join(dir, 'a')], { timeoutMs: 120_000 });
    assert.equal(a.code, 0, a.output.slice(-2000));
    const b = await runCli(['launch', '--workers', '2', '--resume', out, '--steps', String(ck.header.step + 3), '--metrics-port', '0', '--reduction', 'star', '--out', join(dir, 'b')], { timeoutMs: 120_000 });
    assert.equal(b.code, 0, b.output.slice(-2000));
    const [ca, cb] = [await readCheckpoint(join(dir, 'a')), await readCheckpoint(join(dir, 'b'))];
    for (const k of ['gWeights', 'dWeights', 'gAdamV', 'dAdamV'] as const) {
      assert.ok(Buffer.from(ca.state[k].buffer, ca.state[k].byteOffset, ca.state[k].byteLength).equals(Buffer.from(cb.state[k].buffer, cb.state[k].byteOffset, cb.state[k].byteLength)), `${k}: sharded and star resumes agree`);
    }
  } finally {
    if (run.proc.exitCode === null) run.proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('reducer processes: a silent (SIGSTOPped) reducer is named at the step deadline, not the workers', { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const stepTimeout = 4;
  const run = startCli(['launch', '--workers', '2', ...tiny, '--reduction', 'sharded', '--reducers', '2', '--steps', '100000', '--step-timeout', String(stepTimeout), '--checkpoint-every', '0', '--out', out], { timeoutMs: 200_000 });
  let stopped: number | undefined;
  try {
    const { workers, reducers } = await pidsOf(run);
    await run.waitFor(stepAt(5), 120_000);
    stopped = reducers[0]!;
    process.kill(stopped, 'SIGSTOP');
    const res = await run.done;
    assert.notEqual(res.code, 0);
    const error = res.output.split('\n').filter((l) => /distgan: error:/.test(l)).join('\n');
    const reducer = new RegExp(`the reducer of shard \\d \\(\\S+ pid ${stopped}\\)`);
    if (/DISTGAN_E_REDUCER_LOST/.test(error)) {
      // Stopped before it had reported anything of the phase, or before it sent the average the phase waits for: it is named.
      assert.match(error, reducer, res.output.slice(-2000));
      assert.doesNotMatch(error, /rank \d \(/, 'no worker is blamed');
    } else {
      // Stopped mid-phase, after reporting some ranks' parts: without a heartbeat the coordinator cannot tell a stopped
      // reducer from a rank whose part never arrived, so the rank is named; the run still ends at the deadline and the
      // log names the reducer that did not answer (the failure checkpoint's gather).
      assert.match(error, /DISTGAN_E_WORKER_FAILED/, res.output.slice(-2000));
      assert.match(res.output, reducer, 'the log names the stopped reducer');
    }
    // launch stops (SIGKILLs) what does not exit by itself; a stopped reducer may already be gone.
    if (alive(stopped)) process.kill(stopped, 'SIGCONT');
    await new Promise((r) => setTimeout(r, 1500));
    for (const pid of [...workers, ...reducers]) assert.equal(alive(pid), false, `pid ${pid} left behind`);
  } finally {
    if (stopped !== undefined && alive(stopped)) process.kill(stopped, 'SIGCONT');
    if (run.proc.exitCode === null) run.proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
