/**
 * In-process runs for the sockets tier: a real Coordinator and real Workers
 * in this one process, over real ZeroMQ sockets (tcp on port 0, or ipc in a
 * temporary folder), with a clock the test can drive.
 *
 * The run is built as the CLI builds it (src/cli/coordinator-host.ts:
 * openDataset, buildRun; the wasm backend is the caller's to initialise once),
 * without what hostRun adds for people: progress output, the run log files,
 * Prometheus and the status page. A RecordingObserver stands in for those,
 * and every log line is kept for assertion messages.
 *
 * Peers that misbehave on purpose are either raw DEALER sockets speaking the
 * protocol through encode/decode (FakePeer), or real Workers behind a Relay
 * that rewrites what they send (zeromq.js sockets are sealed, so a worker's
 * own socket cannot be wrapped).
 */
import { join } from 'node:path';
import { Dealer, Router } from 'zeromq';
import { Coordinator } from '../../src/coordinator/coordinator.js';
import type { RunInfo, RunObserver, RunSummary, StepReport, WorkerInfo } from '../../src/coordinator/observer.js';
import { resolveConfig, type RunConfig } from '../../src/shared/config.js';
import type { Dataset } from '../../src/shared/data/api.js';
import { openDataset } from '../../src/shared/data/open.js';
import type { GanTrainer } from '../../src/shared/gan/api.js';
import { MsgType, PROTOCOL_VERSION, decode, encode, type Message } from '../../src/shared/protocol.js';
import { buildRun, type BuiltRun } from '../../src/shared/run.js';
import { VERSION } from '../../src/shared/version.js';
import { withTempDir as withTempDirIn } from './cli.js';
import { Worker, type WorkerExit } from '../../src/worker/worker.js';

export type Transport = 'tcp' | 'ipc';
/** Every case runs once per transport, as zeromq.js's own tests do. */
export const TRANSPORTS: readonly Transport[] = ['tcp', 'ipc'];

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A fresh temporary folder for one test, removed afterwards whatever happens (test/helpers/cli.ts). */
export const withTempDir = <T>(fn: (dir: string) => Promise<T>): Promise<T> => withTempDirIn(fn, 'distgan-inproc-');

/** A unique address to bind on `transport`: tcp port 0 (the OS picks; the socket reports it), or a socket file in `dir`. */
export function bindAddress(transport: Transport, dir: string, name: string): string {
  return transport === 'tcp' ? 'tcp://127.0.0.1:0' : `ipc://${join(dir, `${name}.sock`)}`;
}

/** Binds a raw socket of the test's own on `transport` and returns its endpoint (libzmq spells port 0 as `*`). */
export async function bindRaw(socket: Router, transport: Transport, dir: string, name: string): Promise<string> {
  await socket.bind(bindAddress(transport, dir, name).replace(/:0$/, ':*'));
  return socket.lastEndpoint!;
}

/** A clock (ms) that moves only when the test says so; the coordinator takes it as its `now`. */
export class FakeClock {
  /** An arbitrary start, so that nothing can rely on the clock starting at 0. */
  private t = 1_000_000_000;
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A promise with its resolve function, for gates and signals between a test and its peers. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Polls `cond` every `everyMs` until it holds; throws naming `what` after `ms`. */
export async function waitUntil(cond: () => boolean, ms: number, what: string, everyMs = 10): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------
// Observing a run.

export type RecordedEvent =
  | { kind: 'runStarted'; info: RunInfo }
  | { kind: 'workerJoined'; worker: WorkerInfo }
  | { kind: 'workerLost'; rank: number; reason: string }
  | { kind: 'stepCompleted'; report: StepReport }
  | { kind: 'sampleWritten'; step: number; path: string }
  | { kind: 'checkpointWritten'; step: number; path: string }
  | { kind: 'peerRejected'; reason: string; quiet: boolean }
  | { kind: 'runEnded'; summary: RunSummary | undefined; error: Error | undefined };

/** Keeps every observer call, in order. */
export class RecordingObserver implements RunObserver {
  readonly events: RecordedEvent[] = [];

  runStarted(info: RunInfo): void { this.events.push({ kind: 'runStarted', info }); }
  workerJoined(worker: WorkerInfo): void { this.events.push({ kind: 'workerJoined', worker }); }
  workerLost(rank: number, reason: string): void { this.events.push({ kind: 'workerLost', rank, reason }); }
  stepCompleted(report: StepReport): void { this.events.push({ kind: 'stepCompleted', report }); }
  sampleWritten(step: number, path: string): void { this.events.push({ kind: 'sampleWritten', step, path }); }
  checkpointWritten(step: number, path: string): void { this.events.push({ kind: 'checkpointWritten', step, path }); }
  peerRejected(reason: string, quiet: boolean): void { this.events.push({ kind: 'peerRejected', reason, quiet }); }
  runEnded(summary: RunSummary | undefined, error?: Error): void { this.events.push({ kind: 'runEnded', summary, error }); }

  /** The kinds of the events so far, in order. */
  kinds(): string[] {
    return this.events.map((e) => e.kind);
  }

  /** The events of one kind, in order. */
  of<K extends RecordedEvent['kind']>(kind: K): Array<Extract<RecordedEvent, { kind: K }>> {
    return this.events.filter((e): e is Extract<RecordedEvent, { kind: K }> => e.kind === kind);
  }
}

// ---------------------------------------------------------------------------
// The coordinator.

/**
 * The tiny run every case trains: 2-D points of an 8-Gaussian ring, the MLP
 * at width 0.25 (the process tier's `--width 0.25`), on wasm. Sample grids
 * and checkpoints only at the end; replica checksums every 2 steps.
 */
export function tinyConfig(out: string, overrides: Partial<RunConfig> = {}): Readonly<RunConfig> {
  return resolveConfig({
    dataset: 'ring8',
    model: 'mlp',
    width: 0.25,
    batchSize: 32,
    steps: 4,
    backend: 'wasm',
    sampleEvery: 0,
    checkpointEvery: 0,
    checksumEvery: 2,
    metricsPort: 0,
    logFormat: 'plain',
    out,
    ...overrides,
  });
}

/** How a coordinator's run ended: its summary, or the error it failed with. */
export type Outcome = { ok: true; summary: RunSummary } | { ok: false; error: unknown };

export interface CoordinatorUnderTest {
  coordinator: Coordinator;
  /** The run as the coordinator built it: its wire spec, dataset, and the mirror trainer. */
  run: BuiltRun;
  endpoint: string;
  config: Readonly<RunConfig>;
  observer: RecordingObserver;
  logs: string[];
  /** Settles when the run ends; never rejects. */
  outcome: Promise<Outcome>;
  /** True once `outcome` has settled. */
  settled(): boolean;
  /** Closes the socket and releases the mirror trainer and the dataset. Idempotent. */
  close(): Promise<void>;
}

/**
 * Builds a coordinator for `worldSize` workers, binds it on `transport` and
 * starts its run (it waits for workers). `clock` replaces its clock; `tickMs`
 * is how often it checks deadlines (default 5 ms with a fake clock, else its own).
 */
export async function startCoordinator(opts: {
  transport: Transport;
  dir: string;
  worldSize: number;
  config?: Partial<RunConfig>;
  clock?: FakeClock;
  tickMs?: number;
}): Promise<CoordinatorUnderTest> {
  const config = tinyConfig(join(opts.dir, 'run'), opts.config);
  const dataset = await openDataset(config.dataset, { flip: false, seed: config.seed });
  const run = buildRun(config, dataset, { runId: 'in-process', backend: 'wasm', stepTimeout: config.stepTimeout });
  const observer = new RecordingObserver();
  const logs: string[] = [];
  const tickMs = opts.tickMs ?? (opts.clock ? 5 : undefined);
  const coordinator = new Coordinator({
    config,
    worldSize: opts.worldSize,
    bind: bindAddress(opts.transport, opts.dir, 'coordinator'),
    run,
    observers: [observer],
    version: VERSION,
    log: (line) => logs.push(line),
    ...(opts.clock ? { now: opts.clock.now } : {}),
    ...(tickMs === undefined ? {} : { tickMs }),
  });
  let endpoint: string;
  try {
    endpoint = await coordinator.bind();
  } catch (e) {
    await coordinator.close();
    run.trainer.dispose();
    await dataset.close();
    throw e;
  }
  let done = false;
  const outcome = coordinator.run().then(
    (summary): Outcome => ({ ok: true, summary }),
    (error: unknown): Outcome => ({ ok: false, error }),
  );
  void outcome.then(() => (done = true));
  let closed = false;
  return {
    coordinator,
    run,
    endpoint,
    config,
    observer,
    logs,
    outcome,
    settled: () => done,
    async close() {
      if (closed) return;
      closed = true;
      await coordinator.close();
      run.trainer.dispose();
      await dataset.close();
    },
  };
}

// ---------------------------------------------------------------------------
// Workers.

/** How a worker's run ended: the coordinator told it to stop, or it failed. */
export type WorkerOutcome = { ok: true; exit: WorkerExit } | { ok: false; error: unknown };

export interface WorkerUnderTest {
  logs: string[];
  /** Settles when the worker's run ends; never rejects. */
  outcome: Promise<WorkerOutcome>;
  /** The worker's DEALER once it has made it (closing it makes the worker vanish). */
  socket: Promise<Dealer>;
}

/** Starts a real Worker (wasm) against `endpoint`: joins, builds the run it is sent, trains until told to stop. */
export function startWorker(
  endpoint: string,
  opts: {
    rank?: number;
    /** Seconds to wait for the coordinator's answer to Hello and for Init (default 30). */
    joinTimeout?: number;
    openDataset?: (ref: string, o: { flip: boolean; seed: number }) => Promise<Dataset>;
    wrapTrainer?: (t: GanTrainer) => GanTrainer;
  } = {},
): WorkerUnderTest {
  const logs: string[] = [];
  const socket = deferred<Dealer>();
  const worker = new Worker({
    connect: endpoint,
    ...(opts.rank === undefined ? {} : { rank: opts.rank }),
    backend: { name: 'wasm', reason: 'in-process test' },
    openDataset: opts.openDataset ?? ((ref, o) => openDataset(ref, o)),
    joinTimeout: opts.joinTimeout ?? 30,
    version: VERSION,
    log: (line) => logs.push(line),
    configureSocket: async (d) => socket.resolve(d),
    ...(opts.wrapTrainer ? { wrapTrainer: opts.wrapTrainer } : {}),
  });
  const outcome = worker.run().then(
    (exit): WorkerOutcome => ({ ok: true, exit }),
    (error: unknown): WorkerOutcome => ({ ok: false, error }),
  );
  return { logs, outcome, socket: socket.promise };
}

/** `p`'s value, or undefined if it has not settled within `ms` (the timer is cleared either way, so it never holds the process open). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for each promise at most `ms`, so that a cleanup never hangs a test run. */
export async function settleWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  await within(Promise.allSettled(promises), ms);
}

// ---------------------------------------------------------------------------
// Misbehaving peers.

/** A worker's answer to one phase of a step: it carries a step number and a gradient. */
export type PhaseAnswer = Extract<Message, { step: number; frames: { grad: Float32Array; aux: Float32Array } }>;

/**
 * Whether a message a worker sends is its answer to a phase (the only
 * worker-to-coordinator messages with a gradient), however the protocol
 * names the phases.
 */
export function isPhaseAnswer(m: Message): m is PhaseAnswer {
  const frames = (m as { frames?: Record<string, unknown> }).frames;
  return typeof (m as { step?: unknown }).step === 'number' && frames !== undefined && frames.grad instanceof Float32Array;
}

/** What answer `m` is, for grouping and messages: its type name, and its phase where the protocol names one. */
export function answerKind(m: PhaseAnswer): string {
  const phase = (m as { phase?: unknown }).phase;
  return phase === undefined ? MsgType[m.t]! : `${MsgType[m.t]}(${String(phase)})`;
}

/** Decides what the coordinator gets for one message a worker sent: `forward` it (any number of times, altered, later) or not. */
export type Tap = (msg: Message, forward: (m: Message) => Promise<void>) => Promise<void>;

/**
 * A man-in-the-middle between one worker and the coordinator, on the same
 * transport. The worker connects to the relay and the relay to the
 * coordinator; each message the worker sends goes through `tap`, one at a
 * time and in order; the coordinator's messages go back unchanged.
 */
export class Relay {
  private readonly front = new Router({ linger: 0 });
  private readonly back = new Dealer({ linger: 1000 });
  private workerId: Buffer | undefined;
  private closed = false;
  endpoint = '';

  private constructor(private readonly tap: Tap) {}

  static async open(opts: { transport: Transport; dir: string; name: string; coordinator: string; tap: Tap }): Promise<Relay> {
    const relay = new Relay(opts.tap);
    relay.endpoint = await bindRaw(relay.front, opts.transport, opts.dir, opts.name);
    relay.back.connect(opts.coordinator);
    void relay.pump();
    return relay;
  }

  private async pump(): Promise<void> {
    const up = (async () => {
      for await (const [id, ...frames] of this.front) {
        this.workerId = id;
        await this.tap(decode(frames), (m) => this.back.send(encode(m)));
      }
    })();
    const down = (async () => {
      for await (const frames of this.back) if (this.workerId) await this.front.send([this.workerId, ...frames]);
    })();
    // Either side ends with an error once closed; anything else is a bug in the test.
    await Promise.all([up, down]).catch((e: unknown) => {
      if (!this.closed) throw e;
    });
  }

  /** Drops the relay's connection to the coordinator (what it had queued is flushed first): to the coordinator, the member vanished. */
  vanish(): void {
    this.closed = true;
    if (!this.back.closed) this.back.close();
  }

  close(): void {
    this.closed = true;
    if (!this.back.closed) this.back.close();
    if (!this.front.closed) this.front.close();
  }
}

type WelcomeMessage = Extract<Message, { t: MsgType.Welcome }>;

/**
 * A raw DEALER that joins like a worker (Hello, then Ready with the
 * fingerprints its Welcome carries) but computes nothing and answers nothing
 * unless the test sends for it. Linger 0: closing it drops it at once.
 */
export class FakePeer {
  readonly host = 'fake-peer';
  private readonly dealer = new Dealer({ linger: 0 });

  constructor(endpoint: string) {
    this.dealer.connect(endpoint);
  }

  async send(msg: Message): Promise<void> {
    await this.dealer.send(encode(msg));
  }

  /** The next message from the coordinator; throws after `ms`. */
  async receive(ms = 10_000): Promise<Message> {
    this.dealer.receiveTimeout = ms;
    return decode(await this.dealer.receive());
  }

  /** Asks for `rank` (-1: any) and returns the coordinator's Welcome. */
  async hello(rank: number): Promise<WelcomeMessage> {
    await this.send({ t: MsgType.Hello, protocol: PROTOCOL_VERSION, version: VERSION, host: this.host, pid: process.pid, backend: 'none', backendReason: 'fake peer', rank });
    const m = await this.receive();
    if (m.t !== MsgType.Welcome) throw new Error(`fake peer: expected Welcome, got ${MsgType[m.t]}`);
    return m;
  }

  /** Says it built the run, with the fingerprints from its Welcome (so the coordinator accepts it). */
  async ready(welcome: WelcomeMessage, datasetCount: number): Promise<void> {
    await this.send({ t: MsgType.Ready, rank: welcome.rank, modelFingerprint: welcome.run.modelFingerprint, datasetFingerprint: welcome.run.datasetFingerprint, datasetCount });
  }

  close(): void {
    if (!this.dealer.closed) this.dealer.close();
  }
}
