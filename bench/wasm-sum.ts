/**
 * A WebAssembly SIMD version of the shard owner's per-part work, for the
 * summation measurement of `distgan bench --suite reduce` (bench/reduce-sum-child.ts):
 * a candidate replacement for the JavaScript loops of the owner
 * (owner.ts: inspect(), then addInto()), measured beside them, not used by
 * distgan.
 *
 * `addsq(acc, part, bytes)`: acc[i] += part[i] with f32x4.add (IEEE float32
 * addition, correctly rounded: the same bits as V8's `acc[i] += part[i]` on
 * a Float32Array, which adds in float64 and rounds once to float32, exact
 * for a sum of two float32 values), and returns Σ part[i]² accumulated in
 * float64 (f64x2, four partial sums; another order than the owner's one
 * sequential sum, so the last bits of the guard's norm may differ). The sum
 * of squares is non-finite exactly when some element is NaN or ±Inf (a
 * finite float32 squared is < 1.2e77), so one test after the loop replaces
 * the per-element finiteness test; only then is the element looked for.
 *
 * The part must be in the module's memory: it is copied in (TypedArray.set,
 * a memcpy), since ZeroMQ hands frames back in buffers of its own, block by
 * block through a small staging area that stays in cache, so that the SIMD
 * pass reads it from there. The module is assembled here byte by byte (no
 * toolchain needed).
 */

/** Unsigned LEB128. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const get = (i: number): number[] => [0x20, i];
const set = (i: number): number[] => [0x21, i];
const tee = (i: number): number[] => [0x22, i];
const simd = (op: number, ...imm: number[]): number[] => [0xfd, ...leb(op), ...imm];
const MEMARG16 = [4, 0]; // align 2^4, offset 0
const V128_LOAD = (): number[] => simd(0x00, ...MEMARG16);
const V128_STORE = (): number[] => simd(0x0b, ...MEMARG16);
const F32X4_ADD = (): number[] => simd(0xe4);
const F64X2_ADD = (): number[] => simd(0xf0);
const F64X2_MUL = (): number[] => simd(0xf2);
const F64X2_PROMOTE_LOW = (): number[] => simd(0x5f);
const F64X2_EXTRACT = (lane: number): number[] => simd(0x21, lane);
/** i8x16.shuffle putting lanes 2, 3 of an f32x4 first. */
const HIGH_HALF = (): number[] => simd(0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);

/** Loop over [acc, acc + bytes) in 16-byte steps; `body` sees acc in local 0, part in local 1. */
function loop(body: number[]): number[] {
  return [
    ...get(0), ...get(2), 0x6a, ...set(3), // end = acc + bytes
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(0), ...get(3), 0x4f, 0x0d, 1, // if acc >= end: break
    ...body,
    ...get(0), 0x41, 16, 0x6a, ...set(0),
    ...get(1), 0x41, 16, 0x6a, ...set(1),
    0x0c, 0, 0x0b, 0x0b, // br loop; end; end
  ];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  // (func $add (param acc part bytes)) — locals: 3 end:i32
  const add = [1, 1, I32, ...loop([...get(0), ...get(0), ...V128_LOAD(), ...get(1), ...V128_LOAD(), ...F32X4_ADD(), ...V128_STORE()]), 0x0b];
  // (func $addsq (param acc part bytes) (result f64)) — locals: 3 end:i32; 4 s0, 5 s1, 6 v, 7 t: v128 (zeroed)
  const addsq = [
    2, 1, I32, 4, V128,
    ...loop([
      ...get(1), ...V128_LOAD(), ...set(6),
      ...get(0), ...get(0), ...V128_LOAD(), ...get(6), ...F32X4_ADD(), ...V128_STORE(),
      ...get(6), ...F64X2_PROMOTE_LOW(), ...tee(7), ...get(7), ...F64X2_MUL(), ...get(4), ...F64X2_ADD(), ...set(4),
      ...get(6), ...get(6), ...HIGH_HALF(), ...F64X2_PROMOTE_LOW(), ...tee(7), ...get(7), ...F64X2_MUL(), ...get(5), ...F64X2_ADD(), ...set(5),
    ]),
    ...get(4), ...get(5), ...F64X2_ADD(), ...tee(4), ...F64X2_EXTRACT(0), ...get(4), ...F64X2_EXTRACT(1), 0xa0, // f64.add
    0x0b,
  ];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [2, 0x60, 3, I32, I32, I32, 0, 0x60, 3, I32, I32, I32, 1, F64]),
    ...section(2, [1, 1, 0x65, 1, 0x6d, 0x02, 0x00, 1]), // import "e" "m" (memory 1)
    ...section(3, [2, 0, 1]),
    ...section(7, [2, 3, 0x61, 0x64, 0x64, 0x00, 0, 5, 0x61, 0x64, 0x64, 0x73, 0x71, 0x00, 1]),
    ...section(10, [2, ...leb(add.length), ...add, ...leb(addsq.length), ...addsq]),
  ];
  return new Uint8Array(bytes);
}

export interface WasmSum {
  /** Floats the accumulator and the staging area hold. */
  readonly length: number;
  /** The accumulator (in wasm memory). */
  readonly acc: Float32Array;
  /** acc += part (part copied in first); returns Σ part² in float64. */
  addInspect(part: Float32Array): number;
  /** acc += part (part copied in first), no inspection. */
  add(part: Float32Array): void;
}

/**
 * Floats copied into wasm memory at a time: the part goes through a staging
 * area this size (128 KiB), which stays in the core's cache between the copy
 * and the SIMD pass, so the part is read from memory once.
 */
export const STAGE_FLOATS = 32 * 1024;

/** A summation core for slices of up to `length` floats, or undefined where wasm SIMD is unavailable. */
export function createWasmSum(length: number): WasmSum | undefined {
  const bytes = Math.ceil((length * 4) / 16) * 16;
  let instance: WebAssembly.Instance;
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: Math.ceil((bytes + STAGE_FLOATS * 4) / 65536) + 1 });
    instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()), { e: { m: memory } });
  } catch {
    return undefined;
  }
  const ex = instance.exports as { add: (a: number, p: number, n: number) => void; addsq: (a: number, p: number, n: number) => number };
  const acc = new Float32Array(memory.buffer, 0, length);
  const stage = new Float32Array(memory.buffer, bytes, STAGE_FLOATS);
  /** acc[lo, lo + n) += stage[0, n); returns Σ stage² (float64). */
  const block = (lo: number, n: number, inspect: boolean): number => {
    const whole = n & ~3;
    let sq = 0;
    if (whole > 0) {
      if (inspect) sq = ex.addsq(lo * 4, bytes, whole * 4);
      else ex.add(lo * 4, bytes, whole * 4);
    }
    for (let i = whole; i < n; i++) {
      // Elements past the last whole 16 bytes (lengths that are not multiples of 4).
      acc[lo + i] = acc[lo + i]! + stage[i]!;
      sq += stage[i]! * stage[i]!;
    }
    return sq;
  };
  const run = (part: Float32Array, inspect: boolean): number => {
    if (part.length > length) throw new RangeError(`wasm sum: a part of ${part.length} floats, the accumulator holds ${length}`);
    let sq = 0;
    for (let lo = 0; lo < part.length; lo += STAGE_FLOATS) {
      const n = Math.min(STAGE_FLOATS, part.length - lo);
      stage.set(part.subarray(lo, lo + n));
      sq += block(lo, n, inspect);
    }
    return sq;
  };
  return {
    length,
    acc,
    addInspect: (part) => run(part, true),
    add(part) {
      run(part, false);
    },
  };
}
