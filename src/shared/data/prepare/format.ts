/**
 * The on-disk format of a prepared ("packed") dataset, shared by the writer
 * (`distgan prepare`) and the reader (packed.ts). docs/datasets.md describes
 * it for users; this file is the definition.
 *
 * A dataset is a directory:
 *   shard-00000.bin …  raw uint8 pixels, sample after sample, each H×W×C in
 *                      HWC order (row-major, channels interleaved)
 *   labels.bin         optional, one uint8 label per sample
 *   prepare-report.json  what prepare skipped and why
 *   index.json         written last; its presence marks the dataset complete
 *
 * The fingerprint hashes the pixel stream, not the shard files, so it does not
 * depend on how the samples were split into shards, nor on the chunk
 * checksums (chunks.ts), which index.json gained later within version 1:
 * `chunkSamples` and every shard's `chunkCrc32` are both present or both
 * absent; a dataset without them (an older prepare) stays readable, with only
 * its file sizes checked.
 */
import { createHash } from 'node:crypto';
import { DatasetError } from '../../errors.js';
import { chunkCount, decodeChunkCrcs } from './chunks.js';

export const PACKED_FORMAT = 'distgan-packed';
/** The index.json version this build writes and reads. */
export const PACKED_VERSION = 1;
export const INDEX_FILE = 'index.json';
export const REPORT_FILE = 'prepare-report.json';
export const LABELS_FILE = 'labels.bin';

export function shardFileName(i: number): string {
  return `shard-${String(i).padStart(5, '0')}.bin`;
}

export interface ShardEntry {
  /** File name inside the dataset directory (no path separators). */
  file: string;
  /** Samples in this shard. */
  count: number;
  /** count × sampleBytes. */
  bytes: number;
  /** Hex SHA-256 of the file. */
  sha256: string;
  /**
   * CRC-32 of each chunk of PackedIndex.chunkSamples samples, in file order:
   * base64 of little-endian uint32s (chunks.ts). Absent in datasets prepared
   * before chunk checksums existed.
   */
  chunkCrc32?: string;
}

export interface LabelsEntry {
  file: string;
  count: number;
  sha256: string;
}

export interface PackedIndex {
  format: typeof PACKED_FORMAT;
  version: number;
  count: number;
  /** [height, width, channels]. */
  shape: [number, number, number];
  dtype: 'uint8';
  layout: 'HWC';
  /** Bytes per sample: height × width × channels. */
  sampleBytes: number;
  shards: ShardEntry[];
  /** Hex SHA-256 of every sample's bytes in dataset order (all shards concatenated). */
  contentSha256: string;
  /**
   * Samples per checksum chunk (chunks.ts; each shard's chunks start at its
   * first sample). Absent, with every shard's chunkCrc32, in older datasets.
   */
  chunkSamples?: number;
  labels?: LabelsEntry;
  /** See packedFingerprint(). */
  fingerprint: string;
  /** Where the data came from; informative only (not part of the fingerprint). */
  source?: { kind: 'idx' | 'images' | 'generated'; input: string; labels?: string };
  /** Name of the prepare report file in the same directory, when one was written. */
  report?: string;
  /** ISO-8601 time prepare finished. */
  createdAt: string;
}

/**
 * "<count>:sha256:<hex>" (the form every distgan dataset uses): the count for
 * humans, then a SHA-256 over the format version, shape, count, pixel content
 * hash and labels hash. Two datasets with equal fingerprints hold the same
 * samples in the same order.
 */
export function packedFingerprint(
  i: Pick<PackedIndex, 'count' | 'shape' | 'contentSha256'> & { labels?: Pick<LabelsEntry, 'sha256'> },
): string {
  const h = createHash('sha256');
  h.update(`${PACKED_FORMAT} v${PACKED_VERSION}\nshape=${i.shape.join(',')}\ncount=${i.count}\n`);
  h.update(`content=${i.contentSha256}\nlabels=${i.labels?.sha256 ?? 'none'}\n`);
  return `${i.count}:sha256:${h.digest('hex')}`;
}

const HEX64 = /^[0-9a-f]{64}$/;

function isPosInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

function isPlainFileName(v: unknown): v is string {
  // An index must not point outside its own directory.
  return typeof v === 'string' && v.length > 0 && !/[\\/]/.test(v) && v !== '.' && v !== '..';
}

/**
 * Checks the structure of a parsed index.json (not the files it names).
 * `where` names the file in messages. Throws DatasetError naming the first
 * problem found.
 */
export function validateIndex(raw: unknown, where: string): PackedIndex {
  const bad = (what: string): never => {
    throw new DatasetError(`${where}: ${what}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.format !== PACKED_FORMAT) bad(`format is ${JSON.stringify(o.format)}, expected "${PACKED_FORMAT}"`);
  if (o.version !== PACKED_VERSION) {
    bad(
      `version ${JSON.stringify(o.version)} is not supported: this distgan reads version ${PACKED_VERSION} ` +
        '(re-run `distgan prepare` with this version)',
    );
  }
  if (!isPosInt(o.count)) bad(`count must be a positive integer, got ${JSON.stringify(o.count)}`);
  const shape = o.shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every(isPosInt)) {
    bad(`shape must be [height, width, channels] of positive integers, got ${JSON.stringify(shape)}`);
  }
  const [h, w, c] = shape as number[];
  if (c !== 1 && c !== 3) bad(`shape has ${c} channels; only 1 or 3 are supported`);
  if (o.dtype !== 'uint8') bad(`dtype ${JSON.stringify(o.dtype)} is not supported (uint8 only)`);
  if (o.layout !== 'HWC') bad(`layout ${JSON.stringify(o.layout)} is not supported (HWC only)`);
  const sampleBytes = h! * w! * c!;
  if (o.sampleBytes !== sampleBytes) bad(`sampleBytes is ${JSON.stringify(o.sampleBytes)}, shape ${h}×${w}×${c} needs ${sampleBytes}`);
  if (!Array.isArray(o.shards) || o.shards.length === 0) bad('shards must be a non-empty array');
  if (o.chunkSamples !== undefined && !isPosInt(o.chunkSamples)) {
    bad(`chunkSamples must be a positive integer, got ${JSON.stringify(o.chunkSamples)}`);
  }
  let total = 0;
  const seen = new Set<string>();
  (o.shards as unknown[]).forEach((s, i) => {
    const e = s as Record<string, unknown>;
    if (typeof s !== 'object' || s === null) bad(`shards[${i}] is not an object`);
    if (!isPlainFileName(e.file)) bad(`shards[${i}].file must be a file name inside the dataset, got ${JSON.stringify(e.file)}`);
    if (seen.has(e.file as string)) bad(`shards[${i}].file ${e.file} is listed twice`);
    seen.add(e.file as string);
    if (!isPosInt(e.count)) bad(`shards[${i}].count must be a positive integer, got ${JSON.stringify(e.count)}`);
    if (e.bytes !== (e.count as number) * sampleBytes) {
      bad(`shards[${i}] (${e.file}) says ${JSON.stringify(e.bytes)} bytes for ${e.count} samples of ${sampleBytes} bytes`);
    }
    if (typeof e.sha256 !== 'string' || !HEX64.test(e.sha256)) bad(`shards[${i}].sha256 is not a hex SHA-256`);
    if (o.chunkSamples === undefined) {
      if (e.chunkCrc32 !== undefined) bad(`shards[${i}] (${e.file}) has chunkCrc32 but the index has no chunkSamples`);
    } else {
      const chunks = chunkCount(e.count as number, o.chunkSamples as number);
      if (decodeChunkCrcs(e.chunkCrc32, chunks) === undefined) {
        bad(`shards[${i}].chunkCrc32 (${e.file}) must be base64 of ${chunks} CRC-32s (${e.count} samples in chunks of ${o.chunkSamples})`);
      }
    }
    total += e.count as number;
  });
  if (total !== o.count) bad(`shard counts add up to ${total}, but count is ${o.count}`);
  if (typeof o.contentSha256 !== 'string' || !HEX64.test(o.contentSha256)) bad('contentSha256 is not a hex SHA-256');
  if (o.labels !== undefined) {
    const l = o.labels as Record<string, unknown>;
    if (typeof l !== 'object' || l === null) bad('labels is not an object');
    if (!isPlainFileName(l.file)) bad(`labels.file must be a file name inside the dataset, got ${JSON.stringify(l.file)}`);
    if (l.count !== o.count) bad(`labels.count ${JSON.stringify(l.count)} differs from count ${o.count}`);
    if (typeof l.sha256 !== 'string' || !HEX64.test(l.sha256)) bad('labels.sha256 is not a hex SHA-256');
  }
  if (typeof o.fingerprint !== 'string') bad('fingerprint is missing');
  const index = o as unknown as PackedIndex;
  const expected = packedFingerprint(index);
  if (index.fingerprint !== expected) {
    bad(`fingerprint ${index.fingerprint} does not match its contents (expected ${expected}); was index.json edited?`);
  }
  return index;
}
