import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DownsampledHistory } from '../../src/coordinator/downsampled-history.js';
import { StatusObserver, nonFiniteAsString } from '../../src/coordinator/status-page.js';
import type { RunInfo, StepReport } from '../../src/coordinator/observer.js';

const info: RunInfo = {
  runId: 'run-1', dataset: 'mnist', model: 'dcgan', backend: 'wasm', version: '0.1.0', worldSize: 2,
  totalSteps: 1_000_000, startStep: 0, globalBatch: 64, outDir: '/tmp/run-1', startedAt: 1000,
};

function report(step: number, over: Partial<StepReport> = {}): StepReport {
  return {
    step, images: 64, dLoss: 1, gLoss: 2, dAccuracyReal: 0.5, dAccuracyFake: 0.5, stepSeconds: 0.25,
    phaseSeconds: { data: 0.01, d_compute: 0.1, d_exchange: 0.02, g_compute: 0.1, g_exchange: 0.01, apply: 0.01 },
    exchangeBytes: { sent: 100, received: 200 },
    ranks: [
      { rank: 0, computeSeconds: 0.2, dataSeconds: 0.01, timestamp: 1000 + step * 0.25 },
      { rank: 1, computeSeconds: 0.3, dataSeconds: 0.01, timestamp: 1000 + step * 0.25 },
    ],
    time: 1000 + step * 0.25,
    ...over,
  };
}

test('history keeps at most `capacity` points for any run length, and every step counts in the means', () => {
  const h = new DownsampledHistory(['v'] as const, 8);
  for (let s = 1; s <= 8; s++) h.add(s, { v: s });
  // Reaching capacity merges pairs: 4 points of 2 steps each.
  let snap = h.snapshot();
  assert.equal(snap.stride, 2);
  assert.deepEqual(snap.steps, [2, 4, 6, 8]);
  assert.deepEqual(snap.series.v, [1.5, 3.5, 5.5, 7.5]);
  h.add(9, { v: 9 });
  snap = h.snapshot();
  // The partly filled bucket shows as the newest point.
  assert.deepEqual(snap.steps, [2, 4, 6, 8, 9]);
  assert.equal(snap.series.v.at(-1), 9);

  const big = new DownsampledHistory(['a', 'b'] as const, 2000);
  const n = 1_000_003;
  for (let s = 1; s <= n; s++) big.add(s, { a: s, b: 1 });
  const b = big.snapshot();
  assert.ok(b.steps.length <= 2001, `${b.steps.length} points`);
  assert.ok(b.steps.length >= 1000, 'at least half the capacity stays in use');
  assert.equal(b.steps.at(-1), n, 'the newest step is always shown');
  assert.ok(b.series.b.every((v) => v === 1));
  // Mean over all points, weighted by bucket size, is the mean over all steps.
  const full = b.steps.length - 1; // last point is the partial bucket
  let sum = 0;
  for (let i = 0; i < full; i++) sum += b.series.a[i]! * b.stride;
  const covered = full * b.stride;
  sum += b.series.a[full]! * (n - covered);
  assert.ok(Math.abs(sum / n - (n + 1) / 2) < 1e-6 * n);
});

test('a NaN in a bucket survives merging (a divergence stays visible)', () => {
  const h = new DownsampledHistory(['v'] as const, 4);
  for (let s = 1; s <= 16; s++) h.add(s, { v: s === 5 ? NaN : 1 });
  const snap = h.snapshot();
  assert.equal(snap.series.v.filter((v) => Number.isNaN(v)).length, 1);
  assert.throws(() => new DownsampledHistory(['v'] as const, 5), /even integer/);
});

test('StatusObserver snapshot: run, progress, curves, workers, sample, checkpoint, failure', () => {
  let now = 1000;
  const s = new StatusObserver({ now: () => now, historyCapacity: 100 });
  assert.equal(s.snapshot().state, 'waiting');
  assert.equal(s.latestSamplePath(), undefined);
  s.runStarted(info);
  s.workerJoined({ rank: 0, host: 'a', pid: 1, backend: 'wasm' });
  s.workerJoined({ rank: 1, host: 'b', pid: 2, backend: 'wasm' });
  for (let step = 1; step <= 500; step++) s.stepCompleted(report(step, step === 300 ? { dLoss: NaN } : {}));
  s.sampleWritten(500, '/tmp/run-1/samples/step-500.png');
  s.checkpointWritten(500, '/tmp/run-1/checkpoints/step-500.ckpt', 1120);
  now = 1125;
  const snap = s.snapshot();
  assert.equal(snap.state, 'running');
  assert.equal(snap.run?.runId, 'run-1');
  assert.equal(snap.progress.step, 500);
  assert.equal(snap.progress.images, 500 * 64);
  assert.ok(Math.abs(snap.progress.imagesPerSecond! - 256) < 1e-6);
  assert.ok(Math.abs(snap.progress.stepsPerSecond! - 4) < 1e-6);
  assert.ok(Math.abs(snap.progress.etaSeconds! - (1_000_000 - 500) / 4) < 1e-3);
  assert.equal(snap.progress.lastStepAgeSeconds, 0);
  assert.equal(snap.progress.elapsedSeconds, 125);
  assert.ok(snap.history.steps.length <= 101);
  assert.equal(snap.history.steps.at(-1), 500);
  assert.ok(snap.history.series.dLoss.some((v) => Number.isNaN(v)));
  assert.equal(snap.workers.length, 2);
  assert.deepEqual(snap.workers.map((w) => [w.rank, w.host, w.connected, w.computeSeconds]), [[0, 'a', true, 0.2], [1, 'b', true, 0.3]]);
  assert.equal(s.latestSamplePath(), '/tmp/run-1/samples/step-500.png');
  assert.match(snap.sample!.url, /^\/samples\/latest\.png\?step=500&t=\d+$/);
  assert.equal(snap.checkpoint!.ageSeconds, 5);
  assert.deepEqual(snap.exchange, { sentBytes: 50_000, receivedBytes: 100_000 });

  // JSON keeps NaN visible as a string instead of null.
  const json = JSON.parse(s.snapshotJson()) as { history: { series: { dLoss: unknown[] } } };
  assert.ok(json.history.series.dLoss.includes('NaN'));
  assert.equal(JSON.stringify({ a: -Infinity }, nonFiniteAsString), '{"a":"-Infinity"}');

  s.workerLost(1, 'exited with code 1');
  s.runEnded(undefined, new Error('worker 1 failed'));
  const end = s.snapshot();
  assert.equal(end.state, 'failed');
  assert.equal(end.error, 'worker 1 failed');
  assert.equal(end.workerFailures, 1);
  assert.deepEqual(end.workers.map((w) => [w.rank, w.connected, w.lostReason]), [[0, true, null], [1, false, 'exited with code 1']]);
  assert.equal(end.progress.etaSeconds, null);
  assert.match(s.pageHtml(), /^<!doctype html>/);
  // Self-contained: no external scripts, styles, fonts or images.
  assert.doesNotMatch(s.pageHtml(), /(src|href)=["']?(https?:)?\/\//i);
  assert.doesNotMatch(s.pageHtml(), /@import|url\(\s*['"]?https?:/i);
});
