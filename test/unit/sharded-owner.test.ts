/**
 * The shard owner of the sharded reduction (src/coordinator/reduction/owner.ts):
 * its pipelined sums have the star reduction's bits whatever the arrival
 * order; its Adam over slices equals the whole Adam; publish, discard and
 * commit keep the mirror slice equal to what every replica applies; late and
 * duplicate parts are dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShardOwner, type OwnerConfig } from '../../src/reducer/owner.js';
import { sumInRankOrder } from '../../src/coordinator/reduction/star.js';
import { Adam } from '../../src/shared/gan/adam.js';
import { SHARD_ALIGN, shardBounds } from '../../src/shared/reduction/shards.js';
import { mulberry32 } from '../helpers/fuzz.js';

const hyper = { lr: 2e-4, beta1: 0.5, beta2: 0.999, epsilon: 1e-8 };
const phases = [
  { name: 'd', network: 'd' as const },
  { name: 'g', network: 'g' as const },
];

function config(shard: number, shards: number, worldSize: number, lengths: { d: number; g: number }): OwnerConfig {
  return { shard, shards, worldSize, phases, lengths, hyper };
}

const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function shuffled(n: number, rand: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

test('shard bounds: contiguous, aligned, cover the vector, any length and count', () => {
  for (const length of [0, 1, 15, 16, 17, 1000, 212_865, 846_273]) {
    for (const k of [1, 2, 3, 7, 64]) {
      const b = shardBounds(length, k);
      assert.equal(b.length, k);
      assert.equal(b[0]![0], 0);
      assert.equal(b[k - 1]![1], length);
      for (let i = 0; i < k; i++) {
        assert.ok(b[i]![0] <= b[i]![1]);
        if (i > 0) assert.equal(b[i]![0], b[i - 1]![1]);
        if (i < k - 1) assert.equal(b[i]![1] % SHARD_ALIGN === 0 || b[i]![1] === length, true);
      }
    }
  }
  assert.throws(() => shardBounds(10, 0), RangeError);
  assert.throws(() => shardBounds(-1, 2), RangeError);
});

test('pipelined shard sums have the bits of the rank-ordered star sum, for every arrival order (200 seeded orders)', () => {
  const rand = mulberry32(7);
  const lengths = { d: 1_003, g: 517 };
  for (let round = 0; round < 200; round++) {
    const n = 1 + Math.floor(rand() * 9);
    const shards = 1 + Math.floor(rand() * 4);
    const network = rand() < 0.5 ? 'd' : 'g';
    // Values of mixed magnitudes and signs, so reassociation would change bits.
    const parts = Array.from({ length: n }, () => Float32Array.from({ length: lengths[network] }, () => (rand() - 0.5) * 10 ** Math.floor(rand() * 8 - 4)));
    const star = sumInRankOrder(parts, lengths[network]);
    const bounds = shardBounds(lengths[network], shards);
    for (let k = 0; k < shards; k++) {
      const owner = new ShardOwner(config(k, shards, n, lengths));
      const [lo, hi] = bounds[k]!;
      for (const r of shuffled(n, rand)) {
        const rep = owner.add(3, network, r, parts[r]!.subarray(lo, hi));
        assert.ok(rep && rep.problem === undefined);
        let sumSq = 0;
        for (const x of parts[r]!.subarray(lo, hi)) sumSq += x * x;
        assert.equal(rep.sumSq, sumSq);
      }
      assert.equal(owner.complete(3, network), true);
      assert.equal(owner.reduce(3, network, false), undefined);
      assert.ok(bits(owner.publish(network)).equals(bits(star.subarray(lo, hi))), `round ${round}, shard ${k}: sum differs from star`);
    }
  }
});

test('Adam over slices equals Adam over the whole, and commit applies what was published', () => {
  const rand = mulberry32(11);
  const lengths = { d: 333, g: 250 };
  const shards = 3;
  const w0 = { d: Float32Array.from({ length: lengths.d }, () => rand() - 0.5), g: Float32Array.from({ length: lengths.g }, () => rand() - 0.5) };
  const whole = { d: new Adam(lengths.d, hyper), g: new Adam(lengths.g, hyper) };
  const weights = { d: w0.d.slice(), g: w0.g.slice() };
  const owners = Array.from({ length: shards }, (_, k) => new ShardOwner(config(k, shards, 2, lengths)));
  const b = { d: shardBounds(lengths.d, shards), g: shardBounds(lengths.g, shards) };
  owners.forEach((o, k) => {
    const z = (n: number): Float32Array => new Float32Array(n);
    const [dl, dh] = b.d[k]!;
    const [gl, gh] = b.g[k]!;
    o.setState({ step: 0, dWeights: w0.d.slice(dl, dh), dAdamM: z(dh - dl), dAdamV: z(dh - dl), gWeights: w0.g.slice(gl, gh), gAdamM: z(gh - gl), gAdamV: z(gh - gl) });
  });
  for (let step = 0; step < 5; step++) {
    for (const network of ['d', 'g'] as const) {
      const parts = [0, 1].map(() => Float32Array.from({ length: lengths[network] }, () => (rand() - 0.5) * 0.01));
      const avg = sumInRankOrder(parts, lengths[network]);
      owners.forEach((o, k) => {
        const [lo, hi] = b[network][k]!;
        o.add(step, network, 1, parts[1]!.subarray(lo, hi));
        o.add(step, network, 0, parts[0]!.subarray(lo, hi));
        assert.equal(o.reduce(step, network, false), undefined);
      });
      // D goes out with the G phase; G with the next step (published after the commit).
      if (network === 'd') owners.forEach((o) => o.publish('d'));
      whole[network].apply(weights[network], avg);
    }
    owners.forEach((o) => o.commit(step + 1, [{ network: 'd', skip: false }, { network: 'g', skip: false }]));
    owners.forEach((o) => o.publish('g'));
  }
  for (const network of ['d', 'g'] as const) {
    const gathered = new Float32Array(lengths[network]);
    const m = new Float32Array(lengths[network]);
    owners.forEach((o, k) => {
      const s = o.state();
      assert.equal(s.step, 5);
      gathered.set(network === 'd' ? s.dWeights : s.gWeights, b[network][k]![0]);
      m.set(network === 'd' ? s.dAdamM : s.gAdamM, b[network][k]![0]);
    });
    assert.ok(bits(gathered).equals(bits(weights[network])), `${network}: sharded Adam differs from whole Adam`);
    assert.ok(bits(m).equals(bits(whole[network].m)));
  }
});

test('late, duplicate and foreign parts are dropped; a bad part is reported, not summed; skip and discard', () => {
  const lengths = { d: 64, g: 32 };
  const o = new ShardOwner(config(0, 2, 2, lengths));
  const len = o.length('d');
  const ones = new Float32Array(len).fill(1);
  assert.ok(o.add(5, 'g', 0, new Float32Array(o.length('g'))));
  assert.equal(o.add(5, 'd', 1, ones), undefined, 'an older phase of the same step is late');
  assert.equal(o.add(4, 'g', 1, new Float32Array(o.length('g'))), undefined, 'an older step is late');
  assert.equal(o.add(5, 'g', 0, new Float32Array(o.length('g'))), undefined, 'a duplicate');
  assert.equal(o.add(5, 'g', 7, new Float32Array(o.length('g'))), undefined, 'no such rank');
  assert.equal(o.add(5, 'x', 0, new Float32Array(o.length('g'))), undefined, 'no such phase');
  const bad = o.add(6, 'd', 0, Float32Array.of(NaN, ...new Float32Array(len - 1)));
  assert.match(bad!.problem!, /NaN/);
  const short = o.add(6, 'd', 1, new Float32Array(3));
  assert.match(short!.problem!, /3 floats, expected/);
  // Skip-step: nothing to reduce from refused parts; the optimizers count the step.
  o.discard();
  o.commit(7, [{ network: 'd', skip: true }, { network: 'g', skip: true }]);
  assert.equal(o.state().step, 1);
  // An overflowing sum is refused at reduce, before anything is published or applied.
  const o2 = new ShardOwner(config(0, 1, 2, lengths));
  const huge = new Float32Array(lengths.d).fill(3e38);
  o2.add(0, 'd', 0, huge);
  o2.add(0, 'd', 1, huge);
  assert.match(o2.reduce(0, 'd', false)!, /overflowed/);
  assert.throws(() => o2.publish('d'), /no D update/);
});
