/**
 * The coordinator's thin I/O loop around the pure state machine (machine.ts).
 *
 * It binds a ZeroMQ ROUTER, turns frames, child exits, signals and clock ticks
 * into machine events (one at a time, in arrival order), and executes the
 * actions the machine returns: sending messages, averaging gradients,
 * updating its mirror of the model, writing samples and checkpoints, and
 * reporting to observers.
 *
 * The mirror: the coordinator applies every averaged gradient to its own copy
 * of the trainer state with the same deterministic flat Adam the workers use,
 * so it holds the replicas' exact weights without asking for them. That copy
 * is what checkpoints, sample grids and the generator export are made from,
 * and it is compared against the workers' checksums. It applies a step's D
 * and G updates all or nothing, so a failure can never leave it half-applied.
 *
 * Hostile or broken peers: every send is non-blocking (sendTimeout 0); a
 * failed send to a member becomes an `unreachable` event for the machine,
 * one to a stranger is counted and dropped, so only a member can end a run.
 * Inbound frames are capped by ZMQ_MAXMSGSIZE (the run's largest legal
 * frame), each peer's inbound queue by a small receive HWM, log lines and
 * handshake replies by per-peer rate limits (peer-limiter.ts), and every
 * peer-supplied string is escaped before it is logged. Each result is
 * inspected by the gradient guard as it arrives (gradient-guard.ts).
 */
import { writeJsonAtomic } from '../shared/atomic-write.js';
import { join, resolve } from 'node:path';
import { Router } from 'zeromq';
import type { RunConfig } from '../shared/config.js';
import { BindError, DistganError, NumericError, ProtocolError, ReplicaDivergedError, describeError } from '../shared/errors.js';
import { EMPTY_F32, EMPTY_I32, MsgType, decode, encode, maxInboundFrameBytes, payloadBytes, type Message, type PhaseStatsWire, type RunSpecWire } from '../shared/protocol.js';
import { EpochSampler, positionRange, sliceBounds } from '../shared/data/sampler.js';
import { writeCheckpoint, type Checkpoint } from '../shared/checkpoint.js';
import type { BuiltRun } from '../shared/run.js';
import { writeSampleGrid } from '../shared/samples.js';
import { exportGenerator } from '../shared/gan/export.js';
import { initialState, step as machineStep, type Action, type Event, type MachineState } from './machine.js';
import { ObserverFanout, type PhaseSeconds, type RankStep, type RunObserver, type RunSummary, type StepReport } from './observer.js';
import { inspectContribution } from './gradient-guard.js';
import { PeerLimiter, printable } from './peer-limiter.js';

export interface CoordinatorOptions {
  config: Readonly<RunConfig>;
  worldSize: number;
  /** ZeroMQ endpoint to bind, e.g. tcp://127.0.0.1:0 (port 0 = any free port) or ipc:///tmp/x.sock. */
  bind: string;
  /** The flag `bind` came from, for errors (default --bind). */
  bindFlag?: string;
  /** The run as built on the coordinator (dataset, spec, mirror trainer). */
  run: BuiltRun;
  /** Present on --resume. */
  resumeFrom?: Checkpoint;
  observers: RunObserver[];
  version: string;
  log: (line: string) => void;
  /** Applies CURVE options / starts ZAP before bind, when security is on. */
  configureSocket?: (router: Router) => Promise<void>;
  /** Injected clock (ms) so tests can drive deadlines. */
  now?: () => number;
  /** How often deadlines are checked, ms (default 250). */
  tickMs?: number;
}

interface RankResult {
  grad: Float32Array;
  aux: Float32Array;
  stats: PhaseStatsWire;
  computeSeconds: number;
  dataSeconds: number;
  applySeconds: number;
  receivedAt: number;
}

/**
 * Sums per-rank arrays in rank order, so the float result never depends on
 * arrival order. Gradients arrive pre-scaled by each rank's share of the batch
 * (weights omitted); BN statistics arrive raw and are weighted here by share.
 */
function sumInRankOrder(parts: readonly Float32Array[], length: number, weights?: readonly number[]): Float32Array {
  const out = new Float32Array(length);
  parts.forEach((p, r) => {
    if (p.length !== length) throw new ProtocolError(`rank ${r} sent ${p.length} floats, expected ${length}`);
    const w = weights?.[r] ?? 1;
    if (w === 1) for (let i = 0; i < length; i++) out[i]! += p[i]!;
    else for (let i = 0; i < length; i++) out[i]! += w * p[i]!;
  });
  return out;
}

/** A step's averaged updates, waiting for the mirror; `g: 'skip'` when the guard discarded G's. */
interface MirrorDue {
  /** Training steps completed once applied. */
  step: number;
  d: { grad: Float32Array; aux: Float32Array };
  g: { grad: Float32Array; aux: Float32Array } | 'skip';
}

/** Peer identities travel as hex strings through the machine; the socket wants the bytes back. */
const identityBytes = (hex: string): Buffer => Buffer.from(hex, 'hex');

/** Every top-level string field of a peer's message, escaped for logs (see printable). */
function escapeStrings<T extends Message>(msg: T): T {
  const out = { ...msg } as Record<string, unknown>;
  for (const [k, v] of Object.entries(out)) if (typeof v === 'string') out[k] = printable(v, 2000);
  return out as T;
}

export class Coordinator {
  private readonly router = new Router();
  private state!: MachineState;
  private readonly fanout: ObserverFanout;
  private readonly now: () => number;
  private readonly sampler: EpochSampler;
  private readonly bounds: Array<[number, number]>;
  /** Each rank's share of the global batch, the weight of its BN statistics. */
  private readonly shares: number[];
  private queue: Promise<void> = Promise.resolve();
  private ticker: NodeJS.Timeout | undefined;
  private settle!: { resolve: (s: RunSummary) => void; reject: (e: unknown) => void };
  private readonly finished: Promise<RunSummary>;
  private closed = false;
  private boundEndpoint = '';

  private dResults: (RankResult | undefined)[] = [];
  private gResults: (RankResult | undefined)[] = [];
  private pendingD: { grad: Float32Array; aux: Float32Array } | undefined;
  private pendingG: { grad: Float32Array; aux: Float32Array } = { grad: EMPTY_F32, aux: EMPTY_F32 };
  /** The previous step's G update was discarded (skip-step): tell workers to count it. */
  private pendingSkipG = false;
  private dPhaseStart = 0;
  private gPhaseStart = 0;
  private stepStart = 0;
  private bytesSent = 0;
  private bytesReceived = 0;
  private runStart = 0;
  private imagesDone = 0;
  private stepsDone = 0;
  private lastStats = { dLoss: NaN, gLoss: NaN, dAccuracyReal: NaN, dAccuracyFake: NaN };
  private stepTimes: number[] = [];
  /** A completed step's averaged gradients that the mirror has yet to apply. */
  private mirrorDue: MirrorDue | undefined;
  /** Training steps the mirror's state has completed. */
  private mirrorStep = 0;
  /** Log lines about misbehaving peers: 5 per peer, then one per 10 s; 20/s across all peers. */
  private readonly logLimiter = new PeerLimiter({ burst: 5, perSecond: 0.1, globalBurst: 20, globalPerSecond: 1 });
  /** Handshakes (Hello) answered: 3 per peer, then one per second; 50/s across all peers. */
  private readonly helloLimiter = new PeerLimiter({ burst: 3, perSecond: 1, globalBurst: 100, globalPerSecond: 50 });
  /** Sends to non-members that failed (peer gone, or not reading): counted, never fatal. */
  private strangerSendsDropped = 0;
  private lastSuppressionNote = 0;
  private exchangeTimes: number[] = [];
  private readonly runSpec: RunSpecWire;

  constructor(private readonly opts: CoordinatorOptions) {
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now());
    this.fanout = new ObserverFanout(opts.observers, (e) => opts.log(`observer failed: ${describeError(e)}`));
    const { config, run } = opts;
    if (config.batchSize < opts.worldSize) {
      throw new DistganError('DISTGAN_E_CONFIG', `--batch-size ${config.batchSize} is smaller than the world size ${opts.worldSize}: every worker needs at least one sample`, { exitCode: 2 });
    }
    this.sampler = new EpochSampler(run.dataset.count, config.batchSize, config.seed);
    this.bounds = sliceBounds(config.batchSize, opts.worldSize);
    this.shares = this.bounds.map(([s, e]) => (e - s) / config.batchSize);
    this.runSpec = run.wire;
    this.finished = new Promise<RunSummary>((res, rej) => {
      this.settle = { resolve: res, reject: rej };
    });
    // A failed run is reported through run(); avoid an unhandled rejection if nobody awaits yet.
    this.finished.catch(() => {});
  }

  /** Binds the socket. Returns the endpoint workers should connect to (port resolved). */
  async bind(): Promise<string> {
    const { trainer } = this.opts.run;
    // Fail on an unroutable peer instead of dropping silently (so a member's
    // loss is noticed), but never wait: a send that cannot be queued at once
    // throws, and send() turns that into an event or a dropped reply.
    this.router.mandatory = true;
    this.router.sendTimeout = 0;
    this.router.linger = 1000;
    // A member has at most one message in flight per phase; a deep inbound
    // queue would only let a stranger park up to HWM × frame limit bytes here.
    this.router.receiveHighWaterMark = 16;
    this.router.maxMessageSize = maxInboundFrameBytes(Math.max(trainer.gParamCount, trainer.dParamCount, trainer.auxCount));
    await this.opts.configureSocket?.(this.router);
    const ep = this.opts.bind.replace(/^(tcp:\/\/[^:]+):0$/, '$1:*');
    try {
      await this.router.bind(ep);
    } catch (e) {
      const flag = this.opts.bindFlag ?? '--bind';
      throw new BindError(`${flag} ${this.opts.bind}: cannot listen there: ${e instanceof Error ? e.message : String(e)} (is another run using it, or is it not an address of this host?)`, { cause: e });
    }
    this.boundEndpoint = this.router.lastEndpoint ?? ep;
    return this.boundEndpoint;
  }

  get endpoint(): string {
    return this.boundEndpoint;
  }

  /** Runs to completion. Resolves with the summary, rejects with a DistganError after checkpointing and stopping workers. */
  async run(): Promise<RunSummary> {
    const { config, run } = this.opts;
    const startStep = this.opts.resumeFrom?.header.step ?? 0;
    if (this.opts.resumeFrom) run.trainer.setState(this.opts.resumeFrom.state);
    this.state = initialState(
      {
        worldSize: this.opts.worldSize,
        startStep,
        targetSteps: config.steps,
        checksumEvery: config.checksumEvery,
        joinTimeoutMs: config.joinTimeout * 1000,
        stepTimeoutMs: config.stepTimeout * 1000,
        modelFingerprint: run.wire.modelFingerprint,
        datasetFingerprint: run.wire.datasetFingerprint,
        version: this.opts.version,
        guard: { normFactor: config.gradNormFactor, normMax: config.gradNormMax },
        onBadGradient: config.onBadGradient === 'skip-step' ? 'skip-step' : 'fail',
      },
      this.now(),
    );
    this.stepsDone = startStep;
    this.mirrorStep = startStep;
    this.fanout.runStarted({
      runId: run.wire.runId,
      dataset: run.dataset.name,
      model: String(run.spec.kind),
      backend: run.backend,
      version: this.opts.version,
      worldSize: this.opts.worldSize,
      totalSteps: config.steps,
      startStep,
      globalBatch: config.batchSize,
      outDir: resolve(config.out),
      startedAt: Date.now() / 1000,
    });
    this.opts.log(`coordinator listening on ${this.boundEndpoint}, waiting for ${this.opts.worldSize} workers (join deadline ${config.joinTimeout} s)`);
    this.ticker = setInterval(() => this.enqueue({ type: 'tick' }), this.opts.tickMs ?? 250);
    void this.receiveLoop();
    return this.finished;
  }

  /** Launch calls this when a local worker process exits. */
  workerExited(rank: number, description: string): void {
    this.enqueue({ type: 'worker-exited', rank, description });
  }

  /** A peer failed CURVE authentication (reported by the ZAP handler); `peer` is its address. */
  peerRejected(reason: string, peer: string): void {
    this.rejected(peer, printable(reason, 500));
  }

  /** Counts a rejected peer or message; prints it within the per-peer log budget. */
  private rejected(peer: string, reason: string): void {
    const now = this.now();
    const loud = this.logLimiter.allow(peer, now);
    this.fanout.peerRejected(reason, !loud);
    if (now - this.lastSuppressionNote >= 10_000) {
      const n = this.logLimiter.takeSuppressed();
      this.lastSuppressionNote = now;
      if (n > 0) this.opts.log(`${n} more rejected peer messages in the last 10 s were counted but not logged (rate limit)`);
    }
  }

  /** SIGINT/SIGTERM: checkpoint and stop every worker. */
  interrupt(signal: string): void {
    this.enqueue({ type: 'interrupt', signal });
  }

  private enqueue(ev: Event): void {
    this.queue = this.queue.then(() => this.handle(ev)).catch((e) => this.crash(e));
  }

  private async receiveLoop(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.router.receive();
      } catch (e) {
        if (this.closed) return;
        this.crash(e);
        return;
      }
      const [identity, ...rest] = frames;
      if (!identity) continue;
      const id = identity.toString('hex');
      let msg: Message;
      try {
        msg = decode(rest);
      } catch (e) {
        // A malformed frame from one peer must not take the run down: count it, log it within the budget, drop it.
        this.rejected(id, `malformed message from peer ${id.slice(0, 8)}: ${printable(describeError(e), 300)}`);
        continue;
      }
      this.bytesReceived += payloadBytes(rest);
      const ev = this.toEvent(id, escapeStrings(msg));
      if (ev) this.enqueue(ev);
    }
  }

  private rankOf(identity: string): number {
    return this.state.members.findIndex((m) => m?.identity === identity);
  }

  private toEvent(identity: string, msg: Message): Event | undefined {
    const at = this.now();
    switch (msg.t) {
      case MsgType.Hello:
        // A member's retried Hello is always answered; a stranger's only within its handshake budget.
        if (this.rankOf(identity) < 0 && !this.helloLimiter.allow(identity, at)) {
          this.rejected(identity, `Hello from peer ${identity.slice(0, 8)} (${msg.host} pid ${msg.pid}) ignored: too many handshakes`);
          return undefined;
        }
        return { type: 'hello', identity, msg };
      case MsgType.Ready:
        return { type: 'ready', identity, msg };
      case MsgType.DResult:
      case MsgType.GResult: {
        const phase = msg.t === MsgType.DResult ? 'd' : 'g';
        const rank = this.rankOf(identity);
        const { trainer } = this.opts.run;
        const expected = { gradLength: phase === 'd' ? trainer.dParamCount : trainer.gParamCount, auxLength: trainer.auxCount };
        // Inspected on arrival, overlapping the wait for the other ranks; the machine judges it.
        const check = rank >= 0 ? inspectContribution(msg.frames.grad, msg.frames.aux, expected, this.shares[rank]!) : { norm: NaN, problem: 'not a member' };
        if (rank >= 0 && msg.step === this.state.step) {
          const r: RankResult = { grad: msg.frames.grad, aux: msg.frames.aux, stats: msg.stats, computeSeconds: msg.computeSeconds, dataSeconds: msg.dataSeconds, applySeconds: msg.applySeconds, receivedAt: at };
          (phase === 'd' ? this.dResults : this.gResults)[rank] = r;
        }
        return { type: 'result', identity, phase, step: msg.step, check, ...(msg.checksum === undefined ? {} : { checksum: msg.checksum }) };
      }
      case MsgType.Finished:
        return { type: 'finished', identity, step: msg.step, checksum: msg.checksum };
      case MsgType.Error:
        return { type: 'worker-error', identity, code: msg.code, message: msg.message };
      default:
        this.rejected(identity, `unexpected ${MsgType[msg.t]} from peer ${identity.slice(0, 8)} ignored`);
        return undefined;
    }
  }

  private async handle(ev: Event): Promise<void> {
    if (this.closed) return;
    const t = machineStep(this.state, ev, this.now());
    this.state = t.state;
    for (const a of t.actions) await this.execute(a);
  }

  /**
   * Queues a message without waiting. If it cannot be queued (the peer is
   * gone, or has stopped reading), a member's failure goes to the machine as
   * an `unreachable` event; a stranger's is counted and dropped.
   */
  private async send(identity: string, msg: Message): Promise<void> {
    const frames = encode(msg);
    try {
      await this.router.send([identityBytes(identity), ...frames]);
      this.bytesSent += payloadBytes(frames);
    } catch (e) {
      if (this.closed) return;
      if (this.rankOf(identity) >= 0) {
        this.enqueue({ type: 'unreachable', identity, reason: describeError(e) });
      } else {
        this.strangerSendsDropped++;
        this.rejected(identity, `reply to peer ${identity.slice(0, 8)} dropped: ${describeError(e)}`);
      }
    }
  }

  private memberIdentity(rank: number): string {
    return this.state.members[rank]!.identity;
  }

  private async execute(a: Action): Promise<void> {
    const { run, config } = this.opts;
    switch (a.type) {
      case 'log':
        this.opts.log(a.text);
        return;
      case 'welcome':
        await this.send(a.identity, { t: MsgType.Welcome, rank: a.rank, worldSize: this.opts.worldSize, run: this.runSpec });
        return;
      case 'refuse':
        this.rejected(a.identity, a.reason);
        await this.send(a.identity, { t: MsgType.Refuse, code: a.code, reason: a.reason });
        return;
      case 'joined':
        this.fanout.workerJoined({ rank: a.member.rank, host: a.member.host, pid: a.member.pid, backend: a.member.backend });
        return;
      case 'init': {
        const { step, ...frames } = run.trainer.getState();
        this.runStart = this.now();
        for (let r = 0; r < this.opts.worldSize; r++) {
          await this.send(this.memberIdentity(r), { t: MsgType.Init, step, frames });
        }
        this.opts.log(`all ${this.opts.worldSize} workers ready; training steps ${this.state.opts.startStep}..${config.steps}`);
        return;
      }
      case 'start-d': {
        this.stepStart = this.now();
        this.dPhaseStart = this.stepStart;
        this.dResults = [];
        this.gResults = [];
        const indices = this.sampler.indices(a.step);
        const nextIndices = a.step + 1 < config.steps ? this.sampler.indices(a.step + 1) : EMPTY_I32;
        for (let r = 0; r < this.opts.worldSize; r++) {
          const [s, e] = this.bounds[r]!;
          await this.send(this.memberIdentity(r), {
            t: MsgType.DStep,
            step: a.step,
            globalBatch: config.batchSize,
            checksum: a.checksum,
            skipG: this.pendingSkipG,
            frames: {
              positions: positionRange(s, e),
              indices: indices.subarray(s, e),
              nextIndices: nextIndices.length ? nextIndices.subarray(s, e) : EMPTY_I32,
              gGrad: this.pendingG.grad,
              gAux: this.pendingG.aux,
            },
          });
        }
        this.pendingSkipG = false;
        // The mirror catches up with the previous step now, while workers compute.
        this.flushMirror();
        return;
      }
      case 'reduce-d': {
        this.pendingD = this.averaged(this.dResults as RankResult[], run.trainer.dParamCount);
        const { grad, aux } = this.pendingD;
        this.gPhaseStart = this.now();
        for (let r = 0; r < this.opts.worldSize; r++) {
          const [s, e] = this.bounds[r]!;
          await this.send(this.memberIdentity(r), { t: MsgType.GStep, step: a.step, globalBatch: config.batchSize, frames: { positions: positionRange(s, e), dGrad: grad, dAux: aux } });
        }
        return;
      }
      case 'reduce-g': {
        this.pendingG = this.averaged(this.gResults as RankResult[], run.trainer.gParamCount);
        // The mirror applies this step (D then G, exactly as every worker does)
        // after the next step has been dispatched, off the critical path; see flushMirror.
        this.mirrorDue = { step: a.step + 1, d: this.pendingD!, g: this.pendingG };
        this.pendingD = undefined;
        this.stepsDone = a.step + 1;
        this.report(a.step + 1);
        await this.periodic(a.step + 1);
        return;
      }
      case 'skip': {
        // Nothing of the refused phase was averaged or sent. A D phase drops the
        // whole step; a G phase keeps D's update (every replica applied it).
        if (a.phase === 'g') this.mirrorDue = { step: a.step + 1, d: this.pendingD!, g: 'skip' };
        else this.mirrorStep = a.step + 1; // the mirror already holds the state the next step starts from
        this.pendingD = undefined;
        this.pendingG = { grad: EMPTY_F32, aux: EMPTY_F32 };
        this.pendingSkipG = a.phase === 'g';
        this.stepsDone = a.step + 1;
        await this.periodic(a.step + 1);
        return;
      }
      case 'verify-checksums': {
        this.flushMirror();
        const mine = run.trainer.checksum();
        if (a.checksums.some((c) => c !== mine)) {
          this.enqueue({ type: 'diverged', message: `the workers' weights (checksum ${a.checksums[0]!.slice(0, 16)}) differ from the coordinator's mirror (${mine.slice(0, 16)}) at step ${a.step}` });
        }
        return;
      }
      case 'finish':
        this.flushMirror();
        for (let r = 0; r < this.opts.worldSize; r++) {
          await this.send(this.memberIdentity(r), { t: MsgType.Finish, step: a.step, skipG: this.pendingSkipG, frames: { gGrad: this.pendingG.grad, gAux: this.pendingG.aux } });
        }
        return;
      case 'done':
        await this.complete();
        return;
      case 'fail':
        await this.abort(a.error, a.lostRank);
        return;
    }
  }

  /**
   * The step's gradient and BN statistics across ranks: gradients summed
   * (pre-scaled), BN weighted by share. Every contribution passed the guard;
   * the sum is checked too (finite parts can still overflow when the norm
   * limits are switched off) before anything is sent on.
   */
  private averaged(results: readonly RankResult[], paramCount: number): { grad: Float32Array; aux: Float32Array } {
    const auxLength = results[0]!.aux.length;
    const out = {
      grad: sumInRankOrder(results.map((x) => x.grad), paramCount),
      aux: auxLength ? sumInRankOrder(results.map((x) => x.aux), auxLength, this.shares) : EMPTY_F32,
    };
    for (const [name, arr] of [['gradient', out.grad], ['BN statistics', out.aux]] as const) {
      for (let i = 0; i < arr.length; i++) {
        const x = arr[i]!;
        if (x - x !== 0) throw new NumericError(`the averaged ${name} overflowed at element ${i} (${x}) although every rank's part was finite; set --grad-norm-max to refuse such parts`);
      }
    }
    return out;
  }

  /**
   * Brings the mirror to the last completed step, all or nothing: both
   * updates are checked before either is applied. Must run before the mirror
   * is sampled, checkpointed or checksummed.
   */
  private flushMirror(): void {
    const due = this.mirrorDue;
    if (!due) return;
    const { trainer } = this.opts.run;
    trainer.checkUpdate('d', due.d.grad, due.d.aux);
    if (due.g !== 'skip') trainer.checkUpdate('g', due.g.grad, due.g.aux);
    this.mirrorDue = undefined;
    trainer.applyDGradients(due.d.grad, due.d.aux);
    if (due.g === 'skip') trainer.skipGUpdate();
    else trainer.applyGGradients(due.g.grad, due.g.aux);
    this.mirrorStep = due.step;
  }

  private report(stepNumber: number): void {
    const d = this.dResults as RankResult[];
    const g = this.gResults as RankResult[];
    const end = this.now();
    const B = this.opts.config.batchSize;
    const weights = this.shares;
    const wsum = (f: (r: RankResult) => number | undefined, rs: RankResult[]): number => rs.reduce((acc, r, i) => acc + weights[i]! * (f(r) ?? NaN), 0);
    this.lastStats = {
      dLoss: wsum((r) => r.stats.dLoss, d),
      gLoss: wsum((r) => r.stats.gLoss, g),
      dAccuracyReal: wsum((r) => r.stats.dAccuracyReal, d),
      dAccuracyFake: wsum((r) => r.stats.dAccuracyFake, d),
    };
    const max = (xs: number[]): number => xs.reduce((a, b) => Math.max(a, b), 0);
    const dWall = (this.gPhaseStart - this.dPhaseStart) / 1000;
    const gWall = (end - this.gPhaseStart) / 1000;
    const dBusy = max(d.map((r) => r.dataSeconds + r.computeSeconds + r.applySeconds));
    const gBusy = max(g.map((r) => r.computeSeconds + r.applySeconds));
    const phaseSeconds: PhaseSeconds = {
      data: max(d.map((r) => r.dataSeconds)),
      d_compute: max(d.map((r) => r.computeSeconds)),
      d_exchange: Math.max(0, dWall - dBusy),
      g_compute: max(g.map((r) => r.computeSeconds)),
      g_exchange: Math.max(0, gWall - gBusy),
      apply: max(d.map((r, i) => r.applySeconds + g[i]!.applySeconds)),
    };
    const ranks: RankStep[] = d.map((r, i) => ({
      rank: i,
      computeSeconds: r.computeSeconds + g[i]!.computeSeconds,
      dataSeconds: r.dataSeconds,
      timestamp: g[i]!.receivedAt / 1000,
    }));
    const stepSeconds = (end - this.stepStart) / 1000;
    this.stepTimes.push(stepSeconds);
    this.exchangeTimes.push(phaseSeconds.d_exchange + phaseSeconds.g_exchange);
    this.imagesDone += B;
    const report: StepReport = {
      step: stepNumber,
      images: B,
      ...this.lastStats,
      stepSeconds,
      phaseSeconds,
      exchangeBytes: { sent: this.bytesSent, received: this.bytesReceived },
      ranks,
      time: end / 1000,
    };
    this.bytesSent = 0;
    this.bytesReceived = 0;
    this.fanout.stepCompleted(report);
  }

  private async periodic(stepNumber: number): Promise<void> {
    const { config } = this.opts;
    const last = stepNumber >= config.steps;
    const sample = !last && config.sampleEvery > 0 && stepNumber % config.sampleEvery === 0;
    const checkpoint = !last && config.checkpointEvery > 0 && stepNumber % config.checkpointEvery === 0;
    if (sample) await this.writeSample(stepNumber);
    if (checkpoint) await this.writeCheckpointNow();
  }

  private async writeSample(stepNumber: number): Promise<string | undefined> {
    this.flushMirror();
    try {
      const path = await writeSampleGrid(this.opts.run, resolve(this.opts.config.out, 'samples'), stepNumber);
      this.fanout.sampleWritten(stepNumber, path);
      return path;
    } catch (e) {
      this.opts.log(`could not write the sample grid at step ${stepNumber}: ${describeError(e)}`);
      return undefined;
    }
  }

  /** Checkpoints the mirror at the step it holds (brought up to date first unless `flush` is false). */
  private async writeCheckpointNow(flush = true): Promise<string> {
    const { run, config } = this.opts;
    if (flush) this.flushMirror();
    const stepNumber = this.mirrorStep;
    const state = run.trainer.getState();
    const path = await writeCheckpoint(
      resolve(config.out, 'checkpoints'),
      {
        step: stepNumber,
        runId: run.wire.runId,
        training: run.training,
        model: run.wire.model,
        modelFingerprint: run.wire.modelFingerprint,
        datasetFingerprint: run.wire.datasetFingerprint,
        sampler: this.sampler.position(stepNumber),
        rng: { kind: 'counter', seed: config.seed, step: stepNumber },
      },
      state,
      config.keepCheckpoints,
    );
    this.fanout.checkpointWritten(stepNumber, path, Date.now() / 1000);
    return path;
  }

  private summary(): RunSummary {
    const wall = this.runStart ? (this.now() - this.runStart) / 1000 : 0;
    // Steady state excludes the first two steps, which pay for kernel/shader warm-up.
    const skip = this.stepTimes.length > 4 ? 2 : this.stepTimes.length > 1 ? 1 : 0;
    const steady = this.stepTimes.slice(skip);
    const steadySeconds = steady.reduce((a, b) => a + b, 0);
    const ex = this.exchangeTimes.slice(skip);
    return {
      steps: this.stepsDone,
      images: this.imagesDone,
      imagesPerSecond: steadySeconds > 0 ? (steady.length * this.opts.config.batchSize) / steadySeconds : 0,
      ...this.lastStats,
      worldSize: this.opts.worldSize,
      backend: [...new Set(this.state.members.map((m) => m?.backend ?? '?'))].join(','),
      wallSeconds: wall,
      exchangeSecondsPerStep: ex.length ? ex.reduce((a, b) => a + b, 0) / ex.length : 0,
    };
  }

  private async stopAll(reason: string, failed: boolean): Promise<void> {
    for (const m of this.state.members) {
      if (!m) continue;
      // Never blocks (sendTimeout 0); a vanished peer cannot be told, and its own deadline or the launcher ends it.
      await this.router.send([identityBytes(m.identity), ...encode({ t: MsgType.Stop, reason, failed })]).catch(() => {});
    }
  }

  private async complete(): Promise<void> {
    const { run, config } = this.opts;
    const out = resolve(config.out);
    const stepNumber = this.stepsDone;
    await this.writeSample(stepNumber);
    const ckpt = await this.writeCheckpointNow();
    await exportGenerator(run.trainer, out);
    const summary = this.summary();
    await writeJsonAtomic(join(out, 'summary.json'), summary);
    await this.stopAll('run complete', false);
    this.opts.log(`done: ${summary.steps} steps, ${summary.imagesPerSecond.toFixed(1)} img/s, checkpoint ${ckpt}`);
    this.fanout.runEnded(summary);
    await this.close();
    this.settle.resolve(summary);
  }

  private async abort(error: DistganError, lostRank?: number): Promise<void> {
    if (lostRank !== undefined && lostRank >= 0) this.fanout.workerLost(lostRank, error.message);
    this.opts.log(`stopping: ${error.message}`);
    const startStep = this.state.opts.startStep;
    if (this.stepsDone > startStep && !(error instanceof ReplicaDivergedError)) {
      let flush = true;
      try {
        this.flushMirror();
      } catch (e) {
        // The mirror is untouched (all or nothing): checkpoint the step it holds.
        flush = false;
        this.opts.log(`the mirror did not apply step ${this.mirrorDue?.step ?? '?'}: ${describeError(e)}`);
      }
      try {
        const path = await this.writeCheckpointNow(flush);
        this.opts.log(`checkpoint of step ${this.mirrorStep} written to ${path}; continue with --resume ${resolve(this.opts.config.out)}`);
      } catch (e) {
        this.opts.log(`could not write a checkpoint: ${describeError(e)}`);
      }
    }
    await this.stopAll(error.message, true);
    this.fanout.runEnded(undefined, error);
    await this.close();
    this.settle.reject(error);
  }

  /** An unexpected exception in the loop: treat as a run failure. */
  private crash(e: unknown): void {
    if (this.closed) return;
    const err = e instanceof DistganError ? e : new DistganError('DISTGAN_E_INTERNAL', `coordinator failed: ${describeError(e)}`, { cause: e });
    this.state = { ...this.state, phase: 'failed', error: err };
    void this.abort(err).catch(() => this.settle.reject(err));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    this.router.close();
  }
}
