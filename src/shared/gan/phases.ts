/**
 * The phases of a training step, as data (the way StyleGAN's loop takes its
 * G main / D main / regularisation phases with their own intervals).
 *
 * A step runs the phases that are due at that step (step % every === 0), in
 * table order. Each phase computes, on every worker, the gradient of one
 * network for its slice of the global batch; the coordinator averages it.
 * Consecutive phases of the same network are computed on the same weights
 * and their averaged gradients are summed into one update; that update is
 * applied (on every replica and the mirror) when a phase of the other
 * network begins, or at the next step. So every network gets exactly one
 * optimizer step per training step, whatever the table holds.
 *
 * D then G are today's two phases. Adding one (an R1 penalty every 16 steps,
 * a second critic pass) is a table entry here plus its loss in the trainer
 * (trainer.ts PHASE_LOSSES, or registerPhaseLoss); the machine, the protocol,
 * the coordinator and the worker take phases from this table and need no
 * edit. The table must be the same in every process of a run: the handshake
 * compares its signature.
 */

export type Network = 'd' | 'g';

export interface PhaseSpec {
  /** Stable name: on the wire, in logs and metrics. */
  readonly name: string;
  /** The network whose gradient this phase computes. */
  readonly network: Network;
  /** Runs on steps where step % every === 0 (1 = every step). */
  readonly every: number;
  /** Whether the phase reads the real samples of the worker's slice. */
  readonly data: boolean;
}

const DEFAULT_PHASES: readonly PhaseSpec[] = Object.freeze([
  Object.freeze({ name: 'd', network: 'd', every: 1, data: true }),
  Object.freeze({ name: 'g', network: 'g', every: 1, data: false }),
] as PhaseSpec[]);

let table: readonly PhaseSpec[] = DEFAULT_PHASES;

/** The phase table in order. */
export function phaseTable(): readonly PhaseSpec[] {
  return table;
}

/** The phases due at `step`, in table order. */
export function phasesDue(phases: readonly PhaseSpec[], step: number): PhaseSpec[] {
  return phases.filter((p) => step % p.every === 0);
}

/** A short, order-sensitive description of the table, compared at the handshake. */
export function phaseSignature(phases: readonly PhaseSpec[] = table): string {
  return phases.map((p) => `${p.name}:${p.network}/${p.every}${p.data ? '+data' : ''}`).join(',');
}

/**
 * Adds a phase after `after` (default: at the end). Throws on a duplicate
 * name or a bad interval. Returns a function that removes it again (tests).
 */
export function registerPhase(spec: PhaseSpec, opts: { after?: string } = {}): () => void {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(spec.name)) throw new RangeError(`phase name ${JSON.stringify(spec.name)}: lower-case letters, digits and '-', at most 32`);
  if (table.some((p) => p.name === spec.name)) throw new RangeError(`phase ${spec.name} is already registered`);
  if (!Number.isSafeInteger(spec.every) || spec.every < 1) throw new RangeError(`phase ${spec.name}: every must be a positive integer, got ${spec.every}`);
  if (spec.network !== 'd' && spec.network !== 'g') throw new RangeError(`phase ${spec.name}: network must be 'd' or 'g'`);
  const at = opts.after === undefined ? table.length : table.findIndex((p) => p.name === opts.after) + 1;
  if (at === 0) throw new RangeError(`phase ${spec.name}: no phase ${String(opts.after)} to insert after`);
  const entry = Object.freeze({ ...spec });
  table = Object.freeze([...table.slice(0, at), entry, ...table.slice(at)]);
  return () => {
    table = Object.freeze(table.filter((p) => p !== entry));
  };
}
