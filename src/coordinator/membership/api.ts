/**
 * The membership seam: who may hold a rank, and what losing a member means.
 * The state machine asks its policy (pure functions of the member table and
 * the run's phase) and executes the answer, so that a different policy (the
 * elastic one: carry on with fewer workers, let replacements join mid-run)
 * is a new file beside fixed.ts, not edits across the machine.
 */

/** One seat of the run. */
export interface Member {
  rank: number;
  /** ZeroMQ routing id, hex. */
  identity: string;
  host: string;
  pid: number;
  backend: string;
  ready: boolean;
}

/** What a joining peer asked for. */
export interface JoinRequest {
  /** Explicit rank, or -1 for any free one. */
  rank: number;
  host: string;
  pid: number;
}

/** The run as membership sees it. */
export interface MembershipView {
  /** 'joining' before the first step, 'training' (or finishing) after. */
  stage: 'joining' | 'training';
  worldSize: number;
  /** Indexed by rank. */
  members: readonly (Member | undefined)[];
}

export type Admission = { rank: number } | { refuse: string };

/** What happens to a member that is gone (exited, unreachable, silent past the deadline, or reported an error). */
export type LossVerdict =
  /** Its rank is free for someone else; the run goes on. */
  | 'free'
  /** The run fails, naming the rank. */
  | 'fail';

export interface MembershipPolicy {
  readonly name: string;
  /** Whether a new peer gets a rank, and which. (A retried Hello from a member is answered before this is asked.) */
  admit(view: MembershipView, request: JoinRequest): Admission;
  /** What losing `rank` means now. */
  onLost(view: MembershipView, rank: number): LossVerdict;
}
