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
 * and it is compared against the workers' checksums.
 */
import { mkdir, writeFile, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Router } from 'zeromq';
import type { RunConfig } from '../shared/config.js';
import { DistganError, ProtocolError, ReplicaDivergedError, describeError } from '../shared/errors.js';
import { EMPTY_F32, EMPTY_I32, MsgType, decode, encode, payloadBytes, type Message, type PhaseStatsWire, type RunSpecWire } from '../shared/protocol.js';
import { EpochSampler, positionRange, sliceBounds } from '../shared/data/sampler.js';
import { writeCheckpoint, type Checkpoint } from '../shared/checkpoint.js';
import type { BuiltRun } from '../shared/run.js';
import { writeSampleGrid } from '../shared/samples.js';
import { exportGenerator } from '../shared/gan/export.js';
import { initialState, step as machineStep, type Action, type Event, type MachineState } from './machine.js';
import { ObserverFanout, type PhaseSeconds, type RankStep, type RunObserver, type RunSummary, type StepReport } from './observer.js';

export interface CoordinatorOptions {
  config: Readonly<RunConfig>;
  worldSize: number;
  /** ZeroMQ endpoint to bind, e.g. tcp://127.0.0.1:0 (port 0 = any free port) or ipc:///tmp/x.sock. */
  bind: string;
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

export class Coordinator {
  private readonly router = new Router();
  private readonly identities = new Map<string, Buffer>();
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
  private mirrorDue: { d: { grad: Float32Array; aux: Float32Array }; g: { grad: Float32Array; aux: Float32Array } } | undefined;
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
    this.router.mandatory = true;
    this.router.linger = 1000;
    await this.opts.configureSocket?.(this.router);
    const ep = this.opts.bind.replace(/^(tcp:\/\/[^:]+):0$/, '$1:*');
    await this.router.bind(ep);
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
    void this.receiveLoop();
    return this.finished;
  }

  /** Launch calls this when a local worker process exits. */
  workerExited(rank: number, description: string): void {
    this.enqueue({ type: 'worker-exited', rank, description });
  }

  /** A peer failed CURVE authentication (reported by the ZAP handler). */
  peerRejected(reason: string): void {
    this.fanout.peerRejected(reason);
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
      this.identities.set(id, identity);
      let msg: Message;
      try {
        msg = decode(rest);
      } catch (e) {
        // A malformed frame from one peer must not take the run down; log and drop it.
        this.opts.log(`dropped a malformed message from peer ${id.slice(0, 8)}: ${describeError(e)}`);
        this.fanout.peerRejected(`malformed message: ${describeError(e)}`);
        continue;
      }
      this.bytesReceived += payloadBytes(rest);
      const ev = this.toEvent(id, msg);
      if (ev) this.enqueue(ev);
    }
  }

  private toEvent(identity: string, msg: Message): Event | undefined {
    const at = this.now();
    switch (msg.t) {
      case MsgType.Hello:
        return { type: 'hello', identity, msg };
      case MsgType.Ready:
        return { type: 'ready', identity, msg };
      case MsgType.DResult:
      case MsgType.GResult: {
        const phase = msg.t === MsgType.DResult ? 'd' : 'g';
        const rank = this.state.members.findIndex((m) => m?.identity === identity);
        if (rank >= 0 && msg.step === this.state.step) {
          const r: RankResult = { grad: msg.frames.grad, aux: msg.frames.aux, stats: msg.stats, computeSeconds: msg.computeSeconds, dataSeconds: msg.dataSeconds, applySeconds: msg.applySeconds, receivedAt: at };
          (phase === 'd' ? this.dResults : this.gResults)[rank] = r;
        }
        return { type: 'result', identity, phase, step: msg.step, ...(msg.checksum === undefined ? {} : { checksum: msg.checksum }) };
      }
      case MsgType.Finished:
        return { type: 'finished', identity, step: msg.step, checksum: msg.checksum };
      case MsgType.Error:
        return { type: 'worker-error', identity, code: msg.code, message: msg.message };
      default:
        this.opts.log(`ignored unexpected ${MsgType[msg.t]} from peer ${identity.slice(0, 8)}`);
        return undefined;
    }
  }

  private async handle(ev: Event): Promise<void> {
    if (this.closed) return;
    const t = machineStep(this.state, ev, this.now());
    this.state = t.state;
    for (const a of t.actions) await this.execute(a);
  }

  private async send(identity: string, msg: Message): Promise<void> {
    const id = this.identities.get(identity);
    if (!id) return;
    const frames = encode(msg);
    this.bytesSent += payloadBytes(frames);
    await this.router.send([id, ...frames]);
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
        this.fanout.peerRejected(a.reason);
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
            frames: {
              positions: positionRange(s, e),
              indices: indices.subarray(s, e),
              nextIndices: nextIndices.length ? nextIndices.subarray(s, e) : EMPTY_I32,
              gGrad: this.pendingG.grad,
              gAux: this.pendingG.aux,
            },
          });
        }
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
        this.mirrorDue = { d: this.pendingD!, g: this.pendingG };
        this.pendingD = undefined;
        this.stepsDone = a.step + 1;
        this.report(a.step + 1);
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
          await this.send(this.memberIdentity(r), { t: MsgType.Finish, step: a.step, frames: { gGrad: this.pendingG.grad, gAux: this.pendingG.aux } });
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

  /** Brings the mirror to the last completed step. Must run before it is sampled, checkpointed or checksummed. */
  /** The step's gradient and BN statistics across ranks: gradients summed (pre-scaled), BN weighted by share. */
  private averaged(results: readonly RankResult[], paramCount: number): { grad: Float32Array; aux: Float32Array } {
    const auxLength = results[0]!.aux.length;
    return {
      grad: sumInRankOrder(results.map((x) => x.grad), paramCount),
      aux: auxLength ? sumInRankOrder(results.map((x) => x.aux), auxLength, this.shares) : EMPTY_F32,
    };
  }

  private flushMirror(): void {
    const due = this.mirrorDue;
    if (!due) return;
    this.mirrorDue = undefined;
    this.opts.run.trainer.applyDGradients(due.d.grad, due.d.aux);
    this.opts.run.trainer.applyGGradients(due.g.grad, due.g.aux);
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
    if (sample || checkpoint) this.flushMirror();
    if (!last && config.sampleEvery > 0 && stepNumber % config.sampleEvery === 0) await this.writeSample(stepNumber);
    if (!last && config.checkpointEvery > 0 && stepNumber % config.checkpointEvery === 0) await this.writeCheckpointNow(stepNumber);
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

  private async writeCheckpointNow(stepNumber: number): Promise<string> {
    const { run, config } = this.opts;
    this.flushMirror();
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
      try {
        await Promise.race([this.send(m.identity, { t: MsgType.Stop, reason, failed }), new Promise((r) => setTimeout(r, 1000))]);
      } catch {
        // A vanished peer cannot be told; its own deadline or the launcher ends it.
      }
    }
  }

  private async complete(): Promise<void> {
    const { run, config } = this.opts;
    const out = resolve(config.out);
    const stepNumber = this.stepsDone;
    await this.writeSample(stepNumber);
    const ckpt = await this.writeCheckpointNow(stepNumber);
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
    const completed = this.stepsDone;
    const startStep = this.state.opts.startStep;
    if (completed > startStep && !(error instanceof ReplicaDivergedError)) {
      try {
        const path = await this.writeCheckpointNow(completed);
        this.opts.log(`checkpoint of step ${completed} written to ${path}; continue with --resume ${resolve(this.opts.config.out)}`);
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

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await mkdir(resolve(path, '..'), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await rename(tmp, path);
}

