/**
 * The distgan wire protocol: every message between the coordinator and a
 * worker, and between a worker and a shard owner of the sharded reduction,
 * in one place.
 *
 * Transport: the coordinator binds a ZeroMQ ROUTER socket, each worker
 * connects a DEALER (tcp:// or ipc://); with the sharded reduction each
 * shard owner binds a ROUTER too and every worker connects a DEALER to each
 * owner. A message is one multipart ZeroMQ message:
 *
 *   ROUTER side:  [identity] [header] [payload 0] … [payload k-1]
 *   DEALER side:             [header] [payload 0] … [payload k-1]
 *
 *   header     msgpackr map { p: PROTOCOL_ID, t: MsgType, ...fields,
 *                              f: [[name, dtype, length], …] }
 *   payload i  raw little-endian bytes of a Float32Array ('f32') or
 *              Int32Array ('i32') of `length` elements, described by f[i].
 *
 * Tensors never go through msgpackr (it would decode a Float32Array as a
 * possibly misaligned Uint8Array). ZeroMQ hands received frames back 4-byte
 * aligned, so payloads are viewed in place; a misaligned frame is copied once.
 *
 * Every message type, its header fields (besides p, t and f; `?` marks an
 * optional one) and its payload frames in order. Field kinds: int≥n a safe
 * integer of at least n; num a finite number (num≥0, num>0 bounded below);
 * float any number, NaN and ±Infinity included; str a string of at most
 * MAX_STRING_BYTES UTF-8 bytes (str+ non-empty); bool; (a|b) one of those
 * strings; [a|b] a list of distinct ones; obj a free-form plain object (a
 * JSON map); RunSpec and Stats the nested maps listed after the types. No other header key is accepted, at any level. (This list is SCHEMA
 * in words; test/unit/protocol.test.ts fails when the two disagree.)
 *
 *   Hello (1)  worker → coordinator: wants to join
 *     header  protocol:int≥0 version:str host:str pid:int≥0 backend:str backendReason:str rank:int≥-1
 *     frames  —
 *   Welcome (2)  coordinator → worker: rank, world size, the run to build, where gradients go
 *     header  rank:int≥0 worldSize:int≥1 run:RunSpec reduction:ReductionSpec
 *     frames  —
 *   Ready (3)  worker → coordinator: built the run; here are its fingerprints
 *     header  rank:int≥0 modelFingerprint:str datasetFingerprint:str datasetCount:int≥0
 *     frames  —
 *   Refuse (4)  coordinator → worker: join refused
 *     header  code:str reason:str
 *     frames  —
 *   Init (5)  coordinator → worker: full trainer state to start from
 *     header  step:int≥0
 *     frames  gWeights:f32 dWeights:f32 bnStats:f32 gAdamM:f32 gAdamV:f32 dAdamM:f32 dAdamV:f32
 *   PhaseStep (6)  coordinator → worker: apply the pending update, compute one phase's gradient
 *     header  step:int≥0 phase:str+ globalBatch:int≥1 checksum:bool applyTo:(''|d|g) skip:[d|g]
 *     frames  positions:i32 indices:i32 nextIndices:i32 grad:f32 aux:f32
 *   PhaseResult (7)  worker → coordinator: that phase's gradient of its slice
 *     header  step:int≥0 phase:str+ stats:Stats computeSeconds:num≥0 dataSeconds:num≥0 applySeconds:num≥0 checksum?:str
 *     frames  grad:f32 aux:f32
 *   Finish (10)  coordinator → worker: apply the last pending update, report a checksum
 *     header  step:int≥0 applyTo:(''|d|g) skip:[d|g]
 *     frames  grad:f32 aux:f32
 *   Finished (11)  worker → coordinator: final checksum
 *     header  step:int≥0 checksum:str
 *     frames  —
 *   Stop (12)  coordinator → worker: stop now and exit
 *     header  reason:str failed:bool
 *     frames  —
 *   Error (13)  worker → coordinator: a failure on the worker; the run stops
 *     header  code:str message:str
 *     frames  —
 *   ShardPush (20)  worker → shard owner (sharded reduction): its part of one shard
 *     header  step:int≥0 phase:str+ rank:int≥0 shard:int≥0
 *     frames  grad:f32
 *   ShardAverage (21)  shard owner → worker (sharded reduction): one averaged shard to apply
 *     header  step:int≥0 network:(d|g) shard:int≥0
 *     frames  grad:f32
 *
 * Between the coordinator and its shard owners (a thread's message port, or
 * a reducer process's DEALER to the coordinator's ROUTER; same messages):
 *
 *   OwnerHello (30)  owner → coordinator: ready to own a shard
 *     header  protocol:int≥0 version:str host:str pid:int≥0
 *     frames  —
 *   OwnerInit (31)  coordinator → owner: its shard, the run's shape, its slice of the mirror
 *     header  shard:int≥0 shards:int≥1 worldSize:int≥1 phases:str+ dLength:int≥0 gLength:int≥0 lr:num>0 beta1:num≥0 beta2:num≥0 epsilon:num≥0 step:int≥0
 *     frames  dWeights:f32 dAdamM:f32 dAdamV:f32 gWeights:f32 gAdamM:f32 gAdamV:f32
 *   OwnerMembers (32)  coordinator → owner: each rank's routing id (answer OwnerAck)
 *     header  id:int≥0 routingIds:str
 *     frames  —
 *   OwnerReduce (33)  coordinator → owner: keep the phase's sum as the next update
 *     header  id:int≥0 step:int≥0 phase:str+ accumulate:bool
 *     frames  —
 *   OwnerPublish (34)  coordinator → owner: send the waiting update to every worker (answer OwnerAck once sent)
 *     header  id:int≥0 step:int≥0 network:(d|g)
 *     frames  —
 *   OwnerDiscard (35)  coordinator → owner: drop unpublished updates (skip-step)
 *     header  —
 *     frames  —
 *   OwnerCommit (36)  coordinator → owner: the step is final; apply it to the mirror slice
 *     header  step:int≥0 order:str
 *     frames  —
 *   OwnerGather (37)  coordinator → owner: send the mirror slice
 *     header  id:int≥0
 *     frames  —
 *   OwnerClose (38)  coordinator → owner: close and exit
 *     header  reason:str
 *     frames  —
 *   OwnerPart (40)  owner → coordinator: a rank's part arrived, inspected
 *     header  step:int≥0 phase:str+ rank:int≥0 sumSq:float problem:str
 *     frames  —
 *   OwnerReduced (41)  owner → coordinator: answer to OwnerReduce
 *     header  id:int≥0 problem:str
 *     frames  —
 *   OwnerState (42)  owner → coordinator: answer to OwnerGather
 *     header  id:int≥0 step:int≥0
 *     frames  dWeights:f32 dAdamM:f32 dAdamV:f32 gWeights:f32 gAdamM:f32 gAdamV:f32
 *   OwnerNote (43)  owner → coordinator: a dropped part, an unreachable rank, a failure
 *     header  kind:(dropped|unreachable|failed) rank:int≥-1 message:str
 *     frames  —
 *   OwnerBound (44)  owner → coordinator: initialised; workers reach it at endpoint
 *     header  endpoint:str+
 *     frames  —
 *   OwnerAck (45)  owner → coordinator: OwnerMembers is in effect, or OwnerPublish was sent
 *     header  id:int≥0
 *     frames  —
 *
 *   RunSpec  (Welcome.run)
 *     fields  runId:str+ model:obj gan:obj dataset:str+ datasetFingerprint:str+ modelFingerprint:str+ globalBatch:int≥1 flip:bool stepTimeout:num>0
 *   ReductionSpec  (Welcome.reduction)
 *     fields  kind:(star|sharded) endpoints:str routingId:str
 *   Stats  (PhaseResult.stats)
 *     fields  dLoss?:float gLoss?:float dAccuracyReal?:float dAccuracyFake?:float
 *
 * Stats are floats, not finite numbers, on purpose: a diverged slice reports a
 * NaN or infinite loss next to its non-finite gradient, and that result must
 * reach the gradient guard (which names the rank and applies
 * --on-bad-gradient) instead of being dropped here as malformed.
 *
 * Messages that belong to a step carry `step` (and a phase's, its name), so
 * a duplicate or late reply is recognised and ignored, which makes retries
 * safe. An averaged update rides with the next message to the workers
 * (PhaseStep or Finish: `applyTo` names its network), so a worker applies
 * every update exactly once, before it computes anything else.
 *
 * Sizes are bounded: a header is at most MAX_HEADER_BYTES and each string
 * field at most MAX_STRING_BYTES; the coordinator also caps every inbound
 * frame (ZMQ_MAXMSGSIZE, see maxInboundFrameBytes) so that a peer cannot make
 * it allocate more than the largest legal message of the run.
 *
 * One declaration, SCHEMA below, is the source of both the TypeScript message
 * types (derived from it with mapped and conditional types: no hand-kept
 * interfaces) and the runtime validation (`decode` walks it). The type
 * machinery is a few lines here rather than a schema library: no dependency,
 * and decode's cost stays a walk over a dozen header fields, with no per-element
 * work on payload frames. `decode` validates the magic, the protocol version,
 * the type, every field (kind, bounds, string length) at every level, refuses
 * missing and unknown fields, and checks payload descriptors, counts and
 * lengths; it throws ProtocolError naming the type and the field. `encode`
 * trusts its typed input and checks only the payload frames (the fault tests
 * use it to send out-of-range values on purpose).
 */
import { Packr } from 'msgpackr';
import { ProtocolError } from './errors.js';
import { TRAINER_STATE_ARRAYS } from './gan/api.js';

/** Bumped on any incompatible change; the join handshake refuses a mismatch. */
export const PROTOCOL_VERSION = 4;
export const PROTOCOL_ID = `distgan/${PROTOCOL_VERSION}`;

export enum MsgType {
  /** worker → coordinator: wants to join. */
  Hello = 1,
  /** coordinator → worker: rank, world size and the run to build. */
  Welcome = 2,
  /** worker → coordinator: built the run; here are its fingerprints. */
  Ready = 3,
  /** coordinator → worker: join refused, with the reason. The worker exits non-zero. */
  Refuse = 4,
  /** coordinator → worker: full trainer state to start from. */
  Init = 5,
  /** coordinator → worker: apply the pending update (if any), then compute one phase's gradient for its slice. */
  PhaseStep = 6,
  /** worker → coordinator: that phase's gradient of its slice. */
  PhaseResult = 7,
  /** coordinator → worker: apply the last pending update and report a checksum. */
  Finish = 10,
  /** worker → coordinator: final checksum. */
  Finished = 11,
  /** coordinator → worker: stop now and exit (0 unless `failed`). */
  Stop = 12,
  /** worker → coordinator: a failure on the worker; the run stops. */
  Error = 13,
  /** worker → shard owner (sharded reduction): this rank's part of one shard of a phase's gradient. */
  ShardPush = 20,
  /** shard owner → worker (sharded reduction): the averaged shard of an update, to apply. */
  ShardAverage = 21,
  /** shard owner → coordinator: ready to own a shard. */
  OwnerHello = 30,
  /** coordinator → shard owner: its shard, the run's shape and the mirror's slice to start from. */
  OwnerInit = 31,
  /** coordinator → shard owner: the routing id of each rank (only these may push). */
  OwnerMembers = 32,
  /** coordinator → shard owner: the phase is complete; keep its sum as the next update (answer OwnerReduced). */
  OwnerReduce = 33,
  /** coordinator → shard owner: send the waiting update of `network` to every worker. */
  OwnerPublish = 34,
  /** coordinator → shard owner: drop the updates not yet published (skip-step). */
  OwnerDiscard = 35,
  /** coordinator → shard owner: the step is final; apply its updates to the mirror slice. */
  OwnerCommit = 36,
  /** coordinator → shard owner: send the mirror slice (answer OwnerState). */
  OwnerGather = 37,
  /** coordinator → shard owner: the run is over; close and exit. */
  OwnerClose = 38,
  /** shard owner → coordinator: a rank's part arrived; its inspection for the gradient guard. */
  OwnerPart = 40,
  /** shard owner → coordinator: answer to OwnerReduce (problem '' = fine). */
  OwnerReduced = 41,
  /** shard owner → coordinator: answer to OwnerGather. */
  OwnerState = 42,
  /** shard owner → coordinator: something the coordinator should count or act on. */
  OwnerNote = 43,
  /** shard owner → coordinator: initialised and listening; workers reach it at `endpoint`. */
  OwnerBound = 44,
  /** shard owner → coordinator: an order that carries an id (OwnerMembers) is in effect. */
  OwnerAck = 45,
}

export type Dtype = 'f32' | 'i32';
export type FrameDesc = readonly [name: string, dtype: Dtype, length: number];

// ---------------------------------------------------------------------------
// Schema vocabulary: what a field may hold. Each spec is plain data that
// `decode` interprets and `TypeOf` maps to a TypeScript type.

/** A safe integer ≥ min. */
interface IntSpec {
  readonly kind: 'int';
  readonly min: number;
}
/** A number; finite unless `finite` is false; ≥ min (> min when `exclusive`). */
interface NumSpec {
  readonly kind: 'num';
  readonly finite: boolean;
  readonly min: number;
  readonly exclusive: boolean;
}
/** A string of at most MAX_STRING_BYTES UTF-8 bytes, non-empty when `nonEmpty`. */
interface StrSpec {
  readonly kind: 'str';
  readonly nonEmpty: boolean;
}
interface BoolSpec {
  readonly kind: 'bool';
}
/** A free-form plain object (a JSON map); its contents are the receiver's to validate. */
interface JsonSpec {
  readonly kind: 'json';
}
/** One of these strings. */
interface EnumSpec<V extends readonly string[] = readonly string[]> {
  readonly kind: 'enum';
  readonly values: V;
}
/** A list of distinct strings, each one of these. */
interface ListSpec<V extends readonly string[] = readonly string[]> {
  readonly kind: 'list';
  readonly values: V;
}
/** A nested map with exactly these fields (and these optional ones), nothing else. */
interface ObjSpec<R extends Fields = Fields, O extends Fields = Fields> {
  readonly kind: 'obj';
  /** Its name in the layout doc and in error messages. */
  readonly name: string;
  readonly fields: R;
  readonly optional: O;
}
type FieldSpec = IntSpec | NumSpec | StrSpec | BoolSpec | JsonSpec | EnumSpec | ListSpec | ObjSpec;
type Fields = { readonly [name: string]: FieldSpec };
type FrameSpecs = { readonly [name: string]: Dtype };

interface MsgSpec<R extends Fields = Fields, O extends Fields = Fields, F extends FrameSpecs = FrameSpecs> {
  readonly fields: R;
  readonly optional: O;
  /** Payload frames, in wire order (object key order). */
  readonly frames: F;
}

const int = (min: number): IntSpec => ({ kind: 'int', min });
/** A finite number ≥ min (> min when exclusive). */
const num = (min = -Infinity, exclusive = false): NumSpec => ({ kind: 'num', finite: true, min, exclusive });
/** Any number, NaN and ±Infinity included. */
const float: NumSpec = { kind: 'num', finite: false, min: -Infinity, exclusive: false };
const str: StrSpec = { kind: 'str', nonEmpty: false };
const nonEmptyStr: StrSpec = { kind: 'str', nonEmpty: true };
const bool: BoolSpec = { kind: 'bool' };
const json: JsonSpec = { kind: 'json' };
const oneOf = <const V extends readonly string[]>(values: V): EnumSpec<V> => ({ kind: 'enum', values });
const listOf = <const V extends readonly string[]>(values: V): ListSpec<V> => ({ kind: 'list', values });
function obj<const R extends Fields, const O extends Fields = {}>(name: string, fields: R, optional?: O): ObjSpec<R, O> {
  return { kind: 'obj', name, fields, optional: optional ?? ({} as O) };
}
function msg<const R extends Fields, const O extends Fields = {}, const F extends FrameSpecs = {}>(fields: R, more: { optional?: O; frames?: F } = {}): MsgSpec<R, O, F> {
  return { fields, optional: more.optional ?? ({} as O), frames: more.frames ?? ({} as F) };
}
function deepFreeze(o: object): void {
  for (const v of Object.values(o)) if (typeof v === 'object' && v !== null) deepFreeze(v);
  Object.freeze(o);
}
/** One f32 frame per name, in that order. */
function f32Frames<const K extends readonly string[]>(names: K): { readonly [N in K[number]]: 'f32' } {
  return Object.fromEntries(names.map((n) => [n, 'f32'])) as { readonly [N in K[number]]: 'f32' };
}

// ---------------------------------------------------------------------------
// The schema: the one declaration of every message.

/** A step number (0 = before the first optimizer step). */
const step = int(0);
/** Wall seconds, measured with a monotonic clock. */
const seconds = num(0);

const PHASE_STATS = obj('Stats', {}, {
  /** D loss −½[E log D(x) + E log(1 − D(G(z)))] on this slice (D phase only). */
  dLoss: float,
  /** Non-saturating G loss −E log D(G(z)) (+ λ·H[D]) on this slice (G phase only). */
  gLoss: float,
  /** Share of real samples with D(x) > 0.5 (D phase only). */
  dAccuracyReal: float,
  /** Share of fakes with D(G(z)) < 0.5 (D phase only). */
  dAccuracyFake: float,
});

/** Everything a worker needs to build the same run as the coordinator. */
const RUN_SPEC = obj('RunSpec', {
  runId: nonEmptyStr,
  /** ModelSpec as JSON-able data (validated by the worker's validateModelSpec). */
  model: json,
  /** GanOptions as JSON-able data (resolved by the worker's resolveGanOptions). */
  gan: json,
  dataset: nonEmptyStr,
  datasetFingerprint: nonEmptyStr,
  modelFingerprint: nonEmptyStr,
  globalBatch: int(1),
  flip: bool,
  /** Seconds; the worker gives up on a silent coordinator after a multiple of this. */
  stepTimeout: num(0, true),
});

/** The mirror-slice arrays an owner starts from (OwnerInit) and gives back (OwnerState), in wire order. */
export const SHARD_STATE_ARRAYS = ['dWeights', 'dAdamM', 'dAdamV', 'gWeights', 'gAdamM', 'gAdamV'] as const;

/** The networks an update can be for (shared/gan/phases.ts Network). */
const NETWORKS = ['d', 'g'] as const;

/**
 * Where a worker's gradients go (Welcome.reduction). `star`: to the
 * coordinator, in PhaseResult.grad. `sharded`: shard k of each gradient to
 * the owner at the k-th of `endpoints` (space-separated; the cut is
 * shared/reduction/shards.ts's), over a DEALER whose routing id is
 * `routingId`; the averaged shards come back from the owners (ShardAverage)
 * and PhaseResult, PhaseStep and Finish carry no gradient.
 */
const REDUCTION_SPEC = obj('ReductionSpec', {
  kind: oneOf(['star', 'sharded'] as const),
  endpoints: str,
  routingId: str,
});

/**
 * Header fields each type must carry (`fields`), may carry (`optional`), and
 * its payload frames in order. The message types below are derived from it.
 */
export const SCHEMA = {
  [MsgType.Hello]: msg({
    protocol: int(0),
    version: str,
    host: str,
    pid: int(0),
    backend: str,
    backendReason: str,
    /** Explicit rank (flag or scheduler env), or -1 to be given one in join order. */
    rank: int(-1),
  }),
  [MsgType.Welcome]: msg({ rank: int(0), worldSize: int(1), run: RUN_SPEC, reduction: REDUCTION_SPEC }),
  [MsgType.Ready]: msg({ rank: int(0), modelFingerprint: str, datasetFingerprint: str, datasetCount: int(0) }),
  [MsgType.Refuse]: msg({ code: str, reason: str }),
  [MsgType.Init]: msg({ step }, { frames: f32Frames(TRAINER_STATE_ARRAYS) }),
  [MsgType.PhaseStep]: msg(
    {
      step,
      /** The phase to compute (a name in the run's phase table, shared/gan/phases.ts). */
      phase: nonEmptyStr,
      globalBatch: int(1),
      /** Ask for a weight checksum taken after applying the pending update and before computing. */
      checksum: bool,
      /** The network the carried update (`grad`, `aux`) is for, or '' when none is carried. */
      applyTo: oneOf(['', ...NETWORKS] as const),
      /** Networks whose update the gradient guard discarded (skip-step): count the step, change nothing. */
      skip: listOf(NETWORKS),
    },
    {
      frames: {
        /** Global positions of this rank's samples within the step's batch. */
        positions: 'i32',
        /** Dataset indices of those samples (empty for a phase that reads no data). */
        indices: 'i32',
        /** Dataset indices this rank will get next step, for prefetching (may be empty). */
        nextIndices: 'i32',
        /** The averaged update to apply first (empty when applyTo is ''). */
        grad: 'f32',
        /** Its BN statistics (may be empty). */
        aux: 'f32',
      },
    },
  ),
  [MsgType.PhaseResult]: msg(
    { step, phase: nonEmptyStr, stats: PHASE_STATS, computeSeconds: seconds, dataSeconds: seconds, applySeconds: seconds },
    {
      /** Present when the coordinator asked for one. */
      optional: { checksum: str },
      frames: { grad: 'f32', aux: 'f32' },
    },
  ),
  [MsgType.Finish]: msg(
    { step, applyTo: oneOf(['', ...NETWORKS] as const), skip: listOf(NETWORKS) },
    { frames: { grad: 'f32', aux: 'f32' } },
  ),
  [MsgType.Finished]: msg({ step, checksum: str }),
  [MsgType.Stop]: msg({ reason: str, failed: bool }),
  [MsgType.Error]: msg({ code: str, message: str }),
  [MsgType.ShardPush]: msg(
    { step, phase: nonEmptyStr, rank: int(0), shard: int(0) },
    {
      /** The rank's gradient (already scaled by its batch share), elements [lo, hi) of shard `shard`. */
      frames: { grad: 'f32' },
    },
  ),
  [MsgType.ShardAverage]: msg(
    { step, network: oneOf(NETWORKS), shard: int(0) },
    {
      /** The averaged update's elements [lo, hi) of shard `shard`. */
      frames: { grad: 'f32' },
    },
  ),
  [MsgType.OwnerHello]: msg({ protocol: int(0), version: str, host: str, pid: int(0) }),
  [MsgType.OwnerInit]: msg(
    {
      shard: int(0),
      shards: int(1),
      worldSize: int(1),
      /** The phase table as `name:network,...` in order (e.g. `d:d,g:g`). */
      phases: nonEmptyStr,
      dLength: int(0),
      gLength: int(0),
      lr: num(0, true),
      beta1: num(0),
      beta2: num(0),
      epsilon: num(0),
      /** Completed steps of the slice below. */
      step,
    },
    { frames: f32Frames(SHARD_STATE_ARRAYS) },
  ),
  /** Routing ids by rank, space-separated. */
  [MsgType.OwnerMembers]: msg({ id: int(0), routingIds: str }),
  [MsgType.OwnerReduce]: msg({ id: int(0), step, phase: nonEmptyStr, accumulate: bool }),
  [MsgType.OwnerPublish]: msg({ id: int(0), step, network: oneOf(NETWORKS) }),
  [MsgType.OwnerDiscard]: msg({}),
  /** `order`: the step's updates in the workers' order, comma-separated networks, `-` before one whose update was discarded (e.g. `d,g` or `d,-g`). */
  [MsgType.OwnerCommit]: msg({ step, order: str }),
  [MsgType.OwnerGather]: msg({ id: int(0) }),
  [MsgType.OwnerClose]: msg({ reason: str }),
  [MsgType.OwnerPart]: msg({ step, phase: nonEmptyStr, rank: int(0), sumSq: float, problem: str }),
  [MsgType.OwnerReduced]: msg({ id: int(0), problem: str }),
  [MsgType.OwnerState]: msg({ id: int(0), step }, { frames: f32Frames(SHARD_STATE_ARRAYS) }),
  [MsgType.OwnerNote]: msg({ kind: oneOf(['dropped', 'unreachable', 'failed'] as const), rank: int(-1), message: str }),
  [MsgType.OwnerBound]: msg({ endpoint: nonEmptyStr }),
  [MsgType.OwnerAck]: msg({ id: int(0) }),
} as const;
deepFreeze(SCHEMA);

/**
 * Compile-time: every MsgType has a spec. (Not `satisfies`: its contextual
 * type would widen the inferred field maps to index signatures.)
 */
type EveryTypeHasASpec<S extends { readonly [T in MsgType]: MsgSpec }> = S;
export type ProtocolSchema = EveryTypeHasASpec<typeof SCHEMA>;

// ---------------------------------------------------------------------------
// Types derived from the schema.

/** Flattens an intersection into one object type (for readable hovers and errors). */
type Flat<T> = { [K in keyof T]: T[K] } & {};

/** The TypeScript type of a value that satisfies spec S. */
type TypeOf<S> =
  S extends ObjSpec<infer R, infer O>
    ? ObjectOf<R, O>
    : S extends IntSpec | NumSpec
      ? number
      : S extends StrSpec
        ? string
        : S extends BoolSpec
          ? boolean
          : S extends JsonSpec
            ? Record<string, unknown>
            : S extends EnumSpec<infer V>
              ? V[number]
              : S extends ListSpec<infer V>
                ? V[number][]
                : never;

/** Required fields R and optional fields O, as one object type. */
type ObjectOf<R, O> = Flat<{ -readonly [K in keyof R]: TypeOf<R[K]> } & { -readonly [K in keyof O]?: TypeOf<O[K]> }>;

/** `{ frames: { name: Float32Array | Int32Array } }`, or nothing for a type without payload frames. */
type FramesOf<F> = [keyof F] extends [never] ? {} : { frames: { -readonly [K in keyof F]: F[K] extends 'f32' ? Float32Array : Int32Array } };


/** The message of type T, as callers construct it and `decode` returns it. */
export type MessageOf<T extends MsgType> = Flat<{ t: T } & ObjectOf<ProtocolSchema[T]['fields'], ProtocolSchema[T]['optional']> & FramesOf<ProtocolSchema[T]['frames']>>;

export type PhaseStatsWire = TypeOf<typeof PHASE_STATS>;
/** Everything a worker needs to build the same run as the coordinator. */
export type RunSpecWire = TypeOf<typeof RUN_SPEC>;

export type HelloMsg = MessageOf<MsgType.Hello>;
export type WelcomeMsg = MessageOf<MsgType.Welcome>;
export type ReadyMsg = MessageOf<MsgType.Ready>;
export type RefuseMsg = MessageOf<MsgType.Refuse>;
export type InitMsg = MessageOf<MsgType.Init>;
export type PhaseStepMsg = MessageOf<MsgType.PhaseStep>;
export type PhaseResultMsg = MessageOf<MsgType.PhaseResult>;
export type FinishMsg = MessageOf<MsgType.Finish>;
export type FinishedMsg = MessageOf<MsgType.Finished>;
export type StopMsg = MessageOf<MsgType.Stop>;
export type ErrorMsg = MessageOf<MsgType.Error>;
export type ShardPushMsg = MessageOf<MsgType.ShardPush>;
export type ShardAverageMsg = MessageOf<MsgType.ShardAverage>;
export type ReductionSpecWire = TypeOf<typeof REDUCTION_SPEC>;
export type OwnerInitMsg = MessageOf<MsgType.OwnerInit>;
export type OwnerStateMsg = MessageOf<MsgType.OwnerState>;

/** One message type per member of the union T. */
type MessagesOf<T extends MsgType> = T extends MsgType ? MessageOf<T> : never;
/** A message a shard owner sends the coordinator. */
export type OwnerReportMsg = MessagesOf<MsgType.OwnerHello | MsgType.OwnerBound | MsgType.OwnerAck | MsgType.OwnerPart | MsgType.OwnerReduced | MsgType.OwnerState | MsgType.OwnerNote>;
/** An order the coordinator sends a shard owner. */
export type OwnerOrderMsg = MessagesOf<
  MsgType.OwnerInit | MsgType.OwnerMembers | MsgType.OwnerReduce | MsgType.OwnerPublish | MsgType.OwnerDiscard | MsgType.OwnerCommit | MsgType.OwnerGather | MsgType.OwnerClose
>;
export const OWNER_REPORT_TYPES: ReadonlySet<MsgType> = new Set([MsgType.OwnerHello, MsgType.OwnerBound, MsgType.OwnerAck, MsgType.OwnerPart, MsgType.OwnerReduced, MsgType.OwnerState, MsgType.OwnerNote]);

export type Message = { [T in MsgType]: MessageOf<T> }[MsgType];

// ---------------------------------------------------------------------------
// Packing and limits.

// Plain maps only: records stay records, and nothing exotic is accepted on decode.
const packr = new Packr({ useRecords: false, moreTypes: false });

/** Largest header we accept; headers are small, so a huge one is a corrupt or hostile frame. */
export const MAX_HEADER_BYTES = 1 << 20;
/** Largest string field (host names, reasons, error messages, fingerprints), in UTF-8 bytes. */
export const MAX_STRING_BYTES = 64 << 10;

/**
 * The largest frame a coordinator must accept in a run whose largest flat
 * array (G or D parameters, BN statistics) has `largestArrayFloats` floats:
 * that array's bytes or a header, whichever is larger, plus a margin.
 * Used as ZMQ_MAXMSGSIZE, which libzmq checks against each frame's declared
 * size before allocating it, disconnecting the peer that sent it.
 */
export function maxInboundFrameBytes(largestArrayFloats: number): number {
  return Math.max(MAX_HEADER_BYTES, largestArrayFloats * 4) + (64 << 10);
}

// ---------------------------------------------------------------------------
// The schema, compiled once into entry lists that encode and decode walk.

interface CompiledObject {
  readonly required: ReadonlyArray<readonly [string, FieldSpec]>;
  readonly optional: ReadonlyArray<readonly [string, FieldSpec]>;
  /** Every key allowed at this level (reserved header keys included). */
  readonly allowed: ReadonlySet<string>;
}
interface CompiledMessage extends CompiledObject {
  readonly name: string;
  readonly frames: ReadonlyArray<readonly [string, Dtype]>;
}

/** Keys of the header map that are not message fields: magic, type, payload descriptors. */
const RESERVED = ['p', 't', 'f'] as const;

const compiledObjects = new WeakMap<ObjSpec, CompiledObject>();

function compileObject(fields: Fields, optional: Fields, reserved: readonly string[] = []): CompiledObject {
  const required = Object.entries(fields);
  const opt = Object.entries(optional);
  for (const [, spec] of [...required, ...opt]) {
    if (spec.kind === 'obj' && !compiledObjects.has(spec)) compiledObjects.set(spec, compileObject(spec.fields, spec.optional));
  }
  return { required, optional: opt, allowed: new Set([...reserved, ...required.map(([k]) => k), ...opt.map(([k]) => k)]) };
}

const COMPILED = new Map<number, CompiledMessage>(
  (Object.entries(SCHEMA) as Array<[string, MsgSpec]>).map(([t, spec]) => [
    Number(t),
    { ...compileObject(spec.fields, spec.optional, RESERVED), name: MsgType[Number(t)]!, frames: Object.entries(spec.frames) },
  ]),
);

// ---------------------------------------------------------------------------
// Encoding.

/**
 * Encodes a message into ZeroMQ frames (without the ROUTER identity).
 * Payload frames are zero-copy views of the typed arrays.
 */
export function encode(msg: Message): Buffer[] {
  const c = COMPILED.get(msg.t);
  if (!c) throw new ProtocolError(`encode: unknown message type ${String((msg as { t: unknown }).t)}`);
  const { frames, ...fields } = msg as Message & { frames?: Record<string, Float32Array | Int32Array> };
  const descs: FrameDesc[] = [];
  const out: Buffer[] = [];
  for (const [name, dtype] of c.frames) {
    const arr = frames?.[name];
    if (!arr) throw new ProtocolError(`encode: ${c.name} needs payload frame '${name}'`);
    if ((dtype === 'f32') !== arr instanceof Float32Array) {
      throw new ProtocolError(`encode: ${c.name} frame '${name}' must be ${dtype === 'f32' ? 'Float32Array' : 'Int32Array'}`);
    }
    descs.push([name, dtype, arr.length]);
    out.push(Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
  }
  const header = packr.pack({ p: PROTOCOL_ID, ...fields, f: descs });
  return [header, ...out];
}

// ---------------------------------------------------------------------------
// Decoding.

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** What a spec asks for, for error messages. */
function expected(spec: FieldSpec): string {
  switch (spec.kind) {
    case 'int':
      return `an integer ≥ ${spec.min}`;
    case 'num': {
      const what = spec.finite ? 'a finite number' : 'a number';
      return spec.min === -Infinity ? what : `${what} ${spec.exclusive ? '>' : '≥'} ${spec.min}`;
    }
    case 'str':
      return spec.nonEmpty ? 'a non-empty string' : 'a string';
    case 'bool':
      return 'a boolean';
    case 'enum':
      return `one of ${spec.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'list':
      return `a list of distinct values from ${spec.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'json':
    case 'obj':
      return 'a plain object';
  }
}

/** A short description of a received value (never its content: strings may be hostile and long). */
function described(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string') return v.length === 0 ? 'an empty string' : `a string of ${v.length} characters`;
  if (typeof v === 'object') return isPlainObject(v) ? 'an object' : `a ${(v as object).constructor?.name ?? 'non-plain object'}`;
  return typeof v;
}

/** A received value as JSON, for error messages: BigInt-safe (msgpackr decodes unsafe 64-bit integers as BigInt) and cut short. */
function shown(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
  } catch {
    s = described(v);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

function utf8Longer(s: string, max: number): boolean {
  // UTF-8 needs at least one byte and at most three per UTF-16 unit: only measure when it matters.
  if (s.length > max) return true;
  return s.length * 3 > max && Buffer.byteLength(s, 'utf8') > max;
}

/** Throws unless `v` satisfies `spec`; `type` and `path` name the message type and field. */
function checkValue(spec: FieldSpec, v: unknown, type: string, path: string): void {
  let ok: boolean;
  switch (spec.kind) {
    case 'int':
      ok = Number.isSafeInteger(v) && (v as number) >= spec.min;
      break;
    case 'num':
      ok = typeof v === 'number' && (!spec.finite || Number.isFinite(v)) && (spec.min === -Infinity || (spec.exclusive ? v > spec.min : v >= spec.min));
      break;
    case 'str':
      ok = typeof v === 'string' && (!spec.nonEmpty || v.length > 0);
      if (ok && utf8Longer(v as string, MAX_STRING_BYTES)) throw new ProtocolError(`${type}: field '${path}' is longer than ${MAX_STRING_BYTES} bytes`);
      break;
    case 'bool':
      ok = typeof v === 'boolean';
      break;
    case 'json':
      ok = isPlainObject(v);
      break;
    case 'enum':
      ok = typeof v === 'string' && spec.values.includes(v);
      break;
    case 'list':
      ok = Array.isArray(v) && v.length <= spec.values.length && v.every((x) => typeof x === 'string' && spec.values.includes(x)) && new Set(v).size === v.length;
      break;
    case 'obj':
      if (!isPlainObject(v)) {
        ok = false;
        break;
      }
      checkObject(compiledObjects.get(spec)!, v, type, `${path}.`);
      return;
  }
  if (!ok) throw new ProtocolError(`${type}: field '${path}' must be ${expected(spec)}, got ${described(v)}`);
}

/** Checks every field of `o` against `c`: required ones present, optional ones well-typed if present, no others. */
function checkObject(c: CompiledObject, o: Record<string, unknown>, type: string, prefix: string): void {
  for (const [k, spec] of c.required) {
    if (!Object.hasOwn(o, k) || o[k] === undefined) throw new ProtocolError(`${type}: field '${prefix}${k}' is missing (must be ${expected(spec)})`);
    checkValue(spec, o[k], type, prefix + k);
  }
  for (const [k, spec] of c.optional) {
    if (Object.hasOwn(o, k) && o[k] !== undefined) checkValue(spec, o[k], type, prefix + k);
  }
  for (const k of Object.keys(o)) {
    if (!c.allowed.has(k)) throw new ProtocolError(`${type}: unknown field '${prefix}${k}'`);
  }
}

function view(frame: Buffer, dtype: Dtype, length: number, name: string): Float32Array | Int32Array {
  if (frame.byteLength !== length * 4) {
    throw new ProtocolError(`frame '${name}' has ${frame.byteLength} bytes, header says ${length} ${dtype} values (${length * 4} bytes)`);
  }
  if (frame.byteOffset % 4 !== 0) {
    // ZeroMQ normally hands back aligned frames; copy once rather than fault.
    const copy = new Uint8Array(frame.byteLength);
    copy.set(frame);
    return dtype === 'f32' ? new Float32Array(copy.buffer) : new Int32Array(copy.buffer);
  }
  return dtype === 'f32'
    ? new Float32Array(frame.buffer, frame.byteOffset, length)
    : new Int32Array(frame.buffer, frame.byteOffset, length);
}

/**
 * Decodes and validates frames (without the ROUTER identity) against SCHEMA.
 * Its cost depends on the header's fields, never on payload sizes: payload
 * frames are only length-checked and viewed. Throws ProtocolError.
 */
export function decode(frames: readonly Buffer[]): Message {
  if (frames.length === 0) throw new ProtocolError('empty message');
  const head = frames[0]!;
  if (head.byteLength > MAX_HEADER_BYTES) throw new ProtocolError(`header of ${head.byteLength} bytes exceeds ${MAX_HEADER_BYTES}`);
  let header: unknown;
  try {
    header = packr.unpack(head);
  } catch (cause) {
    throw new ProtocolError('header is not valid msgpack', { cause });
  }
  if (!isPlainObject(header)) throw new ProtocolError('header is not a map');
  const h = header;
  if (typeof h.p !== 'string' || !h.p.startsWith('distgan/')) throw new ProtocolError(`not a distgan message (magic ${shown(h.p)})`);
  if (h.p !== PROTOCOL_ID) throw new ProtocolError(`protocol ${h.p} is not ${PROTOCOL_ID}; run the same distgan version everywhere`);
  const t = h.t;
  const c = typeof t === 'number' ? COMPILED.get(t) : undefined;
  if (!c) throw new ProtocolError(`unknown message type ${shown(t)}`);
  const name = c.name;
  checkObject(c, h, name, '');
  const descs = h.f;
  if (!Array.isArray(descs) || descs.length !== c.frames.length) {
    throw new ProtocolError(`${name}: expected ${c.frames.length} payload descriptors, got ${Array.isArray(descs) ? descs.length : described(descs)}`);
  }
  if (frames.length !== 1 + c.frames.length) {
    throw new ProtocolError(`${name}: expected ${c.frames.length} payload frames, got ${frames.length - 1}`);
  }
  const out: Record<string, unknown> = { t };
  for (const [k] of c.required) out[k] = h[k];
  for (const [k] of c.optional) if (h[k] !== undefined) out[k] = h[k];
  if (c.frames.length > 0) {
    const payload: Record<string, Float32Array | Int32Array> = {};
    for (let i = 0; i < c.frames.length; i++) {
      const [frameName, dtype] = c.frames[i]!;
      const d = descs[i] as unknown;
      if (!Array.isArray(d) || d.length !== 3 || d[0] !== frameName || d[1] !== dtype || !Number.isSafeInteger(d[2]) || (d[2] as number) < 0) {
        throw new ProtocolError(`${name}: payload ${i} descriptor ${shown(d)} does not match [${frameName}, ${dtype}, n]`);
      }
      payload[frameName] = view(frames[i + 1]!, dtype, d[2] as number, frameName);
    }
    out.frames = payload;
  }
  return out as Message;
}

/** Bytes of payload frames, for exchange accounting. */
export function payloadBytes(frames: readonly Buffer[]): number {
  let n = 0;
  for (let i = 1; i < frames.length; i++) n += frames[i]!.byteLength;
  return n;
}

export const EMPTY_F32 = new Float32Array(0);
export const EMPTY_I32 = new Int32Array(0);
