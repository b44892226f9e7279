import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { MsgType, PROTOCOL_ID, PROTOCOL_VERSION, decode, encode, type DStepMsg } from '../../src/shared/protocol.js';
import { ProtocolError } from '../../src/shared/errors.js';

const dstep = (): DStepMsg => ({
  t: MsgType.DStep,
  step: 7,
  globalBatch: 64,
  checksum: true,
  skipG: false,
  frames: {
    positions: Int32Array.from([32, 33, 34]),
    indices: Int32Array.from([5, 9, 1]),
    nextIndices: new Int32Array(0),
    gGrad: Float32Array.from([0.5, -1.25, 3e-8]),
    gAux: new Float32Array(0),
  },
});

test('encode/decode round-trips header fields and tensor frames bit-exactly', () => {
  const frames = encode(dstep());
  assert.equal(frames.length, 6, 'header + 5 payload frames');
  const m = decode(frames.map((f) => Buffer.from(f)));
  assert.equal(m.t, MsgType.DStep);
  if (m.t !== MsgType.DStep) return;
  assert.equal(m.step, 7);
  assert.equal(m.checksum, true);
  assert.deepEqual([...m.frames.positions], [32, 33, 34]);
  assert.ok(m.frames.gGrad instanceof Float32Array);
  assert.deepEqual([...m.frames.gGrad], [0.5, -1.25, Math.fround(3e-8)]);
  assert.equal(m.frames.nextIndices.length, 0);
});

test('a misaligned frame is copied, not viewed out of alignment', () => {
  const frames = encode(dstep());
  const raw = Buffer.alloc(frames[4]!.byteLength + 1);
  frames[4]!.copy(raw, 1);
  const mis = raw.subarray(1);
  assert.equal(mis.byteOffset % 4 !== 0, true);
  const m = decode([frames[0]!, frames[1]!, frames[2]!, frames[3]!, mis, frames[5]!]);
  if (m.t !== MsgType.DStep) throw new Error('type');
  assert.deepEqual([...m.frames.gGrad], [0.5, -1.25, Math.fround(3e-8)]);
});

test('decode refuses bad input with a ProtocolError naming the problem', () => {
  const good = encode(dstep());
  const packr = new Packr({ useRecords: false });
  const cases: Array<[string, Buffer[], RegExp]> = [
    ['empty', [], /empty message/],
    ['truncated msgpack', [Buffer.from([0x82, 0xa1])], /not valid msgpack/],
    ['not a map', [packr.pack([1, 2])], /not a map/],
    ['foreign magic', [packr.pack({ p: 'other/1', t: 1 })], /not a distgan message/],
    ['other version', [packr.pack({ p: `distgan/${PROTOCOL_VERSION + 1}`, t: 1 })], new RegExp(`protocol distgan/${PROTOCOL_VERSION + 1} is not`)],
    ['unknown type', [packr.pack({ p: PROTOCOL_ID, t: 99, f: [] })], /unknown message type 99/],
    ['missing field', [packr.pack({ p: PROTOCOL_ID, t: MsgType.Stop, reason: 'x', f: [] })], /field 'failed' must be boolean/],
    ['missing frame', good.slice(0, 5), /expected 5 payload frames, got 4/],
    ['short frame', [...good.slice(0, 4), good[4]!.subarray(0, 8), good[5]!], /frame 'gGrad' has 8 bytes, header says 3/],
  ];
  for (const [name, frames, re] of cases) {
    assert.throws(() => decode(frames), (e: unknown) => e instanceof ProtocolError && re.test((e as Error).message), name);
  }
});

test('encode refuses a missing or mistyped payload frame', () => {
  const m = dstep();
  assert.throws(() => encode({ ...m, frames: { ...m.frames, gGrad: undefined as unknown as Float32Array } }), /needs payload frame 'gGrad'/);
  assert.throws(() => encode({ ...m, frames: { ...m.frames, positions: new Float32Array(3) as unknown as Int32Array } }), /must be Int32Array/);
});
