/**
 * A worker: joins the coordinator over a ZeroMQ DEALER, builds the run it is
 * told to build, then answers each phase of each step with the gradients of
 * its slice of the global batch, applying the averaged gradients it receives.
 * With a sharded reduction (Welcome.reduction) the gradients go to, and the
 * averages come from, the shard owners instead (shard-link.ts); the
 * coordinator's messages then carry only the orders and the BN statistics.
 *
 * Every wait has a deadline: the join answer (joinTimeout), and each next
 * message from the coordinator (a multiple of the run's step timeout). A
 * worker whose coordinator has vanished exits non-zero rather than hanging.
 */
import { hostname } from 'node:os';
import { Dealer } from 'zeromq';
import { DeadlineError, DistganError, JoinRefusedError, ProtocolError, describeError } from '../shared/errors.js';
import { EMPTY_F32, MsgType, PROTOCOL_VERSION, decode, encode, type Message } from '../shared/protocol.js';
import type { Dataset } from '../shared/data/api.js';
import type { GanTrainer, TrainerState } from '../shared/gan/api.js';
import { buildFromWire } from '../shared/run.js';
import { phaseTable, type Network } from '../shared/gan/phases.js';
import { ShardLink } from './shard-link.js';

export interface WorkerOptions {
  connect: string;
  /** Explicit rank, or undefined to be given one in join order. */
  rank?: number;
  /** The backend this process initialised, and why (for the handshake and logs). */
  backend: { name: string; reason: string };
  /** Opens the dataset the coordinator names (a node may override the path). */
  openDataset: (ref: string, opts: { flip: boolean; seed: number }) => Promise<Dataset>;
  /** Seconds to wait for the coordinator's answer to Hello and for Init (default 180). */
  joinTimeout: number;
  version: string;
  log: (line: string) => void;
  /** Applies CURVE options before connect, when security is on. */
  configureSocket?: (dealer: Dealer) => Promise<void>;
  /** Wraps the trainer this worker builds (instrumentation, fault injection in tests); default: used as built. */
  wrapTrainer?: (trainer: GanTrainer) => GanTrainer;
}

/** The outcome of a worker that was told to stop. */
export interface WorkerExit {
  /** 0 after a completed run; non-zero when the run was stopped by a failure elsewhere. */
  code: number;
  reason: string;
}

function isTimeout(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: string }).code === 'EAGAIN';
}

export class Worker {
  private readonly dealer = new Dealer();
  private trainer: GanTrainer | undefined;
  private dataset: Dataset | undefined;
  private rank = -1;
  private prefetched: { key: string; data: Promise<Float32Array> } | undefined;
  /** Links to the shard owners, with a sharded reduction. */
  private shards: ShardLink | undefined;
  /** How long to wait for the coordinator's or an owner's next message, ms. */
  private waitMs = 60_000;

  constructor(private readonly opts: WorkerOptions) {}

  private async send(msg: Message): Promise<void> {
    await this.dealer.send(encode(msg));
  }

  private async receive(timeoutMs: number, waitingFor: string): Promise<Message> {
    this.dealer.receiveTimeout = Math.max(1, Math.round(timeoutMs));
    let frames: Buffer[];
    try {
      frames = await this.dealer.receive();
    } catch (e) {
      if (isTimeout(e)) {
        throw new DeadlineError(`no answer from the coordinator at ${this.opts.connect} within ${(timeoutMs / 1000).toFixed(0)} s while waiting for ${waitingFor}`);
      }
      throw e;
    }
    return decode(frames);
  }

  async run(): Promise<WorkerExit> {
    const { opts } = this;
    this.dealer.linger = 500;
    await opts.configureSocket?.(this.dealer);
    this.dealer.connect(opts.connect);
    try {
      return await this.session();
    } catch (e) {
      // Tell the coordinator why, so it can name this rank and stop the run cleanly.
      if (this.rank >= 0 && !(e instanceof JoinRefusedError) && !(e instanceof DeadlineError)) {
        const code = e instanceof DistganError ? e.code : 'DISTGAN_E_INTERNAL';
        await Promise.race([this.send({ t: MsgType.Error, code, message: describeError(e) }), new Promise((r) => setTimeout(r, 500))]).catch(() => {});
      }
      throw e;
    } finally {
      this.shards?.close();
      this.trainer?.dispose();
      await this.dataset?.close().catch(() => {});
      this.dealer.close();
    }
  }

  private async session(): Promise<WorkerExit> {
    const { opts } = this;
    const joinMs = opts.joinTimeout * 1000;
    await this.send({
      t: MsgType.Hello,
      protocol: PROTOCOL_VERSION,
      version: opts.version,
      host: hostname(),
      pid: process.pid,
      backend: opts.backend.name,
      backendReason: opts.backend.reason,
      rank: opts.rank ?? -1,
    });
    const welcome = await this.receive(joinMs, 'the answer to Hello (is the coordinator running, and is --connect right?)');
    if (welcome.t === MsgType.Refuse) throw new JoinRefusedError(`the coordinator refused this worker: ${welcome.reason}`);
    if (welcome.t !== MsgType.Welcome) throw new ProtocolError(`expected Welcome, got ${MsgType[welcome.t]}`);
    this.rank = welcome.rank;
    const run = welcome.run;
    opts.log(`joined as rank ${this.rank} of ${welcome.worldSize}; building ${String(run.model.kind)} on ${run.dataset}`);
    this.dataset = await opts.openDataset(run.dataset, { flip: run.flip, seed: Number((run.gan as { seed?: number }).seed ?? 0) });
    const built = buildFromWire(run, this.dataset);
    this.trainer = opts.wrapTrainer ? opts.wrapTrainer(built.trainer) : built.trainer;
    if (welcome.reduction.kind === 'sharded') {
      this.shards = await ShardLink.open(welcome.reduction, {
        coordinator: opts.connect,
        rank: this.rank,
        lengths: { d: this.trainer.dParamCount, g: this.trainer.gParamCount },
        ...(opts.configureSocket ? { configure: opts.configureSocket } : {}),
      });
      opts.log(`rank ${this.rank}: sharded reduction over ${this.shards.shards} shard owners`);
    }
    await this.send({ t: MsgType.Ready, rank: this.rank, modelFingerprint: built.modelFingerprint, datasetFingerprint: this.dataset.fingerprint, datasetCount: this.dataset.count });

    let init = await this.receive(joinMs, 'the initial state (other workers may still be joining)');
    // While others join, the coordinator re-sends Welcome to check this worker is still there.
    while (init.t === MsgType.Welcome) init = await this.receive(joinMs, 'the initial state (other workers may still be joining)');
    if (init.t === MsgType.Refuse) throw new JoinRefusedError(`the coordinator refused this worker: ${init.reason}`);
    if (init.t === MsgType.Stop) return { code: init.failed ? 3 : 0, reason: init.reason };
    if (init.t !== MsgType.Init) throw new ProtocolError(`expected Init, got ${MsgType[init.t]}`);
    // setState copies into the trainer's own arrays, so the ZeroMQ frames can go.
    const state: TrainerState = { step: init.step, ...init.frames };
    this.trainer.setState(state);
    opts.log(`rank ${this.rank}: starting at step ${init.step}`);

    // The coordinator may pause between phases (sample grids, checkpoints); give it slack.
    const waitMs = Math.max(60_000, run.stepTimeout * 3000);
    this.waitMs = waitMs;
    for (;;) {
      const msg = await this.receive(waitMs, 'the next step');
      switch (msg.t) {
        case MsgType.PhaseStep:
          await this.onPhaseStep(msg);
          break;
        case MsgType.Finish: {
          await this.applyPending(msg);
          await this.send({ t: MsgType.Finished, step: msg.step, checksum: this.trainer.checksum() });
          break;
        }
        case MsgType.Stop:
          return { code: msg.failed ? 3 : 0, reason: msg.reason };
        default:
          throw new ProtocolError(`unexpected ${MsgType[msg.t]} during training`);
      }
    }
  }

  private readSlice(indices: Int32Array, step: number): Promise<Float32Array> {
    const key = `${step}:${indices.join(',')}`;
    if (this.prefetched?.key === key) {
      const p = this.prefetched.data;
      this.prefetched = undefined;
      return p;
    }
    return this.dataset!.read(indices, { step });
  }

  /**
   * The averaged update a message carries (the previous phase's, when the
   * network changed or a step ended) and the networks whose discarded update
   * to count (skip-step). Applied before anything is computed.
   */
  private async applyPending(msg: { step: number; applyTo: string; skip: string[]; frames: { grad: Float32Array; aux: Float32Array } }): Promise<void> {
    const trainer = this.trainer!;
    for (const network of msg.skip) trainer.skipUpdate(asNetwork(network));
    if (msg.applyTo === '') return;
    const network = asNetwork(msg.applyTo);
    const grad = this.shards ? await this.shards.gather(msg.step, network, this.waitMs) : msg.frames.grad;
    trainer.applyGradients(network, grad, msg.frames.aux);
  }

  private async onPhaseStep(msg: Extract<Message, { t: MsgType.PhaseStep }>): Promise<void> {
    const trainer = this.trainer!;
    const t0 = performance.now();
    await this.applyPending(msg);
    const applySeconds = (performance.now() - t0) / 1000;
    const checksum = msg.checksum ? trainer.checksum() : undefined;
    const t1 = performance.now();
    const real = msg.frames.indices.length ? await this.readSlice(msg.frames.indices, msg.step) : undefined;
    const dataSeconds = (performance.now() - t1) / 1000;
    // Start reading the next step's slice while this one computes.
    if (msg.frames.nextIndices.length) {
      const next = Int32Array.from(msg.frames.nextIndices);
      const data = this.dataset!.read(next, { step: msg.step + 1 });
      data.catch(() => {}); // surfaced when awaited next step
      this.prefetched = { key: `${msg.step + 1}:${next.join(',')}`, data };
    }
    const r = await trainer.computeGradients(msg.phase, { step: msg.step, positions: msg.frames.positions, globalBatch: msg.globalBatch, ...(real ? { real } : {}) });
    if (this.shards) {
      const spec = phaseTable().find((p) => p.name === msg.phase);
      if (!spec) throw new ProtocolError(`phase ${JSON.stringify(msg.phase)} is not in this worker's phase table`);
      await this.shards.push(msg.step, msg.phase, spec.network, r.gradients);
    }
    await this.send({
      t: MsgType.PhaseResult,
      step: msg.step,
      phase: msg.phase,
      stats: r.stats,
      computeSeconds: r.computeSeconds,
      dataSeconds,
      applySeconds,
      ...(checksum === undefined ? {} : { checksum }),
      frames: { grad: this.shards ? EMPTY_F32 : r.gradients, aux: r.aux.length ? r.aux : EMPTY_F32 },
    });
  }
}

/** A network name from the wire ('d' or 'g'); anything else is a protocol error. */
function asNetwork(name: string): Network {
  if (name !== 'd' && name !== 'g') throw new ProtocolError(`unknown network ${JSON.stringify(name)}`);
  return name;
}
