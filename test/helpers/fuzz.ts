/**
 * A seeded generator of malformed and hostile distgan messages, for the
 * fault tests that throw them at a real coordinator.
 *
 * Each message is an array of Buffers, as a DEALER sends it (no identity
 * frame). Valid messages come from the real `encode` of src/shared/protocol.ts
 * and are then corrupted; corrupt headers are packed with raw msgpackr. The
 * same seed gives the same sequence of messages, so a failure reproduces with
 * DISTGAN_FUZZ_SEED=<seed> (print the seed with every figure and assertion).
 *
 * joinSafe: while a coordinator is still joining, a well-formed Hello with the
 * right protocol and an in-range (or unset, -1) rank is a legitimate join and
 * would take a rank from the real workers; an unauthenticated protocol cannot
 * tell a stranger from a worker (CURVE is the answer to that). With joinSafe,
 * every Hello the generator makes carries either another protocol number or a
 * rank outside the world size, so none of them can join; all other kinds are
 * unchanged.
 */
import { Packr } from 'msgpackr';
import { MsgType, PROTOCOL_ID, PROTOCOL_VERSION, encode, type HelloMsg, type Message, type PhaseResultMsg } from '../../src/shared/protocol.js';
import { TRAINER_STATE_ARRAYS } from '../../src/shared/gan/api.js';

/** The seed from DISTGAN_FUZZ_SEED (decimal or 0x hex), else a random 32-bit one. */
export function fuzzSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env.DISTGAN_FUZZ_SEED;
  if (given !== undefined && given.trim() !== '') {
    const n = Number(given.trim());
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`DISTGAN_FUZZ_SEED=${JSON.stringify(given)} is not an integer in 0..2^32-1`);
    return n;
  }
  return Math.floor(Math.random() * 0x100000000);
}

/** mulberry32: a tiny 32-bit PRNG, uniform floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FuzzRng {
  private readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** Integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 256);
    return b;
  }
  /** Printable ASCII of length n. */
  ascii(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.int(0x20, 0x7f));
    return s;
  }
  hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += '0123456789abcdef'[this.int(0, 16)];
    return s;
  }
}

/** Strings that break naive log lines and terminals: newlines, ANSI escapes, NULs, bidi overrides. */
export const HOSTILE_STRINGS: readonly string[] = [
  '\n[fake] rank 0 joined\u001b[2J',
  'host\r\ndistgan: done: 400 steps',
  '\u001b[31mred\u001b[0m\u001b]0;pwned\u0007',
  'nul\u0000byte\u0000',
  '\u001bc',
  'line\u2028separator\u2029paragraph',
  '\u202eevil\u202c',
  '%s%n%x{{}}${process.exit()}',
  '\u0007\u0008\u0008\u0008\u007f',
  '',
];

export interface FuzzMessage {
  kind: string;
  frames: Buffer[];
}

export interface FuzzOptions {
  /** The coordinator's world size: ranks at or above it are out of range. */
  worldSize: number;
  /** Never make a Hello that could legitimately join (see the file comment). */
  joinSafe: boolean;
}

type Header = Record<string, unknown>;

// Raw packers: `plain` as the protocol packs (no records), `records` for msgpackr's record extension.
const plain = new Packr({ useRecords: false, moreTypes: false });
const records = new Packr({ useRecords: true });

const MAX_HEADER_BYTES = 1 << 20;

const ALL_TYPES: readonly MsgType[] = [
  MsgType.Hello,
  MsgType.Welcome,
  MsgType.Ready,
  MsgType.Refuse,
  MsgType.Init,
  MsgType.PhaseStep,
  MsgType.PhaseResult,
  MsgType.Finish,
  MsgType.Finished,
  MsgType.Stop,
  MsgType.Error,
];
/** Types only the coordinator sends; a worker (or stranger) sending them is out of place. */
const COORDINATOR_TYPES: readonly MsgType[] = [MsgType.Welcome, MsgType.Refuse, MsgType.Init, MsgType.PhaseStep, MsgType.Finish, MsgType.Stop];

/** A value of some other msgpack type than `v`'s. */
function wrongTypeFor(r: FuzzRng, v: unknown): unknown {
  const options: unknown[] = [42, -1.5, 'x', true, [1, 2], { a: 1 }, Buffer.from([1, 2, 3])];
  const t = Array.isArray(v) ? 'array' : Buffer.isBuffer(v) ? 'buffer' : typeof v;
  return r.pick(options.filter((o) => (Array.isArray(o) ? 'array' : Buffer.isBuffer(o) ? 'buffer' : typeof o) !== t));
}

/** Bytes of `depth` nested one-element arrays (or single-key maps), ending in nil. */
function nested(depth: number, maps: boolean): Buffer {
  const unit = maps ? [0x81, 0xa1, 0x61] : [0x91];
  const b = Buffer.allocUnsafe(depth * unit.length + 1);
  for (let i = 0; i < depth; i++) for (let j = 0; j < unit.length; j++) b[i * unit.length + j] = unit[j]!;
  b[b.length - 1] = 0xc0;
  return b;
}

/** A msgpack str header + bytes (str 32), so content is not re-encoded. */
function msgpackStr(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  const head = Buffer.from([0xdb, 0, 0, 0, 0]);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

type Gen = (g: HostileMessages) => Buffer[];

/**
 * The kinds, with a relative weight (default 1). Expensive kinds (100 KB to
 * 1 MiB per message) are rarer so a flood of 10,000 stays a few tens of MB.
 */
const KINDS: ReadonlyArray<readonly [string, Gen, number?]> = [
  ['empty-frame', () => [Buffer.alloc(0)]],
  ['empty-frames', (g) => Array.from({ length: g.r.int(2, 6) }, () => Buffer.alloc(0))],
  ['random-bytes-header', (g) => [g.r.bytes(g.r.int(1, 512))]],
  ['random-frames', (g) => Array.from({ length: g.r.int(2, 8) }, () => g.r.bytes(g.r.int(0, 256)))],
  ['msgpack-array', (g) => [plain.pack(g.r.pick([[], [PROTOCOL_ID, 1], [{ p: PROTOCOL_ID, t: 1 }], Array.from({ length: 100 }, (_, i) => i)]))]],
  ['msgpack-number', (g) => [plain.pack(g.r.pick([0, 1, -1, 2 ** 53, -(2 ** 63), 1.5, NaN, Infinity, -Infinity]))]],
  ['msgpack-string', (g) => [plain.pack(g.r.pick([PROTOCOL_ID, '', 'hello', g.r.ascii(64)]))]],
  ['msgpack-nil', () => [Buffer.from([0xc0])]],
  ['msgpack-bool-or-binary', (g) => [g.r.pick([Buffer.from([0xc2]), Buffer.from([0xc3]), plain.pack(g.r.bytes(32))])]],
  ['wrong-magic', (g) => g.corrupt(g.plausible(), (h) => (h.p = g.r.pick(['p', '', 'distgan', 'DISTGAN/1', 'zmq/1', 'distgan\\1', g.r.ascii(12)])))],
  ['magic-wrong-type-or-missing', (g) => g.corrupt(g.plausible(), (h) => (g.r.chance(0.3) ? delete h.p : (h.p = g.r.pick([1, null, [PROTOCOL_ID], { p: PROTOCOL_ID }, true, Buffer.from(PROTOCOL_ID)]))))],
  ['other-protocol-version', (g) => g.corrupt(g.plausible(), (h) => (h.p = `distgan/${g.r.pick(['0', '1', '2', '99', '-1', '1.0', '', ' 1', String(PROTOCOL_VERSION + 1)].filter((v) => v !== String(PROTOCOL_VERSION)))}`))],
  ['unknown-type', (g) => g.corrupt(g.plausible(), (h) => (g.r.chance(0.2) ? delete h.t : (h.t = g.r.pick([0, 14, 255, -1, 1.5, '1', null, NaN, 2 ** 53, true, [1], { t: 1 }]))))],
  ['missing-field', (g) => g.corrupt(g.plausible(), (h) => delete h[g.r.pick(g.fieldsOf(h))])],
  ['wrong-type-field', (g) => g.corrupt(g.plausible(), (h) => { const k = g.r.pick(g.fieldsOf(h)); h[k] = wrongTypeFor(g.r, h[k]); })],
  ['null-field', (g) => g.corrupt(g.plausible(), (h) => (h[g.r.pick(g.fieldsOf(h))] = null))],
  ['bad-descriptors', (g) => g.corrupt(g.plausible(g.r.pick([MsgType.PhaseResult, MsgType.Finish, MsgType.PhaseStep])), (h) => {
    const f = h.f as unknown[][];
    const choice = g.r.int(0, 8);
    if (choice === 0) delete h.f;
    else if (choice === 1) h.f = g.r.pick([null, 'f', {}, 5, true]);
    else if (choice === 2) f[0] = ['bogus', f[0]![1], f[0]![2]];
    else if (choice === 3) f[0] = [f[0]![0], f[0]![1] === 'f32' ? 'i32' : 'f32', f[0]![2]];
    else if (choice === 4) f[0] = [f[0]![0], f[0]![1]];
    else if (choice === 5) h.f = f.flat();
    else if (choice === 6) f[0] = [f[0]![0], 'f64', f[0]![2]];
    else f[0] = g.r.pick<unknown>([null, 'grad', 7, { name: 'grad' }]) as unknown[];
  })],
  ['descriptor-count-mismatch', (g) => g.corrupt(g.plausible(g.r.pick([MsgType.Hello, MsgType.PhaseResult, MsgType.Finished, MsgType.Ready])), (h) => {
    const f = h.f as unknown[];
    if (f.length > 0 && g.r.chance(0.5)) f.pop();
    else f.push(['extra', 'f32', 0]);
  })],
  ['frame-count-mismatch', (g) => {
    const frames = g.encoded(g.plausible(g.r.pick([MsgType.PhaseResult, MsgType.Finish])));
    return g.r.chance(0.5) ? frames.slice(0, frames.length - g.r.int(1, frames.length)) : [...frames, Buffer.alloc(4 * g.r.int(0, 4))];
  }],
  ['payload-length-mismatch', (g) => {
    const frames = g.encoded(g.plausible(MsgType.PhaseResult));
    const i = g.r.int(1, frames.length);
    const want = frames[i]!.byteLength + 4 * g.r.pick([-1, 1, 2, 100, -1000]);
    frames[i] = Buffer.alloc(want >= 0 ? want : frames[i]!.byteLength + 4);
    return frames;
  }],
  ['declared-length-bad', (g) => g.corrupt(g.plausible(g.r.pick([MsgType.PhaseResult, MsgType.Finish])), (h) => {
    const f = h.f as unknown[][];
    const d = f[g.r.int(0, f.length)]!;
    d[2] = g.r.pick([2 ** 53 - 1, 2 ** 40, 2 ** 31, 1e300, -1, -(2 ** 31), 1.5, 0.25, NaN, Infinity, -Infinity, '16', null]);
  })],
  ['odd-byte-payload', (g) => {
    const frames = g.encoded(g.plausible(MsgType.PhaseResult));
    const i = g.r.int(1, frames.length);
    const bytes = 4 * g.r.int(0, 8) + g.r.pick([1, 2, 3]);
    frames[i] = g.r.bytes(bytes);
    const h = plain.unpack(frames[0]!) as Header;
    // Declared length = floor(bytes / 4): right length in values, wrong in bytes.
    (h.f as unknown[][])[i - 1]![2] = Math.floor(bytes / 4);
    frames[0] = plain.pack(h);
    return frames;
  }],
  ['extra-frames', (g) => [...g.encoded(g.plausible()), ...Array.from({ length: g.r.int(1, 6) }, () => g.r.bytes(g.r.int(0, 64)))]],
  ['deep-nesting', (g) => {
    const depth = g.r.pick([1000, 10_000, 100_000]);
    const bytes = nested(depth, g.r.chance(0.5));
    if (g.r.chance(0.5)) return [bytes];
    // As a field of an otherwise plausible header: { p, t: Hello, host: [[[[…]]]] }.
    return [Buffer.concat([Buffer.from([0x83]), msgpackStr('p'), msgpackStr(PROTOCOL_ID), msgpackStr('t'), Buffer.from([MsgType.Hello]), msgpackStr('host'), bytes])];
  }, 0.3],
  ['huge-string-field', (g) => g.corrupt(g.plausible(g.r.pick([MsgType.Hello, MsgType.Error, MsgType.Ready, MsgType.Finished, MsgType.PhaseResult])), (h) => {
    const strings = g.fieldsOf(h).filter((f) => typeof h[f] === 'string');
    h[strings.length ? g.r.pick(strings) : 'checksum'] = g.r.ascii(100_000);
  }), 0.3],
  ['control-chars-in-strings', (g) => g.corrupt(g.plausible(g.r.pick([MsgType.Hello, MsgType.Hello, MsgType.Error, MsgType.Ready, MsgType.Finished])), (h) => {
    for (const k of g.fieldsOf(h)) if (typeof h[k] === 'string') h[k] = g.r.pick(HOSTILE_STRINGS) + String(h[k]) + g.r.pick(HOSTILE_STRINGS);
  })],
  ['hello-bad-protocol', (g) => g.encoded({ ...g.hello(), protocol: g.r.pick([0, PROTOCOL_VERSION + 1, 99, -1, 1.5, NaN, 2 ** 40, Infinity]) })],
  ['hello-rank-out-of-range', (g) => {
    const aboveRange = [g.opts.worldSize, g.opts.worldSize + 1, 4096, 65536, 2 ** 31, 2 ** 53, 1e300];
    // Not integers in [0, worldSize) either: a coordinator should refuse them, but one that
    // reads NaN or -0.5 as "no rank" would let the sender join, so only send them after joining.
    const odd = [0.5, -0.5, -2, NaN, -Infinity, Infinity, 1e-300];
    return g.encoded({ ...g.hello(), protocol: PROTOCOL_VERSION, rank: g.r.pick(g.opts.joinSafe ? aboveRange : [...aboveRange, ...odd]) });
  }],
  ['stranger-d-result', (g) => g.encoded({ ...(g.plausible(MsgType.PhaseResult) as PhaseResultMsg), phase: 'd' })],
  ['stranger-g-result', (g) => g.encoded({ ...(g.plausible(MsgType.PhaseResult) as PhaseResultMsg), phase: 'g' })],
  ['stranger-finished', (g) => g.encoded(g.plausible(MsgType.Finished))],
  ['stranger-ready', (g) => g.encoded(g.plausible(MsgType.Ready))],
  ['stranger-error', (g) => g.encoded(g.plausible(MsgType.Error))],
  ['late-or-future-result', (g) => g.encoded({ ...(g.plausible(MsgType.PhaseResult)), step: g.r.pick([-1, 0, 1, 1e9, 1.5, NaN, 2 ** 53, -0]) } as Message)],
  ['duplicate-result', (g) => g.duplicate()],
  ['coordinator-only-type', (g) => g.encoded(g.plausible(g.r.pick(COORDINATOR_TYPES)))],
  ['truncated-header', (g) => {
    const frames = g.encoded(g.plausible());
    frames[0] = frames[0]!.subarray(0, g.r.int(1, frames[0]!.byteLength));
    return frames;
  }],
  ['duplicate-keys', (g) => {
    // { p: PROTOCOL_ID, t: Error, p: 'other/1', t: 99, code, message } with repeated keys.
    const parts = [msgpackStr('p'), msgpackStr(PROTOCOL_ID), msgpackStr('t'), Buffer.from([MsgType.Error]), msgpackStr('p'), msgpackStr(g.r.pick(['other/1', PROTOCOL_ID])), msgpackStr('t'), Buffer.from([g.r.pick([99, MsgType.Hello, MsgType.Error])]), msgpackStr('code'), msgpackStr('X'), msgpackStr('message'), msgpackStr('dup')];
    return [Buffer.concat([Buffer.from([0x86]), ...parts])];
  }],
  ['prototype-keys', (g) => g.corrupt(g.plausible(), (h) => {
    Object.defineProperty(h, g.r.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']), { value: { polluted: true, t: 1 }, enumerable: true, configurable: true, writable: true });
  })],
  ['msgpackr-records', (g) => {
    const frames = g.encoded(g.plausible());
    frames[0] = records.pack(plain.unpack(frames[0]!));
    return frames;
  }],
  ['msgpack-ext-values', (g) => {
    // fixmap 2: p → PROTOCOL_ID, t → fixext1 (type 5 or -1/timestamp), i.e. exotic types where a number belongs.
    const ext = g.r.pick([Buffer.from([0xd4, 0x05, 0x01]), Buffer.from([0xd6, 0xff, 0, 0, 0, 1]), Buffer.from([0xc7, 0x03, 0x72, 1, 2, 3])]);
    return [Buffer.concat([Buffer.from([0x82]), msgpackStr('p'), msgpackStr(PROTOCOL_ID), msgpackStr('t'), ext])];
  }],
  ['oversized-header', (g) => {
    const h = g.header(g.plausible(MsgType.Error));
    h.message = g.r.ascii(MAX_HEADER_BYTES + g.r.int(1, 4096));
    return [plain.pack(h)];
  }, 0.03],
  ['many-keys', (g) => {
    const h = g.header(g.plausible());
    for (let i = 0, n = g.r.pick([1000, 20_000]); i < n; i++) h[`k${i}`] = i;
    return [plain.pack(h)];
  }, 0.2],
  ['bad-stats', (g) => g.corrupt(g.plausible(MsgType.PhaseResult), (h) => (h.stats = g.r.pick([[1, 2], { dLoss: 'NaN', gLoss: null }, { dLoss: { deep: [1] } }, {}])))],
];

export const FUZZ_KINDS: readonly string[] = KINDS.map(([k]) => k);

/**
 * The generator. `next()` returns one message; `counts` says how many of
 * each kind were made.
 */
export class HostileMessages {
  readonly r: FuzzRng;
  readonly counts = new Map<string, number>();
  private readonly cumulative: number[];
  private readonly totalWeight: number;
  private lastResult: Buffer[] | undefined;

  constructor(
    readonly seed: number,
    readonly opts: FuzzOptions,
  ) {
    this.r = new FuzzRng(seed);
    let acc = 0;
    this.cumulative = KINDS.map(([, , w]) => (acc += w ?? 1));
    this.totalWeight = acc;
  }

  next(): FuzzMessage {
    const x = this.r.float() * this.totalWeight;
    const i = this.cumulative.findIndex((c) => x < c);
    const [kind, gen] = KINDS[i < 0 ? KINDS.length - 1 : i]!;
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    return { kind, frames: gen(this) };
  }

  /** `n` messages, in order. */
  batch(n: number): FuzzMessage[] {
    return Array.from({ length: n }, () => this.next());
  }

  /** One of a given kind (for targeted tests). */
  ofKind(kind: string): FuzzMessage {
    const k = KINDS.find(([name]) => name === kind);
    if (!k) throw new Error(`no fuzz kind ${kind}; kinds: ${FUZZ_KINDS.join(', ')}`);
    return { kind, frames: k[1](this) };
  }

  /**
   * A Hello as a worker sends it. With joinSafe it can never join (another
   * protocol number or an out-of-range rank); otherwise it is often a fully
   * valid join request with rank -1.
   */
  hello(): HelloMsg {
    const base = { t: MsgType.Hello as const, protocol: PROTOCOL_VERSION, version: '0.1.0', host: `stranger-${this.r.hex(6)}`, pid: this.r.int(1, 4_000_000), backend: this.r.pick(['wasm', 'cpu', 'webgpu', 'tensorflow']), backendReason: 'fuzz', rank: -1 };
    if (this.opts.joinSafe || this.r.chance(0.5)) {
      if (this.r.chance(0.5)) return { ...base, protocol: PROTOCOL_VERSION + this.r.int(1, 100) };
      return { ...base, rank: this.opts.worldSize + this.r.int(0, 1000) };
    }
    return base;
  }

  /** A well-formed message of `type` (random if absent) with plausible fields, as a stranger might send. */
  plausible(type: MsgType = this.r.pick(ALL_TYPES)): Message {
    const r = this.r;
    const f32 = (n: number): Float32Array => Float32Array.from({ length: n }, () => r.float() * 2 - 1);
    const i32 = (n: number): Int32Array => Int32Array.from({ length: n }, () => r.int(0, 1 << 16));
    const step = r.pick([0, 1, 2, 10, r.int(0, 100_000)]);
    const stats = { dLoss: r.float(), gLoss: r.float(), dAccuracyReal: r.float(), dAccuracyFake: r.float() };
    switch (type) {
      case MsgType.Hello:
        return this.hello();
      case MsgType.Welcome:
        return { t: type, rank: r.int(0, 4), worldSize: r.int(1, 8), run: { runId: r.hex(8), model: {}, gan: {}, dataset: 'ring8', datasetFingerprint: r.hex(64), modelFingerprint: r.hex(64), globalBatch: 64, flip: false, stepTimeout: 60 }, reduction: { kind: 'star', endpoints: '', routingId: '' } };
      case MsgType.Ready:
        return { t: type, rank: r.int(-1, 4), modelFingerprint: r.hex(64), datasetFingerprint: r.hex(64), datasetCount: r.int(0, 100_000) };
      case MsgType.Refuse:
        return { t: type, code: 'DISTGAN_E_JOIN_REFUSED', reason: r.ascii(40) };
      case MsgType.Init:
        return { t: type, step, frames: Object.fromEntries(TRAINER_STATE_ARRAYS.map((k) => [k, f32(r.int(0, 16))])) as never };
      case MsgType.PhaseStep:
        return { t: type, step, phase: r.pick(['d', 'g', 'r1', 'x']), globalBatch: 64, checksum: r.chance(0.5), applyTo: r.pick(['', 'd', 'g'] as const), skip: r.chance(0.2) ? ['g'] : [], frames: { positions: i32(4), indices: i32(4), nextIndices: i32(4), grad: f32(r.int(0, 32)), aux: f32(0) } };
      case MsgType.PhaseResult: {
        const m = { t: type, step, phase: r.pick(['d', 'g', 'r1', 'unknown-phase']), stats, computeSeconds: r.float(), dataSeconds: r.float() / 10, applySeconds: r.float() / 10, frames: { grad: f32(r.pick([0, 1, 16, 1000])), aux: f32(r.pick([0, 4])) } };
        return (r.chance(0.3) ? { ...m, checksum: r.hex(64) } : m) as Message;
      }
      case MsgType.Finish:
        return { t: type, step, applyTo: r.pick(['', 'g'] as const), skip: r.chance(0.2) ? ['d'] : [], frames: { grad: f32(r.int(0, 32)), aux: f32(0) } };
      case MsgType.Finished:
        return { t: type, step, checksum: r.hex(64) };
      case MsgType.Stop:
        return { t: type, reason: r.ascii(20), failed: r.chance(0.5) };
      case MsgType.Error:
        return { t: type, code: r.pick(['DISTGAN_E_INTERNAL', 'DISTGAN_E_WORKER', 'X']), message: r.ascii(r.int(0, 200)) };
      case MsgType.ShardPush:
        return { t: type, step, phase: r.pick(['d', 'g', 'x']), rank: r.int(0, 4), shard: r.int(0, 3), frames: { grad: f32(r.int(0, 32)) } };
      case MsgType.ShardAverage:
        return { t: type, step, network: r.pick(['d', 'g'] as const), shard: r.int(0, 3), frames: { grad: f32(r.int(0, 32)) } };
      case MsgType.OwnerHello:
        return { t: type, protocol: PROTOCOL_VERSION, version: '0.1.0', host: r.ascii(8), pid: r.int(1, 99999) };
      case MsgType.OwnerBound:
        return { t: type, endpoint: 'tcp://127.0.0.1:1' };
      case MsgType.OwnerInit: {
        const z = (): Float32Array => f32(r.int(0, 8));
        return { t: type, shard: r.int(0, 3), shards: r.int(1, 4), worldSize: r.int(1, 8), phases: 'd:d,g:g', dLength: r.int(0, 64), gLength: r.int(0, 64), lr: 0.001, beta1: 0.5, beta2: 0.999, epsilon: 1e-8, step, frames: { dWeights: z(), dAdamM: z(), dAdamV: z(), gWeights: z(), gAdamM: z(), gAdamV: z() } };
      }
      case MsgType.OwnerMembers:
        return { t: type, id: r.int(0, 100), routingIds: r.hex(8) };
      case MsgType.OwnerAck:
        return { t: type, id: r.int(0, 100) };
      case MsgType.OwnerReduce:
        return { t: type, id: r.int(0, 100), step, phase: r.pick(['d', 'g']), accumulate: r.chance(0.5) };
      case MsgType.OwnerPublish:
        return { t: type, id: r.int(0, 100), step, network: r.pick(['d', 'g'] as const) };
      case MsgType.OwnerDiscard:
        return { t: type };
      case MsgType.OwnerCommit:
        return { t: type, step, order: r.pick(['d,g', 'd,-g', '-d,-g']) };
      case MsgType.OwnerGather:
        return { t: type, id: r.int(0, 100) };
      case MsgType.OwnerClose:
        return { t: type, reason: r.ascii(10) };
      case MsgType.OwnerPart:
        return { t: type, step, phase: r.pick(['d', 'g']), rank: r.int(0, 4), sumSq: r.float(), problem: r.pick(['', 'NaN']) };
      case MsgType.OwnerReduced:
        return { t: type, id: r.int(0, 100), problem: '' };
      case MsgType.OwnerState: {
        const z = (): Float32Array => f32(r.int(0, 8));
        return { t: type, id: r.int(0, 100), step, frames: { dWeights: z(), dAdamM: z(), dAdamV: z(), gWeights: z(), gAdamM: z(), gAdamV: z() } };
      }
      case MsgType.OwnerNote:
        return { t: type, kind: r.pick(['dropped', 'unreachable', 'failed'] as const), rank: r.int(-1, 4), message: r.ascii(20) };
    }
  }

  /** The real encoding of `msg` (frames copied, so corrupting them never touches shared arrays). */
  encoded(msg: Message): Buffer[] {
    const frames = encode(msg).map((b) => Buffer.from(b));
    if (msg.t === MsgType.PhaseResult) this.lastResult = frames.map((b) => Buffer.from(b));
    return frames;
  }

  /** The header map of `msg`'s real encoding. */
  header(msg: Message): Header {
    return plain.unpack(this.encoded(msg)[0]!) as Header;
  }

  /** Header fields a corruption may touch (everything but magic, type and descriptors). */
  fieldsOf(h: Header): string[] {
    const ks = Object.keys(h).filter((k) => k !== 'p' && k !== 't' && k !== 'f');
    return ks.length ? ks : ['p'];
  }

  /** Encodes `msg`, lets `mutate` change its header map, and re-packs it raw. */
  corrupt(msg: Message, mutate: (h: Header) => unknown): Buffer[] {
    const frames = this.encoded(msg);
    const h = plain.unpack(frames[0]!) as Header;
    mutate(h);
    frames[0] = plain.pack(h);
    return frames;
  }

  /** The last stranger result again, byte for byte (a duplicate), or a fresh one. */
  duplicate(): Buffer[] {
    if (this.lastResult) return this.lastResult.map((b) => Buffer.from(b));
    return this.encoded(this.plausible(MsgType.PhaseResult));
  }
}
