/**
 * `star`: the coordinator receives every rank's contribution and sums them
 * on its own thread, in rank order, so the float result never depends on
 * arrival order. Gradients are summed as they come (pre-scaled by share); BN
 * statistics are weighted by share here. The averaged gradient travels to
 * the workers with the coordinator's next message, and the mirror is a
 * trainer in the coordinator (mirror.ts) that applies it the same way.
 */
import { NumericError, ProtocolError } from '../../shared/errors.js';
import type { GanTrainer } from '../../shared/gan/api.js';
import { EMPTY_F32 } from '../../shared/protocol.js';
import { inspectContribution } from '../gradient-guard.js';
import { Mirror, type StepUpdate, type Update } from '../mirror.js';
import type { Contribution, MirrorStore, ReductionContext, ReductionFactory, ReductionService, ReductionShape } from './api.js';

/** Sums per-rank arrays in rank order; `weights` (by rank) scale each part when given. */
export function sumInRankOrder(parts: readonly Float32Array[], length: number, weights?: readonly number[]): Float32Array {
  const out = new Float32Array(length);
  parts.forEach((p, r) => {
    if (p.length !== length) throw new ProtocolError(`rank ${r} sent ${p.length} floats, expected ${length}`);
    const w = weights?.[r] ?? 1;
    if (w === 1) for (let i = 0; i < length; i++) out[i]! += p[i]!;
    else for (let i = 0; i < length; i++) out[i]! += w * p[i]!;
  });
  return out;
}

export function assertFinite(name: string, arr: Float32Array): void {
  for (let i = 0; i < arr.length; i++) {
    const x = arr[i]!;
    if (x - x !== 0) throw new NumericError(`the averaged ${name} overflowed at element ${i} (${x}) although every rank's part was finite; set --grad-norm-max to refuse such parts`);
  }
}

/** The BN statistics of a phase: each rank's, weighted by its share, summed in rank order (empty when the ranks sent none). */
export function averageAux(parts: readonly Contribution[], shares: readonly number[]): Float32Array {
  const auxLength = parts[0]?.aux.length ?? 0;
  const aux = auxLength ? sumInRankOrder(parts.map((p) => p.aux), auxLength, shares) : EMPTY_F32;
  assertFinite('BN statistics', aux);
  return aux;
}

/** One phase's average, summed on this thread. */
export const star = {
  name: 'star',
  reduce(parts: readonly Contribution[], shape: ReductionShape): Contribution {
    const grad = sumInRankOrder(parts.map((p) => p.grad), shape.gradLength);
    assertFinite('gradient', grad);
    return { grad, aux: averageAux(parts, shape.shares) };
  },
};

/**
 * Two averaged updates of one network in one step (consecutive phases of
 * the same network): gradients summed element by element in float32, in
 * phase order (deterministic); the later phase's BN statistics, if it has any.
 */
export function sumUpdates(a: Update, b: Update): Update {
  const grad = new Float32Array(a.grad.length);
  for (let i = 0; i < grad.length; i++) grad[i] = a.grad[i]! + b.grad[i]!;
  return { grad, aux: b.aux.length ? b.aux : a.aux };
}

/** The coordinator-side mirror (mirror.ts) as a MirrorStore. */
class LocalMirror<T extends GanTrainer> implements MirrorStore<T> {
  private readonly mirror: Mirror<T>;
  constructor(trainer: T, step: number) {
    this.mirror = new Mirror(trainer, step);
  }
  get step(): number {
    return this.mirror.step;
  }
  queue(update: StepUpdate): void {
    this.mirror.queue(update);
  }
  catchUp(): void {
    this.mirror.current();
  }
  current(): Promise<T> {
    return Promise.resolve(this.mirror.current());
  }
  async forFailure(): Promise<{ trainer: T; step: number; note?: string }> {
    try {
      return { trainer: this.mirror.current(), step: this.mirror.step };
    } catch (e) {
      const pending = this.mirror.pendingStep;
      return { trainer: this.mirror.asApplied(), step: this.mirror.appliedStep, note: `the mirror refused step ${pending ?? '?'}'s update: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
}

class StarReduction<T extends GanTrainer> implements ReductionService<T> {
  readonly name = 'star';
  readonly mirror: MirrorStore<T>;
  constructor(private readonly ctx: ReductionContext<T>) {
    this.mirror = new LocalMirror(ctx.trainer, ctx.startStep);
  }
  async open(): Promise<void> {}
  ready(): Promise<void> {
    return Promise.resolve();
  }
  receive(): boolean {
    return false;
  }
  inside(): undefined {
    return undefined;
  }
  welcome(): { kind: 'star'; endpoints: string; routingId: string } {
    return { kind: 'star', endpoints: '', routingId: '' };
  }
  async start(): Promise<void> {}
  expect(): void {}
  inspect(rank: number, result: { phase: string; grad: Float32Array; aux: Float32Array }, done: (check: ReturnType<typeof inspectContribution>) => void): void {
    const { trainer, phases, shares } = this.ctx;
    const spec = phases.find((p) => p.name === result.phase);
    if (!spec) {
      done({ norm: NaN, problem: `phase ${JSON.stringify(result.phase)} is not in this run's phase table` });
      return;
    }
    done(inspectContribution(result.grad, result.aux, { gradLength: spec.network === 'd' ? trainer.dParamCount : trainer.gParamCount, auxLength: trainer.auxCount }, shares[rank]!));
  }
  async reduce(_step: number, phase: { network: 'd' | 'g' }, parts: readonly Contribution[], accumulate: boolean, pending: Update | undefined): Promise<Update> {
    const { trainer, shares } = this.ctx;
    const avg = star.reduce(parts, { gradLength: phase.network === 'd' ? trainer.dParamCount : trainer.gParamCount, shares });
    return accumulate && pending ? sumUpdates(pending, avg) : avg;
  }
  carry(): void {}
  discard(): void {}
  async close(): Promise<void> {}
}

export const starReduction: ReductionFactory = {
  name: 'star',
  create: <T extends GanTrainer>(ctx: ReductionContext<T>) => new StarReduction(ctx),
};
