/**
 * Per-chunk content checksums of packed shards (format.ts): what lets a
 * reader notice bytes that changed after prepare (bit rot, a damaged copy, a
 * range zeroed in place) the first time it reads them, without hashing the
 * whole dataset at open.
 *
 * A chunk is `chunkSamples` consecutive samples of one shard (the last chunk
 * of a shard may be shorter); chunks never straddle shards or samples. Each
 * has a CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and PNG), stored per
 * shard as base64 of little-endian uint32s. CRC-32 is for accidental damage,
 * not tampering: the per-shard SHA-256 stays the check for that.
 */
import zlib from 'node:zlib';

/**
 * Target chunk size when the writer is given none: 64 KiB, rounded down to
 * whole samples (at least one). Reading an unchecked chunk costs one 64 KiB
 * read plus ~12 µs of CRC (zlib, 5 GB/s) once per chunk and process; the
 * manifest grows by 5.3 base64 characters per chunk (~85 KB per GB of data).
 */
export const CHUNK_TARGET_BYTES = 64 * 1024;

/** Samples per chunk for samples of `sampleBytes` bytes (CHUNK_TARGET_BYTES worth, at least 1). */
export function chunkSamplesFor(sampleBytes: number): number {
  return Math.max(1, Math.floor(CHUNK_TARGET_BYTES / sampleBytes));
}

/** Chunks a shard of `samples` samples has. */
export function chunkCount(samples: number, chunkSamples: number): number {
  return Math.ceil(samples / chunkSamples);
}

/** Lookup table of the reflected IEEE polynomial, for Node versions without zlib.crc32. */
let table: Int32Array | undefined;

/** crc32 in JavaScript: the fallback where zlib.crc32 is missing (same results, ~12× slower). */
export function crc32Js(data: Uint8Array, previous = 0): number {
  if (table === undefined) {
    table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c;
    }
  }
  let c = ~previous;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * CRC-32 of `data`, continuing from `previous` (the CRC of the bytes before
 * it; default 0 = start). zlib.crc32 (Node ≥ 20.15 / 22.2; ~5 GB/s) where it
 * exists, else the same function in JavaScript (~0.4 GB/s).
 */
export const crc32: (data: Uint8Array, previous?: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (data, previous = 0) => zlib.crc32(data, previous)
    : crc32Js;

/** Base64 of the CRCs as little-endian uint32s: the form index.json stores. */
export function encodeChunkCrcs(crcs: readonly number[]): string {
  const buf = Buffer.alloc(crcs.length * 4);
  crcs.forEach((c, i) => buf.writeUInt32LE(c, i * 4));
  return buf.toString('base64');
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes encodeChunkCrcs' form. Returns undefined when `text` is not
 * canonical base64 of exactly `count` uint32s (the caller names the field).
 */
export function decodeChunkCrcs(text: unknown, count: number): Uint32Array | undefined {
  if (typeof text !== 'string' || !BASE64.test(text)) return undefined;
  const buf = Buffer.from(text, 'base64');
  if (buf.length !== count * 4) return undefined;
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readUInt32LE(i * 4);
  return out;
}
