/**
 * `sharded`: BytePS-style summation service under the coordinator's control.
 *
 * Each flat gradient is cut into K contiguous shards (shared/reduction/
 * shards.ts). Shard k has an owner (owner.ts), today a thread of the
 * coordinator process with its own ZeroMQ ROUTER (owner-thread.ts). Every
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
import { DistganError, NumericError } from '../../shared/errors.js';
import type { GanTrainer, TrainerState } from '../../shared/gan/api.js';
import type { Network, PhaseSpec } from '../../shared/gan/phases.js';
import { EMPTY_F32, type ReductionSpecWire } from '../../shared/protocol.js';
import { shardBounds } from '../../shared/reduction/shards.js';
import type { ContributionCheck } from '../gradient-guard.js';
import type { StepUpdate, Update } from '../mirror.js';
import type { Contribution, MirrorStore, ReductionContext, ReductionFactory, ReductionService } from './api.js';
import type { OwnerOrder, OwnerReport, OwnerThreadData } from './owner-thread.js';
import type { ShardState } from './owner.js';
import { averageAux } from './star.js';

/** Error code of a failed shard owner. */
export class ReducerLostError extends DistganError {
  constructor(message: string) {
    super('DISTGAN_E_REDUCER_LOST', message);
  }
}

/**
 * Where owner k binds, from the coordinator's own address: ipc beside it on
 * one host (3.2 ms against 5.7 ms over tcp loopback for a 4.2 MB round trip,
 * docs/benchmarks.md), a free tcp port on the same interface otherwise.
 */
export function ownerBindAddress(coordinatorBind: string, tag: string, k: number): string {
  const tcp = /^tcp:\/\/([^:/]+|\[[^\]]+\]):/.exec(coordinatorBind);
  const host = tcp?.[1];
  if (host && !['127.0.0.1', 'localhost', '[::1]'].includes(host)) return `tcp://${host}:0`;
  return `ipc://${join(tmpdir(), `distgan-${tag}-shard-${k}.sock`)}`;
}

interface Join {
  done?: (check: ContributionCheck) => void;
  auxProblem?: string;
  /** Sum of squares reported by each owner, by shard (summed in shard order). */
  sumSq: Array<number | undefined>;
  problem?: string;
}

class Owner {
  endpoint = '';
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: OwnerReport) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }>();
  closing = false;
  constructor(
    readonly k: number,
    readonly thread: Thread,
  ) {}

  send(order: OwnerOrder, transfer?: ArrayBuffer[]): void {
    this.thread.postMessage(order, transfer);
  }

  /** Sends an order that is answered (reduce, gather) and waits for the answer. */
  ask(make: (id: number) => OwnerOrder, timeoutMs: number, what: string): Promise<OwnerReport> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new ReducerLostError(`shard owner ${this.k} did not answer ${what} within ${(timeoutMs / 1000).toFixed(0)} s`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.send(make(id));
    });
  }

  answered(id: number, r: OwnerReport): void {
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

class ShardedReduction<T extends GanTrainer> implements ReductionService<T> {
  readonly name = 'sharded';
  readonly mirror: ShardedMirror<T>;
  private owners: Owner[] = [];
  private readonly tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private readonly routingIds = new Map<string, string>();
  private key = '';
  private joins: Join[] = [];
  private closed = false;

  constructor(private readonly ctx: ReductionContext<T>) {
    if (!Number.isSafeInteger(ctx.shards) || ctx.shards < 1) throw new RangeError(`sharded reduction: ${ctx.shards} shards`);
    this.mirror = new ShardedMirror(ctx.trainer, ctx.startStep, this);
  }

  get shardCount(): number {
    return this.ctx.shards;
  }

  async open(): Promise<void> {
    const { ctx } = this;
    const lengths = { d: ctx.trainer.dParamCount, g: ctx.trainer.gParamCount };
    const phases = ctx.phases.map((p) => ({ name: p.name, network: p.network }));
    const bound: Array<Promise<void>> = [];
    for (let k = 0; k < ctx.shards; k++) {
      const data: OwnerThreadData = {
        config: { shard: k, shards: ctx.shards, worldSize: ctx.worldSize, phases, lengths, hyper: { ...ctx.hyper } },
        bind: ownerBindAddress(ctx.coordinatorBind, this.tag, k),
      };
      const thread = new Thread(new URL('./owner-thread.js', import.meta.url), { workerData: data });
      const owner = new Owner(k, thread);
      this.owners.push(owner);
      bound.push(
        new Promise<void>((resolve, reject) => {
          thread.on('message', (r: OwnerReport) => {
            if (r.t === 'bound') {
              owner.endpoint = r.endpoint;
              resolve();
              return;
            }
            if (r.t === 'failed') reject(new ReducerLostError(r.message));
            this.onReport(owner, r);
          });
          thread.on('error', (e) => {
            reject(e);
            this.ownerLost(owner, `failed: ${e instanceof Error ? e.message : String(e)}`);
          });
          thread.on('exit', (code) => {
            reject(new ReducerLostError(`shard owner ${k} exited (code ${code}) before binding`));
            if (!owner.closing) this.ownerLost(owner, `exited with code ${code}`);
          });
        }),
      );
    }
    try {
      await Promise.all(bound);
    } catch (e) {
      await this.close();
      throw e;
    }
    // The start (or resume) state, slice by slice.
    this.seed(ctx.trainer.getState());
    ctx.log(`sharded reduction: ${ctx.shards} shard owners (threads) at ${this.owners.map((o) => o.endpoint).join(' ')}`);
  }

  private seed(state: TrainerState): void {
    const d = shardBounds(this.ctx.trainer.dParamCount, this.ctx.shards);
    const g = shardBounds(this.ctx.trainer.gParamCount, this.ctx.shards);
    for (const o of this.owners) {
      const [dl, dh] = d[o.k]!;
      const [gl, gh] = g[o.k]!;
      const slice: ShardState = {
        step: state.step,
        dWeights: state.dWeights.slice(dl, dh),
        dAdamM: state.dAdamM.slice(dl, dh),
        dAdamV: state.dAdamV.slice(dl, dh),
        gWeights: state.gWeights.slice(gl, gh),
        gAdamM: state.gAdamM.slice(gl, gh),
        gAdamV: state.gAdamV.slice(gl, gh),
      };
      o.send({ op: 'state', state: slice });
    }
  }

  private ownerLost(owner: Owner, what: string): void {
    if (this.closed || owner.closing) return;
    const e = new ReducerLostError(`shard owner ${owner.k} (a thread of the coordinator) ${what}`);
    owner.failAll(e);
    this.ctx.lost(e.message);
  }

  private onReport(owner: Owner, r: OwnerReport): void {
    switch (r.t) {
      case 'part':
        this.onPart(owner.k, r);
        return;
      case 'reduced':
      case 'state':
        owner.answered(r.id, r);
        return;
      case 'dropped':
        this.ctx.dropped(`shard owner ${owner.k}: ${r.reason}`);
        return;
      case 'unreachable':
        this.ctx.unreachable(r.rank, `shard owner ${owner.k} cannot reach it: ${r.reason}`);
        return;
      case 'failed':
        this.ownerLost(owner, r.message);
        return;
      case 'bound':
      case 'closed':
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

  async start(identities: readonly string[]): Promise<void> {
    const ids = identities.map((identity, rank) => this.welcome(rank, identity).routingId);
    for (const o of this.owners) o.send({ op: 'members', routingIds: ids });
  }

  expect(step: number, phase: string): void {
    this.key = `${step}/${phase}`;
    this.joins = Array.from({ length: this.ctx.worldSize }, () => ({ sumSq: new Array<number | undefined>(this.ctx.shards).fill(undefined) }));
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

  private onPart(k: number, r: Extract<OwnerReport, { t: 'part' }>): void {
    if (`${r.step}/${r.phase}` !== this.key) return; // for a phase already over
    const j = this.joins[r.rank];
    if (!j || j.sumSq[k] !== undefined) return;
    j.sumSq[k] = r.sumSq;
    if (r.problem !== undefined && j.problem === undefined) j.problem = `${r.problem} (shard ${k})`;
    this.tryJudge(r.rank);
  }

  private tryJudge(rank: number): void {
    const j = this.joins[rank]!;
    if (!j.done || j.sumSq.some((x) => x === undefined)) return;
    const done = j.done;
    j.done = () => {}; // judged once
    const problem = j.problem ?? j.auxProblem;
    if (problem !== undefined) {
      done({ norm: NaN, problem });
      return;
    }
    let sumSq = 0;
    for (const x of j.sumSq) sumSq += x!;
    done({ norm: Math.sqrt(sumSq) / this.ctx.shares[rank]! });
  }

  async reduce(step: number, phase: PhaseSpec, parts: readonly Contribution[], accumulate: boolean, pending: Update | undefined): Promise<Update> {
    const aux = averageAux(parts, this.ctx.shares);
    const answers = await Promise.all(this.owners.map((o) => o.ask((id) => ({ op: 'reduce', id, step, phase: phase.name, accumulate }), this.ctx.answerTimeoutMs, `the ${phase.name.toUpperCase()} reduction of step ${step}`)));
    for (const a of answers) {
      if (a.t === 'reduced' && a.problem !== undefined) throw new NumericError(a.problem);
    }
    return { grad: EMPTY_F32, aux: accumulate && pending && aux.length === 0 ? pending.aux : aux };
  }

  carry(step: number, network: Network): void {
    for (const o of this.owners) o.send({ op: 'publish', step, network });
  }

  discard(): void {
    for (const o of this.owners) o.send({ op: 'discard' });
  }

  commit(step: number, order: Array<{ network: Network; skip: boolean }>): void {
    for (const o of this.owners) o.send({ op: 'commit', step, order });
  }

  /** Every owner's slice, once every order sent before has been carried out. */
  async gather(): Promise<ShardState[]> {
    const answers = await Promise.all(this.owners.map((o) => o.ask((id) => ({ op: 'gather', id }), this.ctx.answerTimeoutMs, 'a request for its mirror slice')));
    return answers.map((a) => (a as Extract<OwnerReport, { t: 'state' }>).state);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      this.owners.map(
        (o) =>
          new Promise<void>((resolve) => {
            o.closing = true;
            o.failAll(new ReducerLostError('the reduction is closing'));
            const timer = setTimeout(() => {
              void o.thread.terminate().then(() => resolve());
            }, 5000);
            o.thread.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            o.send({ op: 'close' });
          }),
      ),
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
    const slices = await this.service.gather();
    const { trainer } = this;
    const state: TrainerState = {
      step: slices[0]!.step,
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
