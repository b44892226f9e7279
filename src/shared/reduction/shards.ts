/**
 * How a flat gradient is cut into the contiguous shards of a sharded
 * reduction (coordinator/reduction/sharded.ts): shard k of a vector of
 * `length` floats is [lo, hi). The worker, the shard owners and the
 * coordinator all compute the same cut from (length, shard count), so the
 * cut never travels on the wire.
 *
 * Boundaries are multiples of SHARD_ALIGN floats (64 bytes, a cache line),
 * so no two owners ever write the same line; the last shard takes the rest.
 * A vector shorter than the shard count leaves later shards empty.
 */
export const SHARD_ALIGN = 16;

export function shardBounds(length: number, shards: number): Array<[number, number]> {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`shardBounds: length ${length} is not a non-negative integer`);
  if (!Number.isSafeInteger(shards) || shards < 1) throw new RangeError(`shardBounds: shard count ${shards} is not a positive integer`);
  const blocks = Math.ceil(length / SHARD_ALIGN);
  const out: Array<[number, number]> = [];
  let lo = 0;
  for (let k = 0; k < shards; k++) {
    const hi = k === shards - 1 ? length : Math.min(length, Math.round((blocks * (k + 1)) / shards) * SHARD_ALIGN);
    out.push([lo, Math.max(lo, hi)]);
    lo = Math.max(lo, hi);
  }
  return out;
}
