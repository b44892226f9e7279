/**
 * The run log: StatsFileObserver writes stats.jsonl, LineAppender appends
 * whole lines and never throws, parseStats reads it back (skipping a line cut
 * short at the end, refusing corruption elsewhere), and the report's history
 * follows a resumed run. Real files in a temporary folder; an injected clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineAppender, StatsFileObserver, parseStats, readStatsFile, STATS_FORMAT, type StepLine } from '../../src/coordinator/stats-file.js';
import type { RunInfo, RunSummary, StepReport } from '../../src/coordinator/observer.js';
import { DistganError } from '../../src/shared/errors.js';
import { buildHistory } from '../../src/cli/report/history.js';
import { chartsOf } from '../../src/cli/report/chart.js';
import { chartPng } from '../../src/cli/report/chart-png.js';
import { writeReport } from '../../src/cli/commands/report.js';

const T0 = 1_800_000_000;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'distgan-stats-'));
}

const info = (over: Partial<RunInfo> = {}): RunInfo => ({
  runId: 'run-1', dataset: 'ring8', model: 'mlp', backend: 'wasm', version: '0.1.0', worldSize: 2,
  totalSteps: 12, startStep: 0, globalBatch: 64, outDir: '/tmp/run-1', startedAt: T0, ...over,
});

const summary: RunSummary = {
  steps: 12, images: 768, imagesPerSecond: 100, dLoss: 0.6, gLoss: 0.8, dAccuracyReal: 0.7, dAccuracyFake: 0.6, worldSize: 2, backend: 'wasm', wallSeconds: 6, exchangeSecondsPerStep: 0.01,
};

/** Step `step` of a run: step seconds 0.1·(step mod 5 + 1), 1000 bytes sent, 3000 received. */
function report(step: number, over: Partial<StepReport> = {}): StepReport {
  return {
    step, images: 64, dLoss: 0.69, gLoss: 0.71, dAccuracyReal: 0.5, dAccuracyFake: 0.25,
    stepSeconds: 0.1 * ((step % 5) + 1),
    phaseSeconds: { data: 0.001, d_compute: 0.02, d_exchange: 0.003, g_compute: 0.02, g_exchange: 0.003, apply: 0.002 },
    exchangeBytes: { sent: 1000, received: 3000 },
    ranks: [{ rank: 0, computeSeconds: 0.04, dataSeconds: 0.001, timestamp: T0 + step }, { rank: 1, computeSeconds: 0.05, dataSeconds: 0.002, timestamp: T0 + step }],
    time: T0 + step,
    ...over,
  };
}

function lines(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('stats.jsonl: run_start, a step line every N steps and the last one, events, run_end; NaN survives the round trip', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'stats.jsonl');
    let now = T0;
    const obs = new StatsFileObserver({ path, every: 5, config: { steps: 12, lr: 2e-4 }, now: () => now });
    obs.runStarted(info());
    now = T0 + 0.5;
    obs.workerJoined({ rank: 0, host: 'a', pid: 10, backend: 'wasm' });
    obs.workerJoined({ rank: 1, host: 'b', pid: 11, backend: 'wasm' });
    for (let s = 1; s <= 12; s++) obs.stepCompleted(report(s, s === 12 ? { gLoss: NaN, dLoss: Infinity } : {}));
    now = T0 + 13;
    obs.sampleWritten(12, '/tmp/run-1/samples/step-00000012.png');
    obs.checkpointWritten(12, '/tmp/run-1/checkpoints/step-00000012.ckpt', T0 + 13.25);
    obs.runEnded(summary);
    await obs.close();

    const got = lines(path);
    assert.deepEqual(got.map((l) => l.event), ['run_start', 'worker_joined', 'worker_joined', 'step', 'step', 'step', 'sample', 'checkpoint', 'run_end']);
    const start = got[0]!;
    assert.equal(start.format, STATS_FORMAT);
    assert.equal(start.elapsed, 0);
    assert.equal(start.resumed, false);
    assert.equal(start.logEvery, 5);
    assert.deepEqual(start.config, { steps: 12, lr: 2e-4 });
    assert.equal(got[1]!.elapsed, 0.5);

    const steps = got.filter((l) => l.event === 'step');
    // Steps 5 and 10 by the interval, 12 as the run's last.
    assert.deepEqual(steps.map((l) => l.step), [5, 10, 12]);
    assert.deepEqual(steps.map((l) => l.steps), [5, 5, 2]);
    assert.deepEqual(steps.map((l) => l.images), [320, 640, 768]);
    assert.deepEqual(steps.map((l) => l.time), [T0 + 5, T0 + 10, T0 + 12]);
    assert.deepEqual(steps.map((l) => l.elapsed), [5, 10, 12]);
    // Steps 1..5 take 0.2, 0.3, 0.4, 0.5, 0.1 s: mean 0.3, max 0.5. Steps 11, 12: 0.2, 0.3 → mean 0.25.
    assert.equal(steps[0]!.stepSeconds, 0.3);
    assert.equal(steps[0]!.stepSecondsMax, 0.5);
    assert.equal(steps[2]!.stepSeconds, 0.25);
    assert.deepEqual(steps[0]!.exchangeBytes, { sent: 5000, received: 15000 });
    assert.deepEqual(steps[2]!.exchangeBytes, { sent: 2000, received: 6000 });
    assert.deepEqual(steps[0]!.phaseSeconds, { data: 0.001, d_compute: 0.02, d_exchange: 0.003, g_compute: 0.02, g_exchange: 0.003, apply: 0.002 });
    assert.deepEqual(steps[0]!.ranks, [{ rank: 0, computeSeconds: 0.04, dataSeconds: 0.001, resultAt: T0 + 5 }, { rank: 1, computeSeconds: 0.05, dataSeconds: 0.002, resultAt: T0 + 5 }]);
    assert.equal(steps[0]!.workers, 2);
    assert.ok(typeof steps[0]!.imagesPerSecond === 'number' && (steps[0]!.imagesPerSecond as number) > 0);
    // JSON has no NaN: written as strings, read back as numbers.
    assert.equal(steps[2]!.gLoss, 'NaN');
    assert.equal(steps[2]!.dLoss, 'Infinity');
    const parsed = await readStatsFile(path);
    const last = parsed.lines.filter((l): l is StepLine => l.event === 'step')[2]!;
    assert.ok(Number.isNaN(last.gLoss));
    assert.equal(last.dLoss, Infinity);

    assert.deepEqual(got[7], { event: 'checkpoint', time: T0 + 13, elapsed: 13, step: 12, path: '/tmp/run-1/checkpoints/step-00000012.ckpt', writtenAt: T0 + 13.25 });
    const end = got[8]!;
    assert.equal(end.ok, true);
    assert.equal(end.error, null);
    assert.equal(end.step, 12);
    assert.equal(end.images, 768);
    assert.deepEqual(end.summary, summary);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stats.jsonl: a failed run ends with its error code; peer rejections are counted, one line per interval', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'stats.jsonl');
    let now = T0;
    const obs = new StatsFileObserver({ path, every: 10, now: () => now, peerRejectedIntervalSeconds: 10 });
    obs.runStarted(info());
    for (let i = 0; i < 100; i++) {
      now = T0 + i * 0.05;
      obs.peerRejected(`stranger ${i}`);
    }
    obs.stepCompleted(report(1));
    obs.workerLost(1, 'rank 1 exited with code 1');
    const err = new DistganError('DISTGAN_E_WORKER_FAILED', 'rank 1 exited with code 1');
    obs.runEnded(undefined, err);
    await obs.close();
    const got = lines(path);
    // The step before the loss is written before it, not at the next multiple of 10.
    assert.deepEqual(got.map((l) => l.event), ['run_start', 'peer_rejected', 'step', 'worker_lost', 'peer_rejected', 'run_end']);
    // The first rejection is written at once, the other 99 (within 10 s) together at the end.
    assert.deepEqual([got[1]!.count, got[1]!.total, got[1]!.reason], [1, 1, 'stranger 0']);
    assert.deepEqual([got[4]!.count, got[4]!.total, got[4]!.reason], [99, 100, 'stranger 99']);
    assert.equal(got[2]!.step, 1);
    assert.deepEqual(got[5]!.error, { name: 'DistganError', code: 'DISTGAN_E_WORKER_FAILED', message: 'rank 1 exited with code 1' });
    assert.equal(got[5]!.ok, false);
    assert.equal(got[5]!.summary, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stats.jsonl: --resume appends to the same file, images count from step 0, and the report follows the resumed steps', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'stats.jsonl');
    // First session: steps 1..17 logged every 5, then killed (no run_end) after the checkpoint at step 10.
    const a = new StatsFileObserver({ path, every: 5, now: () => T0 });
    a.runStarted(info({ totalSteps: 20 }));
    for (let s = 1; s <= 17; s++) a.stepCompleted(report(s, { dLoss: 1 }));
    a.checkpointWritten(10, '/c/10', T0 + 10);
    await a.close();
    // Second session: resumed from the checkpoint at step 10.
    const b = new StatsFileObserver({ path, every: 5, now: () => T0 + 100 });
    b.runStarted(info({ totalSteps: 20, startStep: 10, startedAt: T0 + 100 }));
    for (let s = 11; s <= 20; s++) b.stepCompleted(report(s, { dLoss: 2, time: T0 + 100 + s }));
    b.runEnded(summary);
    await b.close();

    const parsed = await readStatsFile(path);
    assert.deepEqual(parsed.lines.map((l) => (l.event === 'step' ? `step ${l.step}` : l.event)),
      ['run_start', 'step 5', 'step 10', 'step 15', 'checkpoint', 'run_start', 'step 15', 'step 20', 'run_end']);
    const starts = parsed.lines.filter((l) => l.event === 'run_start');
    assert.equal(starts[1]!.event === 'run_start' && starts[1]!.resumed, true);
    const resumedSteps = parsed.lines.filter((l): l is StepLine => l.event === 'step').slice(3);
    assert.deepEqual(resumedSteps.map((l) => l.images), [15 * 64, 20 * 64]);
    assert.deepEqual(resumedSteps.map((l) => l.elapsed), [15, 20]);

    const h = buildHistory(parsed, path);
    assert.equal(h.sessions.length, 2);
    assert.equal(h.outcome, 'finished');
    assert.equal(h.sessions[0]!.end, null);
    assert.equal(h.sessions[0]!.lastStep, 15);
    // The old step 15 was trained again after the resume: replaced by the new line.
    assert.equal(h.replacedSteps, 1);
    assert.deepEqual(h.steps.map((s) => [s.step, s.dLoss]), [[5, 1], [10, 1], [15, 2], [20, 2]]);
    const charts = chartsOf(h);
    assert.deepEqual(charts.map((c) => c.id), ['losses', 'accuracy', 'throughput', 'step-time']);
    assert.deepEqual(charts[0]!.markers, [{ step: 10, label: 'resumed (2)' }]);
    assert.deepEqual(charts[0]!.series[0]!.values, [1, 1, 2, 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseStats: skips a last line cut short, refuses corruption anywhere else with DISTGAN_E_CONFIG and the line number', () => {
  const start = JSON.stringify({ event: 'run_start', time: T0, elapsed: 0, runId: 'r', worldSize: 1, startStep: 0, totalSteps: 5, globalBatch: 4 });
  const step = JSON.stringify({ event: 'step', time: T0 + 1, elapsed: 1, step: 1, dLoss: 'NaN' });
  const ok = parseStats(`${start}\n${step}\n{"event":"st`, 'x.jsonl');
  assert.equal(ok.partialLastLine, true);
  assert.equal(ok.lines.length, 2);
  // A complete last line without its newline is a line, not a fragment.
  const whole = parseStats(`${start}\n${step}`, 'x.jsonl');
  assert.equal(whole.partialLastLine, false);
  assert.equal(whole.lines.length, 2);
  // Unknown events (a newer writer) are skipped and counted; blank lines ignored.
  const future = parseStats(`${start}\n\n{"event":"gpu_temperature","time":1}\n${step}\n`, 'x.jsonl');
  assert.equal(future.unknownEvents, 1);
  assert.equal(future.lines.length, 2);

  const bad = (text: string, re: RegExp): void => {
    assert.throws(() => parseStats(text, 'x.jsonl'), (e: unknown) => e instanceof DistganError && e.code === 'DISTGAN_E_CONFIG' && e.exitCode === 2 && re.test(e.message));
  };
  bad(`${start}\n{"event":"st\n${step}\n`, /x\.jsonl line 2 is not JSON/);
  bad(`${start}\n{"event":"st\n`, /line 2 is not JSON/); // cut short, but followed by a newline: not the last write
  bad(`${start}\n[1,2]\n`, /line 2 is not a JSON object/);
  bad(`${start}\n{"event":"step","time":1,"step":-3}\n`, /line 2 \(step\): "step" is not an integer/);
  bad(`${start}\n{"event":"step","step":3}\n`, /"time" is not a number/);

  // The history needs a run_start first.
  assert.throws(() => buildHistory(parseStats(`${step}\n`, 'x.jsonl'), 'x.jsonl'), /does not begin with a run_start/);
  assert.throws(() => buildHistory(parseStats('{"event":"run_st', 'x.jsonl'), 'x.jsonl'), /holds no complete line \(only a line cut short\)/);
});

test('LineAppender: lines before open() wait; a line cut short by a crash is removed before appending; close without open writes nothing', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'log.txt');
    writeFileSync(path, 'one\ntwo\nthr');
    const repaired: number[] = [];
    const errors: string[] = [];
    const a = new LineAppender(path, { onRepair: (n) => repaired.push(n), onError: (m) => errors.push(m) });
    a.write('four');
    a.open();
    a.write('five\n');
    await a.flush();
    assert.equal(readFileSync(path, 'utf8'), 'one\ntwo\nfour\nfive\n');
    assert.deepEqual(repaired, [3]);
    // A whole file of one cut line is emptied.
    const p2 = join(dir, 'cut.txt');
    writeFileSync(p2, 'no newline at all');
    const b = new LineAppender(p2);
    b.open();
    b.write('x');
    await b.close();
    assert.equal(readFileSync(p2, 'utf8'), 'x\n');
    b.write('after close');
    await b.flush();
    assert.equal(readFileSync(p2, 'utf8'), 'x\n');

    const never = new LineAppender(join(dir, 'never.txt'));
    never.write('buffered');
    await never.close();
    assert.equal(existsSync(join(dir, 'never.txt')), false);
    await a.close();
    assert.deepEqual(errors, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LineAppender: a write error is reported once, then the file goes quiet and nothing throws', async (t) => {
  const dir = tmp();
  try {
    // Cannot open: the folder does not exist.
    const errors: string[] = [];
    const a = new LineAppender(join(dir, 'missing', 'stats.jsonl'), { onError: (m) => errors.push(m) });
    a.open();
    for (let i = 0; i < 10; i++) a.write(`line ${i}`);
    await a.flush();
    a.write('more');
    await a.close();
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /cannot write .*missing\/stats\.jsonl .*ENOENT.*training goes on/);
    assert.equal(a.healthy, false);

    // A disk that fills up: /dev/full fails every write with ENOSPC.
    if (!existsSync('/dev/full')) {
      t.diagnostic('no /dev/full on this machine: the ENOSPC case is not checked');
      return;
    }
    const full: string[] = [];
    const b = new LineAppender('/dev/full', { onError: (m) => full.push(m) });
    b.open();
    for (let i = 0; i < 5; i++) {
      b.write(`line ${i}`);
      await b.flush();
    }
    await b.close();
    assert.equal(full.length, 1);
    assert.match(full[0]!, /the disk is full/);

    // A disk that stops keeping up: past the pending limit the file counts as failed.
    const slow: string[] = [];
    const c = new LineAppender(join(dir, 'slow.txt'), { maxPendingBytes: 100, onError: (m) => slow.push(m) });
    for (let i = 0; i < 20; i++) c.write('0123456789');
    assert.equal(slow.length, 1);
    assert.match(slow[0]!, /has not taken/);
    await c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('report: bad input is a coded error and writes nothing; a run that failed before its first step still renders', async () => {
  const dir = tmp();
  try {
    const refuse = async (run: string, re: RegExp): Promise<void> => {
      await assert.rejects(writeReport(run), (e: unknown) => e instanceof DistganError && e.code === 'DISTGAN_E_CONFIG' && re.test(e.message));
    };
    await refuse(join(dir, 'nope'), /no such folder/);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    await refuse(empty, /stats\.jsonl does not exist/);
    assert.deepEqual(readdirSync(empty), []);
    const corrupt = join(dir, 'corrupt');
    mkdirSync(corrupt);
    const start = JSON.stringify({ event: 'run_start', time: T0, elapsed: 0, runId: 'r', worldSize: 1, startStep: 0, totalSteps: 5, globalBatch: 4 });
    writeFileSync(join(corrupt, 'stats.jsonl'), `${start}\nnot json\n${start}\n`);
    await refuse(corrupt, /line 2 is not JSON/);
    assert.deepEqual(readdirSync(corrupt), ['stats.jsonl']);

    // Failed while joining: no step, an error, a line cut short at the end.
    const failed = join(dir, 'failed');
    mkdirSync(failed);
    writeFileSync(join(failed, 'stats.jsonl'), `${start}\n${JSON.stringify({ event: 'run_end', time: T0 + 3, elapsed: 3, ok: false, step: 0, images: 0, summary: null,
      error: { name: 'DeadlineError', code: 'DISTGAN_E_DEADLINE', message: 'only 0 of 1 workers joined' } })}\n{"ev`);
    const r = await writeReport(failed);
    assert.equal(r.outcome, 'failed');
    assert.equal(r.steps, 0);
    const html = readFileSync(r.html, 'utf8');
    assert.match(html, /Run failed \[DISTGAN_E_DEADLINE\]: only 0 of 1 workers joined/);
    assert.match(html, /no step was logged/);
    assert.match(html, /cut short/);
    assert.equal(r.plots.length, 4);
    for (const p of r.plots) assert.deepEqual([...readFileSync(p).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('chartPng: a long run is averaged to at most 2,000 points and draws a valid, non-blank PNG', () => {
  const path = 'mem.jsonl';
  const rows = [JSON.stringify({ event: 'run_start', time: T0, elapsed: 0, runId: 'r', worldSize: 1, startStep: 0, totalSteps: 50_000, globalBatch: 4, logEvery: 10 })];
  for (let s = 10; s <= 50_000; s += 10) rows.push(JSON.stringify({ event: 'step', time: T0 + s, elapsed: s, step: s, dLoss: 0.7 + 0.1 * Math.sin(s / 500), gLoss: 0.8, dAccuracyReal: 0.5, dAccuracyFake: 0.5, imagesPerSecond: 100, stepSeconds: 0.1 }));
  const h = buildHistory(parseStats(`${rows.join('\n')}\n`, path), path);
  const charts = chartsOf(h);
  assert.ok(charts[0]!.steps.length <= 2000 && charts[0]!.steps.length >= 1000, `${charts[0]!.steps.length} points`);
  assert.ok(charts[0]!.stride > 1);
  const png = chartPng(charts[0]!);
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  assert.ok(png.length > 2000, `${png.length} bytes`);
});
