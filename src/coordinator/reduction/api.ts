/**
 * The reduction seam: how one phase's contributions from every rank become
 * the averaged update that every replica applies, and where the mirror of
 * the replicas' state (weights, Adam moments) lives.
 *
 * A contribution is a rank's gradient, already multiplied by its share of the
 * global batch (so the SUM over ranks is the full-batch mean), and its BN
 * statistics, raw (weighted by the same shares when averaged). Only
 * contributions the gradient guard accepted are reduced.
 *
 * The result must not depend on arrival order: replicas stay bit-identical
 * only if every run of the same step sums in the same order. Every
 * implementation sums in rank order, so they all give the same bits.
 *
 * The coordinator picks one implementation by name (REDUCTIONS in
 * ./index.ts) and talks to it only through ReductionService:
 *  - `star` (star.ts): every gradient comes to the coordinator, which sums it
 *    on its own thread and sends the average back with the next message; the
 *    mirror is a trainer in the coordinator.
 *  - `sharded` (sharded.ts): each gradient is cut into K shards, each sent by
 *    the workers straight to its owner, which sums it, sends the average
 *    back and keeps the mirror's slice; the coordinator sees only the owners'
 *    inspections and orders them to publish, drop or commit.
 */
import type { GanTrainer } from '../../shared/gan/api.js';
import type { AdamHyperparameters } from '../../shared/gan/adam.js';
import type { Network, PhaseSpec } from '../../shared/gan/phases.js';
import type { Message, OwnerReportMsg, ReductionSpecWire } from '../../shared/protocol.js';
import type { ContributionCheck } from '../gradient-guard.js';
import type { StepUpdate, Update } from '../mirror.js';

export type { Update };

export interface Contribution {
  grad: Float32Array;
  aux: Float32Array;
}

export interface ReductionShape {
  /** Floats in every rank's gradient. */
  gradLength: number;
  /** Each rank's share of the global batch, by rank (sums to 1). */
  shares: readonly number[];
}

/**
 * The replicas' state as the coordinator knows it: updated with every
 * completed step, read for checkpoints, samples, the export and checksums.
 * Readers get it up to date (`current`); nobody has to remember to flush.
 */
export interface MirrorStore<T extends GanTrainer = GanTrainer> {
  /** Completed steps the mirror holds once up to date. */
  readonly step: number;
  /** A completed step's updates, in the order every worker applied them. */
  queue(update: StepUpdate): void;
  /** Applies queued work now if that is cheap to do here (called while the workers compute). */
  catchUp(): void;
  /** The trainer, up to date. Throws if a queued update is refused. */
  current(): Promise<T>;
  /** For a failure checkpoint: the trainer as far as it is consistent, its step, and why it is behind (if it is). */
  forFailure(): Promise<{ trainer: T; step: number; note?: string }>;
}

/** What a reduction needs from the coordinator. */
export interface ReductionContext<T extends GanTrainer = GanTrainer> {
  worldSize: number;
  /** Each rank's share of the global batch. */
  shares: readonly number[];
  phases: readonly PhaseSpec[];
  /** The mirror's trainer (holds the start or resume state). */
  trainer: T;
  /** Completed steps of that state. */
  startStep: number;
  hyper: Readonly<AdamHyperparameters>;
  /** Shard owners as threads of the coordinator (sharded, when `reducers` is 0). */
  shards: number;
  /** Reducer processes to wait for instead (`distgan reducer`, one per worker host); 0 = threads. */
  reducers: number;
  /** How long reducer processes may take to say hello, ms. */
  joinTimeoutMs: number;
  version: string;
  /** CURVE server keys, when security is on (owner threads serve with them; the coordinator's ZAP handler admits their peers). */
  curve?: { publicKey: string; secretKey: string };
  /** Sends a message to a peer of the coordinator's socket (a reducer process); rejects if it cannot be queued (the peer is gone). */
  sendTo(identity: string, msg: Message): Promise<void>;
  /** The coordinator's own bind address; owners bind beside it (sharded). */
  coordinatorBind: string;
  /** Longest wait for an owner's answer, ms. */
  answerTimeoutMs: number;
  log(line: string): void;
  /** A part of the service failed (an owner died): the run must fail, naming it. */
  lost(reason: string): void;
  /** Sending to rank `rank` failed. */
  unreachable(rank: number, reason: string): void;
  /** A stranger's or a malformed message was dropped. */
  dropped(reason: string): void;
}

export interface ReductionService<T extends GanTrainer = GanTrainer> {
  readonly name: string;
  readonly mirror: MirrorStore<T>;
  /** Starts what the reduction runs (owner threads) before the coordinator listens. */
  open(): Promise<void>;
  /** Settles once every part of the reduction is in place (reducer processes have said hello); workers are welcomed after. */
  ready(): Promise<void>;
  /** A message for the reduction (from a reducer process) on the coordinator's socket; false if it is not one. */
  receive(identity: string, msg: OwnerReportMsg): boolean;
  /** Ranks whose answer arrived but waits inside the reduction, and for whom (the machine blames those at a deadline). */
  inside(): { ranks: number[]; owners: string } | undefined;
  /** What rank `rank` (ZeroMQ identity `identity`) is told in Welcome about where its gradients go. */
  welcome(rank: number, identity: string): ReductionSpecWire;
  /** Every rank is in (identities by rank): training starts from the mirror's state. */
  start(identities: readonly string[]): Promise<void>;
  /** Phase `phase` of step `step` is about to be sent to the workers. */
  expect(step: number, phase: string): void;
  /**
   * Inspects rank `rank`'s result for the gradient guard; calls `done` with
   * its check once it can be judged: at once (star), or once every owner has
   * the rank's part (sharded).
   */
  inspect(rank: number, result: { step: number; phase: string; grad: Float32Array; aux: Float32Array }, done: (check: ContributionCheck) => void): void;
  /**
   * Averages the accepted contributions of a completed phase. `accumulate`:
   * add it to `pending` (the previous phase was of the same network). Throws
   * NumericError if the average cannot be applied (it overflowed, or Adam
   * would refuse it), before anything is sent or applied.
   */
  reduce(step: number, phase: PhaseSpec, parts: readonly Contribution[], accumulate: boolean, pending: Update | undefined): Promise<Update>;
  /** The update for `network` goes to the workers now (with a PhaseStep or Finish of `step`). */
  carry(step: number, network: Network): void;
  /** The update not yet sent was discarded on every replica (skip-step). */
  discard(): void;
  close(): Promise<void>;
}

export interface ReductionFactory {
  readonly name: string;
  create<T extends GanTrainer>(ctx: ReductionContext<T>): ReductionService<T>;
}
