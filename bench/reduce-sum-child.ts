/**
 * The summation rate of the sharded reduction's owners against memcpy, for
 * `distgan bench --suite reduce` (bench/reduce.ts):
 *
 *   node dist/bench/reduce-sum-child.js '{"worldSize":64,"dLength":…,"gLength":…,"shards":K,"reps":3}'
 *
 * K worker threads run in parallel, as the K shard owners of a coordinator
 * do; thread k holds shard k (src/shared/reduction/shards.ts) of D and of G
 * and `worldSize` distinct parts of each (fresh arrays, so that every pass
 * reads them from memory as it reads frames that arrived from ZeroMQ). Each
 * rep times, per network, one phase's worth of parts (every rank, rank
 * order) through each of these, all threads starting each pass together:
 *
 *  - memcpy: acc.set(part), TypedArray.prototype.set (a native memmove)
 *    into a slice-sized accumulator: the yardstick;
 *  - ownerAdd: the real ShardOwner.add (owner.ts) of a fresh session:
 *    inspection (length, finiteness, float64 sum of squares) then the
 *    float32 add into the session's accumulator: what an owner does with
 *    each part it receives;
 *  - jsAdd, jsInspect: the two loops of ShardOwner.add, copied here, alone
 *    (where the time goes);
 *  - wasmAddInspect: the candidate replacement of both (bench/wasm-sum.ts):
 *    copy the part into wasm memory, then one f32x4 pass that adds and
 *    accumulates the sum of squares (same sum bits; checked here).
 *
 * A pass's rate is the bytes of parts it went through (all threads) over
 * the slowest thread's time; each figure is the median over reps (after one
 * warm-up rep). Prints one JSON line (SumResult), or {error} and exit 1.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { shardBounds } from '../src/shared/reduction/shards.js';
import { createWasmSum } from './wasm-sum.js';

export interface SumConfig {
  worldSize: number;
  dLength: number;
  gLength: number;
  shards: number;
  reps: number;
}

export const SUM_PASSES = ['memcpy', 'ownerAdd', 'jsAdd', 'jsInspect', 'wasmAddInspect'] as const;
type Pass = (typeof SUM_PASSES)[number];

export interface SumResult {
  worldSize: number;
  shards: number;
  dLength: number;
  gLength: number;
  reps: number;
  /** Where ShardOwner was loaded from (dist/…). */
  owner: string;
  /** Bytes of parts each pass goes through per rep (all threads, D and G). */
  bytesPerRep: number;
  /** Median rate of each pass, GB/s (1e9 bytes), all threads together. */
  gbPerSecond: Record<Pass, number | null>;
  /** Each pass's rate over memcpy's. */
  shareOfMemcpy: Record<Pass, number | null>;
  /** The wasm sum gave the same bits as the owner's (every element, last rep). */
  wasmBitIdentical: boolean | null;
  /** Largest relative difference between the wasm and the owner's sums of squares. */
  wasmSumSqRelDiff: number | null;
  error?: string;
}

interface ThreadResult {
  /** seconds[pass][rep] (D and G phases together). */
  seconds: Record<Pass, number[]>;
  bytesPerRep: number;
  wasmBitIdentical: boolean | null;
  wasmSumSqRelDiff: number | null;
}

interface OwnerLike {
  add(step: number, phase: string, rank: number, part: Float32Array): { sumSq: number; problem?: string } | undefined;
  reduce(step: number, phase: string, accumulate: boolean): string | undefined;
  publish(network: 'd' | 'g'): Float32Array;
}

/** ShardOwner from the built tree: src/reducer/owner.ts, or where it lived before (src/coordinator/reduction/owner.ts). */
async function loadShardOwner(): Promise<{ ShardOwner: new (config: unknown) => OwnerLike; path: string }> {
  for (const rel of ['../src/reducer/owner.js', '../src/coordinator/reduction/owner.js']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(url))) {
      const m = (await import(url.href)) as { ShardOwner?: new (config: unknown) => OwnerLike };
      if (m.ShardOwner) return { ShardOwner: m.ShardOwner, path: `dist/${rel.slice(3)}` };
    }
  }
  throw new Error('ShardOwner not found under dist/src (build first: npx tsc -p tsconfig.json)');
}

/** The owner's two loops (owner.ts inspect() and addInto()), copied to time them apart. */
function jsInspect(part: Float32Array): number {
  let sumSq = 0;
  for (let i = 0; i < part.length; i++) {
    const g = part[i]!;
    if (g - g !== 0) return NaN;
    sumSq += g * g;
  }
  return sumSq;
}
function jsAdd(acc: Float32Array, part: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i]! += part[i]!;
}

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function thread(cfg: SumConfig, k: number, ctr: Int32Array): Promise<ThreadResult> {
  const { ShardOwner } = await loadShardOwner();
  const K = cfg.shards;
  const phases = [
    { name: 'd', network: 'd' as const },
    { name: 'g', network: 'g' as const },
  ];
  const owner = new ShardOwner({ shard: k, shards: K, worldSize: cfg.worldSize, phases, lengths: { d: cfg.dLength, g: cfg.gLength }, hyper: { lr: 2e-4, beta1: 0.5, beta2: 0.999, epsilon: 1e-8 } });
  const lens = { d: shardBounds(cfg.dLength, K)[k]!, g: shardBounds(cfg.gLength, K)[k]! };
  const parts = { d: [] as Float32Array[], g: [] as Float32Array[] };
  for (const n of ['d', 'g'] as const) {
    const len = lens[n][1] - lens[n][0];
    for (let r = 0; r < cfg.worldSize; r++) {
      const p = new Float32Array(len);
      const s = ((r % 2 === 0 ? 1 : -1) * (1 + r / 64) * 2 ** -14) / cfg.worldSize;
      for (let i = 0; i < len; i++) p[i] = ((i % 251) - 125) * s;
      parts[n].push(p);
    }
  }
  const maxLen = Math.max(lens.d[1] - lens.d[0], lens.g[1] - lens.g[0]);
  const scratch = new Float32Array(maxLen);
  const wasm = createWasmSum(maxLen);
  let gen = 0;
  const barrier = (): void => {
    gen++;
    Atomics.add(ctr, 0, 1);
    for (;;) {
      const cur = Atomics.load(ctr, 0);
      if (cur >= gen * K) return;
      Atomics.wait(ctr, 0, cur, 5);
    }
  };
  const seconds = Object.fromEntries(SUM_PASSES.map((p) => [p, [] as number[]])) as Record<Pass, number[]>;
  let bytesPerRep = 0;
  let step = 0;
  let bitIdentical: boolean | null = null;
  let relDiff: number | null = null;
  for (let rep = 0; rep <= cfg.reps; rep++) {
    const t: Record<Pass, number> = { memcpy: 0, ownerAdd: 0, jsAdd: 0, jsInspect: 0, wasmAddInspect: 0 };
    bytesPerRep = 0;
    for (const n of ['d', 'g'] as const) {
      const ps = parts[n];
      const len = ps[0]!.length;
      bytesPerRep += ps.length * len * 4;
      const acc = scratch.subarray(0, len);
      let t0: number;

      barrier();
      t0 = performance.now();
      for (const p of ps) acc.set(p);
      t.memcpy += performance.now() - t0;

      barrier();
      step++;
      const ownerSq: number[] = [];
      t0 = performance.now();
      for (let r = 0; r < ps.length; r++) ownerSq.push(owner.add(step, n, r, ps[r]!)!.sumSq);
      t.ownerAdd += performance.now() - t0;
      const problem = owner.reduce(step, n, false);
      if (problem !== undefined) throw new Error(`owner ${k}: ${problem}`);
      const ownerSum = owner.publish(n);

      barrier();
      acc.fill(0);
      t0 = performance.now();
      for (const p of ps) jsAdd(acc, p);
      t.jsAdd += performance.now() - t0;

      barrier();
      t0 = performance.now();
      for (const p of ps) jsInspect(p);
      t.jsInspect += performance.now() - t0;

      barrier();
      if (wasm) {
        const wacc = wasm.acc.subarray(0, len);
        wacc.fill(0);
        const sq: number[] = [];
        t0 = performance.now();
        for (const p of ps) sq.push(wasm.addInspect(p));
        t.wasmAddInspect += performance.now() - t0;
        if (rep === cfg.reps) {
          let same = true;
          for (let i = 0; i < len && same; i++) same = Object.is(wacc[i], ownerSum[i]);
          bitIdentical = (bitIdentical ?? true) && same;
          for (let r = 0; r < sq.length; r++) relDiff = Math.max(relDiff ?? 0, Math.abs(sq[r]! - ownerSq[r]!) / Math.max(ownerSq[r]!, Number.MIN_VALUE));
        }
      } else t.wasmAddInspect = NaN;
    }
    if (rep > 0) for (const p of SUM_PASSES) seconds[p].push(t[p] / 1000);
  }
  return { seconds, bytesPerRep, wasmBitIdentical: bitIdentical, wasmSumSqRelDiff: relDiff };
}

if (isMainThread) {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as SumConfig;
  const ctr = new Int32Array(new SharedArrayBuffer(4));
  const run = async (): Promise<SumResult> => {
    const { path } = await loadShardOwner();
    const results = await Promise.all(
      Array.from(
        { length: cfg.shards },
        (_, k) =>
          new Promise<ThreadResult>((resolve, reject) => {
            const w = new Worker(new URL(import.meta.url), { workerData: { cfg, k, ctr } });
            w.once('message', resolve);
            w.once('error', reject);
            w.once('exit', (code) => reject(new Error(`summation thread ${k} exited ${code}`)));
          }),
      ),
    );
    const bytes = results.reduce((a, r) => a + r.bytesPerRep, 0);
    const gb = {} as Record<Pass, number | null>;
    for (const p of SUM_PASSES) {
      const perRep = Array.from({ length: cfg.reps }, (_, i) => Math.max(...results.map((r) => r.seconds[p][i]!)));
      const s = median(perRep);
      gb[p] = Number.isFinite(s) && s > 0 ? bytes / s / 1e9 : null;
    }
    const share = {} as Record<Pass, number | null>;
    for (const p of SUM_PASSES) share[p] = gb[p] !== null && gb.memcpy ? gb[p]! / gb.memcpy : null;
    const bits = results.map((r) => r.wasmBitIdentical);
    return {
      worldSize: cfg.worldSize,
      shards: cfg.shards,
      dLength: cfg.dLength,
      gLength: cfg.gLength,
      reps: cfg.reps,
      owner: path,
      bytesPerRep: bytes,
      gbPerSecond: gb,
      shareOfMemcpy: share,
      wasmBitIdentical: bits.includes(null) ? null : bits.every(Boolean),
      wasmSumSqRelDiff: results.some((r) => r.wasmSumSqRelDiff === null) ? null : Math.max(...results.map((r) => r.wasmSumSqRelDiff!)),
    };
  };
  run().then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + '\n');
      process.exit(0);
    },
    (e: unknown) => {
      process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }) + '\n');
      process.exit(1);
    },
  );
} else {
  const { cfg, k, ctr } = workerData as { cfg: SumConfig; k: number; ctr: Int32Array };
  thread(cfg, k, ctr).then(
    (r) => parentPort!.postMessage(r),
    (e: unknown) => {
      throw e;
    },
  );
}
