/**
 * Whole-process fault tests: SIGKILL a worker mid-run (the coordinator names
 * the rank, exits non-zero within its step deadline, leaves no process
 * behind, and its checkpoint resumes); an interrupted-then-resumed run is
 * bit-identical to an uninterrupted one; bad flags exit 2 writing nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import { alive, runCli, startCli, tempDir } from '../helpers/cli.js';
import { readCheckpoint } from '../../src/shared/checkpoint.js';
import { TRAINER_STATE_ARRAYS } from '../../src/shared/gan/api.js';

const tiny = ['--dataset', 'ring8', '--model', 'mlp', '--width', '0.25', '--batch-size', '64', '--backend', 'wasm', '--metrics-port', '0', '--log-format', 'json', '--log-every', '1', '--sample-every', '0'];

interface StepLine {
  event: string;
  step: number;
  dLoss: number;
  gLoss: number;
}
const stepLines = (text: string): StepLine[] =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as StepLine)
    .filter((e) => e.event === 'step');

test('SIGKILL of a worker: the coordinator names the rank, exits non-zero in time, leaves no process, and its checkpoint resumes', { timeout: 300_000 }, async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  let run: ReturnType<typeof startCli> | undefined;
  try {
    const stepTimeout = 15;
    run = startCli(['launch', '--workers', '2', ...tiny, '--steps', '100000', '--step-timeout', String(stepTimeout), '--checkpoint-every', '1000', '--out', out], { timeoutMs: 200_000 });
    const pids = new Map<number, number>();
    for (const r of [0, 1]) {
      const m = await run.waitFor(new RegExp(`rank ${r} joined: \\S+ pid (\\d+)`), 120_000);
      pids.set(r, Number(m[1]));
    }
    await run.waitFor(/"event":"step","ts":[\d.]+,"step":30,/, 120_000);
    const killedAt = Date.now();
    process.kill(pids.get(1)!, 'SIGKILL');
    const res = await run.done;
    const took = (Date.now() - killedAt) / 1000;
    assert.notEqual(res.code, 0, 'coordinator must exit non-zero');
    assert.ok(took < stepTimeout + 10, `exited ${took.toFixed(1)} s after the kill (deadline ${stepTimeout} s)`);
    assert.match(res.output, /rank 1 \(pid \d+\) exited on signal SIGKILL/);
    await new Promise((r) => setTimeout(r, 500));
    for (const [rank, pid] of pids) assert.equal(alive(pid), false, `worker rank ${rank} (pid ${pid}) was left behind`);
    const ck = await readCheckpoint(out);
    assert.ok(ck.header.step >= 30, `checkpoint at step ${ck.header.step}`);
    const resumed = await runCli(['launch', '--workers', '2', '--resume', out, '--steps', String(ck.header.step + 5), '--metrics-port', '0', '--log-format', 'json'], { timeoutMs: 120_000 });
    assert.equal(resumed.code, 0, resumed.output.slice(-2000));
    assert.equal((await readCheckpoint(out)).header.step, ck.header.step + 5);
  } finally {
    if (run && run.proc.exitCode === null) run.proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('resume is bit-exact: losses after resuming equal those of an uninterrupted run', { timeout: 300_000 }, async () => {
  const dir = await tempDir();
  try {
    const full = await runCli(['launch', '--workers', '2', ...tiny, '--steps', '12', '--out', join(dir, 'full')]);
    assert.equal(full.code, 0, full.output.slice(-2000));
    const first = await runCli(['launch', '--workers', '2', ...tiny, '--steps', '6', '--out', join(dir, 'split')]);
    assert.equal(first.code, 0, first.output.slice(-2000));
    const second = await runCli(['launch', '--workers', '2', '--resume', join(dir, 'split'), '--steps', '12', '--metrics-port', '0', '--log-format', 'json', '--log-every', '1']);
    assert.equal(second.code, 0, second.output.slice(-2000));
    const a = stepLines(full.output).filter((s) => s.step > 6);
    const b = stepLines(second.output).filter((s) => s.step > 6);
    assert.equal(a.length, 6);
    assert.deepEqual(b.map((s) => [s.step, s.dLoss, s.gLoss]), a.map((s) => [s.step, s.dLoss, s.gLoss]));
    const ca = await readCheckpoint(join(dir, 'full'));
    const cb = await readCheckpoint(join(dir, 'split'));
    assert.equal(ca.header.step, cb.header.step);
    assert.equal(ca.state.step, cb.state.step);
    for (const k of TRAINER_STATE_ARRAYS) assert.ok(Buffer.from(ca.state[k].buffer, ca.state[k].byteOffset, ca.state[k].byteLength).equals(Buffer.from(cb.state[k].buffer, cb.state[k].byteOffset, cb.state[k].byteLength)), `final checkpoints hold identical ${k}`);
    const summary = JSON.parse(await readFile(join(dir, 'split', 'summary.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['steps', 'images', 'imagesPerSecond', 'dLoss', 'gLoss', 'dAccuracyReal', 'dAccuracyFake', 'worldSize', 'backend', 'wallSeconds']) assert.ok(k in summary, `summary.json has ${k}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad flags exit 2 naming the flag, and write nothing', async () => {
  const dir = await tempDir();
  // A port someone else holds, for the bind cases.
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const busyPort = (holder.address() as AddressInfo).port;
  try {
    const cases: Array<[string[], RegExp]> = [
      [['launch', '--batch-size', 'zero'], /--batch-size: "zero" is not an integer/],
      [['launch', '--backend', 'tpu'], /--backend: "tpu" is not one of/],
      [['launch', '--bogus'], /unknown option '--bogus'/],
      [['launch', '--workers', '2', '--gpus', '0'], /--workers and --gpus exclude each other/],
      [['launch', '--dataset', join(dir, 'missing')], /dataset|missing/i],
      [['worker', '--connect', 'http://x'], /--connect "http:\/\/x" is not a tcp:\/\/ or ipc:\/\/ endpoint/],
      [['launch', '--resume', join(dir, 'nothing-here')], /does not exist/],
      // Checked only once the run is built, but still before the run folder exists.
      [['launch', '--workers', '2', '--batch-size', '1', '--dataset', 'ring8', '--metrics-port', '0'], /--batch-size 1 is smaller than the world size 2.*\[DISTGAN_E_CONFIG\]/],
      [['launch', '--workers', '1', '--dataset', 'ring8', '--metrics-port', String(busyPort)], new RegExp(`--metrics-port ${busyPort} .*already in use.*\\[DISTGAN_E_BIND\\]`)],
      [['coordinator', '--bind', `tcp://127.0.0.1:${busyPort}`, '--world-size', '1', '--dataset', 'ring8', '--metrics-port', '0'], new RegExp(`--bind tcp://127\\.0\\.0\\.1:${busyPort}: cannot listen there: Address already in use.*\\[DISTGAN_E_BIND\\]`)],
    ];
    for (const [args, re] of cases) {
      const out = join(dir, 'out');
      const r = await runCli([...args, '--out', out].filter((a, i, all) => !(args[0] === 'worker' && (a === '--out' || all[i - 1] === '--out'))), { timeoutMs: 60_000 });
      assert.equal(r.code, 2, `${args.join(' ')} → exit ${r.code}\n${r.output}`);
      assert.match(r.output, re, args.join(' '));
      assert.equal(existsSync(out), false, `${args.join(' ')} wrote ${out}`);
    }
    const dry = await runCli(['launch', '--dry-run', '--workers', '2', '--out', join(dir, 'dry')]);
    assert.equal(dry.code, 0);
    const printed = JSON.parse(dry.stdout) as { workers: number; config: { batchSize: number } };
    assert.equal(printed.workers, 2);
    assert.equal(printed.config.batchSize, 64);
    assert.equal(existsSync(join(dir, 'dry')), false, '--dry-run writes nothing');
  } finally {
    holder.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('SIGTERM on launch checkpoints, stops every worker and exits 130', { timeout: 180_000 }, async () => {
  const dir = await tempDir();
  const out = join(dir, 'run');
  const run = startCli(['launch', '--workers', '2', ...tiny, '--steps', '100000', '--checkpoint-every', '100000', '--out', out], { timeoutMs: 150_000 });
  try {
    const pids: number[] = [];
    for (const r of [0, 1]) pids.push(Number((await run.waitFor(new RegExp(`rank ${r} joined: \\S+ pid (\\d+)`), 120_000))[1]));
    await run.waitFor(/"event":"step","ts":[\d.]+,"step":10,/, 120_000);
    run.proc.kill('SIGTERM');
    const res = await run.done;
    assert.equal(res.code, 130, res.output.slice(-1500));
    assert.match(res.output, /interrupted by SIGTERM/);
    await new Promise((r) => setTimeout(r, 500));
    for (const pid of pids) assert.equal(alive(pid), false, `worker pid ${pid} was left behind`);
    const ck = await readCheckpoint(out);
    assert.ok(ck.header.step >= 10, `interrupt checkpoint at step ${ck.header.step}`);
  } finally {
    if (run.proc.exitCode === null) run.proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
