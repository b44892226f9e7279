/**
 * The coordinator's decisions as a pure state machine:
 *
 *   step(state, event, now) → { state, actions }
 *
 * It owns membership (join, ranks, handshake checks), the phase sequence of a
 * synchronous step (D, then G), which results count, every deadline, the
 * cadence of samples and checkpoints, and what happens on a failure. It never
 * touches sockets, tensors or files: the loop in coordinator.ts feeds it
 * events (messages, child exits, clock ticks, signals, its own exceptions)
 * and executes the actions it returns. A result's payload (the tensors) is
 * opaque here: the machine only decides whether it counts, and hands the
 * accepted ones back in the reduce actions. Tests drive it with a fake clock.
 *
 * Phases and their allowed transitions:
 *
 *   joining ──all Ready──▶ training ──last step reduced──▶ finishing ──all Finished──▶ done
 *      │                      │                               │
 *      └──────────────────────┴────── deadline / worker lost / error / signal ──▶ failed | interrupted
 *
 * In `training`, each step runs the phases of the phase table that are due
 * at that step (shared/gan/phases.ts; today D then G), each awaiting every
 * rank's result before it is reduced and the next one starts. A rank that
 * does not answer by the phase deadline, exits, cannot be reached, or
 * reports an error fails the run with a message naming the rank.
 *
 * The gradient guard (gradient-guard.ts): each result arrives with its
 * inspection (length, finiteness, scaled norm). When a phase is complete and
 * some rank's contribution is refused, nothing of that phase is averaged or
 * sent, and the --on-bad-gradient policy decides:
 *   fail       the run fails naming the rank(s); the coordinator checkpoints
 *              the last step every replica and its mirror completed;
 *   skip-step  the rest of the step is discarded on every replica and
 *              training goes on at the next step: updates already applied
 *              stay (with D then G: a bad D phase discards the whole step, a
 *              bad G phase only G's update), and each network that got no
 *              update this step has its optimizer count the step without
 *              changing anything, so every optimizer stays at the training
 *              step. Replicas stay bit-identical.
 * Norms of accepted phases feed the per-phase history the next ones are judged by.
 */
import { PROTOCOL_VERSION, type HelloMsg, type ReadyMsg } from '../shared/protocol.js';
import { DeadlineError, DistganError, InterruptedError, JoinRefusedError, NumericError, ReducerLostError, ReplicaDivergedError, WorkerFailedError } from '../shared/errors.js';
import { judge, remember, type ContributionCheck, type GuardOptions } from './gradient-guard.js';
import { phasesDue, type PhaseSpec } from '../shared/gan/phases.js';
import type { Member, MembershipPolicy, MembershipView } from './membership/api.js';

export type Phase = 'joining' | 'training' | 'finishing' | 'done' | 'failed' | 'interrupted';

export type { Member } from './membership/api.js';

export interface MachineOptions {
  worldSize: number;
  /** First step to run (0, or the checkpoint's step on resume). */
  startStep: number;
  /** Absolute step to stop at. */
  targetSteps: number;
  checksumEvery: number;
  joinTimeoutMs: number;
  stepTimeoutMs: number;
  modelFingerprint: string;
  datasetFingerprint: string;
  version: string;
  /** Gradient guard thresholds (see gradient-guard.ts). */
  guard: GuardOptions;
  /** What a refused contribution does (drop-worker is refused by config until membership is elastic). */
  onBadGradient: 'fail' | 'skip-step';
  /** Steps between sample grids (0 = only at the end). */
  sampleEvery: number;
  /** Steps between checkpoints (0 = only at the end and on a failure). */
  checkpointEvery: number;
  /** The phase table (shared/gan/phases.ts): which phases a step runs, in order. */
  phases: readonly PhaseSpec[];
  /** Who may hold a rank and what losing one means (membership/: fixed today). */
  membership: MembershipPolicy;
}

export interface MachineState {
  readonly opts: MachineOptions;
  readonly phase: Phase;
  /** Indexed by rank. */
  readonly members: readonly (Member | undefined)[];
  /** Step in progress (or about to start). */
  readonly step: number;
  /** Name of the phase in progress, or 'none'. */
  readonly stepPhase: string;
  /** The phases of the step in progress, in order (those due at this step). */
  readonly stepPhases: readonly PhaseSpec[];
  /** Index of the phase in progress in stepPhases. */
  readonly phaseIndex: number;
  /** Ranks whose answer to the current phase is outstanding. */
  readonly awaiting: readonly number[];
  /** Checksums reported in the current D phase, by rank. */
  readonly checksums: readonly (string | undefined)[];
  /** Absolute ms after which the current wait fails. */
  readonly deadline: number;
  /** Why each rank's contribution to the current phase was refused (undefined = accepted or not yet in). */
  readonly refused: readonly (string | undefined)[];
  /** Scaled norms of the current phase's contributions, by rank. */
  readonly norms: readonly number[];
  /** Accepted payloads of the current phase, by rank (opaque: the coordinator's). */
  readonly parts: readonly unknown[];
  /** Accepted payloads of the step's completed phases, by phase name, for the step's report. */
  readonly stepParts: Readonly<Record<string, readonly unknown[]>>;
  /** Recently accepted scaled norms, per phase name. */
  readonly normHistory: Readonly<Record<string, readonly number[]>>;
  /** When joining members were last re-sent their Welcome (see onTick). */
  readonly probedAt: number;
  /** Set once the run has failed or been interrupted. */
  readonly error?: DistganError;
}

export type Event =
  | { type: 'hello'; identity: string; msg: HelloMsg }
  | { type: 'ready'; identity: string; msg: ReadyMsg }
  | { type: 'result'; identity: string; phase: string; step: number; checksum?: string; check: ContributionCheck; payload?: unknown }
  | { type: 'finished'; identity: string; step: number; checksum: string }
  | { type: 'worker-error'; identity: string; code: string; message: string }
  | { type: 'worker-exited'; rank: number; description: string }
  /** A send to this peer failed (it disconnected, or stopped reading). */
  | { type: 'unreachable'; identity: string; reason: string }
  | { type: 'diverged'; message: string }
  | { type: 'interrupt'; signal: string }
  /** Executing an action threw: the run fails through the same path as any other failure. */
  | { type: 'crash'; error: DistganError }
  /**
   * The clock moved. `inside`: with a sharded reduction, the ranks whose
   * answer to the current phase has arrived but is still waiting for shard
   * owners to report their parts, and which owners those are; at a deadline
   * the owners are blamed for those ranks, not the ranks.
   */
  | { type: 'tick'; inside?: { ranks: readonly number[]; owners: string } };

export type Action =
  | { type: 'welcome'; identity: string; rank: number }
  | { type: 'refuse'; identity: string; code: string; reason: string }
  | { type: 'joined'; member: Member }
  | { type: 'init' }
  /**
   * Send every rank its slice for `phase`; `first` of its step (then
   * `checksum` asks for weight checksums). `carry`: the update waiting to go
   * out goes with this message (a new step, or a phase of the other network).
   */
  | { type: 'start-phase'; step: number; phase: PhaseSpec; first: boolean; checksum: boolean; carry: boolean }
  /**
   * Average the accepted contributions of a completed phase (by rank);
   * `accumulate`: add it to the waiting update of the same network (the
   * previous phase of this step was of the same network) instead of replacing it.
   */
  | { type: 'reduce'; step: number; phase: PhaseSpec; parts: unknown[]; accumulate: boolean }
  /** Every phase of `step` is reduced: report it; the step's updates are final. */
  | { type: 'step-done'; step: number; parts: Record<string, unknown[]> }
  /**
   * The guard refused a contribution under skip-step: nothing of `phase` or of
   * any later phase of the step is applied; updates already sent stay.
   */
  | { type: 'skip'; step: number; phase: PhaseSpec; ranks: number[] }
  | { type: 'verify-checksums'; step: number; checksums: string[] }
  /** Write a sample grid of the mirror at `step` completed steps. */
  | { type: 'sample'; step: number }
  /** Checkpoint the mirror at `step` completed steps. */
  | { type: 'checkpoint'; step: number; reason: 'periodic' | 'final' | 'failure' }
  /** Export the generator (the end of a completed run). */
  | { type: 'export' }
  | { type: 'finish'; step: number }
  | { type: 'done'; step: number }
  | { type: 'fail'; error: DistganError; lostRank?: number }
  | { type: 'log'; text: string };

export interface Transition {
  state: MachineState;
  actions: Action[];
}

export function initialState(opts: MachineOptions, now: number): MachineState {
  if (!opts.phases.some((p) => p.every === 1)) throw new RangeError('the phase table needs a phase that runs every step');
  return {
    opts,
    phase: 'joining',
    members: new Array(opts.worldSize).fill(undefined),
    step: opts.startStep,
    stepPhase: 'none',
    stepPhases: [],
    phaseIndex: 0,
    awaiting: [],
    checksums: [],
    deadline: now + opts.joinTimeoutMs,
    refused: [],
    norms: [],
    parts: [],
    stepParts: {},
    normHistory: {},
    probedAt: now,
  };
}

/**
 * How often members that joined (ready or still building) are re-sent their
 * Welcome while joining. ZeroMQ tells a ROUTER nothing when a peer vanishes,
 * but a send to a vanished peer fails (mandatory routing), and that failure
 * (an `unreachable` event) frees the rank for a replacement instead of
 * holding it until the join deadline. Workers ignore a repeated Welcome.
 */
export const JOIN_PROBE_MS = 2000;

const allRanks = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The member table as the membership policy sees it. */
function view(state: MachineState): MembershipView {
  return { stage: state.phase === 'joining' ? 'joining' : 'training', worldSize: state.opts.worldSize, members: state.members };
}

function rankOf(state: MachineState, identity: string): number {
  return state.members.findIndex((m) => m?.identity === identity);
}

function fail(state: MachineState, error: DistganError, lostRank?: number): Transition {
  if (state.phase === 'failed' || state.phase === 'interrupted' || state.phase === 'done') return { state, actions: [] };
  const phase: Phase = error instanceof InterruptedError ? 'interrupted' : 'failed';
  // Steps every replica and the mirror completed are kept, so the run can
  // resume; not when the replicas diverged (which copy would be right?).
  const completed = state.phase === 'training' || state.phase === 'finishing' ? state.step : state.opts.startStep;
  const keep = completed > state.opts.startStep && !(error instanceof ReplicaDivergedError);
  return {
    state: { ...state, phase, error, awaiting: [], stepPhase: 'none', parts: [], stepParts: {} },
    actions: [...(keep ? [{ type: 'checkpoint' as const, step: completed, reason: 'failure' as const }] : []), { type: 'fail', error, ...(lostRank === undefined ? {} : { lostRank }) }],
  };
}

/** The sample grid and checkpoint due after `completed` steps (the final ones are written at the end instead). */
function cadence(opts: MachineOptions, completed: number): Action[] {
  if (completed >= opts.targetSteps) return [];
  const due = (every: number): boolean => every > 0 && completed % every === 0;
  return [
    ...(due(opts.sampleEvery) ? [{ type: 'sample' as const, step: completed }] : []),
    ...(due(opts.checkpointEvery) ? [{ type: 'checkpoint' as const, step: completed, reason: 'periodic' as const }] : []),
  ];
}

function describeMissing(state: MachineState, ranks: readonly number[]): string {
  return ranks
    .map((r) => {
      const m = state.members[r];
      return m ? `rank ${r} (${m.host} pid ${m.pid})` : `rank ${r}`;
    })
    .join(', ');
}

/** Starts step `step` (its first due phase), or finishes when the target is reached. */
function beginStep(state: MachineState, step: number, now: number): Transition {
  const { opts } = state;
  if (step >= opts.targetSteps) {
    return {
      state: { ...state, phase: 'finishing', step, stepPhase: 'none', stepPhases: [], phaseIndex: 0, awaiting: allRanks(opts.worldSize), deadline: now + opts.stepTimeoutMs },
      actions: [{ type: 'finish', step }],
    };
  }
  const due = phasesDue(opts.phases, step);
  // Checksums are taken at the start of a step, after the previous step's
  // updates, so every rank (and the coordinator's mirror) is compared at the same point.
  const checksum = step > opts.startStep && step % opts.checksumEvery === 0;
  return {
    state: {
      ...state,
      phase: 'training',
      step,
      stepPhase: due[0]!.name,
      stepPhases: due,
      phaseIndex: 0,
      awaiting: allRanks(opts.worldSize),
      checksums: [],
      refused: [],
      norms: [],
      parts: [],
      stepParts: {},
      deadline: now + opts.stepTimeoutMs,
    },
    actions: [{ type: 'start-phase', step, phase: due[0]!, first: true, checksum, carry: true }],
  };
}

function onHello(state: MachineState, identity: string, msg: HelloMsg): Transition {
  const { opts } = state;
  const refuse = (code: string, reason: string): Transition => ({ state, actions: [{ type: 'refuse', identity, code, reason }, { type: 'log', text: `refused ${msg.host} pid ${msg.pid}: ${reason}` }] });
  if (msg.protocol !== PROTOCOL_VERSION) {
    return refuse('DISTGAN_E_JOIN_REFUSED', `protocol version ${msg.protocol} differs from the coordinator's ${PROTOCOL_VERSION} (worker distgan ${msg.version}, coordinator ${opts.version})`);
  }
  const existing = rankOf(state, identity);
  if (existing >= 0) return { state, actions: [{ type: 'welcome', identity, rank: existing }] }; // a retried Hello
  const admission = opts.membership.admit(view(state), { rank: msg.rank, host: msg.host, pid: msg.pid });
  if ('refuse' in admission) return refuse('DISTGAN_E_JOIN_REFUSED', admission.refuse);
  const { rank } = admission;
  const member: Member = { rank, identity, host: msg.host, pid: msg.pid, backend: msg.backend, ready: false };
  const members = state.members.slice();
  members[rank] = member;
  return {
    state: { ...state, members },
    actions: [{ type: 'welcome', identity, rank }, { type: 'log', text: `rank ${rank} joined: ${msg.host} pid ${msg.pid}, backend ${msg.backend}` }],
  };
}

function onReady(state: MachineState, identity: string, msg: ReadyMsg, now: number): Transition {
  const { opts } = state;
  const rank = rankOf(state, identity);
  if (rank < 0 || state.phase !== 'joining') return { state, actions: [] };
  const m = state.members[rank]!;
  let reason: string | undefined;
  if (msg.modelFingerprint !== opts.modelFingerprint) {
    reason = `model+config fingerprint ${msg.modelFingerprint.slice(0, 16)} of rank ${rank} (${m.host}) differs from the coordinator's ${opts.modelFingerprint.slice(0, 16)}: the two sides built different networks (different distgan versions?)`;
  } else if (msg.datasetFingerprint !== opts.datasetFingerprint) {
    reason = `dataset fingerprint ${msg.datasetFingerprint.slice(0, 24)} (${msg.datasetCount} samples) of rank ${rank} (${m.host}) differs from the coordinator's ${opts.datasetFingerprint.slice(0, 24)}: that node's copy of the dataset is not the same data`;
  }
  if (reason) {
    const members = state.members.slice();
    members[rank] = undefined;
    return { state: { ...state, members }, actions: [{ type: 'refuse', identity, code: 'DISTGAN_E_JOIN_REFUSED', reason }, { type: 'log', text: `refused rank ${rank}: ${reason}` }] };
  }
  const members = state.members.slice();
  members[rank] = { ...m, ready: true };
  const next: MachineState = { ...state, members };
  const actions: Action[] = [{ type: 'joined', member: members[rank]! }];
  if (members.every((x) => x?.ready)) {
    const t = beginStep(next, opts.startStep, now);
    return { state: t.state, actions: [...actions, { type: 'init' }, ...t.actions] };
  }
  return { state: next, actions };
}

function onResult(state: MachineState, ev: Extract<Event, { type: 'result' }>, now: number): Transition {
  const rank = rankOf(state, ev.identity);
  if (rank < 0 || state.phase !== 'training' || ev.step !== state.step || ev.phase !== state.stepPhase) {
    return { state, actions: [] }; // late or duplicate answer: safe to drop
  }
  if (!state.awaiting.includes(rank)) return { state, actions: [] };
  const phase = state.stepPhases[state.phaseIndex]!;
  const first = state.phaseIndex === 0;
  const awaiting = state.awaiting.filter((r) => r !== rank);
  let checksums = state.checksums;
  if (first && ev.checksum !== undefined) {
    checksums = state.checksums.slice();
    (checksums as (string | undefined)[])[rank] = ev.checksum;
  }
  const history = state.normHistory[phase.name] ?? [];
  const refused = state.refused.slice();
  refused[rank] = judge(ev.check, history, state.opts.guard);
  const norms = state.norms.slice();
  norms[rank] = ev.check.norm;
  const parts = state.parts.slice();
  parts[rank] = ev.payload;
  const next: MachineState = { ...state, awaiting, checksums, refused, norms, parts };
  if (awaiting.length > 0) return { state: next, actions: [] };
  const actions: Action[] = [];
  if (first) {
    const reported = checksums.filter((c): c is string => c !== undefined);
    if (reported.length > 0) {
      const distinct = new Set(reported);
      if (reported.length !== state.opts.worldSize || distinct.size > 1) {
        const groups = new Map<string, number[]>();
        checksums.forEach((c, r) => groups.set(c ?? 'missing', [...(groups.get(c ?? 'missing') ?? []), r]));
        const detail = [...groups.entries()].map(([c, rs]) => `ranks ${rs.join(',')}: ${c.slice(0, 16)}`).join('; ');
        return fail(next, new ReplicaDivergedError(`replica weights diverged before step ${state.step}: ${detail}`));
      }
      actions.push({ type: 'verify-checksums', step: state.step, checksums: reported });
    }
  }
  const bad = refused.map((r, i) => (r === undefined ? -1 : i)).filter((i) => i >= 0);
  if (bad.length > 0) {
    const what = `${phase.name.toUpperCase()} gradient of step ${state.step}`;
    const detail = bad.map((r) => `${describeMissing(state, [r])}: ${refused[r]}`).join('; ');
    if (state.opts.onBadGradient === 'fail') {
      return fail(next, new NumericError(`refused the ${what} from ${detail}; nothing of it was applied (--on-bad-gradient fail)`));
    }
    const t = beginStep(next, state.step + 1, now);
    return {
      state: t.state,
      actions: [
        ...actions,
        { type: 'skip', step: state.step, phase, ranks: bad },
        { type: 'log', text: `refused the ${what} from ${detail}; the rest of step ${state.step} is skipped on every replica, updates already applied stay (--on-bad-gradient skip-step)` },
        ...cadence(state.opts, state.step + 1),
        ...t.actions,
      ],
    };
  }
  const normHistory = { ...state.normHistory, [phase.name]: remember(history, norms) };
  const stepParts = { ...state.stepParts, [phase.name]: parts };
  const previous = state.stepPhases[state.phaseIndex - 1];
  actions.push({ type: 'reduce', step: state.step, phase, parts: parts.slice(), accumulate: previous !== undefined && previous.network === phase.network });
  const nextPhase = state.stepPhases[state.phaseIndex + 1];
  if (nextPhase) {
    return {
      state: { ...next, normHistory, stepParts, stepPhase: nextPhase.name, phaseIndex: state.phaseIndex + 1, awaiting: allRanks(state.opts.worldSize), refused: [], norms: [], parts: [], deadline: now + state.opts.stepTimeoutMs },
      // Consecutive phases of one network run on the same weights and sum into one update (phases.ts).
      actions: [...actions, { type: 'start-phase', step: state.step, phase: nextPhase, first: false, checksum: false, carry: nextPhase.network !== phase.network }],
    };
  }
  const t = beginStep({ ...next, normHistory, stepParts }, state.step + 1, now);
  const done: Record<string, unknown[]> = {};
  for (const [k, v] of Object.entries(stepParts)) done[k] = v.slice();
  return { state: t.state, actions: [...actions, { type: 'step-done', step: state.step, parts: done }, ...cadence(state.opts, state.step + 1), ...t.actions] };
}

/** A send to `identity` failed: a joining rank is freed for someone else; a training member is lost. */
function onUnreachable(state: MachineState, identity: string, reason: string): Transition {
  const rank = rankOf(state, identity);
  if (rank < 0) return { state, actions: [] };
  const m = state.members[rank]!;
  if (state.opts.membership.onLost(view(state), rank) === 'free') {
    const members = state.members.slice();
    members[rank] = undefined;
    const when = state.phase === 'joining' ? ' while joining' : '';
    return { state: { ...state, members }, actions: [{ type: 'log', text: `rank ${rank} (${m.host} pid ${m.pid}) went away${when} (${reason}); its rank is free again` }] };
  }
  return fail(state, new WorkerFailedError(rank, `rank ${rank} (${m.host} pid ${m.pid}) cannot be reached: ${reason}`), rank);
}

function onFinished(state: MachineState, ev: Extract<Event, { type: 'finished' }>): Transition {
  const rank = rankOf(state, ev.identity);
  if (rank < 0 || state.phase !== 'finishing' || !state.awaiting.includes(rank)) return { state, actions: [] };
  const checksums = state.checksums.slice() as (string | undefined)[];
  checksums[rank] = ev.checksum;
  const awaiting = state.awaiting.filter((r) => r !== rank);
  const next: MachineState = { ...state, awaiting, checksums };
  if (awaiting.length > 0) return { state: next, actions: [] };
  const distinct = new Set(checksums);
  if (distinct.size > 1) {
    const detail = checksums.map((c, r) => `rank ${r}: ${String(c).slice(0, 16)}`).join('; ');
    return fail(next, new ReplicaDivergedError(`replica weights diverged at the end of the run: ${detail}`));
  }
  return {
    state: { ...next, phase: 'done' },
    actions: [
      { type: 'verify-checksums', step: state.step, checksums: checksums as string[] },
      { type: 'sample', step: state.step },
      { type: 'checkpoint', step: state.step, reason: 'final' },
      { type: 'export' },
      { type: 'done', step: state.step },
    ],
  };
}

function onTick(state: MachineState, now: number, inside?: { ranks: readonly number[]; owners: string }): Transition {
  if (now < state.deadline) {
    if (state.phase !== 'joining' || now - state.probedAt < JOIN_PROBE_MS) return { state, actions: [] };
    const probes: Action[] = state.members.filter((m): m is Member => m !== undefined).map((m) => ({ type: 'welcome', identity: m.identity, rank: m.rank }));
    return { state: { ...state, probedAt: now }, actions: probes };
  }
  const secs = (ms: number): string => `${(ms / 1000).toFixed(0)} s`;
  if (state.phase === 'joining') {
    const missing = state.members.map((m, r) => (m?.ready ? -1 : r)).filter((r) => r >= 0);
    const notJoined = state.members.filter((m) => m === undefined).length;
    const building = missing.filter((r) => state.members[r] !== undefined);
    const parts: string[] = [];
    if (notJoined > 0) parts.push(`${notJoined} of ${state.opts.worldSize} workers never joined`);
    if (building.length > 0) parts.push(`${describeMissing(state, building)} joined but did not finish building the run`);
    return fail(state, new DeadlineError(`join deadline (${secs(state.opts.joinTimeoutMs)}, --join-timeout) passed: ${parts.join('; ')}`));
  }
  if (state.phase === 'training' || state.phase === 'finishing') {
    const what = state.phase === 'finishing' ? 'the final update' : `the ${state.stepPhase.toUpperCase()} phase of step ${state.step}`;
    const held = inside && inside.ranks.length > 0 ? inside : undefined;
    const stragglers = held ? state.awaiting.filter((r) => !held.ranks.includes(r)) : state.awaiting;
    if (held && stragglers.length === 0) {
      return fail(state, new ReducerLostError(`${what} waited on ${held.owners} (the ranks' parts or the averaged update) for ${secs(state.opts.stepTimeoutMs)} (--step-timeout): lost or stalled`));
    }
    const lost = stragglers[0];
    const also = held ? `; ${held.owners} also had not reported` : '';
    return fail(
      state,
      new WorkerFailedError(lost ?? -1, `${describeMissing(state, stragglers)} did not answer ${what} within ${secs(state.opts.stepTimeoutMs)} (--step-timeout): lost or stalled${also}`),
      lost,
    );
  }
  return { state, actions: [] };
}

export function step(state: MachineState, event: Event, now: number): Transition {
  if (state.phase === 'done' || state.phase === 'failed' || state.phase === 'interrupted') return { state, actions: [] };
  switch (event.type) {
    case 'hello':
      return onHello(state, event.identity, event.msg);
    case 'ready':
      return onReady(state, event.identity, event.msg, now);
    case 'result':
      return onResult(state, event, now);
    case 'finished':
      return onFinished(state, event);
    case 'worker-error': {
      const rank = rankOf(state, event.identity);
      if (rank < 0) return { state, actions: [] };
      // A worker's message usually carries its code already (describeError); name it once.
      const tagged = event.message.includes(`[${event.code}]`) ? event.message : `${event.message} [${event.code}]`;
      if (state.phase === 'joining') {
        const members = state.members.slice();
        members[rank] = undefined;
        return fail({ ...state, members }, new JoinRefusedError(`rank ${rank} (${state.members[rank]!.host}) could not build the run: ${tagged}`), rank);
      }
      return fail(state, new WorkerFailedError(rank, `rank ${rank} (${state.members[rank]!.host}) failed: ${tagged}`), rank);
    }
    case 'unreachable':
      return onUnreachable(state, event.identity, event.reason);
    case 'worker-exited':
      return fail(state, new WorkerFailedError(event.rank, `rank ${event.rank} ${event.description}`), event.rank);
    case 'diverged':
      return fail(state, new ReplicaDivergedError(event.message));
    case 'interrupt':
      return fail(state, new InterruptedError(`interrupted by ${event.signal}`));
    case 'crash':
      return fail(state, event.error);
    case 'tick':
      return onTick(state, now, event.inside);
  }
}
