/**
 * The coordinator's mirror of the model: a trainer that applies every averaged
 * update exactly as each worker does (same deterministic flat Adam), so it
 * holds the replicas' exact weights, BN statistics and optimizer state
 * without ever asking for them. Checkpoints, sample grids, the exported
 * generator and the checksum comparison are made from it.
 *
 * Updates are queued and applied lazily: a completed step's update is applied
 * after the next step has been sent out, while the workers compute, so it
 * stays off the critical path. Every reader goes through `current()`, which
 * brings the mirror up to date first; nobody has to remember to flush.
 *
 * A step's updates are applied all or nothing: every one is checked before
 * any is applied, so a failure never leaves the mirror half-way.
 */
import type { GanTrainer } from '../shared/gan/api.js';
import type { Network } from '../shared/gan/phases.js';

export interface Update {
  grad: Float32Array;
  aux: Float32Array;
}

/**
 * A completed step's averaged updates, in the order every worker applies
 * them; `'skip'` for a network whose update the guard discarded (its
 * optimizer counts the step without changing anything).
 */
export interface StepUpdate {
  /** Training steps completed once this is applied. */
  step: number;
  updates: ReadonlyArray<{ network: Network; update: Update | 'skip' }>;
}

export class Mirror<T extends GanTrainer = GanTrainer> {
  private due: StepUpdate | undefined;
  private heldStep: number;

  constructor(
    private readonly trainer: T,
    /** Training steps the trainer's state has completed (the start or resume step). */
    step: number,
  ) {
    this.heldStep = step;
  }

  /** Training steps the mirror's state has completed, once brought up to date. */
  get step(): number {
    return this.due?.step ?? this.heldStep;
  }

  /** Training steps the trainer's state holds right now (before any queued update). */
  get appliedStep(): number {
    return this.heldStep;
  }

  /** The step whose update is queued, if any. */
  get pendingStep(): number | undefined {
    return this.due?.step;
  }

  /** Queues a completed step's update. The previous one must have been applied (every step's start reads the mirror). */
  queue(update: StepUpdate): void {
    if (this.due) this.flush();
    this.due = update;
  }

  /** The trainer, brought up to date. Throws (leaving the mirror as it was) if the queued update is refused. */
  current(): T {
    this.flush();
    return this.trainer;
  }

  /** The trainer as it is, without applying the queued update: for a failure checkpoint when that update was refused. */
  asApplied(): T {
    return this.trainer;
  }

  private flush(): void {
    const due = this.due;
    if (!due) return;
    const t = this.trainer;
    for (const { network, update } of due.updates) if (update !== 'skip') t.checkUpdate(network, update.grad, update.aux);
    this.due = undefined;
    for (const { network, update } of due.updates) {
      if (update === 'skip') t.skipUpdate(network);
      else t.applyGradients(network, update.grad, update.aux);
    }
    this.heldStep = due.step;
  }
}
