/**
 * The coordinator and its workers in this process, over real ZeroMQ sockets,
 * once per transport (tcp on port 0, ipc in a temporary folder), as
 * zeromq.js tests its own sockets. Deadlines run on the coordinator's
 * injected clock: a 10-minute timeout passes when the test moves the clock,
 * and each case asserts it took a few seconds of wall time at most.
 *
 *  - a run completes: its summary, every observer event in order, and no
 *    tfjs tensor left behind by the coordinator or either worker;
 *  - join deadline: a worker with other data is refused with the reason, and
 *    the deadline then fails the run naming the missing worker;
 *  - step deadline: a member that never answers is named, and the other
 *    worker is told to stop;
 *  - late answers (a past step) and second answers to a phase are ignored:
 *    the weights end bit-identical to those of an untouched run;
 *  - a member vanishing mid-run is noticed at the coordinator's next send to
 *    it and named; the other worker is told to stop;
 *  - a member vanishing while joining frees its rank for a replacement;
 *  - a worker whose coordinator never answers gives up at its join deadline
 *    (the worker has no injected clock: this one waits 1 s).
 *
 * What needs whole processes (signals, kill -9, orphans, exit codes, the CLI)
 * stays in test/process.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Router } from 'zeromq';
import { JOIN_PROBE_MS } from '../../src/coordinator/machine.js';
import type { RunSummary } from '../../src/coordinator/observer.js';
import { initBackend } from '../../src/shared/compute/backend.js';
import { tf } from '../../src/shared/compute/tf.js';
import { openDataset } from '../../src/shared/data/open.js';
import { DeadlineError, DistganError, JoinRefusedError, WorkerFailedError } from '../../src/shared/errors.js';
import { MsgType } from '../../src/shared/protocol.js';
import {
  FakeClock,
  FakePeer,
  Relay,
  TRANSPORTS,
  answerKind,
  bindRaw,
  deferred,
  isPhaseAnswer,
  settleWithin,
  sleep,
  startCoordinator,
  startWorker,
  waitUntil,
  withTempDir,
  within,
  type CoordinatorUnderTest,
  type Outcome,
  type PhaseAnswer,
  type Tap,
  type Transport,
  type WorkerOutcome,
  type WorkerUnderTest,
} from '../helpers/in-process.js';

/** Every deadline under test: long enough that only the fake clock can reach it. */
const TIMEOUT_S = 600;
/** Wall time a deadline case may take at most, all of it (far below TIMEOUT_S). */
const WALL_LIMIT_S = 10;
/** Real time the test gives a ROUTER to see a closed connection end (loopback: well under a millisecond). */
const DISCONNECT_MS = 200;

before(async () => {
  await initBackend('wasm', { log: () => {} });
});

/** The last lines of the coordinator's and workers' logs, for assertion messages. */
function said(c: CoordinatorUnderTest, workers: WorkerUnderTest[] = []): string {
  const w = workers.map((x, i) => `worker ${i}:\n  ${x.logs.slice(-5).join('\n  ')}`);
  return [`coordinator:\n  ${c.logs.slice(-12).join('\n  ')}`, ...w].join('\n');
}

function completed(o: Outcome, c: CoordinatorUnderTest, workers: WorkerUnderTest[] = []): RunSummary {
  if (!o.ok) assert.fail(`the run failed: ${String(o.error)}\n${said(c, workers)}`);
  return o.summary;
}

function failed(o: Outcome, c: CoordinatorUnderTest): DistganError {
  assert.equal(o.ok, false, `the run completed, expected a failure\n${said(c)}`);
  const { error } = o as { ok: false; error: unknown };
  assert.ok(error instanceof DistganError, `not a DistganError: ${String(error)}`);
  return error;
}

/** A worker told by the coordinator to stop because the run failed: exit code 3, with the coordinator's reason. */
function stoppedForFailure(o: WorkerOutcome, reason: RegExp): void {
  if (!o.ok) assert.fail(`the worker failed instead of being stopped: ${String(o.error)}`);
  assert.equal(o.exit.code, 3, `exit ${o.exit.code}: ${o.exit.reason}`);
  assert.match(o.exit.reason, reason);
}

/** Checks the fake clock, not the real one, ended the wait. */
function assertFast(t0: number, what: string): void {
  const s = (performance.now() - t0) / 1000;
  assert.ok(s < WALL_LIMIT_S, `${what} took ${s.toFixed(1)} s of wall time; the fake clock should have ended it at once (the timeout is ${TIMEOUT_S} s)`);
}

/** Moves the clock to 1 ms before a deadline set at `from` and checks the run is still going, then past it. */
async function crossDeadline(c: CoordinatorUnderTest, clock: FakeClock, from: number, timeoutMs: number): Promise<Outcome> {
  clock.advance(from + timeoutMs - 1 - clock.now());
  await sleep(50); // about 10 ticks
  assert.equal(c.settled(), false, `the run ended before its deadline\n${said(c)}`);
  clock.advance(1);
  return c.outcome;
}

/** Runs two real workers (ranks 0 and 1) through a 6-step run; a rank with a tap talks to the coordinator through a Relay with it. */
async function trainToEnd(transport: Transport, dir: string, taps: Partial<Record<0 | 1, Tap>> = {}): Promise<{ summary: RunSummary; checksum: string }> {
  await mkdir(dir);
  const c = await startCoordinator({ transport, dir, worldSize: 2, config: { steps: 6 } });
  const relays: Relay[] = [];
  const workers: WorkerUnderTest[] = [];
  try {
    for (const rank of [0, 1] as const) {
      const tap = taps[rank];
      const relay = tap ? await Relay.open({ transport, dir, name: `relay-${rank}`, coordinator: c.endpoint, tap }) : undefined;
      if (relay) relays.push(relay);
      workers.push(startWorker(relay?.endpoint ?? c.endpoint, { rank }));
    }
    const summary = completed(await c.outcome, c, workers);
    for (const w of workers) assert.deepEqual(await w.outcome, { ok: true, exit: { code: 0, reason: 'run complete' } });
    // The mirror holds exactly what every replica holds (the coordinator compared their checksums at the end).
    return { summary, checksum: c.run.trainer.checksum() };
  } finally {
    await c.close();
    await settleWithin(workers.map((w) => w.outcome), 5000);
    for (const r of relays) r.close();
  }
}

for (const transport of TRANSPORTS) {
  describe(`coordinator in-process over ${transport}`, () => {
    test('two workers train to completion: summary, every observer event in order, no tensor left behind', { timeout: 60_000 }, async () => {
      const tensorsBefore = tf.memory().numTensors;
      await withTempDir(async (dir) => {
        const steps = 4;
        const c = await startCoordinator({ transport, dir, worldSize: 2, config: { steps } });
        if (transport === 'tcp') assert.match(c.endpoint, /^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/, 'port 0 resolved to the port it got');
        else assert.equal(c.endpoint, `ipc://${join(dir, 'coordinator.sock')}`);
        const workers = [startWorker(c.endpoint), startWorker(c.endpoint)];
        try {
          const summary = completed(await c.outcome, c, workers);
          for (const w of workers) assert.deepEqual(await w.outcome, { ok: true, exit: { code: 0, reason: 'run complete' } });

          assert.equal(summary.steps, steps);
          assert.equal(summary.images, steps * c.config.batchSize);
          assert.equal(summary.worldSize, 2);
          assert.equal(summary.backend, 'wasm');
          for (const k of ['dLoss', 'gLoss', 'dAccuracyReal', 'dAccuracyFake', 'imagesPerSecond', 'wallSeconds'] as const) {
            assert.ok(Number.isFinite(summary[k]), `summary.${k} = ${summary[k]}`);
          }
          assert.deepEqual(JSON.parse(await readFile(join(c.config.out, 'summary.json'), 'utf8')), JSON.parse(JSON.stringify(summary)), 'summary.json holds the summary');

          const o = c.observer;
          assert.deepEqual(o.kinds(), ['runStarted', 'workerJoined', 'workerJoined', ...Array<string>(steps).fill('stepCompleted'), 'sampleWritten', 'checkpointWritten', 'runEnded']);
          const [started] = o.of('runStarted');
          assert.deepEqual(
            { worldSize: started!.info.worldSize, totalSteps: started!.info.totalSteps, startStep: started!.info.startStep, globalBatch: started!.info.globalBatch, dataset: started!.info.dataset },
            { worldSize: 2, totalSteps: steps, startStep: 0, globalBatch: c.config.batchSize, dataset: 'ring8' },
          );
          assert.deepEqual(o.of('workerJoined').map((e) => e.worker.rank).sort(), [0, 1]);
          for (const e of o.of('workerJoined')) assert.deepEqual([e.worker.pid, e.worker.backend], [process.pid, 'wasm']);
          const reports = o.of('stepCompleted').map((e) => e.report);
          assert.deepEqual(reports.map((r) => r.step), [1, 2, 3, 4]);
          for (const r of reports) {
            assert.equal(r.images, c.config.batchSize);
            assert.deepEqual(r.ranks.map((x) => x.rank), [0, 1]);
            assert.ok(r.exchangeBytes.sent > 0 && r.exchangeBytes.received > 0, `step ${r.step}: bytes ${JSON.stringify(r.exchangeBytes)}`);
          }
          const [sample] = o.of('sampleWritten');
          const [checkpoint] = o.of('checkpointWritten');
          assert.equal(sample!.step, steps);
          assert.equal(checkpoint!.step, steps);
          assert.ok(existsSync(sample!.path) && existsSync(checkpoint!.path), 'the sample grid and the checkpoint exist');
          const [ended] = o.of('runEnded');
          assert.deepEqual(ended!.summary, summary);
          assert.equal(ended!.error, undefined);
        } finally {
          await c.close();
          await settleWithin(workers.map((w) => w.outcome), 5000);
        }
      });
      assert.equal(tf.memory().numTensors, tensorsBefore, 'tensors left behind by the coordinator (mirror, samples, export) or the workers');
    });

    test('join deadline (fake clock): a worker with other data is refused with the reason; the deadline then names the missing worker', { timeout: 60_000 }, async () => {
      await withTempDir(async (dir) => {
        const clock = new FakeClock();
        const t0 = performance.now();
        const c = await startCoordinator({ transport, dir, worldSize: 1, clock, config: { joinTimeout: TIMEOUT_S } });
        const start = clock.now();
        // It asks for ring8 and opens grid25: a node whose copy of the data differs.
        const w = startWorker(c.endpoint, { openDataset: () => openDataset('grid25') });
        try {
          const refused = await w.outcome;
          assert.equal(refused.ok, false, 'the worker must be refused');
          const err = (refused as { ok: false; error: unknown }).error;
          assert.ok(err instanceof JoinRefusedError, String(err));
          assert.match(err.message, /refused this worker: dataset fingerprint .* differs .*not the same data/);
          assert.match(c.observer.of('peerRejected')[0]?.reason ?? '', /dataset fingerprint .* differs/, 'the refusal is reported');

          const e = failed(await crossDeadline(c, clock, start, TIMEOUT_S * 1000), c);
          assert.ok(e instanceof DeadlineError);
          assert.equal(e.code, 'DISTGAN_E_DEADLINE');
          assert.match(e.message, new RegExp(`join deadline \\(${TIMEOUT_S} s, --join-timeout\\) passed: 1 of 1 workers never joined`));
          assert.equal(c.observer.of('runEnded')[0]?.error, e);
          assertFast(t0, 'the join deadline');
        } finally {
          await c.close();
          await settleWithin([w.outcome], 5000);
        }
      });
    });

    test('step deadline (fake clock): a member that never answers is named; the other worker is told to stop', { timeout: 60_000 }, async () => {
      await withTempDir(async (dir) => {
        const clock = new FakeClock();
        const t0 = performance.now();
        const c = await startCoordinator({ transport, dir, worldSize: 2, clock, config: { stepTimeout: TIMEOUT_S } });
        const peer = new FakePeer(c.endpoint);
        // The honest worker's first answer is signalled once it is on its way to the coordinator.
        const honestAnswered = deferred();
        const relay = await Relay.open({
          transport, dir, name: 'relay', coordinator: c.endpoint,
          tap: async (m, forward) => {
            await forward(m);
            if (isPhaseAnswer(m)) honestAnswered.resolve();
          },
        });
        const honest = startWorker(relay.endpoint, { rank: 1 });
        try {
          // Rank 0, so that whoever else is still outstanding, it is the rank the failure names first.
          const welcome = await peer.hello(0);
          await peer.ready(welcome, c.run.dataset.count);
          assert.equal((await peer.receive()).t, MsgType.Init);
          const firstPhase = await peer.receive();
          const deadlineFrom = clock.now();
          await honestAnswered.promise;

          const e = failed(await crossDeadline(c, clock, deadlineFrom, TIMEOUT_S * 1000), c);
          assert.ok(e instanceof WorkerFailedError, String(e));
          assert.equal(e.code, 'DISTGAN_E_WORKER_FAILED');
          assert.equal(e.rank, 0);
          assert.match(e.message, new RegExp(`^rank 0 \\(fake-peer pid ${process.pid}\\).* did not answer .*step 0 within ${TIMEOUT_S} s \\(--step-timeout\\)`));
          assert.deepEqual(c.observer.of('workerLost').map((x) => x.rank), [0]);
          stoppedForFailure(await honest.outcome, /rank 0 \(fake-peer/);
          const stop = await peer.receive();
          assert.deepEqual([stop.t, (stop as { failed?: boolean }).failed], [MsgType.Stop, true], `after ${MsgType[firstPhase.t]}, the fake peer is told to stop`);
          assertFast(t0, 'the step deadline');
        } finally {
          peer.close();
          await c.close();
          await settleWithin([honest.outcome], 5000);
          relay.close();
        }
      });
    });

    test('late answers and second answers to a phase are ignored: the weights end bit-identical to an untouched run', { timeout: 90_000 }, async () => {
      await withTempDir(async (dir) => {
        const clean = await trainToEnd(transport, join(dir, 'clean'));
        // Rank 1 answers each phase three times: first with its answer to the
        // same phase one step earlier (late: a past step number, stale
        // gradients), then the answer, then again with the gradient doubled
        // (a second answer to the same phase: only the first may count).
        // Rank 0's answer to each phase waits until rank 1's three are out, so
        // that they reach the coordinator while it still awaits rank 0.
        const previous = new Map<string, PhaseAnswer>();
        const rank1Out = new Map<string, ReturnType<typeof deferred<void>>>();
        const outFor = (m: PhaseAnswer): ReturnType<typeof deferred<void>> => {
          const key = `${m.step}:${answerKind(m)}`;
          if (!rank1Out.has(key)) rank1Out.set(key, deferred());
          return rank1Out.get(key)!;
        };
        const sent = { late: 0, second: 0 };
        const tampered = await trainToEnd(transport, join(dir, 'tampered'), {
          0: async (m, forward) => {
            if (isPhaseAnswer(m)) await outFor(m).promise;
            await forward(m);
          },
          1: async (m, forward) => {
            if (!isPhaseAnswer(m)) return forward(m);
            const stale = previous.get(answerKind(m));
            previous.set(answerKind(m), m);
            if (stale) {
              await forward(stale);
              sent.late++;
            }
            await forward(m);
            await forward({ ...m, frames: { ...m.frames, grad: m.frames.grad.map((x) => 2 * x) } } as PhaseAnswer);
            sent.second++;
            outFor(m).resolve();
          },
        });
        assert.deepEqual(sent, { late: 5 * 2, second: 6 * 2 }, 'every answer of rank 1 after the first step had a late one before it, every one a second one after it');
        assert.equal(tampered.checksum, clean.checksum, 'a late or a second answer was counted');
        for (const k of ['steps', 'images', 'dLoss', 'gLoss', 'dAccuracyReal', 'dAccuracyFake'] as const) assert.equal(tampered.summary[k], clean.summary[k], k);
      });
    });

    test('a member vanishing mid-run is noticed at the next send to it and named; the other worker is told to stop', { timeout: 60_000 }, async () => {
      await withTempDir(async (dir) => {
        // The clock stands still: no deadline can end this run, only the failed send.
        const clock = new FakeClock();
        const c = await startCoordinator({ transport, dir, worldSize: 2, clock, config: { steps: 100, stepTimeout: TIMEOUT_S } });
        const VANISH_AT = 2;
        // Rank 0's first answer of step 2 waits at its relay until rank 1 has gone,
        // so that the coordinator's next send to rank 1 comes after it vanished.
        const gate = deferred();
        const holding = await Relay.open({
          transport, dir, name: 'holding', coordinator: c.endpoint,
          tap: async (m, forward) => {
            if (isPhaseAnswer(m) && m.step === VANISH_AT) await gate.promise;
            await forward(m);
          },
        });
        // Rank 1 answers the first phase of step 2, then its connection ends.
        const answered = deferred();
        const vanishing = await Relay.open({
          transport, dir, name: 'vanishing', coordinator: c.endpoint,
          tap: async (m, forward) => {
            await forward(m);
            if (isPhaseAnswer(m) && m.step === VANISH_AT) answered.resolve();
          },
        });
        const stays = startWorker(holding.endpoint, { rank: 0 });
        const leaves = startWorker(vanishing.endpoint, { rank: 1 });
        try {
          await answered.promise;
          vanishing.vanish();
          // The worker behind it goes too (its pending receive fails at once).
          (await leaves.socket).close();
          await sleep(DISCONNECT_MS);
          gate.resolve();
          // The send to rank 1 fails at once (the ROUTER is mandatory): an `unreachable` event.
          // (Had the ROUTER not yet seen the connection end, the send would be queued
          // and lost, and only the step deadline would end the run: a failure here.)
          const o = await within(c.outcome, 3000);
          assert.ok(o, `the coordinator did not notice that rank 1 had gone when it next sent to it\n${said(c)}`);
          const e = failed(o, c);
          assert.ok(e instanceof WorkerFailedError, String(e));
          assert.equal(e.rank, 1);
          assert.match(e.message, /^rank 1 \(\S+ pid \d+\) cannot be reached: Host unreachable/);
          assert.deepEqual(c.observer.of('workerLost').map((x) => x.rank), [1]);
          stoppedForFailure(await stays.outcome, /rank 1 \(\S+ pid \d+\) cannot be reached/);
          assert.equal((await leaves.outcome).ok, false, 'the vanished worker lost its socket');
          // The failure checkpointed the last step every replica completed.
          assert.deepEqual(c.observer.of('checkpointWritten').map((x) => x.step), [VANISH_AT]);
        } finally {
          gate.resolve();
          await c.close();
          await settleWithin([stays.outcome, leaves.outcome], 5000);
          holding.close();
          vanishing.close();
        }
      });
    });

    test('a worker whose coordinator never answers gives up at its join deadline', { timeout: 30_000 }, async () => {
      await withTempDir(async (dir) => {
        // A ROUTER that takes the connection and never reads from it.
        const silent = new Router({ linger: 0 });
        try {
          const endpoint = await bindRaw(silent, transport, dir, 'silent');
          const o = await startWorker(endpoint, { joinTimeout: 1 }).outcome;
          assert.equal(o.ok, false, 'the worker must give up');
          const err = (o as { ok: false; error: unknown }).error;
          assert.ok(err instanceof DeadlineError, String(err));
          assert.ok(err.message.startsWith(`no answer from the coordinator at ${endpoint} within 1 s while waiting for the answer to Hello`), err.message);
        } finally {
          silent.close();
        }
      });
    });

    test('a member vanishing while joining frees its rank (join probes, fake clock); a replacement takes it and the run completes', { timeout: 60_000 }, async () => {
      await withTempDir(async (dir) => {
        const clock = new FakeClock();
        const c = await startCoordinator({ transport, dir, worldSize: 2, clock, config: { joinTimeout: 10 * TIMEOUT_S } });
        const peer = new FakePeer(c.endpoint);
        assert.equal((await peer.hello(0)).rank, 0);
        peer.close(); // gone before Ready: nothing tells the ROUTER but a failed send
        // The coordinator re-sends Welcome to joined members every JOIN_PROBE_MS;
        // the first probe after the connection ended fails and frees rank 0.
        const freed = /rank 0 \(fake-peer pid \d+\) went away while joining .*its rank is free again/;
        await waitUntil(() => {
          if (c.logs.some((l) => freed.test(l))) return true;
          clock.advance(JOIN_PROBE_MS);
          return false;
        }, 5000, 'rank 0 to be freed', 20);
        const workers = [startWorker(c.endpoint, { rank: 0 }), startWorker(c.endpoint, { rank: 1 })];
        try {
          const summary = completed(await c.outcome, c, workers);
          assert.equal(summary.steps, c.config.steps);
          assert.deepEqual(c.observer.of('workerJoined').map((e) => [e.worker.rank, e.worker.backend]).sort(), [[0, 'wasm'], [1, 'wasm']]);
          for (const w of workers) assert.deepEqual(await w.outcome, { ok: true, exit: { code: 0, reason: 'run complete' } });
        } finally {
          await c.close();
          await settleWithin(workers.map((w) => w.outcome), 5000);
        }
      });
    });
  });
}
