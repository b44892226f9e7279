/**
 * Writes samples into packed shards (format.ts) inside a directory that the
 * caller owns, normally a staging directory (output.ts). index.json is written
 * by finish() after every shard and the labels are flushed and fsynced, so a
 * directory that has an index.json has all of its data. Each shard's chunk
 * CRC-32s (chunks.ts) are computed as its samples are appended.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetError } from '../../errors.js';
import {
  INDEX_FILE,
  LABELS_FILE,
  PACKED_FORMAT,
  PACKED_VERSION,
  packedFingerprint,
  shardFileName,
  type PackedIndex,
  type ShardEntry,
} from './format.js';
import { chunkSamplesFor, crc32, encodeChunkCrcs } from './chunks.js';

/** Target shard size when the caller gives none: 128 MiB, rounded down to whole samples. */
export const DEFAULT_SHARD_BYTES = 128 * 1024 * 1024;
/** Bytes gathered before one write() call (4 MiB): few syscalls, little memory. */
const WRITE_BUFFER_BYTES = 4 * 1024 * 1024;

export interface PackedWriterOptions {
  /** [height, width, channels] of every sample. */
  shape: [number, number, number];
  /** Samples per shard (default: as many as fit in DEFAULT_SHARD_BYTES, at least 1). */
  shardSize?: number;
  /**
   * Samples per checksum chunk (default: chunks.ts chunkSamplesFor, as many
   * as fit in 64 KiB, at least 1). Smaller chunks cost a reader less on the
   * first read of each chunk and make index.json larger.
   */
  chunkSamples?: number;
}

export interface FinishOptions {
  /** One uint8 label per sample, written to labels.bin. */
  labels?: Uint8Array;
  source?: PackedIndex['source'];
  /** Name of a report file the caller wrote into the same directory. */
  report?: string;
}

export class PackedWriter {
  readonly sampleBytes: number;
  readonly shardSize: number;
  readonly chunkSamples: number;
  private readonly shards: ShardEntry[] = [];
  private readonly content: Hash = createHash('sha256');
  private shardHash: Hash | null = null;
  private fh: FileHandle | null = null;
  private shardCount = 0;
  /** CRC-32s of the open shard's finished chunks, and of its current chunk so far. */
  private chunkCrcs: number[] = [];
  private chunkCrc = 0;
  private chunkFill = 0;
  private total = 0;
  private buf: Buffer;
  private bufLen = 0;
  private finished = false;

  private constructor(readonly dir: string, readonly shape: [number, number, number], shardSize: number, chunkSamples: number) {
    this.sampleBytes = shape[0] * shape[1] * shape[2];
    this.shardSize = shardSize;
    this.chunkSamples = chunkSamples;
    // Never smaller than one sample, never larger than a shard.
    const perBuf = Math.max(1, Math.min(shardSize, Math.floor(WRITE_BUFFER_BYTES / this.sampleBytes)));
    this.buf = Buffer.allocUnsafe(perBuf * this.sampleBytes);
  }

  static async create(dir: string, opts: PackedWriterOptions): Promise<PackedWriter> {
    const [h, w, c] = opts.shape;
    if (![h, w, c].every((v) => Number.isInteger(v) && v > 0) || (c !== 1 && c !== 3)) {
      throw new DatasetError(`cannot write samples of shape ${JSON.stringify(opts.shape)}: need [H, W, 1|3]`);
    }
    const sampleBytes = h * w * c;
    const shardSize = opts.shardSize ?? Math.max(1, Math.floor(DEFAULT_SHARD_BYTES / sampleBytes));
    if (!Number.isInteger(shardSize) || shardSize < 1) {
      throw new DatasetError(`shard size must be a positive number of samples, got ${shardSize}`);
    }
    const chunkSamples = opts.chunkSamples ?? chunkSamplesFor(sampleBytes);
    if (!Number.isInteger(chunkSamples) || chunkSamples < 1) {
      throw new DatasetError(`chunk size must be a positive number of samples, got ${chunkSamples}`);
    }
    return new PackedWriter(dir, [h, w, c], shardSize, chunkSamples);
  }

  /** Samples appended so far. */
  get count(): number {
    return this.total;
  }

  /** Appends one sample of exactly sampleBytes bytes (HWC uint8). */
  async append(sample: Uint8Array): Promise<void> {
    if (this.finished) throw new Error('PackedWriter: append after finish');
    if (sample.length !== this.sampleBytes) {
      throw new DatasetError(`sample ${this.total} has ${sample.length} bytes, expected ${this.sampleBytes} (${this.shape.join('×')})`);
    }
    if (this.fh === null) await this.openShard();
    this.buf.set(sample, this.bufLen);
    this.bufLen += sample.length;
    this.chunkCrc = crc32(sample, this.chunkCrc);
    if (++this.chunkFill === this.chunkSamples) this.endChunk();
    this.shardCount++;
    this.total++;
    if (this.bufLen === this.buf.length) await this.flush();
    if (this.shardCount === this.shardSize) await this.closeShard();
  }

  /**
   * Closes the last shard, writes labels.bin (if given) and then index.json,
   * and returns the index. Throws DatasetError when nothing was appended.
   */
  async finish(opts: FinishOptions = {}): Promise<PackedIndex> {
    if (this.finished) throw new Error('PackedWriter: finish called twice');
    if (this.total === 0) throw new DatasetError('no samples were written');
    await this.closeShard();
    this.finished = true;
    const index: PackedIndex = {
      format: PACKED_FORMAT,
      version: PACKED_VERSION,
      count: this.total,
      shape: this.shape,
      dtype: 'uint8',
      layout: 'HWC',
      sampleBytes: this.sampleBytes,
      shards: this.shards,
      contentSha256: this.content.digest('hex'),
      chunkSamples: this.chunkSamples,
      fingerprint: '',
      createdAt: new Date().toISOString(),
    };
    if (opts.labels !== undefined) {
      if (opts.labels.length !== this.total) {
        throw new DatasetError(`${opts.labels.length} labels given for ${this.total} samples`);
      }
      await writeDurably(join(this.dir, LABELS_FILE), opts.labels);
      index.labels = { file: LABELS_FILE, count: this.total, sha256: createHash('sha256').update(opts.labels).digest('hex') };
    }
    if (opts.source !== undefined) index.source = opts.source;
    if (opts.report !== undefined) index.report = opts.report;
    index.fingerprint = packedFingerprint(index);
    await writeDurably(join(this.dir, INDEX_FILE), Buffer.from(JSON.stringify(index, null, 2) + '\n'));
    return index;
  }

  /** Closes any open file without writing an index (the caller removes the directory). */
  async abort(): Promise<void> {
    this.finished = true;
    const fh = this.fh;
    this.fh = null;
    if (fh !== null) await fh.close().catch(() => undefined);
  }

  private async openShard(): Promise<void> {
    const file = shardFileName(this.shards.length);
    this.fh = await open(join(this.dir, file), 'wx');
    this.shardHash = createHash('sha256');
    this.shardCount = 0;
    this.chunkCrcs = [];
  }

  private endChunk(): void {
    this.chunkCrcs.push(this.chunkCrc);
    this.chunkCrc = 0;
    this.chunkFill = 0;
  }

  private async flush(): Promise<void> {
    if (this.bufLen === 0 || this.fh === null) return;
    const chunk = this.buf.subarray(0, this.bufLen);
    this.content.update(chunk);
    this.shardHash!.update(chunk);
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
      off += bytesWritten;
    }
    this.bufLen = 0;
  }

  private async closeShard(): Promise<void> {
    if (this.fh === null) return;
    await this.flush();
    // fsync before index.json can exist, so a crash cannot leave an index
    // pointing at data that never reached the disk.
    await this.fh.sync();
    await this.fh.close();
    this.fh = null;
    // A shard's last chunk may be short; the next shard starts a new one.
    if (this.chunkFill > 0) this.endChunk();
    this.shards.push({
      file: shardFileName(this.shards.length),
      count: this.shardCount,
      bytes: this.shardCount * this.sampleBytes,
      sha256: this.shardHash!.digest('hex'),
      chunkCrc32: encodeChunkCrcs(this.chunkCrcs),
    });
    this.shardHash = null;
  }
}

async function writeDurably(path: string, data: Uint8Array): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a JSON report file (pretty-printed) into the dataset directory. */
export async function writeReportFile(path: string, report: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(report, null, 2) + '\n', { flag: 'wx' });
}
