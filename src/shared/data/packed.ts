/**
 * Reads a prepared dataset (prepare/format.ts) sample by sample.
 *
 * A worker only ever touches the samples of its own slices: each read() turns
 * the requested indices into positional reads (FileHandle.read at
 * index × sampleBytes inside the right shard), coalescing runs of consecutive
 * indices, so the dataset can be far larger than memory and can sit on shared
 * storage read by many nodes at once.
 *
 * Every positional read of a call is submitted before read() first yields,
 * with the shard files opened up front: a prefetch issued just before a long
 * synchronous compute (tfjs kernels block the event loop) has its disk reads
 * running in libuv's thread pool during that compute, not after it.
 *
 * Memory is bounded by: the row cache (cacheBytes) + the batch being returned
 * + at most one prefetched batch. Each batch costs n × sampleBytes × 5 bytes
 * (the uint8 rows plus the float32 copy).
 *
 * Contents are checked chunk by chunk (prepare/chunks.ts): the first read
 * that touches a chunk reads all of it (≤ 64 KiB by default, or one sample)
 * and compares its CRC-32 with index.json; a mismatch is a DatasetError
 * naming the shard file and chunk. Checked chunks are remembered for the
 * reader's lifetime, so later reads fetch only their rows. Datasets prepared
 * before chunk checksums existed have only their file sizes checked (a line
 * on stderr says so at open).
 */
import { createReadStream } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import type { Dataset } from './api.js';
import { DatasetError } from '../errors.js';
import { Rng, Stream } from '../rng.js';
import { INDEX_FILE, validateIndex, type PackedIndex } from './prepare/format.js';
import { chunkCount, crc32, decodeChunkCrcs } from './prepare/chunks.js';
import { findPartials } from './prepare/output.js';

/** Default row-cache size: 64 MiB (holds all of MNIST/Fashion-MNIST, ~5,400 64×64 RGB rows). */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

export interface PackedOpenOptions {
  /** Bytes of recently read uint8 rows kept in an LRU (default DEFAULT_CACHE_BYTES = 64 MiB; 0 disables). */
  cacheBytes?: number;
  /**
   * Random horizontal flips (default false). Whether sample `index` is flipped
   * at step `step` is a pure function of (seed, index, step), so every rank and
   * every resumed run makes the same choice.
   */
  flip?: boolean;
  /** Seed of the flip decisions (default 0). */
  seed?: number;
  /**
   * Hash every shard (and labels.bin) at open and compare with index.json
   * (default false: only file sizes are checked, which reads no data). Costs
   * one full sequential read of the dataset.
   */
  verify?: boolean;
  /**
   * Receives the one line said at open about a dataset without chunk
   * checksums (default: written to stderr, once per directory and process).
   */
  log?: (line: string) => void;
}

export interface ReadOptions {
  /** Training step the samples are for; selects the flip decisions (default 0). */
  step?: number;
}

export interface PackedStats {
  /** Rows served from the LRU cache. */
  cacheHits: number;
  /** Rows read from disk. */
  rowsRead: number;
  /** Bytes read from shard files by read()/prefetch(). */
  bytesRead: number;
  /** Positional read calls issued. */
  readCalls: number;
  /** Chunks whose CRC-32 was checked (each once; 0 for a dataset without chunk checksums). */
  chunksChecked: number;
  /** Bytes read only to complete a chunk for its check (part of bytesRead). */
  checkBytesRead: number;
  /** read() calls answered by a matching prefetch. */
  prefetchHits: number;
  /** Bytes currently held by the row cache. */
  cacheBytesUsed: number;
}

export interface PackedDataset extends Dataset {
  /** Absolute dataset directory. */
  readonly dir: string;
  readonly index: PackedIndex;
  /** Whether reads check chunk CRC-32s (false for a dataset prepared before they existed). */
  readonly checksChunks: boolean;
  /** Samples as floats in [-1, 1] (v / 127.5 − 1), flipped if enabled. */
  read(indices: ArrayLike<number>, opts?: ReadOptions): Promise<Float32Array>;
  /** Samples as the stored uint8 HWC bytes, never flipped. */
  readBytes(indices: ArrayLike<number>): Promise<Uint8Array>;
  /**
   * Starts reading `indices` now; a later read() with the same indices and
   * step takes that result instead of reading again. Only the latest prefetch
   * is kept. Errors surface in the read() that takes it.
   */
  prefetch(indices: ArrayLike<number>, opts?: ReadOptions): void;
  stats(): PackedStats;
}

/** uint8 → float in [-1, 1]; a table is faster than the arithmetic per byte. */
const TO_FLOAT = (() => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) t[v] = v / 127.5 - 1;
  return t;
})();

async function loadIndex(dir: string): Promise<PackedIndex> {
  const where = join(dir, INDEX_FILE);
  let text: string;
  try {
    text = await readFile(where, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new DatasetError(`cannot read ${where} (${code ?? err})`, { cause: err });
    let dirExists = true;
    try {
      dirExists = (await stat(dir)).isDirectory();
    } catch {
      dirExists = false;
    }
    if (!dirExists) throw new DatasetError(`dataset ${dir} does not exist (expected a directory made by \`distgan prepare\`)`);
    const partials = await findPartials(dir);
    throw new DatasetError(
      `${dir} is not a prepared dataset: ${INDEX_FILE} is missing` +
        (partials.length > 0 ? ` (a prepare into it was interrupted: ${partials.map((p) => basename(p)).join(', ')})` : '') +
        '. An image folder or IDX file must be converted first: `distgan prepare --input FOLDER|FILE --out DATASET --resolution R`',
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DatasetError(`${where} is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return validateIndex(raw, where);
}

async function sha256File(path: string, into?: ReturnType<typeof createHash>): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    into?.update(chunk as Buffer);
  }
  return h.digest('hex');
}

/** Checks that the files index.json names exist with the sizes it gives (and, with `full`, their hashes). */
async function checkFiles(dir: string, index: PackedIndex, full: boolean): Promise<void> {
  for (const s of index.shards) {
    const path = join(dir, s.file);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      throw new DatasetError(`${dir}: shard ${s.file} listed in ${INDEX_FILE} is missing`);
    }
    if (size !== s.bytes) {
      throw new DatasetError(
        `${dir}: shard ${s.file} is ${size} bytes, ${INDEX_FILE} says ${s.count} samples × ${index.sampleBytes} bytes = ${s.bytes}` +
          ' (a truncated copy, or shards from another prepare)',
      );
    }
  }
  if (index.labels !== undefined) {
    const path = join(dir, index.labels.file);
    let size = -1;
    try {
      size = (await stat(path)).size;
    } catch {
      throw new DatasetError(`${dir}: labels file ${index.labels.file} listed in ${INDEX_FILE} is missing`);
    }
    if (size !== index.labels.count) {
      throw new DatasetError(`${dir}: ${index.labels.file} is ${size} bytes, expected ${index.labels.count} (one per sample)`);
    }
  }
  if (!full) return;
  const content = createHash('sha256');
  for (const s of index.shards) {
    const got = await sha256File(join(dir, s.file), content);
    if (got !== s.sha256) {
      throw new DatasetError(`${dir}: shard ${s.file} has SHA-256 ${got}, ${INDEX_FILE} says ${s.sha256}: the copy is corrupt or was modified after prepare`);
    }
  }
  if (content.digest('hex') !== index.contentSha256) {
    throw new DatasetError(`${dir}: shard contents do not match contentSha256 in ${INDEX_FILE}`);
  }
  if (index.labels !== undefined) {
    const got = await sha256File(join(dir, index.labels.file));
    if (got !== index.labels.sha256) throw new DatasetError(`${dir}: ${index.labels.file} does not match its SHA-256 in ${INDEX_FILE}`);
  }
}

class PackedReader implements PackedDataset {
  readonly name: string;
  readonly count: number;
  readonly shape: readonly number[];
  readonly fingerprint: string;
  private readonly rowBytes: number;
  /** starts[i] = first sample of shard i; starts[shards] = count. */
  private readonly starts: number[];
  private readonly handles: FileHandle[];
  readonly checksChunks: boolean;
  /** Samples per chunk (0 without checksums); chunk CRCs per shard; global id of each shard's first chunk. */
  private readonly chunkSamples: number;
  private readonly chunkCrcs: Uint32Array[] = [];
  private readonly chunkBase: number[] = [];
  /** 1 for each chunk whose CRC matched, by global chunk id. */
  private readonly checked: Uint8Array;
  private readonly cache = new Map<number, Uint8Array>();
  private readonly cacheCap: number;
  private readonly flip: boolean;
  private readonly seed: number;
  private pending: { indices: Int32Array; step: number; result: Promise<Float32Array> } | null = null;
  private closed = false;
  private readonly counters: Omit<PackedStats, 'cacheBytesUsed'> = {
    cacheHits: 0,
    rowsRead: 0,
    bytesRead: 0,
    readCalls: 0,
    chunksChecked: 0,
    checkBytesRead: 0,
    prefetchHits: 0,
  };
  private cacheUsed = 0;

  constructor(readonly dir: string, readonly index: PackedIndex, handles: FileHandle[], opts: PackedOpenOptions) {
    this.name = basename(dir);
    this.count = index.count;
    this.shape = Object.freeze([...index.shape]);
    this.fingerprint = index.fingerprint;
    this.rowBytes = index.sampleBytes;
    this.starts = [0];
    for (const s of index.shards) this.starts.push(this.starts[this.starts.length - 1]! + s.count);
    this.handles = handles;
    this.chunkSamples = index.chunkSamples ?? 0;
    this.checksChunks = this.chunkSamples > 0;
    let chunks = 0;
    if (this.checksChunks) {
      for (const s of index.shards) {
        const n = chunkCount(s.count, this.chunkSamples);
        // validateIndex has checked the encoding and the length.
        this.chunkCrcs.push(decodeChunkCrcs(s.chunkCrc32, n)!);
        this.chunkBase.push(chunks);
        chunks += n;
      }
    }
    this.checked = new Uint8Array(chunks);
    this.cacheCap = opts.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.flip = opts.flip === true;
    this.seed = opts.seed ?? 0;
  }

  stats(): PackedStats {
    return { ...this.counters, cacheBytesUsed: this.cacheUsed };
  }

  private shardOf(i: number): number {
    let lo = 0;
    let hi = this.starts.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private cacheGet(i: number): Uint8Array | undefined {
    const row = this.cache.get(i);
    if (row !== undefined) {
      // Re-insert to mark as most recently used (Map keeps insertion order).
      this.cache.delete(i);
      this.cache.set(i, row);
    }
    return row;
  }

  private cachePut(i: number, row: Uint8Array): void {
    if (this.rowBytes > this.cacheCap || this.cache.has(i)) return;
    while (this.cacheUsed + this.rowBytes > this.cacheCap) {
      const oldest = this.cache.keys().next().value as number;
      this.cache.delete(oldest);
      this.cacheUsed -= this.rowBytes;
    }
    this.cache.set(i, row);
    this.cacheUsed += this.rowBytes;
  }

  /** Reads rows first..first+rows-1 of `shard`; the first read() is issued before this returns. */
  private async readRun(shard: number, first: number, rows: number, into: Uint8Array): Promise<void> {
    const fh = this.handles[shard]!;
    const length = rows * this.rowBytes;
    let done = 0;
    const position = (first - this.starts[shard]!) * this.rowBytes;
    while (done < length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await fh.read(into, done, length - done, position + done));
      } catch (err) {
        throw new DatasetError(`reading ${this.index.shards[shard]!.file} of ${this.dir} failed (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
      }
      this.counters.readCalls++;
      if (bytesRead === 0) {
        throw new DatasetError(`${this.dir}: ${this.index.shards[shard]!.file} ended early at byte ${position + done}: the file was truncated after open`);
      }
      done += bytesRead;
    }
    this.counters.bytesRead += length;
  }

  /**
   * Rows first..first+rows-1 of `shard` (global indices). When a chunk they
   * touch is unchecked, the whole chunks are read and checked first (a
   * concurrent read of the same unchecked chunk may check it twice).
   */
  private async readRows(shard: number, first: number, rows: number): Promise<Uint8Array> {
    const rb = this.rowBytes;
    this.counters.rowsRead += rows;
    const k = this.chunkSamples;
    const local = first - this.starts[shard]!;
    const c0 = this.checksChunks ? Math.floor(local / k) : 0;
    const c1 = this.checksChunks ? Math.floor((local + rows - 1) / k) : -1;
    const base = this.chunkBase[shard] ?? 0;
    let unchecked = false;
    for (let c = c0; c <= c1 && !unchecked; c++) unchecked = this.checked[base + c] === 0;
    if (!unchecked) {
      const buf = new Uint8Array(rows * rb);
      await this.readRun(shard, first, rows, buf);
      return buf;
    }
    const from = c0 * k;
    const to = Math.min((c1 + 1) * k, this.index.shards[shard]!.count);
    const buf = new Uint8Array((to - from) * rb);
    await this.readRun(shard, this.starts[shard]! + from, to - from, buf);
    this.counters.checkBytesRead += (to - from - rows) * rb;
    for (let c = c0; c <= c1; c++) {
      if (this.checked[base + c] === 1) continue;
      const lo = c * k;
      const hi = Math.min(lo + k, to);
      const got = crc32(buf.subarray((lo - from) * rb, (hi - from) * rb));
      const want = this.chunkCrcs[shard]![c]!;
      if (got !== want) {
        const s0 = this.starts[shard]! + lo;
        const hex = (v: number): string => v.toString(16).padStart(8, '0');
        throw new DatasetError(
          `${this.dir}: shard ${this.index.shards[shard]!.file} is corrupt in chunk ${c} (samples ${s0}..${s0 + hi - lo - 1}, ` +
            `bytes ${lo * rb}..${hi * rb - 1} of the file): CRC-32 ${hex(got)}, ${INDEX_FILE} says ${hex(want)}. ` +
            'The file changed after prepare (bit rot, a damaged copy or an edit): copy the dataset again or re-run `distgan prepare`',
        );
      }
      this.checked[base + c] = 1;
      this.counters.chunksChecked++;
    }
    return buf.subarray((local - from) * rb, (local - from + rows) * rb);
  }

  async readBytes(indices: ArrayLike<number>): Promise<Uint8Array> {
    if (this.closed) throw new DatasetError(`dataset ${this.dir} is closed`);
    const n = indices.length;
    const rb = this.rowBytes;
    const out = new Uint8Array(n * rb);
    // Uncached indices → the output positions wanting them.
    const want = new Map<number, number[]>();
    for (let j = 0; j < n; j++) {
      const i = indices[j]!;
      if (!Number.isInteger(i) || i < 0 || i >= this.count) {
        throw new DatasetError(`dataset ${this.name}: index ${i} is outside [0, ${this.count})`);
      }
      const row = this.cacheGet(i);
      if (row !== undefined) {
        out.set(row, j * rb);
        this.counters.cacheHits++;
      } else {
        const w = want.get(i);
        if (w === undefined) want.set(i, [j]);
        else w.push(j);
      }
    }
    if (want.size === 0) return out;
    // Runs of consecutive indices inside one shard become one read each.
    const sorted = [...want.keys()].sort((a, b) => a - b);
    const runs: Array<{ shard: number; first: number; rows: number }> = [];
    for (const i of sorted) {
      const last = runs[runs.length - 1];
      const shard = this.shardOf(i);
      if (last !== undefined && last.shard === shard && last.first + last.rows === i) last.rows++;
      else runs.push({ shard, first: i, rows: 1 });
    }
    // All reads are submitted now (libuv queues them); copying out waits for each.
    await Promise.all(
      runs.map(async (run) => {
        const buf = await this.readRows(run.shard, run.first, run.rows);
        for (let k = 0; k < run.rows; k++) {
          const row = buf.subarray(k * rb, (k + 1) * rb);
          for (const j of want.get(run.first + k)!) out.set(row, j * rb);
          // slice() copies, so a cached row never pins a whole run buffer.
          if (this.cacheCap >= rb) this.cachePut(run.first + k, row.slice());
        }
      }),
    );
    return out;
  }

  private toFloat(bytes: Uint8Array, indices: ArrayLike<number>, step: number): Float32Array {
    const out = new Float32Array(bytes.length);
    const [h, w, c] = this.index.shape;
    const rb = this.rowBytes;
    for (let j = 0; j < indices.length; j++) {
      const base = j * rb;
      const flipped = this.flip && new Rng(this.seed, Stream.Augment, step, indices[j]!).next() < 0.5;
      if (!flipped) {
        for (let k = base; k < base + rb; k++) out[k] = TO_FLOAT[bytes[k]!]!;
        continue;
      }
      const rowStride = w * c;
      for (let y = 0; y < h; y++) {
        const line = base + y * rowStride;
        for (let x = 0; x < w; x++) {
          const src = line + (w - 1 - x) * c;
          const dst = line + x * c;
          for (let ch = 0; ch < c; ch++) out[dst + ch] = TO_FLOAT[bytes[src + ch]!]!;
        }
      }
    }
    return out;
  }

  private async load(indices: ArrayLike<number>, step: number): Promise<Float32Array> {
    return this.toFloat(await this.readBytes(indices), indices, step);
  }

  private matchesPending(indices: ArrayLike<number>, step: number): boolean {
    const p = this.pending;
    if (p === null || p.step !== step || p.indices.length !== indices.length) return false;
    for (let j = 0; j < indices.length; j++) if (p.indices[j] !== indices[j]) return false;
    return true;
  }

  async read(indices: ArrayLike<number>, opts: ReadOptions = {}): Promise<Float32Array> {
    const step = opts.step ?? 0;
    if (this.matchesPending(indices, step)) {
      const { result } = this.pending!;
      this.pending = null;
      this.counters.prefetchHits++;
      return result;
    }
    return this.load(indices, step);
  }

  prefetch(indices: ArrayLike<number>, opts: ReadOptions = {}): void {
    if (this.closed) return;
    const step = opts.step ?? 0;
    const copy = Int32Array.from(indices as ArrayLike<number>);
    const result = this.load(copy, step);
    // The error, if any, is delivered by the read() that takes this result.
    result.catch(() => undefined);
    this.pending = { indices: copy, step, result };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) await pending.result.catch(() => undefined);
    await Promise.all(this.handles.splice(0).map((h) => h.close()));
    this.cache.clear();
    this.cacheUsed = 0;
  }
}

/** Directories already reported as lacking chunk checksums (one line per process is enough). */
const reportedUnchecked = new Set<string>();

function sayUnchecked(dir: string, log: ((line: string) => void) | undefined): void {
  const line =
    `dataset ${dir}: ${INDEX_FILE} has no chunk checksums (prepared by an older distgan): only file sizes are checked, ` +
    'so bytes damaged inside a shard are not detected while training; re-run `distgan prepare` to add them';
  if (log !== undefined) return log(line);
  if (reportedUnchecked.has(dir)) return;
  reportedUnchecked.add(dir);
  process.stderr.write(`distgan: ${line}\n`);
}

/**
 * Opens a prepared dataset directory. Validates index.json and the shard
 * sizes (DatasetError naming the problem); reads no sample data unless
 * `verify` is set. Chunk checksums are checked later, by the reads.
 */
export async function openPackedDataset(dir: string, opts: PackedOpenOptions = {}): Promise<PackedDataset> {
  if (opts.cacheBytes !== undefined && !(Number.isFinite(opts.cacheBytes) && opts.cacheBytes >= 0)) {
    throw new DatasetError(`cacheBytes must be a non-negative number of bytes, got ${opts.cacheBytes}`);
  }
  const abs = resolve(dir);
  const index = await loadIndex(abs);
  await checkFiles(abs, index, opts.verify === true);
  if (index.chunkSamples === undefined) sayUnchecked(abs, opts.log);
  const handles: FileHandle[] = [];
  try {
    for (const s of index.shards) {
      const path = join(abs, s.file);
      try {
        handles.push(await open(path, 'r'));
      } catch (err) {
        throw new DatasetError(`cannot open ${path} (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
      }
    }
  } catch (err) {
    await Promise.all(handles.map((h) => h.close()));
    throw err;
  }
  return new PackedReader(abs, index, handles, opts);
}
