/**
 * The distgan wire protocol: every message between the coordinator and a
 * worker, in one place.
 *
 * Transport: the coordinator binds a ZeroMQ ROUTER socket, each worker
 * connects a DEALER (tcp:// or ipc://). A message is one multipart ZeroMQ
 * message:
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
 * Messages that belong to a step carry `step` (and their type says the
 * phase), so a duplicate or late reply is recognised and ignored, which makes
 * retries safe.
 *
 * Sizes are bounded: a header is at most MAX_HEADER_BYTES and each string
 * field at most MAX_STRING_BYTES; the coordinator also caps every inbound
 * frame (ZMQ_MAXMSGSIZE, see maxInboundFrameBytes) so that a peer cannot make
 * it allocate more than the largest legal message of the run.
 * `decode` validates the magic, the protocol version, the type, every field's
 * type and every payload's length, and throws ProtocolError naming the problem.
 */
import { Packr } from 'msgpackr';
import { ProtocolError } from './errors.js';
import { TRAINER_STATE_ARRAYS, type TrainerStateArrays } from './gan/api.js';

/** Bumped on any incompatible change; the join handshake refuses a mismatch. */
export const PROTOCOL_VERSION = 2;
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
  /** coordinator → worker: apply the previous step's averaged G gradient (if any), then compute D gradients. */
  DStep = 6,
  /** worker → coordinator: D gradients of its slice. */
  DResult = 7,
  /** coordinator → worker: apply the averaged D gradient, then compute G gradients. */
  GStep = 8,
  /** worker → coordinator: G gradients of its slice. */
  GResult = 9,
  /** coordinator → worker: apply the last averaged G gradient and report a checksum. */
  Finish = 10,
  /** worker → coordinator: final checksum. */
  Finished = 11,
  /** coordinator → worker: stop now and exit (0 unless `failed`). */
  Stop = 12,
  /** worker → coordinator: a failure on the worker; the run stops. */
  Error = 13,
}

export type Dtype = 'f32' | 'i32';
export type FrameDesc = readonly [name: string, dtype: Dtype, length: number];

export interface PhaseStatsWire {
  dLoss?: number;
  gLoss?: number;
  dAccuracyReal?: number;
  dAccuracyFake?: number;
}

export interface HelloMsg {
  t: MsgType.Hello;
  protocol: number;
  version: string;
  host: string;
  pid: number;
  backend: string;
  backendReason: string;
  /** Explicit rank (flag or scheduler env), or -1 to be given one in join order. */
  rank: number;
}

/** Everything a worker needs to build the same run as the coordinator. */
export interface RunSpecWire {
  runId: string;
  /** ModelSpec as JSON-able data. */
  model: Record<string, unknown>;
  /** GanOptions as JSON-able data. */
  gan: Record<string, unknown>;
  dataset: string;
  datasetFingerprint: string;
  modelFingerprint: string;
  globalBatch: number;
  flip: boolean;
  /** Seconds; the worker gives up on a silent coordinator after a multiple of this. */
  stepTimeout: number;
}

export interface WelcomeMsg {
  t: MsgType.Welcome;
  rank: number;
  worldSize: number;
  run: RunSpecWire;
}

export interface ReadyMsg {
  t: MsgType.Ready;
  rank: number;
  modelFingerprint: string;
  datasetFingerprint: string;
  datasetCount: number;
}

export interface RefuseMsg {
  t: MsgType.Refuse;
  code: string;
  reason: string;
}

export interface InitMsg {
  t: MsgType.Init;
  step: number;
  frames: TrainerStateArrays;
}

export interface DStepMsg {
  t: MsgType.DStep;
  step: number;
  globalBatch: number;
  /** Ask for a weight checksum taken after applying `gGrad` and before computing. */
  checksum: boolean;
  /**
   * The previous step's G update was discarded by the gradient guard
   * (skip-step): count it without applying anything (`gGrad` is empty).
   */
  skipG: boolean;
  frames: {
    /** Global positions of this rank's samples within the step's batch. */
    positions: Int32Array;
    /** Dataset indices of those samples. */
    indices: Int32Array;
    /** Dataset indices this rank will get next step, for prefetching (may be empty). */
    nextIndices: Int32Array;
    /** Averaged G gradient of the previous step (empty on the first step after Init). */
    gGrad: Float32Array;
    gAux: Float32Array;
  };
}

export interface PhaseResultMsg<T extends MsgType.DResult | MsgType.GResult> {
  t: T;
  step: number;
  stats: PhaseStatsWire;
  computeSeconds: number;
  dataSeconds: number;
  applySeconds: number;
  /** Present when the coordinator asked for one. */
  checksum?: string;
  frames: { grad: Float32Array; aux: Float32Array };
}
export type DResultMsg = PhaseResultMsg<MsgType.DResult>;
export type GResultMsg = PhaseResultMsg<MsgType.GResult>;

export interface GStepMsg {
  t: MsgType.GStep;
  step: number;
  globalBatch: number;
  frames: { positions: Int32Array; dGrad: Float32Array; dAux: Float32Array };
}

export interface FinishMsg {
  t: MsgType.Finish;
  step: number;
  /** As DStepMsg.skipG, for the last step. */
  skipG: boolean;
  frames: { gGrad: Float32Array; gAux: Float32Array };
}

export interface FinishedMsg {
  t: MsgType.Finished;
  step: number;
  checksum: string;
}

export interface StopMsg {
  t: MsgType.Stop;
  reason: string;
  failed: boolean;
}

export interface ErrorMsg {
  t: MsgType.Error;
  code: string;
  message: string;
}

export type Message =
  | HelloMsg
  | WelcomeMsg
  | ReadyMsg
  | RefuseMsg
  | InitMsg
  | DStepMsg
  | DResultMsg
  | GStepMsg
  | GResultMsg
  | FinishMsg
  | FinishedMsg
  | StopMsg
  | ErrorMsg;

type FieldType = 'number' | 'string' | 'boolean' | 'object';

/** Header fields each type must carry, and the payload frames in order. */
const SCHEMA: Record<MsgType, { fields: Record<string, FieldType>; optional?: Record<string, FieldType>; frames: Record<string, Dtype> }> = {
  [MsgType.Hello]: {
    fields: { protocol: 'number', version: 'string', host: 'string', pid: 'number', backend: 'string', backendReason: 'string', rank: 'number' },
    frames: {},
  },
  [MsgType.Welcome]: { fields: { rank: 'number', worldSize: 'number', run: 'object' }, frames: {} },
  [MsgType.Ready]: {
    fields: { rank: 'number', modelFingerprint: 'string', datasetFingerprint: 'string', datasetCount: 'number' },
    frames: {},
  },
  [MsgType.Refuse]: { fields: { code: 'string', reason: 'string' }, frames: {} },
  [MsgType.Init]: {
    fields: { step: 'number' },
    frames: Object.fromEntries(TRAINER_STATE_ARRAYS.map((k) => [k, 'f32' as const])),
  },
  [MsgType.DStep]: {
    fields: { step: 'number', globalBatch: 'number', checksum: 'boolean', skipG: 'boolean' },
    frames: { positions: 'i32', indices: 'i32', nextIndices: 'i32', gGrad: 'f32', gAux: 'f32' },
  },
  [MsgType.DResult]: {
    fields: { step: 'number', stats: 'object', computeSeconds: 'number', dataSeconds: 'number', applySeconds: 'number' },
    optional: { checksum: 'string' },
    frames: { grad: 'f32', aux: 'f32' },
  },
  [MsgType.GStep]: {
    fields: { step: 'number', globalBatch: 'number' },
    frames: { positions: 'i32', dGrad: 'f32', dAux: 'f32' },
  },
  [MsgType.GResult]: {
    fields: { step: 'number', stats: 'object', computeSeconds: 'number', dataSeconds: 'number', applySeconds: 'number' },
    optional: { checksum: 'string' },
    frames: { grad: 'f32', aux: 'f32' },
  },
  [MsgType.Finish]: { fields: { step: 'number', skipG: 'boolean' }, frames: { gGrad: 'f32', gAux: 'f32' } },
  [MsgType.Finished]: { fields: { step: 'number', checksum: 'string' }, frames: {} },
  [MsgType.Stop]: { fields: { reason: 'string', failed: 'boolean' }, frames: {} },
  [MsgType.Error]: { fields: { code: 'string', message: 'string' }, frames: {} },
};

// Plain maps only: records stay records, and nothing exotic is accepted on decode.
const packr = new Packr({ useRecords: false, moreTypes: false });

/** Largest header we accept; headers are small, so a huge one is a corrupt or hostile frame. */
export const MAX_HEADER_BYTES = 1 << 20;
/** Largest string field (host names, reasons, error messages, fingerprints). */
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

/**
 * Encodes a message into ZeroMQ frames (without the ROUTER identity).
 * Payload frames are zero-copy views of the typed arrays.
 */
export function encode(msg: Message): Buffer[] {
  const schema = SCHEMA[msg.t];
  if (!schema) throw new ProtocolError(`encode: unknown message type ${String((msg as { t: unknown }).t)}`);
  const { frames, ...fields } = msg as Message & { frames?: Record<string, Float32Array | Int32Array> };
  const descs: FrameDesc[] = [];
  const out: Buffer[] = [];
  for (const [name, dtype] of Object.entries(schema.frames)) {
    const arr = frames?.[name];
    if (!arr) throw new ProtocolError(`encode: ${MsgType[msg.t]} needs payload frame '${name}'`);
    if ((dtype === 'f32') !== arr instanceof Float32Array) {
      throw new ProtocolError(`encode: ${MsgType[msg.t]} frame '${name}' must be ${dtype === 'f32' ? 'Float32Array' : 'Int32Array'}`);
    }
    descs.push([name, dtype, arr.length]);
    out.push(Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
  }
  const header = packr.pack({ p: PROTOCOL_ID, ...fields, f: descs });
  return [header, ...out];
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

/** Decodes and validates frames (without the ROUTER identity). Throws ProtocolError. */
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
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new ProtocolError('header is not a map');
  const h = header as Record<string, unknown>;
  if (typeof h.p !== 'string' || !h.p.startsWith('distgan/')) throw new ProtocolError(`not a distgan message (magic ${JSON.stringify(h.p)})`);
  if (h.p !== PROTOCOL_ID) throw new ProtocolError(`protocol ${h.p} is not ${PROTOCOL_ID}; run the same distgan version everywhere`);
  const t = h.t;
  if (typeof t !== 'number' || !(t in SCHEMA)) throw new ProtocolError(`unknown message type ${JSON.stringify(t)}`);
  const schema = SCHEMA[t as MsgType];
  const name = MsgType[t as MsgType];
  for (const [field, type] of Object.entries(schema.fields)) {
    const v = h[field];
    const ok = type === 'object' ? typeof v === 'object' && v !== null && !Array.isArray(v) : typeof v === type;
    if (!ok) throw new ProtocolError(`${name}: field '${field}' must be ${type}, got ${v === null ? 'null' : typeof v}`);
    if (type === 'string' && (v as string).length > MAX_STRING_BYTES) throw new ProtocolError(`${name}: field '${field}' is longer than ${MAX_STRING_BYTES} characters`);
    if (type === 'number' && !Number.isFinite(v)) throw new ProtocolError(`${name}: field '${field}' must be a finite number, got ${String(v)}`);
  }
  for (const [field, type] of Object.entries(schema.optional ?? {})) {
    if (h[field] !== undefined && typeof h[field] !== type) throw new ProtocolError(`${name}: field '${field}' must be ${type}`);
    if (type === 'string' && typeof h[field] === 'string' && (h[field] as string).length > MAX_STRING_BYTES) throw new ProtocolError(`${name}: field '${field}' is longer than ${MAX_STRING_BYTES} characters`);
  }
  const expected = Object.entries(schema.frames);
  const descs = h.f;
  if (!Array.isArray(descs) || descs.length !== expected.length) {
    throw new ProtocolError(`${name}: expected ${expected.length} payload descriptors, got ${Array.isArray(descs) ? descs.length : typeof descs}`);
  }
  if (frames.length !== 1 + expected.length) {
    throw new ProtocolError(`${name}: expected ${expected.length} payload frames, got ${frames.length - 1}`);
  }
  const payload: Record<string, Float32Array | Int32Array> = {};
  expected.forEach(([frameName, dtype], i) => {
    const d = descs[i] as unknown;
    if (!Array.isArray(d) || d[0] !== frameName || d[1] !== dtype || !Number.isInteger(d[2]) || (d[2] as number) < 0) {
      throw new ProtocolError(`${name}: payload ${i} descriptor ${JSON.stringify(d)} does not match [${frameName}, ${dtype}, n]`);
    }
    payload[frameName] = view(frames[i + 1]!, dtype, d[2] as number, frameName);
  });
  const { p: _p, f: _f, ...fields } = h;
  return (expected.length > 0 ? { ...fields, frames: payload } : fields) as unknown as Message;
}

/** Bytes of payload frames, for exchange accounting. */
export function payloadBytes(frames: readonly Buffer[]): number {
  let n = 0;
  for (let i = 1; i < frames.length; i++) n += frames[i]!.byteLength;
  return n;
}

export const EMPTY_F32 = new Float32Array(0);
export const EMPTY_I32 = new Int32Array(0);
