/**
 * `sharded`: BytePS-style summation service under the coordinator's control.
 *
 * Each flat gradient is cut into K contiguous shards (shared/reduction/
 * shards.ts). Shard k has an owner (src/reducer/): a thread of the
 * coordinator process (reducer/thread.ts; the default, on one host), or a
 * `distgan reducer` process on another host (reducer/process.ts; BytePS
 * places one per worker host, so that the summation traffic is spread over
 * every host's link). Either way the owner binds its own ZeroMQ ROUTER and
 * speaks the same protocol messages (OwnerInit … OwnerNote). Every
 * worker sends shard k of its gradient straight to owner k and gets the
 * averaged shard k back from it, so a worker's traffic per phase is about S
 * out and S in whatever the number of workers, and the summation runs on K
 * cores instead of the coordinator's one thread.
 *
 * The coordinator still decides everything (machine.ts): it hears from the
 * owners only each rank's inspection (sum of squares, finiteness) for the
 * gradient guard, and orders them to reduce (sum complete; refuse if Adam
 * would), publish (send the average to the workers with the next message),
 * discard (skip-step) or commit (the step is final: apply it to the mirror
 * slice). The mirror's weights and Adam moments live in the owners, slice by
 * slice, so the coordinator's CPU per step does not grow with the model;
 * checkpoints, samples, the export and checksums gather the slices when they
 * need them. BN statistics are a few floats per channel: they still come to
 * the coordinator with each result and are averaged there (star's code).
 *
 * Results are bit-identical to `star`: each owner sums its slice in rank
 * order from zeros in float32 (the same operations as sumInRankOrder), and
 * Adam is elementwise. Only the guard's norms are summed in another order.
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker as Thread } from 'node:worker_threads';
import { NumericError, ReducerLostError, describeError } from '../../shared/errors.js';
import type { GanTrainer, TrainerState } from '../../shared/gan/api.js';
import type { Network, PhaseSpec } from '../../shared/gan/phases.js';
import { EMPTY_F32, MsgType, PROTOCOL_VERSION, decode, encode, type Message, type OwnerOrderMsg, type OwnerReportMsg, type OwnerStateMsg, type ReductionSpecWire } from '../../shared/protocol.js';
import { shardBounds } from '../../shared/reduction/shards.js';
import type { OwnerThreadData } from '../../reducer/thread.js';
import type { ContributionCheck } from '../gradient-guard.js';
import type { StepUpdate, Update } from '../mirror.js';
import type { Contribution, MirrorStore, ReductionContext, ReductionFactory, ReductionService } from './api.js';
import { averageAux } from './star.js';

/**
 * Where owner thread k binds, from the coordinator's own address: ipc beside
 * it on one host (3.2 ms against 5.7 ms over tcp loopback for a 4.2 MB round
 * trip, docs/benchmarks.md), a free tcp port on the same interface otherwise.
 */
export function ownerBindAddress(coordinatorBind: string, tag: string, k: number): string {
  const tcp = /^tcp:\/\/([^:/]+|\[[^\]]+\]):/.exec(coordinatorBind);
  const host = tcp?.[1];
  if (host && !['127.0.0.1', 'localhost', '[::1]'].includes(host)) return `tcp://${host}:0`;
  return `ipc://${join(tmpdir(), `distgan-${tag}-shard-${k}.sock`)}`;
}

interface Join {
  /** Called with the rank's check once every owner has reported its part (set when its answer arrives). */
  done?: (check: ContributionCheck) => void;
  judged?: boolean;
  auxProblem?: string;
  /** Sum of squares reported by each owner, by shard (summed in shard order). */
  sumSq: Array<number | undefined>;
  problem?: string;
}

/** One owner as the coordinator sees it: how to send it orders, and its pending answers. */
abstract class Owner {
  endpoint = '';
  k = -1;
  closing = false;
  /** Set once it failed: nothing more is asked of it (its answers will not come). */
  lost: Error | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: OwnerReportMsg) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }>();

  abstract readonly describe: string;
  abstract send(order: OwnerOrderMsg): void;
  /** Tells it to close and waits until it has (or gives up). */
  abstract close(): Promise<void>;

  /** Sends an order that is answered (reduce, gather) and waits for the answer. */
  ask(make: (id: number) => OwnerOrderMsg, timeoutMs: number, what: string): Promise<OwnerReportMsg> {
    if (this.lost) return Promise.reject(this.lost);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new ReducerLostError(`${this.describe} did not answer ${what} within ${(timeoutMs / 1000).toFixed(0)} s (--step-timeout)`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.send(make(id));
    });
  }

  answered(id: number, r: OwnerReportMsg): void {
    const w = this.waiting.get(id);
    if (!w) return;
    clearTimeout(w.timer);
    this.waiting.delete(id);
    w.resolve(r);
  }

  failAll(e: unknown): void {
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    this.waiting.clear();
  }
}

/** An owner in a thread of this process; orders and reports travel as encoded frames over its port. */
class ThreadOwner extends Owner {
  constructor(readonly thread: Thread) {
    super();
  }
  get describe(): string {
    return `shard owner ${this.k} (a thread of the coordinator)`;
  }
  send(order: OwnerOrderMsg): void {
    this.thread.postMessage(encode(order));
  }
  close(): Promise<void> {
    this.closing = true;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => void this.thread.terminate().then(() => resolve()), 5000);
      this.thread.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.send({ t: MsgType.OwnerClose, reason: 'run over' });
    });
  }
}

/** A `distgan reducer` process; orders go through the coordinator's ROUTER to its identity. */
class RemoteOwner extends Owner {
  constructor(
    readonly identity: string,
    readonly host: string,
    readonly pid: number,
    private readonly sendTo: (identity: string, msg: Message) => Promise<void>,
    /** Called when a send to it fails (its connection is gone). */
    private readonly unreachable: (reason: string) => void,
  ) {
    super();
  }
  get describe(): string {
    return `the reducer of shard ${this.k} (${this.host} pid ${this.pid})`;
  }
  send(order: OwnerOrderMsg): void {
    this.sendTo(this.identity, order).catch((e: unknown) => this.unreachable(describeError(e)));
  }
  async close(): Promise<void> {
    this.closing = true;
    this.send({ t: MsgType.OwnerClose, reason: 'run over' });
  }
}

class ShardedReduction<T extends GanTrainer> implements ReductionService<T> {
  readonly name = 'sharded';
  readonly mirror: ShardedMirror<T>;
  private readonly owners: Owner[] = [];
  private readonly tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private readonly routingIds = new Map<string, string>();
  private key = '';
  private joins: Join[] = [];
  private closed = false;
  private readonly allReady: Promise<void>;
  private settleReady!: { resolve: () => void; reject: (e: unknown) => void };
  private readyTimer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: ReductionContext<T>) {
    const k = ctx.reducers > 0 ? ctx.reducers : ctx.shards;
    if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`sharded reduction: ${k} shards`);
    this.mirror = new ShardedMirror(ctx.trainer, ctx.startStep, this);
    this.allReady = new Promise<void>((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.allReady.catch(() => {});
  }

  private get shardCount(): number {
    return this.ctx.reducers > 0 ? this.ctx.reducers : this.ctx.shards;
  }

  async open(): Promise<void> {
    if (this.ctx.reducers > 0) return; // reducer processes say hello once the coordinator listens (receive)
    for (let k = 0; k < this.ctx.shards; k++) {
      const data: OwnerThreadData = { bind: ownerBindAddress(this.ctx.coordinatorBind, this.tag, k), version: this.ctx.version, ...(this.ctx.curve ? { curve: this.ctx.curve } : {}) };
      const owner = new ThreadOwner(new Thread(new URL('../../reducer/thread.js', import.meta.url), { workerData: data }));
      owner.k = k;
      this.owners.push(owner);
      owner.thread.on('message', (frames: Uint8Array[]) => {
        let msg: Message;
        try {
          msg = decode(frames.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength)));
        } catch (e) {
          this.ownerLost(owner, `sent a malformed report: ${describeError(e)}`);
          return;
        }
        this.onReport(owner, msg as OwnerReportMsg);
      });
      owner.thread.on('error', (e) => this.ownerLost(owner, `failed: ${describeError(e)}`));
      owner.thread.on('exit', (code) => {
        if (!owner.closing) this.ownerLost(owner, `exited with code ${code}`);
      });
    }
    try {
      await this.allReady;
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /** Every owner has said hello and been given its shard (reducer processes may take until the join deadline). */
  ready(): Promise<void> {
    if (this.ctx.reducers > 0 && !this.readyTimer && this.owners.length < this.ctx.reducers) {
      this.readyTimer = setTimeout(() => {
        this.settleReady.reject(new ReducerLostError(`only ${this.owners.length} of ${this.ctx.reducers} reducers (--reducers) said hello within the join deadline (${(this.ctx.joinTimeoutMs / 1000).toFixed(0)} s, --join-timeout); start one \`distgan reducer --connect <this coordinator>\` per worker host`));
      }, this.ctx.joinTimeoutMs);
      this.readyTimer.unref();
    }
    return this.allReady;
  }

  /** A reducer process's message, from the coordinator's ROUTER. Returns false if it is not for this reduction. */
  receive(identity: string, msg: OwnerReportMsg): boolean {
    const known = this.owners.find((o) => o instanceof RemoteOwner && o.identity === identity);
    if (known) {
      this.onReport(known, msg);
      return true;
    }
    if (msg.t !== MsgType.OwnerHello) return false;
    if (this.ctx.reducers === 0 || this.owners.length >= this.ctx.reducers) {
      this.ctx.dropped(`a reducer from ${msg.host} pid ${msg.pid} said hello, but this run ${this.ctx.reducers === 0 ? 'runs its shard owners as threads (no --reducers)' : `has all its ${this.ctx.reducers} reducers`}`);
      return true;
    }
    if (msg.protocol !== PROTOCOL_VERSION) {
      this.ctx.dropped(`a reducer from ${msg.host} pid ${msg.pid} speaks protocol ${msg.protocol}, not ${PROTOCOL_VERSION}`);
      return true;
    }
    const owner: RemoteOwner = new RemoteOwner(identity, msg.host, msg.pid, this.ctx.sendTo, (reason) => this.ownerLost(owner, `cannot be reached: ${reason}`));
    owner.k = this.owners.length;
    this.owners.push(owner);
    this.onReport(owner, msg);
    return true;
  }

  private bound(owner: Owner, endpoint: string): void {
    owner.endpoint = endpoint;
    if (this.owners.length === this.shardCount && this.owners.every((o) => o.endpoint !== '')) {
      if (this.readyTimer) clearTimeout(this.readyTimer);
      this.ctx.log(`sharded reduction: ${this.shardCount} shard owners at ${this.owners.map((o) => o.endpoint).join(' ')}${this.ctx.reducers > 0 ? ` (${this.owners.map((o) => o.describe).join(', ')})` : ' (threads)'}`);
      this.settleReady.resolve();
    }
  }

  /** Gives an owner its shard and the mirror's slice of `state`. */
  private init(o: Owner, state: TrainerState): void {
    const { trainer, hyper } = this.ctx;
    const [dl, dh] = shardBounds(trainer.dParamCount, this.shardCount)[o.k]!;
    const [gl, gh] = shardBounds(trainer.gParamCount, this.shardCount)[o.k]!;
    o.send({
      t: MsgType.OwnerInit,
      shard: o.k,
      shards: this.shardCount,
      worldSize: this.ctx.worldSize,
      phases: this.ctx.phases.map((p) => `${p.name}:${p.network}`).join(','),
      dLength: trainer.dParamCount,
      gLength: trainer.gParamCount,
      lr: hyper.lr,
      beta1: hyper.beta1,
      beta2: hyper.beta2,
      epsilon: hyper.epsilon,
      step: state.step,
      frames: {
        dWeights: state.dWeights.subarray(dl, dh),
        dAdamM: state.dAdamM.subarray(dl, dh),
        dAdamV: state.dAdamV.subarray(dl, dh),
        gWeights: state.gWeights.subarray(gl, gh),
        gAdamM: state.gAdamM.subarray(gl, gh),
        gAdamV: state.gAdamV.subarray(gl, gh),
      },
    });
  }

  private ownerLost(owner: Owner, what: string): void {
    if (this.closed || owner.closing) return;
    const e = new ReducerLostError(`${owner.describe} ${what}`);
    owner.lost = e;
    owner.failAll(e);
    this.settleReady.reject(e);
    this.ctx.lost(e.message);
  }

  private onReport(owner: Owner, r: OwnerReportMsg): void {
    switch (r.t) {
      case MsgType.OwnerHello:
        this.init(owner, this.ctx.trainer.getState());
        return;
      case MsgType.OwnerBound:
        if (owner.endpoint === '') this.bound(owner, r.endpoint);
        return;
      case MsgType.OwnerPart:
        this.onPart(owner.k, r);
        return;
      case MsgType.OwnerReduced:
      case MsgType.OwnerState:
      case MsgType.OwnerAck:
        owner.answered(r.id, r);
        return;
      case MsgType.OwnerNote:
        if (r.kind === 'dropped') this.ctx.dropped(`${owner.describe}: ${r.message}`);
        else if (r.kind === 'unreachable') this.ctx.unreachable(r.rank, `${owner.describe} cannot reach it: ${r.message}`);
        else this.ownerLost(owner, r.message);
        return;
    }
  }

  welcome(rank: number, identity: string): ReductionSpecWire {
    const key = `${rank}:${identity}`;
    let id = this.routingIds.get(key);
    if (!id) {
      id = `r${rank}-${randomBytes(12).toString('hex')}`;
      this.routingIds.set(key, id);
    }
    return { kind: 'sharded', endpoints: this.owners.map((o) => o.endpoint).join(' '), routingId: id };
  }

  /** Every owner knows the members before any worker is told to start (a part from an unknown identity is dropped). */
  async start(identities: readonly string[]): Promise<void> {
    const routingIds = identities.map((identity, rank) => this.welcome(rank, identity).routingId).join(' ');
    await Promise.all(this.owners.map((o) => o.ask((id) => ({ t: MsgType.OwnerMembers, id, routingIds }), this.ctx.answerTimeoutMs, 'the member list')));
  }

  expect(step: number, phase: string): void {
    this.key = `${step}/${phase}`;
    this.joins = Array.from({ length: this.ctx.worldSize }, () => ({ sumSq: new Array<number | undefined>(this.shardCount).fill(undefined) }));
  }

  inspect(rank: number, result: { step: number; phase: string; grad: Float32Array; aux: Float32Array }, done: (check: ContributionCheck) => void): void {
    const { trainer } = this.ctx;
    const j = this.joins[rank];
    if (`${result.step}/${result.phase}` !== this.key || !j || j.done) {
      done({ norm: NaN, problem: 'a late or duplicate answer' }); // the machine drops it
      return;
    }
    if (result.grad.length !== 0) {
      done({ norm: NaN, problem: `it sent its gradient to the coordinator, but this run's reduction is sharded (a worker of another distgan?)` });
      return;
    }
    if (result.aux.length !== 0 && result.aux.length !== trainer.auxCount) j.auxProblem = `its BN statistics hold ${result.aux.length} floats, expected ${trainer.auxCount} (or none)`;
    for (let i = 0; i < result.aux.length && j.auxProblem === undefined; i++) {
      const a = result.aux[i]!;
      if (a - a !== 0) j.auxProblem = `BN statistic ${i} of ${result.aux.length} is ${a}`;
    }
    j.done = done;
    this.tryJudge(rank);
  }

  private onPart(k: number, r: Extract<OwnerReportMsg, { t: MsgType.OwnerPart }>): void {
    if (`${r.step}/${r.phase}` !== this.key) return; // for a phase already over
    const j = this.joins[r.rank];
    if (!j || j.sumSq[k] !== undefined) return;
    j.sumSq[k] = r.sumSq;
    if (r.problem !== '' && j.problem === undefined) j.problem = `${r.problem} (shard ${k})`;
    this.tryJudge(r.rank);
  }

  private tryJudge(rank: number): void {
    const j = this.joins[rank]!;
    if (!j.done || j.judged || j.sumSq.some((x) => x === undefined)) return;
    const done = j.done;
    j.judged = true;
    const problem = j.problem ?? j.auxProblem;
    if (problem !== undefined) {
      done({ norm: NaN, problem });
      return;
    }
    let sumSq = 0;
    for (const x of j.sumSq) sumSq += x!;
    done({ norm: Math.sqrt(sumSq) / this.ctx.shares[rank]! });
  }

  /**
   * Ranks whose answer arrived but whose parts are missing only at owners
   * that reported nothing at all this phase (those owners are silent); a
   * part missing at an owner that reported other ranks' parts means that
   * rank's push never arrived, and the rank, not the owner, is held to account.
   */
  inside(): { ranks: number[]; owners: string } | undefined {
    // An owner that never confirmed sending the update this phase started with holds every rank still to answer (they wait for it).
    const undelivered = [...this.delivering];
    if (undelivered.length > 0) {
      const ranks = this.joins.map((j, r) => (j.judged ? -1 : r)).filter((r) => r >= 0);
      return ranks.length ? { ranks, owners: undelivered.map((o) => o.describe).join(', ') } : undefined;
    }
    const silent = this.owners.filter((o) => this.joins.every((j) => j.sumSq[o.k] === undefined));
    const ranks: number[] = [];
    this.joins.forEach((j, r) => {
      if (!j.done || j.judged) return;
      if (this.owners.every((o) => j.sumSq[o.k] !== undefined || silent.includes(o))) ranks.push(r);
    });
    return ranks.length ? { ranks, owners: silent.map((o) => o.describe).join(', ') } : undefined;
  }

  async reduce(step: number, phase: PhaseSpec, parts: readonly Contribution[], accumulate: boolean, pending: Update | undefined): Promise<Update> {
    const aux = averageAux(parts, this.ctx.shares);
    const answers = await Promise.all(this.owners.map((o) => o.ask((id) => ({ t: MsgType.OwnerReduce, id, step, phase: phase.name, accumulate }), this.ctx.answerTimeoutMs, `the ${phase.name.toUpperCase()} reduction of step ${step}`)));
    for (const a of answers) {
      if (a.t === MsgType.OwnerReduced && a.problem !== '') throw new NumericError(a.problem);
    }
    return { grad: EMPTY_F32, aux: accumulate && pending && aux.length === 0 ? pending.aux : aux };
  }

  /** Owners that have not yet confirmed sending the update that went out with the current phase. */
  private delivering = new Set<Owner>();

  carry(step: number, network: Network): void {
    for (const o of this.owners) {
      this.delivering.add(o);
      // Its answer only clears it from `delivering` (a silent owner is judged at the phase deadline, via inside()).
      o.ask((id) => ({ t: MsgType.OwnerPublish, id, step, network }), 24 * 3600 * 1000, 'a publish').then(
        () => this.delivering.delete(o),
        () => {},
      );
    }
  }

  discard(): void {
    for (const o of this.owners) o.send({ t: MsgType.OwnerDiscard });
  }

  commit(step: number, order: Array<{ network: Network; skip: boolean }>): void {
    const text = order.map((u) => `${u.skip ? '-' : ''}${u.network}`).join(',');
    for (const o of this.owners) o.send({ t: MsgType.OwnerCommit, step, order: text });
  }

  /** Every owner's slice, once every order sent before has been carried out. */
  async gather(): Promise<OwnerStateMsg[]> {
    const answers = await Promise.all(this.owners.map((o) => o.ask((id) => ({ t: MsgType.OwnerGather, id }), this.ctx.answerTimeoutMs, 'a request for its mirror slice')));
    return answers as OwnerStateMsg[];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.readyTimer) clearTimeout(this.readyTimer);
    this.settleReady.reject(new ReducerLostError('the reduction closed'));
    await Promise.all(
      this.owners.map((o) => {
        o.failAll(new ReducerLostError('the reduction is closing'));
        return o.close();
      }),
    );
  }
}

/**
 * The mirror, slice by slice in the owners: a completed step becomes a
 * `commit` order; readers gather the slices into the coordinator's trainer
 * (which samples, exports and checkpoints from them) when they need it.
 */
class ShardedMirror<T extends GanTrainer> implements MirrorStore<T> {
  private held: number;
  private gatheredAt = -1;
  private bnStats: Float32Array;

  constructor(
    private readonly trainer: T,
    step: number,
    private readonly service: ShardedReduction<T>,
  ) {
    this.held = step;
    this.gatheredAt = step;
    this.bnStats = trainer.getState().bnStats;
  }

  get step(): number {
    return this.held;
  }

  queue(update: StepUpdate): void {
    this.service.commit(
      update.step,
      update.updates.map(({ network, update: u }) => ({ network, skip: u === 'skip' })),
    );
    for (const { update: u } of update.updates) if (u !== 'skip' && u.aux.length > 0) this.bnStats = u.aux;
    this.held = update.step;
  }

  catchUp(): void {}

  async current(): Promise<T> {
    if (this.gatheredAt === this.held) return this.trainer;
    const answers = await this.service.gather();
    const slices = answers.map((m) => m.frames);
    const { trainer } = this;
    const steps = new Set(answers.map((m) => m.step));
    if (steps.size !== 1) throw new ReducerLostError(`the shard owners hold different steps (${[...steps].join(', ')})`);
    const state: TrainerState = {
      step: [...steps][0]!,
      dWeights: concat(slices.map((s) => s.dWeights), trainer.dParamCount),
      dAdamM: concat(slices.map((s) => s.dAdamM), trainer.dParamCount),
      dAdamV: concat(slices.map((s) => s.dAdamV), trainer.dParamCount),
      gWeights: concat(slices.map((s) => s.gWeights), trainer.gParamCount),
      gAdamM: concat(slices.map((s) => s.gAdamM), trainer.gParamCount),
      gAdamV: concat(slices.map((s) => s.gAdamV), trainer.gParamCount),
      bnStats: this.bnStats,
    };
    trainer.setState(state);
    this.gatheredAt = this.held;
    return trainer;
  }

  async forFailure(): Promise<{ trainer: T; step: number }> {
    return { trainer: await this.current(), step: this.held };
  }
}

function concat(parts: Float32Array[], length: number): Float32Array {
  const out = new Float32Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  if (at !== length) throw new Error(`gathered ${at} floats, expected ${length}`);
  return out;
}

export const shardedReduction: ReductionFactory = {
  name: 'sharded',
  create: <T extends GanTrainer>(ctx: ReductionContext<T>) => new ShardedReduction(ctx),
};
