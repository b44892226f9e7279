/**
 * One shard owner of the sharded reduction (coordinator/reduction/
 * sharded.ts), without any I/O: its host (host.ts, in a thread of the
 * coordinator or in a `distgan reducer` process) feeds it the parts that
 * arrive on its socket and the coordinator's orders, and sends what it returns.
 *
 * For its contiguous slice [lo, hi) of each network's flat gradient it
 *  - sums the ranks' parts of a phase in rank order, adding rank r as soon as
 *    ranks 0..r have arrived (reception and summation overlap), starting from
 *    zeros, in float32: the same operations in the same order as the star
 *    reduction's sumInRankOrder, so the result has the same bits whatever
 *    the arrival order;
 *  - inspects each part on arrival (length, finiteness, sum of squares) for
 *    the coordinator's gradient guard, which judges whole contributions;
 *  - holds the averaged slice until the coordinator says to publish it to
 *    the workers, to drop it (skip-step), or to commit the step;
 *  - keeps the mirror's weights and Adam moments for its slice and applies
 *    committed updates with the same elementwise Adam as every replica (Adam
 *    is elementwise, so slices of it are exactly the whole), all or nothing:
 *    an update Adam would refuse is refused at `reduce`, before anything is
 *    published or applied.
 */
import { Adam, type AdamHyperparameters } from '../shared/gan/adam.js';
import type { Network } from '../shared/gan/phases.js';
import { shardBounds } from '../shared/reduction/shards.js';

export interface OwnerConfig {
  /** This owner's shard index k and the shard count K. */
  shard: number;
  shards: number;
  worldSize: number;
  /** The phase table in order: name → network (the order defines which phase is newer within a step). */
  phases: ReadonlyArray<{ name: string; network: Network }>;
  /** Full flat lengths of each network's gradient. */
  lengths: Readonly<Record<Network, number>>;
  hyper: Readonly<AdamHyperparameters>;
}

/** The mirror's state for this owner's slice. */
export interface ShardState {
  step: number;
  dWeights: Float32Array;
  dAdamM: Float32Array;
  dAdamV: Float32Array;
  gWeights: Float32Array;
  gAdamM: Float32Array;
  gAdamV: Float32Array;
}

/** The inspection of one rank's part, for the coordinator's guard. */
export interface PartReport {
  step: number;
  phase: string;
  rank: number;
  /** Float64 sum of squares of the part (NaN when `problem` is set). */
  sumSq: number;
  problem?: string;
}

interface Session {
  step: number;
  phaseIndex: number;
  phase: string;
  network: Network;
  acc: Float32Array;
  parts: Array<Float32Array | null | undefined>;
  /** Next rank to add. */
  next: number;
}

interface Entry {
  network: Network;
  grad: Float32Array;
  published: boolean;
  committed: boolean;
}

export class ShardOwner {
  readonly bounds: Readonly<Record<Network, readonly [number, number]>>;
  private readonly weights: Record<Network, Float32Array>;
  private readonly adam: Record<Network, Adam>;
  private session: Session | undefined;
  /** This step's averaged slices, in reduce order, until committed (and published). */
  private entries: Entry[] = [];
  private committedUpTo = 0;

  constructor(readonly config: Readonly<OwnerConfig>) {
    const d = shardBounds(config.lengths.d, config.shards)[config.shard];
    const g = shardBounds(config.lengths.g, config.shards)[config.shard];
    if (!d || !g) throw new RangeError(`owner ${config.shard} of ${config.shards}: no such shard`);
    this.bounds = { d, g };
    this.weights = { d: new Float32Array(d[1] - d[0]), g: new Float32Array(g[1] - g[0]) };
    this.adam = { d: new Adam(d[1] - d[0], config.hyper, `D shard ${config.shard}`), g: new Adam(g[1] - g[0], config.hyper, `G shard ${config.shard}`) };
  }

  /** Floats of `network` this owner holds. */
  length(network: Network): number {
    const [lo, hi] = this.bounds[network];
    return hi - lo;
  }

  setState(s: ShardState): void {
    for (const n of ['d', 'g'] as const) {
      const w = n === 'd' ? s.dWeights : s.gWeights;
      if (w.length !== this.length(n)) throw new RangeError(`owner ${this.config.shard}: ${n.toUpperCase()} slice has ${w.length} floats, expected ${this.length(n)}`);
      this.weights[n].set(w);
      this.adam[n].setState(s.step, n === 'd' ? s.dAdamM : s.gAdamM, n === 'd' ? s.dAdamV : s.gAdamV);
    }
    this.committedUpTo = s.step;
    this.entries = [];
    this.session = undefined;
  }

  /** A copy of the slice's mirror state (only between steps: both optimizers at the same count). */
  state(): ShardState {
    const d = this.adam.d.getState();
    const g = this.adam.g.getState();
    if (d.step !== g.step) throw new Error(`owner ${this.config.shard}: D has ${d.step} updates but G ${g.step}; gather between steps`);
    return { step: d.step, dWeights: this.weights.d.slice(), dAdamM: d.m, dAdamV: d.v, gWeights: this.weights.g.slice(), gAdamM: g.m, gAdamV: g.v };
  }

  private phaseIndex(phase: string): number {
    return this.config.phases.findIndex((p) => p.name === phase);
  }

  /**
   * Rank `rank`'s part of (step, phase). Returns its inspection, or undefined
   * when the part is for an older phase, a duplicate, or from no rank: those
   * are dropped (a late answer is safe to ignore). A part for a newer phase
   * starts that phase's sum (the coordinator only moves forward).
   */
  add(step: number, phase: string, rank: number, part: Float32Array): PartReport | undefined {
    const phaseIndex = this.phaseIndex(phase);
    if (phaseIndex < 0 || !Number.isSafeInteger(rank) || rank < 0 || rank >= this.config.worldSize) return undefined;
    let s = this.session;
    if (s && (step < s.step || (step === s.step && phaseIndex < s.phaseIndex))) return undefined;
    if (!s || step !== s.step || phaseIndex !== s.phaseIndex) {
      const network = this.config.phases[phaseIndex]!.network;
      s = { step, phaseIndex, phase, network, acc: new Float32Array(this.length(network)), parts: new Array(this.config.worldSize).fill(undefined), next: 0 };
      this.session = s;
    }
    if (s.parts[rank] !== undefined) return undefined;
    const report = inspect(part, this.length(s.network));
    s.parts[rank] = report.problem === undefined ? part : null;
    // Rank order, as soon as the prefix is complete: the sum's bits never depend on arrival order.
    const acc = s.acc;
    while (s.next < s.parts.length && s.parts[s.next] !== undefined) {
      const p = s.parts[s.next];
      if (p) addInto(acc, p);
      s.parts[s.next] = null; // release the frame
      s.next++;
    }
    return { step, phase, rank, ...report };
  }

  /** Whether every rank's part of (step, phase) is in and summed. */
  complete(step: number, phase: string): boolean {
    const s = this.session;
    return s !== undefined && s.step === step && s.phase === phase && s.next === this.config.worldSize;
  }

  /**
   * Makes the completed sum of (step, phase) this step's next update of its
   * network, or adds it to the last one (`accumulate`: consecutive phases of
   * one network). Returns why the update cannot be applied (a non-finite sum,
   * or a gradient Adam refuses), changing nothing then; undefined when fine.
   */
  reduce(step: number, phase: string, accumulate: boolean): string | undefined {
    const s = this.session;
    if (!s || !this.complete(step, phase)) return `owner ${this.config.shard} has not summed every rank's part of phase ${phase} of step ${step}`;
    let grad = s.acc;
    const last = this.entries[this.entries.length - 1];
    if (accumulate) {
      if (!last || last.network !== s.network || last.published) return `owner ${this.config.shard}: nothing of ${s.network.toUpperCase()} to accumulate into at step ${step}`;
      grad = new Float32Array(grad.length);
      for (let i = 0; i < grad.length; i++) grad[i] = last.grad[i]! + s.acc[i]!;
    }
    for (let i = 0; i < grad.length; i++) {
      const x = grad[i]!;
      if (x - x !== 0) return `the averaged ${s.network.toUpperCase()} gradient overflowed at element ${this.bounds[s.network][0] + i} (${x}) although every rank's part was finite; set --grad-norm-max to refuse such parts`;
    }
    try {
      this.adam[s.network].check(grad);
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
    if (accumulate) last!.grad = grad;
    else this.entries.push({ network: s.network, grad, published: false, committed: false });
    this.session = undefined;
    return undefined;
  }

  /** The averaged slice to send to the workers for `network` (the latest unpublished one); marks it published. */
  publish(network: Network): Float32Array {
    const e = [...this.entries].reverse().find((x) => !x.published);
    if (!e || e.network !== network) throw new Error(`owner ${this.config.shard}: no ${network.toUpperCase()} update waiting to be published`);
    e.published = true;
    this.entries = this.entries.filter((x) => !(x.committed && x.published));
    return e.grad;
  }

  /** Drops the updates not yet published (the guard's skip-step discarded them on every replica). */
  discard(): void {
    this.entries = this.entries.filter((e) => e.published);
    this.session = undefined;
  }

  /**
   * Step `step` (completed steps once applied) is final: applies its updates
   * to the mirror slice in the workers' order, one entry per network listed
   * (`skip`: count the step without changing anything). An unpublished entry
   * (the update that goes out with the next step) is kept for `publish`.
   */
  commit(step: number, order: ReadonlyArray<{ network: Network; skip: boolean }>): void {
    let from = 0;
    for (const { network, skip } of order) {
      if (skip) {
        this.adam[network].skip();
        continue;
      }
      const at = this.entries.findIndex((e, i) => i >= from && !e.committed && e.network === network);
      if (at < 0) throw new Error(`owner ${this.config.shard}: no ${network.toUpperCase()} update to commit at step ${step}`);
      const e = this.entries[at]!;
      this.adam[network].apply(this.weights[network], e.grad);
      from = at + 1;
      e.committed = true;
    }
    this.entries = this.entries.filter((e) => !(e.committed && e.published));
    this.committedUpTo = step;
  }

  /** Completed steps the mirror slice holds. */
  get step(): number {
    return this.committedUpTo;
  }
}

/** Length, finiteness and float64 sum of squares of one part. */
function inspect(part: Float32Array, length: number): { sumSq: number; problem?: string } {
  if (part.length !== length) return { sumSq: NaN, problem: `its gradient shard holds ${part.length} floats, expected ${length}` };
  let sumSq = 0;
  for (let i = 0; i < part.length; i++) {
    const g = part[i]!;
    if (g - g !== 0) return { sumSq: NaN, problem: `gradient element ${i} of its shard is ${g}` };
    sumSq += g * g;
  }
  return { sumSq };
}

/** acc += part, element by element in float32 (the star reduction's operation). */
function addInto(acc: Float32Array, part: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i]! += part[i]!;
}
