import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Packr } from 'msgpackr';
import {
  MAX_STRING_BYTES,
  MsgType,
  PROTOCOL_ID,
  PROTOCOL_VERSION,
  SCHEMA,
  decode,
  encode,
  type PhaseResultMsg,
  type PhaseStepMsg,
  type HelloMsg,
  type InitMsg,
  type Message,
  type MessageOf,
  type PhaseStatsWire,
  type RunSpecWire,
} from '../../src/shared/protocol.js';
import { ProtocolError } from '../../src/shared/errors.js';
import type { PhaseStats, TrainerStateArrays } from '../../src/shared/gan/api.js';

// ---------------------------------------------------------------------------
// Fixtures: one message of every type, written as callers write them, so the
// derived types are checked against real construction sites.

const f32 = (...xs: number[]): Float32Array => Float32Array.from(xs);
const i32 = (...xs: number[]): Int32Array => Int32Array.from(xs);

const dstep = (): PhaseStepMsg => ({
  t: MsgType.PhaseStep,
  step: 7,
  phase: 'd',
  globalBatch: 64,
  checksum: true,
  applyTo: 'g',
  skip: [],
  frames: {
    positions: i32(32, 33, 34),
    indices: i32(5, 9, 1),
    nextIndices: new Int32Array(0),
    grad: f32(0.5, -1.25, 3e-8),
    aux: new Float32Array(0),
  },
});

const run = (): RunSpecWire => ({
  runId: 'run-0001',
  model: { kind: 'mlp', layers: [64, 32], nested: { a: null } },
  gan: { lr: 0.0002, beta1: 0.5 },
  dataset: 'ring8',
  datasetFingerprint: 'd'.repeat(64),
  modelFingerprint: 'm'.repeat(64),
  globalBatch: 64,
  flip: false,
  stepTimeout: 120,
});

const samples = (): { [T in MsgType]: MessageOf<T> } => ({
  [MsgType.Hello]: { t: MsgType.Hello, protocol: PROTOCOL_VERSION, version: '0.1.0', host: 'node-1', pid: 4242, backend: 'wasm', backendReason: '', rank: -1 },
  [MsgType.Welcome]: { t: MsgType.Welcome, rank: 1, worldSize: 2, run: run(), reduction: { kind: 'sharded', endpoints: 'ipc:///tmp/a.sock ipc:///tmp/b.sock', routingId: 'r1-abc' } },
  [MsgType.Ready]: { t: MsgType.Ready, rank: 1, modelFingerprint: 'm'.repeat(64), datasetFingerprint: 'd'.repeat(64), datasetCount: 60000 },
  [MsgType.Refuse]: { t: MsgType.Refuse, code: 'DISTGAN_E_JOIN_REFUSED', reason: 'rank 1 is already taken' },
  [MsgType.Init]: {
    t: MsgType.Init,
    step: 0,
    frames: { gWeights: f32(1, 2), dWeights: f32(3), bnStats: f32(), gAdamM: f32(0), gAdamV: f32(0), dAdamM: f32(0.5), dAdamV: f32(0.25) },
  },
  [MsgType.PhaseStep]: dstep(),
  [MsgType.PhaseResult]: {
    t: MsgType.PhaseResult,
    step: 7,
    phase: 'd',
    stats: { dLoss: 0.69, dAccuracyReal: 0.5, dAccuracyFake: 0.25 },
    computeSeconds: 0.125,
    dataSeconds: 0.0078125,
    applySeconds: 0,
    checksum: 'c'.repeat(64),
    frames: { grad: f32(0.1, -0.2, 0.3), aux: f32() },
  },
  [MsgType.Finish]: { t: MsgType.Finish, step: 100, applyTo: '', skip: ['g'], frames: { grad: f32(), aux: f32() } },
  [MsgType.Finished]: { t: MsgType.Finished, step: 100, checksum: 'f'.repeat(64) },
  [MsgType.Stop]: { t: MsgType.Stop, reason: 'done', failed: false },
  [MsgType.Error]: { t: MsgType.Error, code: 'DISTGAN_E_INTERNAL', message: 'boom' },
  [MsgType.ShardPush]: { t: MsgType.ShardPush, step: 7, phase: 'd', rank: 1, shard: 0, frames: { grad: f32(0.1, -0.2) } },
  [MsgType.ShardAverage]: { t: MsgType.ShardAverage, step: 7, network: 'g', shard: 1, frames: { grad: f32(0.5) } },
  [MsgType.OwnerHello]: { t: MsgType.OwnerHello, protocol: PROTOCOL_VERSION, version: '0.1.0', host: 'node-2', pid: 77 },
  [MsgType.OwnerBound]: { t: MsgType.OwnerBound, endpoint: 'tcp://10.0.0.2:40001' },
  [MsgType.OwnerInit]: {
    t: MsgType.OwnerInit,
    shard: 1,
    shards: 2,
    worldSize: 3,
    phases: 'd:d,g:g',
    dLength: 10,
    gLength: 20,
    lr: 0.0002,
    beta1: 0.5,
    beta2: 0.999,
    epsilon: 1e-8,
    step: 4,
    frames: { dWeights: f32(1, 2), dAdamM: f32(0, 0), dAdamV: f32(0, 0), gWeights: f32(3), gAdamM: f32(0), gAdamV: f32(0) },
  },
  [MsgType.OwnerMembers]: { t: MsgType.OwnerMembers, id: 3, routingIds: 'r0-aa r1-bb r2-cc' },
  [MsgType.OwnerAck]: { t: MsgType.OwnerAck, id: 3 },
  [MsgType.OwnerReduce]: { t: MsgType.OwnerReduce, id: 9, step: 4, phase: 'g', accumulate: false },
  [MsgType.OwnerPublish]: { t: MsgType.OwnerPublish, id: 4, step: 5, network: 'g' },
  [MsgType.OwnerDiscard]: { t: MsgType.OwnerDiscard },
  [MsgType.OwnerCommit]: { t: MsgType.OwnerCommit, step: 5, order: 'd,-g' },
  [MsgType.OwnerGather]: { t: MsgType.OwnerGather, id: 10 },
  [MsgType.OwnerClose]: { t: MsgType.OwnerClose, reason: 'run complete' },
  [MsgType.OwnerPart]: { t: MsgType.OwnerPart, step: 4, phase: 'd', rank: 2, sumSq: 0.125, problem: '' },
  [MsgType.OwnerReduced]: { t: MsgType.OwnerReduced, id: 9, problem: '' },
  [MsgType.OwnerState]: { t: MsgType.OwnerState, id: 10, step: 5, frames: { dWeights: f32(1), dAdamM: f32(0), dAdamV: f32(0), gWeights: f32(), gAdamM: f32(), gAdamV: f32() } },
  [MsgType.OwnerNote]: { t: MsgType.OwnerNote, kind: 'unreachable', rank: 1, message: 'peer gone' },
});

const ALL_TYPES = Object.values(MsgType).filter((v): v is MsgType => typeof v === 'number');

// Raw header access, packed as the protocol packs, for corrupting one field at a time.
const packr = new Packr({ useRecords: false, moreTypes: false });
type Header = Record<string, unknown>;
function withHeader(frames: readonly Buffer[], mutate: (h: Header) => void): Buffer[] {
  const h = packr.unpack(frames[0]!) as Header;
  mutate(h);
  return [packr.pack(h), ...frames.slice(1)];
}

function assertRefused(frames: readonly Buffer[], re: RegExp, what: string): void {
  assert.throws(
    () => decode(frames),
    (e: unknown) => {
      assert.ok(e instanceof ProtocolError, `${what}: a ProtocolError, got ${String(e)}`);
      assert.match((e as Error).message, re, what);
      return true;
    },
    what,
  );
}

// ---------------------------------------------------------------------------
// Compile-time checks: the derived types are what callers construct.

type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
const typeIs = <T extends true>(): void => {};
typeIs<Equal<InitMsg['frames'], TrainerStateArrays>>();
// The worker sends the trainer's PhaseStats as `stats`: the two must stay interchangeable.
typeIs<Equal<Required<PhaseStatsWire>, Required<PhaseStats>>>();
typeIs<Equal<{} extends PhaseStatsWire ? true : false, true>>();
typeIs<Equal<{} extends Pick<PhaseResultMsg, 'checksum'> ? true : false, true>>();
typeIs<Equal<{} extends Pick<PhaseResultMsg, 'step'> ? true : false, false>>();
typeIs<Equal<PhaseStepMsg['applyTo'], '' | 'd' | 'g'>>();
typeIs<Equal<PhaseStepMsg['skip'], Array<'d' | 'g'>>>();
typeIs<Equal<RunSpecWire['model'], Record<string, unknown>>>();
typeIs<Equal<PhaseStepMsg['frames']['positions'], Int32Array>>();
typeIs<Equal<Extract<Message, { t: MsgType.PhaseResult }>['frames']['grad'], Float32Array>>();
typeIs<Equal<'frames' extends keyof HelloMsg ? true : false, false>>();

test('derived types accept what callers construct and refuse what they must not', () => {
  const ok: PhaseStepMsg = { t: MsgType.PhaseStep, step: 1, phase: 'g', globalBatch: 8, checksum: false, applyTo: '', skip: [], frames: { positions: i32(), indices: i32(), nextIndices: i32(), grad: f32(), aux: f32() } };
  // @ts-expect-error: skip is missing
  const missing: PhaseStepMsg = { t: MsgType.PhaseStep, step: 1, phase: 'g', globalBatch: 8, checksum: false, applyTo: '', frames: ok.frames };
  // @ts-expect-error: step must be a number
  const wrongType: PhaseStepMsg = { ...ok, step: '1' };
  // @ts-expect-error: no such field
  const unknown: PhaseStepMsg = { ...ok, frames: ok.frames, extra: 1 };
  // @ts-expect-error: positions is an Int32Array frame
  const wrongDtype: PhaseStepMsg = { ...ok, frames: { ...ok.frames, positions: f32() } };
  // @ts-expect-error: applyTo names a network
  const badNetwork: PhaseStepMsg = { ...ok, applyTo: 'x' };
  // @ts-expect-error: run.flip is missing
  const badRun: RunSpecWire = { runId: 'r', model: {}, gan: {}, dataset: 'd', datasetFingerprint: 'x', modelFingerprint: 'y', globalBatch: 1, stepTimeout: 1 };
  // @ts-expect-error: stats holds only the four known numbers
  const badStats: PhaseStatsWire = { dLoss: 1, other: 2 };
  const hello: HelloMsg = samples()[MsgType.Hello];
  assert.equal(hello.rank, -1);
  void [missing, wrongType, unknown, wrongDtype, badRun, badStats];
});

// ---------------------------------------------------------------------------
// Round trips.

test('every message type round-trips through encode/decode', () => {
  const all = samples();
  for (const t of ALL_TYPES) {
    const m = all[t] as Message;
    const frames = encode(m);
    assert.equal(frames.length, 1 + Object.keys(SCHEMA[t].frames).length, `${MsgType[t]}: header + one frame per payload`);
    assert.deepStrictEqual(decode(frames), m, MsgType[t]);
  }
  // The optional field may be absent, and stays absent.
  const { checksum: _c, ...noChecksum } = all[MsgType.PhaseResult];
  const back = decode(encode(noChecksum));
  assert.deepStrictEqual(back, noChecksum);
  assert.equal(Object.hasOwn(back, 'checksum'), false);
});

test('encode/decode round-trips header fields and tensor frames bit-exactly', () => {
  const frames = encode(dstep());
  assert.equal(frames.length, 6, 'header + 5 payload frames');
  const m = decode(frames.map((f) => Buffer.from(f)));
  assert.equal(m.t, MsgType.PhaseStep);
  if (m.t !== MsgType.PhaseStep) return;
  assert.equal(m.step, 7);
  assert.equal(m.phase, 'd');
  assert.equal(m.checksum, true);
  assert.equal(m.applyTo, 'g');
  assert.deepEqual(m.skip, []);
  assert.deepEqual([...m.frames.positions], [32, 33, 34]);
  assert.ok(m.frames.grad instanceof Float32Array);
  assert.deepEqual([...m.frames.grad], [0.5, -1.25, Math.fround(3e-8)]);
  assert.equal(m.frames.nextIndices.length, 0);
});

test('a diverged slice: NaN and infinite losses in stats pass, so the gradient guard sees the result', () => {
  const m: PhaseResultMsg = { ...samples()[MsgType.PhaseResult], stats: { dLoss: NaN, dAccuracyReal: Infinity, dAccuracyFake: -Infinity } };
  const back = decode(encode(m));
  assert.ok(back.t === MsgType.PhaseResult && Number.isNaN(back.stats.dLoss) && back.stats.dAccuracyReal === Infinity);
});

test('a misaligned frame is copied, not viewed out of alignment', () => {
  const frames = encode(dstep());
  const raw = Buffer.alloc(frames[4]!.byteLength + 1);
  frames[4]!.copy(raw, 1);
  const mis = raw.subarray(1);
  assert.equal(mis.byteOffset % 4 !== 0, true);
  const m = decode([frames[0]!, frames[1]!, frames[2]!, frames[3]!, mis, frames[5]!]);
  if (m.t !== MsgType.PhaseStep) throw new Error('type');
  assert.deepEqual([...m.frames.grad], [0.5, -1.25, Math.fround(3e-8)]);
});

// ---------------------------------------------------------------------------
// Refusals.

test('decode refuses bad input with a ProtocolError naming the problem', () => {
  const good = encode(dstep());
  const cases: Array<[string, Buffer[], RegExp]> = [
    ['empty', [], /empty message/],
    ['truncated msgpack', [Buffer.from([0x82, 0xa1])], /not valid msgpack/],
    ['not a map', [packr.pack([1, 2])], /not a map/],
    ['binary, not a map', [packr.pack(Buffer.from([1, 2, 3]))], /not a map/],
    ['foreign magic', [packr.pack({ p: 'other/1', t: 1 })], /not a distgan message/],
    ['other version', [packr.pack({ p: `distgan/${PROTOCOL_VERSION + 1}`, t: 1 })], new RegExp(`protocol distgan/${PROTOCOL_VERSION + 1} is not`)],
    ['unknown type', [packr.pack({ p: PROTOCOL_ID, t: 99, f: [] })], /unknown message type 99/],
    ['fractional type', [packr.pack({ p: PROTOCOL_ID, t: 1.5, f: [] })], /unknown message type 1.5/],
    ['missing field', [packr.pack({ p: PROTOCOL_ID, t: MsgType.Stop, reason: 'x', f: [] })], /^Stop: field 'failed' is missing \(must be a boolean\)/],
    ['missing descriptors', [packr.pack({ p: PROTOCOL_ID, t: MsgType.Stop, reason: 'x', failed: true })], /^Stop: expected 0 payload descriptors, got undefined/],
    ['missing frame', good.slice(0, 5), /expected 5 payload frames, got 4/],
    ['extra frame', [...good, Buffer.alloc(4)], /expected 5 payload frames, got 6/],
    ['short frame', [...good.slice(0, 4), good[4]!.subarray(0, 8), good[5]!], /frame 'grad' has 8 bytes, header says 3/],
    ['descriptor with a 4th element', withHeader(good, (h) => ((h.f as unknown[][])[0] = ['positions', 'i32', 3, 0])), /payload 0 descriptor .* does not match \[positions, i32, n\]/],
    ['descriptor of the wrong dtype', withHeader(good, (h) => ((h.f as unknown[][])[3] = ['grad', 'i32', 3])), /payload 3 descriptor .* does not match \[grad, f32, n\]/],
    ['fractional length', withHeader(good, (h) => ((h.f as unknown[][])[3] = ['grad', 'f32', 2.5])), /payload 3 descriptor/],
    // msgpackr decodes 64-bit integers beyond 2^53 as BigInt; they are refused like any other non-number.
    ['64-bit type', [packr.pack({ p: PROTOCOL_ID, t: 2n ** 63n + 1n, f: [] })], /unknown message type "9223372036854775809n"/],
    ['64-bit length', withHeader(good, (h) => ((h.f as unknown[][])[3] = ['grad', 'f32', 2n ** 63n + 1n])), /payload 3 descriptor \["grad","f32","9223372036854775809n"\] does not match/],
    ['64-bit step', withHeader(good, (h) => (h.step = 2n ** 63n + 1n)), /^PhaseStep: field 'step' must be an integer ≥ 0, got 9223372036854775809/],
  ];
  for (const [name, frames, re] of cases) assertRefused(frames, re, name);
});

/** A value of some other kind than `spec` accepts. */
function wrongValueFor(spec: { kind: string }): unknown {
  switch (spec.kind) {
    case 'int':
    case 'num':
      return 'seven';
    case 'str':
      return 42;
    case 'bool':
      return 1;
    default:
      return [1, 2];
  }
}

test('for every message type, a missing, a wrong-typed and an unknown field are refused, naming type and field', () => {
  const all = samples();
  let checked = 0;
  for (const t of ALL_TYPES) {
    const type = MsgType[t];
    const good = encode(all[t] as Message);
    const spec = SCHEMA[t] as { fields: Record<string, { kind: string }>; optional: Record<string, { kind: string }> };
    for (const [field, fieldSpec] of Object.entries(spec.fields)) {
      assertRefused(withHeader(good, (h) => delete h[field]), new RegExp(`^${type}: field '${field}' is missing`), `${type} without ${field}`);
      assertRefused(withHeader(good, (h) => (h[field] = null)), new RegExp(`^${type}: field '${field}' (is missing|must be .*, got null)`), `${type} with ${field} null`);
      assertRefused(withHeader(good, (h) => (h[field] = wrongValueFor(fieldSpec))), new RegExp(`^${type}: field '${field}' must be `), `${type} with a wrong-typed ${field}`);
      checked++;
    }
    for (const [field, fieldSpec] of Object.entries(spec.optional)) {
      assertRefused(withHeader(good, (h) => (h[field] = wrongValueFor(fieldSpec))), new RegExp(`^${type}: field '${field}' must be `), `${type} with a wrong-typed optional ${field}`);
    }
    assertRefused(withHeader(good, (h) => (h.bogus = 1)), new RegExp(`^${type}: unknown field 'bogus'`), `${type} with an unknown field`);
    // msgpackr renames a `__proto__` key rather than setting the prototype; either way it is not a field.
    assertRefused(
      withHeader(good, (h) => Object.defineProperty(h, '__proto__', { value: { polluted: true }, enumerable: true, configurable: true, writable: true })),
      new RegExp(`^${type}: unknown field '__proto_`),
      `${type} with a __proto__ key`,
    );
  }
  assert.ok(checked >= 35, `checked ${checked} required fields`);
});

test('integers where integers are meant, within their range', () => {
  const all = samples();
  const cases: Array<[MsgType, string, unknown, RegExp]> = [
    [MsgType.Hello, 'protocol', 2.5, /^Hello: field 'protocol' must be an integer ≥ 0, got 2.5/],
    [MsgType.Hello, 'pid', 3.5, /^Hello: field 'pid' must be an integer ≥ 0, got 3.5/],
    [MsgType.Hello, 'rank', -2, /^Hello: field 'rank' must be an integer ≥ -1, got -2/],
    [MsgType.Hello, 'rank', 0.5, /^Hello: field 'rank' must be an integer ≥ -1, got 0.5/],
    [MsgType.Hello, 'rank', NaN, /^Hello: field 'rank' must be an integer ≥ -1, got NaN/],
    [MsgType.Hello, 'rank', 2 ** 53, /^Hello: field 'rank' must be an integer/],
    [MsgType.Welcome, 'rank', -1, /^Welcome: field 'rank' must be an integer ≥ 0/],
    [MsgType.Welcome, 'worldSize', 0, /^Welcome: field 'worldSize' must be an integer ≥ 1, got 0/],
    [MsgType.Ready, 'datasetCount', -1, /^Ready: field 'datasetCount' must be an integer ≥ 0, got -1/],
    [MsgType.PhaseStep, 'step', 1.5, /^PhaseStep: field 'step' must be an integer ≥ 0, got 1.5/],
    [MsgType.PhaseStep, 'globalBatch', 0, /^PhaseStep: field 'globalBatch' must be an integer ≥ 1, got 0/],
    [MsgType.PhaseStep, 'globalBatch', 64.5, /^PhaseStep: field 'globalBatch' must be an integer ≥ 1/],
    [MsgType.PhaseStep, 'phase', '', /^PhaseStep: field 'phase' must be a non-empty string/],
    [MsgType.PhaseStep, 'applyTo', 'x', /^PhaseStep: field 'applyTo' must be one of "", "d", "g"/],
    [MsgType.PhaseStep, 'skip', ['d', 'd'], /^PhaseStep: field 'skip' must be a list of distinct values from "d", "g"/],
    [MsgType.PhaseStep, 'skip', ['x'], /^PhaseStep: field 'skip' must be a list of distinct values/],
    [MsgType.PhaseStep, 'skip', 'd', /^PhaseStep: field 'skip' must be a list/],
    [MsgType.Finish, 'applyTo', 7, /^Finish: field 'applyTo' must be one of/],
    [MsgType.PhaseResult, 'step', -1, /^PhaseResult: field 'step' must be an integer ≥ 0, got -1/],
    [MsgType.PhaseResult, 'computeSeconds', NaN, /^PhaseResult: field 'computeSeconds' must be a finite number ≥ 0, got NaN/],
    [MsgType.PhaseResult, 'applySeconds', Infinity, /^PhaseResult: field 'applySeconds' must be a finite number ≥ 0, got Infinity/],
    [MsgType.PhaseResult, 'dataSeconds', -0.5, /^PhaseResult: field 'dataSeconds' must be a finite number ≥ 0, got -0.5/],
    [MsgType.Finished, 'step', Infinity, /^Finished: field 'step' must be an integer ≥ 0, got Infinity/],
  ];
  for (const [t, field, value, re] of cases) {
    assertRefused(withHeader(encode(all[t] as Message), (h) => (h[field] = value)), re, `${MsgType[t]}.${field} = ${String(value)}`);
  }
});

test('strings are bounded in UTF-8 bytes', () => {
  const all = samples();
  const hello = encode(all[MsgType.Hello]);
  assertRefused(withHeader(hello, (h) => (h.host = 'x'.repeat(MAX_STRING_BYTES + 1))), /^Hello: field 'host' is longer than 65536 bytes/, 'ASCII over the limit');
  // 30,000 characters, 90,000 bytes: over the limit in bytes though not in characters.
  assertRefused(withHeader(hello, (h) => (h.host = '€'.repeat(30_000))), /^Hello: field 'host' is longer than 65536 bytes/, 'multi-byte over the limit');
  assert.equal((decode(withHeader(hello, (h) => (h.host = 'x'.repeat(MAX_STRING_BYTES)))) as HelloMsg).host.length, MAX_STRING_BYTES);
  assertRefused(withHeader(encode(all[MsgType.PhaseResult]), (h) => (h.checksum = 'c'.repeat(MAX_STRING_BYTES + 1))), /^PhaseResult: field 'checksum' is longer/, 'optional string');
});

test('the nested run spec is checked field by field', () => {
  const welcome = encode(samples()[MsgType.Welcome]);
  const withRun = (mutate: (r: Header) => void): Buffer[] => withHeader(welcome, (h) => mutate(h.run as Header));
  const cases: Array<[string, Buffer[], RegExp]> = [
    ['run not an object', withHeader(welcome, (h) => (h.run = 'ring8')), /^Welcome: field 'run' must be a plain object, got a string/],
    ['run an array', withHeader(welcome, (h) => (h.run = [run()])), /^Welcome: field 'run' must be a plain object, got an array/],
    ['run missing', withHeader(welcome, (h) => delete h.run), /^Welcome: field 'run' is missing/],
    ['runId missing', withRun((r) => delete r.runId), /^Welcome: field 'run.runId' is missing \(must be a non-empty string\)/],
    ['runId empty', withRun((r) => (r.runId = '')), /^Welcome: field 'run.runId' must be a non-empty string, got an empty string/],
    ['dataset empty', withRun((r) => (r.dataset = '')), /^Welcome: field 'run.dataset' must be a non-empty string/],
    ['datasetFingerprint number', withRun((r) => (r.datasetFingerprint = 7)), /^Welcome: field 'run.datasetFingerprint' must be a non-empty string, got 7/],
    ['modelFingerprint empty', withRun((r) => (r.modelFingerprint = '')), /^Welcome: field 'run.modelFingerprint' must be a non-empty string/],
    ['model an array', withRun((r) => (r.model = [1, 2])), /^Welcome: field 'run.model' must be a plain object, got an array/],
    ['model binary', withRun((r) => (r.model = Buffer.from([1]))), /^Welcome: field 'run.model' must be a plain object, got a (Buffer|Uint8Array)/],
    ['gan null', withRun((r) => (r.gan = null)), /^Welcome: field 'run.gan' (is missing|must be a plain object, got null)/],
    ['globalBatch fractional', withRun((r) => (r.globalBatch = 1.5)), /^Welcome: field 'run.globalBatch' must be an integer ≥ 1, got 1.5/],
    ['flip a string', withRun((r) => (r.flip = 'yes')), /^Welcome: field 'run.flip' must be a boolean/],
    ['stepTimeout zero', withRun((r) => (r.stepTimeout = 0)), /^Welcome: field 'run.stepTimeout' must be a finite number > 0, got 0/],
    ['stepTimeout infinite', withRun((r) => (r.stepTimeout = Infinity)), /^Welcome: field 'run.stepTimeout' must be a finite number > 0, got Infinity/],
    ['unknown run field', withRun((r) => (r.extra = true)), /^Welcome: unknown field 'run.extra'/],
  ];
  for (const [name, frames, re] of cases) assertRefused(frames, re, name);
  // model and gan stay free-form inside.
  const free = withRun((r) => (r.model = { anything: [1, 'two', { three: null }] }));
  const m = decode(free);
  assert.ok(m.t === MsgType.Welcome);
  assert.deepEqual(m.run.model, { anything: [1, 'two', { three: null }] });
});

test('the nested stats hold only the four optional numbers', () => {
  for (const t of [MsgType.PhaseResult] as const) {
    const type = MsgType[t];
    const good = encode(samples()[t]);
    const withStats = (stats: unknown): Buffer[] => withHeader(good, (h) => (h.stats = stats));
    const cases: Array<[string, Buffer[], RegExp]> = [
      ['stats an array', withStats([1, 2]), new RegExp(`^${type}: field 'stats' must be a plain object, got an array`)],
      ['stats a number', withStats(0.5), new RegExp(`^${type}: field 'stats' must be a plain object, got 0.5`)],
      ['stats missing', withHeader(good, (h) => delete h.stats), new RegExp(`^${type}: field 'stats' is missing`)],
      ['dLoss a string', withStats({ dLoss: 'NaN' }), new RegExp(`^${type}: field 'stats.dLoss' must be a number, got a string`)],
      ['gLoss null', withStats({ gLoss: null }), new RegExp(`^${type}: field 'stats.gLoss' must be a number, got null`)],
      ['dLoss nested', withStats({ dLoss: { deep: [1] } }), new RegExp(`^${type}: field 'stats.dLoss' must be a number, got an object`)],
      ['unknown stat', withStats({ dLoss: 1, dLoss2: 2 }), new RegExp(`^${type}: unknown field 'stats.dLoss2'`)],
    ];
    for (const [name, frames, re] of cases) assertRefused(frames, re, `${type}: ${name}`);
    const empty = decode(withStats({}));
    assert.ok(empty.t === t);
    assert.deepEqual(empty.stats, {}, `${type}: empty stats are fine (every stat is optional)`);
  }
});

test('encode refuses a missing or mistyped payload frame', () => {
  const m = dstep();
  assert.throws(() => encode({ ...m, frames: { ...m.frames, grad: undefined as unknown as Float32Array } }), /needs payload frame 'grad'/);
  assert.throws(() => encode({ ...m, frames: { ...m.frames, positions: new Float32Array(3) as unknown as Int32Array } }), /must be Int32Array/);
});

// ---------------------------------------------------------------------------
// The layout doc in the file header is the schema, in words.

type AnySpec = { kind: string; values?: readonly string[]; min?: number; finite?: boolean; exclusive?: boolean; nonEmpty?: boolean; name?: string; fields?: Record<string, AnySpec>; optional?: Record<string, AnySpec> };

function token(spec: AnySpec): string {
  switch (spec.kind) {
    case 'int':
      return `int≥${spec.min}`;
    case 'num':
      if (!spec.finite) return 'float';
      return spec.min === -Infinity ? 'num' : `num${spec.exclusive ? '>' : '≥'}${spec.min}`;
    case 'str':
      return spec.nonEmpty ? 'str+' : 'str';
    case 'bool':
      return 'bool';
    case 'json':
      return 'obj';
    case 'enum':
      return `(${spec.values!.map((v) => (v === '' ? "''" : v)).join('|')})`;
    case 'list':
      return `[${spec.values!.join('|')}]`;
    default:
      return spec.name!;
  }
}

function fieldTokens(fields: Record<string, AnySpec>, optional: Record<string, AnySpec>): string {
  const out = [...Object.entries(fields).map(([k, s]) => `${k}:${token(s)}`), ...Object.entries(optional).map(([k, s]) => `${k}?:${token(s)}`)];
  return out.join(' ');
}

test('the frame layout in the file header lists every type, field and frame, in order', () => {
  const source = readFileSync(new URL('../../../src/shared/protocol.ts', import.meta.url), 'utf8');
  const doc = source.slice(0, source.indexOf('*/')).split('\n').map((l) => l.replace(/^\s*\*\s?/, ''));
  const documented = new Map<string, { n?: number; header?: string; frames?: string; fields?: string }>();
  let current: string | undefined;
  for (const line of doc) {
    const type = /^ {2}(\w+) \((\d+)\)/.exec(line);
    const nested = /^ {2}(\w+) {2}\(/.exec(line);
    const row = /^ {4}(header|frames|fields) {2}(.*)$/.exec(line);
    if (type) documented.set((current = type[1]!), { n: Number(type[2]) });
    else if (nested) documented.set((current = nested[1]!), {});
    else if (row && current) documented.get(current)![row[1] as 'header' | 'frames' | 'fields'] = row[2]!.trim();
  }
  const nestedSpecs = new Map<string, AnySpec>();
  for (const t of ALL_TYPES) {
    const name = MsgType[t];
    const spec = SCHEMA[t] as unknown as { fields: Record<string, AnySpec>; optional: Record<string, AnySpec>; frames: Record<string, string> };
    const entry = documented.get(name);
    assert.ok(entry, `${name} is documented`);
    assert.equal(entry.n, t, `${name}'s number`);
    assert.equal(entry.header, fieldTokens(spec.fields, spec.optional) || '—', `${name}'s header fields`);
    const frames = Object.entries(spec.frames).map(([k, d]) => `${k}:${d}`).join(' ');
    assert.equal(entry.frames, frames || '—', `${name}'s frames`);
    for (const s of [...Object.values(spec.fields), ...Object.values(spec.optional)]) if (s.kind === 'obj') nestedSpecs.set(s.name!, s);
  }
  assert.deepEqual([...nestedSpecs.keys()].sort(), ['ReductionSpec', 'RunSpec', 'Stats']);
  for (const [name, s] of nestedSpecs) assert.equal(documented.get(name)?.fields, fieldTokens(s.fields!, s.optional!), `${name}'s fields`);
  assert.equal(documented.size, ALL_TYPES.length + nestedSpecs.size, 'nothing documented that is not in the schema');
});

// ---------------------------------------------------------------------------
// Cost: decode is O(header), never O(payload).

test('decoding a 1 M-float gradient costs no per-element work', (t) => {
  const result = (n: number): Buffer[] => {
    const frames = encode({ ...samples()[MsgType.PhaseResult], frames: { grad: new Float32Array(n).fill(0.25), aux: new Float32Array(256) } });
    // Fresh aligned copies, as ZeroMQ hands frames back.
    return frames.map((b) => Buffer.from(new Uint8Array(b).buffer));
  };
  const big = result(1 << 20);
  const small = result(16);
  const m = decode(big);
  assert.ok(m.t === MsgType.PhaseResult);
  assert.equal(m.frames.grad.buffer, big[1]!.buffer, 'the gradient is a view of the received frame, not a copy');
  const median = (frames: Buffer[]): number => {
    const runs: number[] = [];
    for (let r = 0; r < 7; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 2000; i++) decode(frames);
      runs.push(Number(process.hrtime.bigint() - t0) / 2000 / 1000);
    }
    return runs.sort((a, b) => a - b)[3]!;
  };
  median(small); // warm up
  const bigUs = median(big);
  const smallUs = median(small);
  t.diagnostic(`decode DResult: 1 M floats ${bigUs.toFixed(2)} µs, 16 floats ${smallUs.toFixed(2)} µs (median of 7 × 2000)`);
  // Touching each of 1 M floats once costs ≥ 300 µs; the header walk costs tens.
  assert.ok(bigUs < smallUs + 200, `1 M floats: ${bigUs.toFixed(1)} µs vs ${smallUs.toFixed(1)} µs for 16`);
});
