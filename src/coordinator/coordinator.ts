/**
 * The coordinator's I/O loop around the pure state machine (machine.ts).
 *
 * It binds a ZeroMQ ROUTER, turns frames, child exits, signals, clock ticks
 * and its own exceptions into machine events (one at a time, in arrival
 * order), and executes the actions the machine returns: sending messages,
 * reducing the accepted contributions (reduction/), queueing updates on the
 * mirror (mirror.ts), writing samples, checkpoints and the export, and
 * reporting to observers. Which results count, when to sample or checkpoint,
 * and what a failure does are the machine's decisions, not this loop's.
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
import { join, resolve } from 'node:path';
import { Router } from 'zeromq';
import { writeJsonAtomic } from '../shared/atomic-write.js';
import type { RunConfig } from '../shared/config.js';
import { BindError, DistganError, ReplicaDivergedError, describeError } from '../shared/errors.js';
import { EMPTY_F32, EMPTY_I32, MsgType, OWNER_REPORT_TYPES, decode, encode, maxInboundFrameBytes, payloadBytes, type Message, type OwnerReportMsg, type RunSpecWire } from '../shared/protocol.js';
import { EpochSampler, positionRange, sliceBounds } from '../shared/data/sampler.js';
import { writeCheckpoint, type Checkpoint } from '../shared/checkpoint.js';
import type { BuiltRun } from '../shared/run.js';
import { writeSampleGrid } from '../shared/samples.js';
import { exportGenerator } from '../shared/gan/export.js';
import { initialState, step as machineStep, type Action, type Event, type MachineState } from './machine.js';
import { ObserverFanout, type RunObserver, type RunSummary } from './observer.js';
import type { ContributionCheck } from './gradient-guard.js';
import { PeerLimiter, printable } from './peer-limiter.js';
import type { Update } from './mirror.js';
import { DEFAULT_REDUCTION, REDUCTIONS, type MirrorStore, type ReductionService } from './reduction/index.js';
import { steadyRates, summarizeStep, type RankResult, type StepStats } from './step-summary.js';
import { phaseTable, type Network, type PhaseSpec } from '../shared/gan/phases.js';
import { fixed } from './membership/fixed.js';

export interface CoordinatorOptions {
  config: Readonly<RunConfig>;
  worldSize: number;
  /** ZeroMQ endpoint to bind, e.g. tcp://127.0.0.1:0 (port 0 = any free port) or ipc:///tmp/x.sock. */
  bind: string;
  /** The flag `bind` came from, for errors (default --bind). */
  bindFlag?: string;
  /** Name of the reduction (reduction/index.ts); default: the config's, else star. */
  reduction?: string;
  /** Shard owners of the sharded reduction (default: the config's). */
  shards?: number;
  /** The phase table (default: shared/gan/phases.ts's, as registered in this process). */
  phases?: readonly PhaseSpec[];
  /** The run as built on the coordinator (dataset, spec, mirror trainer). */
  run: BuiltRun;
  /** Present on --resume. */
  resumeFrom?: Checkpoint;
  observers: RunObserver[];
  version: string;
  log: (line: string) => void;
  /** Applies CURVE options / starts ZAP before bind, when security is on. */
  configureSocket?: (router: Router) => Promise<void>;
  /** The same CURVE settings as data, for the shard-owner threads' sockets (sharded reduction). */
  curve?: { publicKey: string; secretKey: string };
  /** Injected clock (ms) so tests can drive deadlines. */
  now?: () => number;
  /** How often deadlines are checked, ms (default 250). */
  tickMs?: number;
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
  private readonly reducer: ReductionService<BuiltRun['trainer']>;
  private readonly phases: readonly PhaseSpec[];
  private readonly mirror: MirrorStore<BuiltRun['trainer']>;
  private queue: Promise<void> = Promise.resolve();
  private ticker: NodeJS.Timeout | undefined;
  private settle!: { resolve: (s: RunSummary) => void; reject: (e: unknown) => void };
  private readonly finished: Promise<RunSummary>;
  private closed = false;
  private boundEndpoint = '';

  /** The averaged update not yet sent: it goes with the next phase of the other network, the next step, or Finish. */
  private pending: { network: Network; update: Update } | undefined;
  /** Updates of this step already sent (so applied on every replica), in order: the mirror's record of the step. */
  private sentThisStep: Array<{ network: Network; update: Update }> = [];
  /** Networks whose optimizer counts a discarded update (skip-step), told with the next message. */
  private pendingSkips: Network[] = [];
  /** Whether this step's indices for prefetching the next step went out already. */
  private dataSent = false;
  private times = { start: 0, dPhaseStart: 0, gPhaseStart: 0 };
  private bytes = { sent: 0, received: 0 };
  private runStart = 0;
  private imagesDone = 0;
  private stepsDone = 0;
  private lastStats: StepStats = { dLoss: NaN, gLoss: NaN, dAccuracyReal: NaN, dAccuracyFake: NaN };
  private stepTimes: number[] = [];
  private exchangeTimes: number[] = [];
  /** Log lines about misbehaving peers: 5 per peer, then one per 10 s; across all peers 20 at once, then one per second. */
  private readonly logLimiter = new PeerLimiter({ burst: 5, perSecond: 0.1, globalBurst: 20, globalPerSecond: 1 });
  /** Handshakes (Hello) answered: 3 per peer, then one per second; across all peers 100 at once, then 50 per second. */
  private readonly helloLimiter = new PeerLimiter({ burst: 3, perSecond: 1, globalBurst: 100, globalPerSecond: 50 });
  private lastSuppressionNote = 0;
  private readonly runSpec: RunSpecWire;

  constructor(private readonly opts: CoordinatorOptions) {
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now());
    this.fanout = new ObserverFanout(opts.observers, (e) => opts.log(`observer failed: ${describeError(e)}`));
    const { config, run } = opts;
    if (config.batchSize < opts.worldSize) {
      throw new DistganError('DISTGAN_E_CONFIG', `--batch-size ${config.batchSize} is smaller than the world size ${opts.worldSize}: every worker needs at least one sample`, { exitCode: 2 });
    }
    const name = opts.reduction ?? config.reduction ?? DEFAULT_REDUCTION;
    const reduction = REDUCTIONS[name];
    if (!reduction) throw new DistganError('DISTGAN_E_CONFIG', `reduction ${JSON.stringify(name)} is not one of ${Object.keys(REDUCTIONS).join(', ')}`, { exitCode: 2 });
    this.phases = opts.phases ?? phaseTable();
    this.sampler = new EpochSampler(run.dataset.count, config.batchSize, config.seed);
    this.bounds = sliceBounds(config.batchSize, opts.worldSize);
    this.shares = this.bounds.map(([s, e]) => (e - s) / config.batchSize);
    this.runSpec = run.wire;
    const startStep = opts.resumeFrom?.header.step ?? 0;
    // The mirror starts from the resume state; the reduction may copy it out (sharded owners).
    if (opts.resumeFrom) run.trainer.setState(opts.resumeFrom.state);
    this.reducer = reduction.create({
      worldSize: opts.worldSize,
      shares: this.shares,
      phases: this.phases,
      trainer: run.trainer,
      startStep,
      hyper: { lr: run.gan.lr, beta1: run.gan.beta1, beta2: run.gan.beta2, epsilon: run.gan.epsilon },
      shards: opts.shards ?? config.reduceShards ?? 1,
      reducers: config.reducers ?? 0,
      joinTimeoutMs: config.joinTimeout * 1000,
      version: opts.version,
      ...(opts.curve ? { curve: opts.curve } : {}),
      sendTo: async (identity, msg) => {
        const frames = encode(msg);
        await this.router.send([identityBytes(identity), ...frames]);
        this.bytes.sent += payloadBytes(frames);
      },
      coordinatorBind: opts.bind,
      answerTimeoutMs: config.stepTimeout * 1000,
      log: (line) => opts.log(line),
      lost: (reason) => this.enqueue({ type: 'crash', error: new DistganError('DISTGAN_E_REDUCER_LOST', reason) }),
      unreachable: (rank, reason) => {
        const m = this.state?.members[rank];
        if (m) this.enqueue({ type: 'unreachable', identity: m.identity, reason });
      },
      dropped: (reason) => this.rejected('shard-owner', reason),
    });
    this.mirror = this.reducer.mirror;
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
    await this.reducer.open();
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
        sampleEvery: config.sampleEvery,
        checkpointEvery: config.checkpointEvery,
        phases: this.phases,
        membership: fixed,
      },
      this.now(),
    );
    this.stepsDone = startStep;
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
    // Workers are welcomed once the reduction is in place (reducer processes have said hello):
    // their events wait behind this in the queue; the reducers' own messages do not go through it.
    this.queue = this.reducer.ready().catch((e: unknown) => this.handle({ type: 'crash', error: e instanceof DistganError ? e : new DistganError('DISTGAN_E_REDUCER_LOST', describeError(e)) }));
    void this.receiveLoop();
    return this.finished;
  }

  /** Launch calls this when a local worker process exits. */
  workerExited(rank: number, description: string): void {
    this.enqueue({ type: 'worker-exited', rank, description });
  }

  /** Launch calls this when a local reducer process (a shard owner) exits. */
  reducerExited(description: string): void {
    this.enqueue({ type: 'crash', error: new DistganError('DISTGAN_E_REDUCER_LOST', `${description} before the run ended`) });
  }

  /** A peer failed CURVE authentication (reported by the ZAP handler); `peer` is its address. */
  peerRejected(reason: string, peer: string): void {
    this.rejected(peer, printable(reason, 500));
  }

  /** SIGINT/SIGTERM: checkpoint and stop every worker. */
  interrupt(signal: string): void {
    this.enqueue({ type: 'interrupt', signal });
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

  /**
   * Events are handled one at a time. An exception while executing one
   * becomes a `crash` event, so a failure takes the machine's one failure
   * path (checkpoint if anything completed, stop the workers, name the
   * cause); an exception while handling that ends the run directly.
   */
  private enqueue(ev: Event): void {
    this.queue = this.queue
      .then(() => this.handle(ev))
      .catch((e) => {
        const error = e instanceof DistganError ? e : new DistganError('DISTGAN_E_INTERNAL', `coordinator failed: ${describeError(e)}`, { cause: e });
        return this.handle({ type: 'crash', error });
      })
      .catch((e) => {
        if (this.closed) return;
        void this.close();
        this.settle.reject(e);
      });
  }

  private async receiveLoop(): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await this.router.receive();
      } catch (e) {
        if (this.closed) return;
        this.enqueue({ type: 'crash', error: new DistganError('DISTGAN_E_INTERNAL', `the coordinator's socket failed: ${describeError(e)}`, { cause: e }) });
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
      this.bytes.received += payloadBytes(rest);
      if (OWNER_REPORT_TYPES.has(msg.t)) {
        if (this.reducer.receive(id, escapeStrings(msg) as OwnerReportMsg)) continue;
      }
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
      case MsgType.PhaseResult: {
        const rank = this.rankOf(identity);
        const payload: RankResult = { grad: msg.frames.grad, aux: msg.frames.aux, stats: msg.stats, computeSeconds: msg.computeSeconds, dataSeconds: msg.dataSeconds, applySeconds: msg.applySeconds, receivedAt: at };
        const result = (check: ContributionCheck): Event => ({ type: 'result', identity, phase: msg.phase, step: msg.step, check, payload, ...(msg.checksum === undefined ? {} : { checksum: msg.checksum }) });
        if (rank < 0) return result({ norm: NaN, problem: 'not a member' });
        // Inspected on arrival (by the owners, for a sharded reduction), overlapping the wait for the other ranks; the machine judges it.
        this.reducer.inspect(rank, { step: msg.step, phase: msg.phase, grad: msg.frames.grad, aux: msg.frames.aux }, (check) => this.enqueue(result(check)));
        return undefined;
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
    if (ev.type === 'tick') {
      const inside = this.reducer.inside();
      if (inside) ev = { ...ev, inside };
    }
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
      this.bytes.sent += payloadBytes(frames);
    } catch (e) {
      if (this.closed) return;
      if (this.rankOf(identity) >= 0) this.enqueue({ type: 'unreachable', identity, reason: describeError(e) });
      else this.rejected(identity, `reply to peer ${identity.slice(0, 8)} dropped: ${describeError(e)}`);
    }
  }

  /** Sends one message per rank, built for that rank's slice of the batch. */
  private async toEachRank(build: (rank: number, slice: [number, number]) => Message): Promise<void> {
    for (let r = 0; r < this.opts.worldSize; r++) await this.send(this.state.members[r]!.identity, build(r, this.bounds[r]!));
  }

  private async execute(a: Action): Promise<void> {
    const { run, config } = this.opts;
    switch (a.type) {
      case 'log':
        this.opts.log(a.text);
        return;
      case 'welcome':
        await this.send(a.identity, { t: MsgType.Welcome, rank: a.rank, worldSize: this.opts.worldSize, run: this.runSpec, reduction: this.reducer.welcome(a.rank, a.identity) });
        return;
      case 'refuse':
        this.rejected(a.identity, a.reason);
        await this.send(a.identity, { t: MsgType.Refuse, code: a.code, reason: a.reason });
        return;
      case 'joined':
        this.fanout.workerJoined({ rank: a.member.rank, host: a.member.host, pid: a.member.pid, backend: a.member.backend });
        return;
      case 'init': {
        await this.reducer.start(this.state.members.map((m) => m!.identity));
        const { step, ...frames } = (await this.mirror.current()).getState();
        this.runStart = this.now();
        await this.toEachRank(() => ({ t: MsgType.Init, step, frames }));
        this.opts.log(`all ${this.opts.worldSize} workers ready; training steps ${this.state.opts.startStep}..${config.steps}`);
        return;
      }
      case 'start-phase': {
        const { phase } = a;
        if (a.first) {
          this.times = { start: this.now(), dPhaseStart: this.now(), gPhaseStart: 0 };
          this.sentThisStep = [];
          this.dataSent = false;
        }
        if (phase.name === 'g') this.times.gPhaseStart = this.now();
        const carry = a.carry ? this.pending : undefined;
        this.reducer.expect(a.step, phase.name);
        if (carry) {
          this.reducer.carry(a.step, carry.network);
          // Sent now, so applied by every replica: part of this step's record (the previous step's, when first).
          if (!a.first) this.sentThisStep.push(carry);
          this.pending = undefined;
        }
        const skip = this.pendingSkips;
        this.pendingSkips = [];
        // Real samples for phases that read them; the next step's indices ride with the step's first such phase (prefetch).
        const indices = phase.data ? this.sampler.indices(a.step) : EMPTY_I32;
        const prefetch = phase.data && !this.dataSent && a.step + 1 < config.steps;
        const nextIndices = prefetch ? this.sampler.indices(a.step + 1) : EMPTY_I32;
        if (phase.data) this.dataSent = true;
        await this.toEachRank((_r, [s, e]) => ({
          t: MsgType.PhaseStep,
          step: a.step,
          phase: phase.name,
          globalBatch: config.batchSize,
          checksum: a.checksum,
          applyTo: carry?.network ?? '',
          skip,
          frames: {
            positions: positionRange(s, e),
            indices: indices.length ? indices.subarray(s, e) : EMPTY_I32,
            nextIndices: nextIndices.length ? nextIndices.subarray(s, e) : EMPTY_I32,
            grad: carry?.update.grad ?? EMPTY_F32,
            aux: carry?.update.aux ?? EMPTY_F32,
          },
        }));
        // The mirror catches up with the previous step now, while workers compute.
        if (a.first) this.mirror.catchUp();
        return;
      }
      case 'reduce': {
        const { phase } = a;
        const update = await this.reducer.reduce(a.step, phase, a.parts as RankResult[], a.accumulate, this.pending?.update);
        this.pending = { network: phase.network, update };
        return;
      }
      case 'step-done': {
        // The mirror applies this step's updates (in the workers' order) once
        // the next step has been sent out, off the critical path.
        this.mirror.queue({ step: a.step + 1, updates: [...this.sentThisStep, ...(this.pending ? [this.pending] : [])] });
        this.stepsDone = a.step + 1;
        this.reportStep(a.step + 1, (a.parts['d'] ?? []) as RankResult[], (a.parts['g'] ?? []) as RankResult[]);
        return;
      }
      case 'skip': {
        // Nothing of the refused phase, nor of the rest of its step, was
        // averaged or sent; updates already sent stay (every replica applied
        // them). Every other network counts a discarded update.
        this.pending = undefined;
        this.reducer.discard();
        const applied = new Set(this.sentThisStep.map((u) => u.network));
        const skipped = [...new Set(this.phases.map((p) => p.network))].filter((n) => !applied.has(n));
        this.pendingSkips = skipped;
        this.mirror.queue({ step: a.step + 1, updates: [...this.sentThisStep, ...skipped.map((network) => ({ network, update: 'skip' as const }))] });
        this.stepsDone = a.step + 1;
        return;
      }
      case 'verify-checksums': {
        const mine = (await this.mirror.current()).checksum();
        if (a.checksums.some((c) => c !== mine)) {
          // Thrown, so the rest of this transition (a final checkpoint, the export) does not happen.
          throw new ReplicaDivergedError(`the workers' weights (checksum ${a.checksums[0]!.slice(0, 16)}) differ from the coordinator's mirror (${mine.slice(0, 16)}) at step ${a.step}`);
        }
        return;
      }
      case 'sample':
        await this.writeSample(a.step);
        return;
      case 'checkpoint':
        await this.writeCheckpointAt(a.step, a.reason);
        return;
      case 'export':
        await exportGenerator(await this.mirror.current(), resolve(config.out));
        return;
      case 'finish': {
        const carry = this.pending;
        const skip = this.pendingSkips;
        this.pending = undefined;
        this.pendingSkips = [];
        if (carry) this.reducer.carry(a.step, carry.network);
        await this.toEachRank(() => ({ t: MsgType.Finish, step: a.step, applyTo: carry?.network ?? '', skip, frames: { grad: carry?.update.grad ?? EMPTY_F32, aux: carry?.update.aux ?? EMPTY_F32 } }));
        return;
      }
      case 'done':
        await this.complete();
        return;
      case 'fail':
        await this.abort(a.error, a.lostRank);
        return;
    }
  }

  private reportStep(stepNumber: number, d: RankResult[], g: RankResult[]): void {
    const report = summarizeStep({
      step: stepNumber,
      globalBatch: this.opts.config.batchSize,
      shares: this.shares,
      d,
      g,
      times: { ...this.times, end: this.now() },
      bytes: this.bytes,
    });
    this.bytes = { sent: 0, received: 0 };
    this.lastStats = { dLoss: report.dLoss, gLoss: report.gLoss, dAccuracyReal: report.dAccuracyReal, dAccuracyFake: report.dAccuracyFake };
    this.stepTimes.push(report.stepSeconds);
    this.exchangeTimes.push(report.phaseSeconds.d_exchange + report.phaseSeconds.g_exchange);
    this.imagesDone += report.images;
    this.fanout.stepCompleted(report);
  }

  private async writeSample(stepNumber: number): Promise<void> {
    try {
      const path = await writeSampleGrid({ ...this.opts.run, trainer: await this.mirror.current() }, resolve(this.opts.config.out, 'samples'), stepNumber);
      this.fanout.sampleWritten(stepNumber, path);
    } catch (e) {
      // A sample grid is a convenience; a run never stops for one.
      this.opts.log(`could not write the sample grid at step ${stepNumber}: ${describeError(e)}`);
    }
  }

  /**
   * Checkpoints the mirror at `stepNumber` completed steps. On a failure the
   * mirror may refuse its queued update (all or nothing): then the step it
   * holds is checkpointed instead, and the log says so.
   */
  private async writeCheckpointAt(stepNumber: number, reason: 'periodic' | 'final' | 'failure'): Promise<void> {
    const { run, config } = this.opts;
    let trainer;
    let step = stepNumber;
    try {
      if (reason === 'failure') {
        const f = await this.mirror.forFailure();
        trainer = f.trainer;
        step = f.step;
        if (f.note) this.opts.log(`${f.note}; checkpointing step ${step}`);
      } else {
        trainer = await this.mirror.current();
      }
    } catch (e) {
      if (reason !== 'failure') throw e;
      this.opts.log(`could not write a checkpoint: ${describeError(e)}`);
      return;
    }
    try {
      const path = await writeCheckpoint(
        resolve(config.out, 'checkpoints'),
        {
          step,
          runId: run.wire.runId,
          training: run.training,
          model: run.wire.model,
          modelFingerprint: run.wire.modelFingerprint,
          datasetFingerprint: run.wire.datasetFingerprint,
          sampler: this.sampler.position(step),
          rng: { kind: 'counter', seed: config.seed, step },
        },
        trainer.getState(),
        config.keepCheckpoints,
      );
      this.fanout.checkpointWritten(step, path, Date.now() / 1000);
      if (reason === 'failure') this.opts.log(`checkpoint of step ${step} written to ${path}; continue with --resume ${resolve(config.out)}`);
      if (reason === 'final') this.finalCheckpoint = path;
    } catch (e) {
      // A failing run still stops its workers and names its cause.
      if (reason !== 'failure') throw e;
      this.opts.log(`could not write a checkpoint: ${describeError(e)}`);
    }
  }

  private finalCheckpoint = '';

  private summary(): RunSummary {
    const wall = this.runStart ? (this.now() - this.runStart) / 1000 : 0;
    return {
      steps: this.stepsDone,
      images: this.imagesDone,
      ...steadyRates(this.stepTimes, this.exchangeTimes, this.opts.config.batchSize),
      ...this.lastStats,
      worldSize: this.opts.worldSize,
      backend: [...new Set(this.state.members.map((m) => m?.backend ?? '?'))].join(','),
      wallSeconds: wall,
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
    const out = resolve(this.opts.config.out);
    const summary = this.summary();
    await writeJsonAtomic(join(out, 'summary.json'), summary);
    await this.stopAll('run complete', false);
    this.opts.log(`done: ${summary.steps} steps, ${summary.imagesPerSecond.toFixed(1)} img/s, checkpoint ${this.finalCheckpoint}`);
    this.fanout.runEnded(summary);
    await this.close();
    this.settle.resolve(summary);
  }

  private async abort(error: DistganError, lostRank?: number): Promise<void> {
    if (lostRank !== undefined && lostRank >= 0) this.fanout.workerLost(lostRank, error.message);
    this.opts.log(`stopping: ${error.message}`);
    await this.stopAll(error.message, true);
    this.fanout.runEnded(undefined, error);
    await this.close();
    this.settle.reject(error);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    // Reducer processes are told to close through the router, so it closes after them (its linger delivers the order).
    await this.reducer.close();
    this.router.close();
  }
}
