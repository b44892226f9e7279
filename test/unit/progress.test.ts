import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ProgressObserver, formatDuration } from '../../src/coordinator/progress.js';
import type { RunInfo, RunSummary, StepReport } from '../../src/coordinator/observer.js';

/** Collects everything written, as a file or pipe would. */
class CaptureStream extends Writable {
  readonly chunks: string[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(chunk.toString());
    cb();
  }
  get text(): string {
    return this.chunks.join('');
  }
}

/**
 * A stand-in for a terminal (a test double, not a real TTY): it reports
 * isTTY and a width the way a tty.WriteStream does, and records the bytes.
 */
class FakeTerminalStream extends CaptureStream {
  readonly isTTY = true;
  columns = 110;
}

const info: RunInfo = {
  runId: 'run-xyz',
  dataset: 'ring8',
  model: 'mlp',
  backend: 'wasm',
  version: '0.1.0',
  worldSize: 2,
  totalSteps: 25,
  startStep: 0,
  globalBatch: 64,
  outDir: '/tmp/run-xyz',
  startedAt: 1_700_000_000,
};

const summary: RunSummary = {
  steps: 25, images: 1600, imagesPerSecond: 128, dLoss: 0.6, gLoss: 0.8, dAccuracyReal: 0.7, dAccuracyFake: 0.6, worldSize: 2, backend: 'wasm', wallSeconds: 12.5, exchangeSecondsPerStep: 0.06,
};

function report(step: number, over: Partial<StepReport> = {}): StepReport {
  const time = info.startedAt + step * 0.5;
  return {
    step,
    images: 64,
    dLoss: 0.69,
    gLoss: 0.71,
    dAccuracyReal: 0.55,
    dAccuracyFake: 0.45,
    stepSeconds: 0.5,
    phaseSeconds: { data: 0.001, d_compute: 0.2, d_exchange: 0.03, g_compute: 0.2, g_exchange: 0.03, apply: 0.02 },
    exchangeBytes: { sent: 1000, received: 3000 },
    ranks: [],
    time,
    ...over,
  };
}

function driveRun(o: ProgressObserver, opts: { nanAt?: number; error?: Error } = {}): void {
  o.runStarted(info);
  o.workerJoined({ rank: 0, host: 'node-a', pid: 10, backend: 'wasm' });
  o.workerJoined({ rank: 1, host: 'node-b', pid: 11, backend: 'wasm' });
  for (let s = 1; s <= 25; s++) {
    o.stepCompleted(report(s, s === opts.nanAt ? { dLoss: NaN } : {}));
    if (s === 12) o.checkpointWritten(12, '/tmp/run-xyz/checkpoints/step-000012.ckpt', info.startedAt + 6);
    if (s === 15) o.sampleWritten(15, '/tmp/run-xyz/samples/step-000015.png');
  }
  o.runEnded(opts.error ? undefined : summary, opts.error);
}

test('formatDuration', () => {
  assert.equal(formatDuration(5.4), '5s');
  assert.equal(formatDuration(192), '3m12s');
  assert.equal(formatDuration(2 * 3600 + 5 * 60), '2h05m');
  assert.equal(formatDuration(3 * 86400 + 4 * 3600), '3d04h');
  assert.equal(formatDuration(NaN), '--');
});

test('plain: a line every N steps (plus first and last) and one per event, never carriage returns', async () => {
  const out = new CaptureStream();
  const o = new ProgressObserver({ format: 'plain', stream: out, every: 10 });
  assert.equal(o.resolvedFormat, 'plain');
  driveRun(o, { nanAt: 20 });
  await o.close();
  const lines = out.text.trimEnd().split('\n');
  assert.ok(!out.text.includes('\r'), 'plain output must not redraw');
  for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /, `line without timestamp: ${l}`);
  const stepLines = lines.filter((l) => / step \d+\/25/.test(l));
  assert.deepEqual(stepLines.map((l) => Number(/ step (\d+)\//.exec(l)![1])), [1, 10, 20, 25]);
  const at10 = stepLines[1]!;
  assert.match(at10, /step 10\/25 40%/);
  assert.match(at10, /128 img\/s/);
  assert.match(at10, /D 0\.6900 G 0\.7100/);
  assert.match(at10, /acc real 0\.55 fake 0\.45/);
  assert.match(at10, /ETA 8s/); // 15 steps left at 2 steps/s (0.5 s each)
  assert.match(stepLines[2]!, /D NaN G 0\.7100/, 'a NaN loss is shown, not hidden');
  assert.match(out.text, /run run-xyz: ring8 \/ mlp on wasm, 2 worker\(s\), steps 0→25, global batch 64/);
  assert.match(out.text, /worker 1 joined: node-b pid 11, backend wasm/);
  assert.match(out.text, /checkpoint at step 12: \/tmp\/run-xyz\/checkpoints\/step-000012\.ckpt/);
  assert.match(out.text, /sample grid at step 15: /);
  assert.match(lines.at(-1)!, /run finished: 25 steps, 1600 images in 13s \(128 img\/s on 2 × wasm, exchange 60\.0 ms\/step\)/);
});

test('json: one parseable object per line, step events every N, NaN as null with nonFinite', () => {
  const out = new CaptureStream();
  const o = new ProgressObserver({ format: 'json', stream: out, every: 10 });
  driveRun(o, { nanAt: 10 });
  const events = out.text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    events.map((e) => e.event),
    ['run_started', 'worker_joined', 'worker_joined', 'step', 'step', 'checkpoint', 'sample', 'step', 'step', 'run_ended'],
  );
  for (const e of events) assert.equal(typeof e.ts, 'number');
  const started = events[0]!;
  assert.equal(started.runId, 'run-xyz');
  assert.equal(started.totalSteps, 25);
  const steps = events.filter((e) => e.event === 'step');
  assert.deepEqual(steps.map((e) => e.step), [1, 10, 20, 25]);
  const s10 = steps[1]!;
  assert.equal(s10.dLoss, null);
  assert.deepEqual(s10.nonFinite, ['dLoss']);
  assert.equal(s10.gLoss, 0.71);
  assert.equal(s10.imagesPerSecond, 128);
  assert.equal(s10.etaSeconds, 7.5);
  assert.deepEqual(s10.phaseSeconds, report(10).phaseSeconds);
  assert.equal(steps[2]!.nonFinite, undefined);
  assert.deepEqual(events[5], { ...events[5], event: 'checkpoint', step: 12, path: '/tmp/run-xyz/checkpoints/step-000012.ckpt' });
  const ended = events.at(-1)!;
  assert.equal(ended.ok, true);
  assert.deepEqual(ended.summary, summary);
});

test('json: a failed run reports the error with its code', () => {
  const out = new CaptureStream();
  const o = new ProgressObserver({ format: 'json', stream: out });
  o.runStarted(info);
  o.workerLost(1, 'exited with code 137');
  const err = Object.assign(new Error('worker 1 died'), { code: 'DISTGAN_E_WORKER_FAILED' });
  o.runEnded(undefined, err);
  const events = out.text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(events[1], { ...events[1], event: 'worker_lost', rank: 1, reason: 'exited with code 137' });
  assert.deepEqual(events[2], { ...events[2], event: 'run_ended', ok: false, summary: null, error: { name: 'Error', code: 'DISTGAN_E_WORKER_FAILED', message: 'worker 1 died' } });
});

test('bar on a terminal: one line redrawn in place, events printed above it, a newline at the end', async () => {
  const term = new FakeTerminalStream();
  const o = new ProgressObserver({ format: 'auto', stream: term, redrawIntervalMs: 0 });
  assert.equal(o.resolvedFormat, 'bar');
  driveRun(o);
  await o.close();
  const text = term.text;
  // Every redraw starts with CR + erase-line, so the cursor never leaves the line.
  const draws = text.split('\r\x1b[2K').slice(1);
  assert.ok(draws.length >= 25, `expected a redraw per step, got ${draws.length}`);
  const stepDraws = draws.filter((d) => d.includes('step '));
  for (const d of stepDraws) {
    const line = d.split('\n')[0]!;
    assert.ok([...line].length <= term.columns - 1, `bar line wider than the terminal: ${[...line].length}`);
  }
  const last = stepDraws.at(-1)!.split('\n')[0]!;
  assert.match(last, /^\[█{10,30}\] step 25\/25 100% │   128 img\/s │ D  0\.6900 G  0\.7100 │ acc real 0\.55 fake 0\.45 │ ETA    0s$/);
  const width = /^\[(█+)\]/.exec(last)![1]!.length;
  const mid = stepDraws.find((d) => d.startsWith('[') && d.includes('step 12/25'))!;
  const filled = /^\[(█*)(░*)\]/.exec(mid)!;
  assert.equal(filled[1]!.length + filled[2]!.length, width, 'the bar keeps its width');
  assert.equal(filled[1]!.length, Math.round((12 / 25) * width));
  assert.match(mid, /\] step 12\/25  48%/);
  // Step redraws never emit a newline: only events and the end do.
  const newlines = text.split('\n').length - 1;
  const events = 1 /* run */ + 2 /* workers */ + 1 /* checkpoint */ + 1 /* sample */ + 1 /* final bar */ + 1 /* summary */;
  assert.equal(newlines, events, `newlines: ${JSON.stringify(text.slice(-400))}`);
  assert.match(text, /\r\x1b\[2Kcheckpoint at step 12: [^\n]+\n\r\x1b\[2K\[/, 'an event clears the bar, prints, and redraws the bar');
  assert.match(text, /ETA    0s\n[^\r]*run finished: 25 steps[^\r]*\n$/, 'the final bar stays, the summary goes below it, no redraw after');
});

test('bar: redraws are throttled but the last step always draws; a narrow terminal drops fields instead of wrapping', async () => {
  const term = new FakeTerminalStream();
  term.columns = 40;
  const o = new ProgressObserver({ format: 'bar', stream: term, redrawIntervalMs: 60_000 });
  o.runStarted(info);
  for (let s = 1; s <= 25; s++) o.stepCompleted(report(s));
  await o.close();
  const draws = term.text.split('\r\x1b[2K').slice(1).filter((d) => d.includes('step'));
  assert.equal(draws.length, 2, 'first draw, then only the last step within the interval');
  for (const d of draws) assert.ok([...d.replace(/\n$/, '')].length <= 39);
  assert.match(draws[1]!, /^step 25\/25 100% │ ETA    0s\n$/, 'accuracies, losses, then throughput go first; step and ETA stay');
  assert.ok(term.text.endsWith('\n'), 'close() ends the bar line');
});

test('auto off a terminal is plain; an unknown format is refused', () => {
  const out = new CaptureStream();
  assert.equal(new ProgressObserver({ format: 'auto', stream: out }).resolvedFormat, 'plain');
  assert.equal(new ProgressObserver({ format: 'auto', stream: out, isTTY: true }).resolvedFormat, 'bar');
  assert.equal(new ProgressObserver({ format: 'auto', stream: new FakeTerminalStream(), isTTY: false }).resolvedFormat, 'plain');
  assert.throws(() => new ProgressObserver({ format: 'fancy' as 'bar', stream: out }), /auto, bar, plain or json/);
  assert.throws(() => new ProgressObserver({ format: 'plain', stream: out, every: 0 }), /positive integer/);
});

test('printLine: other output goes above the bar, as is in plain, as a log event in json', () => {
  const term = new FakeTerminalStream();
  const bar = new ProgressObserver({ format: 'bar', stream: term, redrawIntervalMs: 0 });
  bar.runStarted(info);
  bar.stepCompleted(report(1));
  bar.printLine('distgan: rank 1 says hello\n');
  assert.match(term.text, /ETA +\S+\r\x1b\[2Kdistgan: rank 1 says hello\n\r\x1b\[2K\[/, 'cleared, printed, bar redrawn');

  const out = new CaptureStream();
  const plain = new ProgressObserver({ format: 'plain', stream: out });
  plain.printLine('distgan: done');
  assert.equal(out.text, 'distgan: done\n');

  const js = new CaptureStream();
  const json = new ProgressObserver({ format: 'json', stream: js });
  json.printLine('distgan: done');
  const e = JSON.parse(js.text) as Record<string, unknown>;
  assert.equal(e.event, 'log');
  assert.equal(e.message, 'distgan: done');
});

test('bar at terminal widths 0, 40, 80 and 120: never wider than the terminal, the ETA never cut, fields dropped by priority', () => {
  const seen = new Map<number, string>();
  for (const columns of [0, 40, 80, 120]) {
    const term = new FakeTerminalStream();
    term.columns = columns;
    const o = new ProgressObserver({ format: 'bar', stream: term, redrawIntervalMs: 0 });
    o.runStarted({ ...info, totalSteps: 2000 });
    for (let s = 1; s <= 120; s++) o.stepCompleted(report(s, { time: info.startedAt + s * 0.5 }));
    const line = term.text.split('\r\x1b[2K').filter((d) => d.includes('120/2000')).at(-1)!.replace(/\n$/, '');
    // Width 0 means "unknown" (a pipe that says 0): the 100-column default applies, not a 20-column collapse.
    const limit = (columns > 0 ? columns : 100) - 1;
    assert.ok([...line].length <= limit, `${columns} columns: ${[...line].length} > ${limit}: ${line}`);
    assert.match(line, /step +120\/2000 +6% .*│ ETA +\d+m\d{2}s$/, `${columns} columns: step and a whole ETA are shown: ${line}`);
    assert.doesNotMatch(line, /…/, 'no field is cut');
    seen.set(columns, line);
  }
  assert.match(seen.get(120)!, /img\/s │ D .* G .* │ acc real .* fake .* │ ETA/, '120 columns show everything');
  assert.match(seen.get(80)!, /img\/s │ D .* G .* │ ETA/, '80 columns keep throughput and losses');
  assert.doesNotMatch(seen.get(40)!, /acc real|D  /, '40 columns keep only what matters most');
  assert.match(seen.get(0)!, /acc real .* │ ETA/, 'width 0 means the 100-column default, not a collapse to 20');
});
