/**
 * `distgan prepare`: turns an image folder or an IDX file into a packed
 * dataset (format.ts) that workers read sample by sample (packed.ts).
 *
 * Order of work: validate the options, look at the input (so that an empty or
 * unreadable input fails before anything is created), stage the output next to
 * the target (output.ts), decode and write, write the report, write
 * index.json, rename into place. Any failure or abort removes the staging
 * directory.
 */
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { ConfigError, DatasetError, InterruptedError } from '../../errors.js';
import { REPORT_FILE, type PackedIndex, type ShardEntry } from './format.js';
import { IMAGE_EXTENSIONS, convertRaw, decodeImage, listImageFiles, type SkippedFile } from './images.js';
import { openIdx, readIdx, type IdxRecords } from './idx.js';
import { mapOrdered } from './ordered-map.js';
import { stageOutput } from './output.js';
import { PackedWriter, writeReportFile } from './writer.js';

export { type SkippedFile } from './images.js';

export interface PrepareOptions {
  /** An image folder (PNG/JPEG/WebP, walked recursively) or an IDX images file (gzipped or plain). */
  input: string;
  /** Dataset directory to create. Must not exist, or be empty (or hold a dataset, with `force`). */
  out: string;
  /** Output side length R in pixels (samples are R×R); 1..4096. */
  resolution: number;
  /** Output channels: 1 (grey) or 3 (RGB). Default: 1 for an IDX file, 3 for an image folder. */
  channels?: 1 | 3;
  /** Samples per shard file (default: as many as fit in 128 MiB). */
  shardSize?: number;
  /** IDX labels file (one uint8 per image); only with an IDX input. */
  labels?: string;
  /** Replace an existing prepared dataset at `out` (default false). Never deletes anything else. */
  force?: boolean;
  /** Images decoded at once (default: 2 × available cores). */
  concurrency?: number;
  /** Aborting stops the prepare, removes the staging directory and rejects with InterruptedError. */
  signal?: AbortSignal;
  /** Called after each input item with (items done, items total), skipped ones included. */
  onProgress?: (done: number, total: number) => void;
}

export interface PrepareReport {
  /** Absolute dataset directory. */
  out: string;
  input: string;
  kind: 'idx' | 'images';
  /** Samples written. */
  count: number;
  shape: [number, number, number];
  shards: ShardEntry[];
  fingerprint: string;
  /** Input items looked at (image files found, or IDX records). */
  scanned: number;
  skippedCount: number;
  skipped: SkippedFile[];
  /** Absolute path of the report file inside the dataset. */
  reportFile: string;
  seconds: number;
}

/** At most this many skip reasons go into an error message. */
const MESSAGE_SKIPS = 5;

function validate(opts: PrepareOptions): void {
  if (typeof opts.input !== 'string' || opts.input === '') throw new ConfigError('--input is required (an image folder or an IDX file)');
  if (typeof opts.out !== 'string' || opts.out === '') throw new ConfigError('--out is required (the dataset directory to create)');
  const r = opts.resolution;
  if (!Number.isInteger(r) || r < 1 || r > 4096) throw new ConfigError(`--resolution must be an integer in 1..4096 pixels, got ${r}`);
  if (opts.channels !== undefined && opts.channels !== 1 && opts.channels !== 3) {
    throw new ConfigError(`--channels must be 1 or 3, got ${String(opts.channels)}`);
  }
  if (opts.shardSize !== undefined && (!Number.isInteger(opts.shardSize) || opts.shardSize < 1)) {
    throw new ConfigError(`shard size must be a positive integer number of samples, got ${opts.shardSize}`);
  }
  if (resolve(opts.out) === resolve(opts.input)) throw new ConfigError('--out must differ from --input');
}

function summarise(skipped: SkippedFile[]): string {
  const shown = skipped.slice(0, MESSAGE_SKIPS).map((s) => `${s.file}: ${s.reason}`);
  if (skipped.length > MESSAGE_SKIPS) shown.push(`… ${skipped.length - MESSAGE_SKIPS} more`);
  return shown.join('; ');
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new InterruptedError('prepare was interrupted; nothing was written to --out');
}

/** Prepares a dataset; see PrepareOptions. Resolves with what was written and skipped. */
export async function prepareDataset(opts: PrepareOptions): Promise<PrepareReport> {
  const t0 = performance.now();
  validate(opts);
  const input = resolve(opts.input);
  let st;
  try {
    st = await stat(input);
  } catch (err) {
    throw new DatasetError(`--input ${input} does not exist or cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
  }
  if (!st.isDirectory() && !st.isFile()) throw new DatasetError(`--input ${input} is neither a directory nor a file`);
  const kind: 'idx' | 'images' = st.isDirectory() ? 'images' : 'idx';
  if (kind === 'images' && opts.labels !== undefined) {
    throw new ConfigError('--labels applies to an IDX images file; an image folder has no IDX labels');
  }
  const shardSize = opts.shardSize;
  const concurrency = Math.max(1, opts.concurrency ?? 2 * availableParallelism());
  const R = opts.resolution;
  const skipped: SkippedFile[] = [];

  // Look at the input before creating anything.
  let files: string[] = [];
  let idx: IdxRecords | null = null;
  let idxShape: { height: number; width: number; channels: 1 | 3 } | null = null;
  let labels: Uint8Array | undefined;
  if (kind === 'images') {
    const listing = await listImageFiles(input);
    files = listing.files;
    skipped.push(...listing.unsupported);
    if (files.length === 0) {
      const idxHint = listing.unsupported.some((s) => /idx\d-ubyte/.test(s.file))
        ? ' It holds IDX files: pass one of them as --input FILE.'
        : '';
      throw new DatasetError(
        `--input ${input} holds no ${IMAGE_EXTENSIONS.join('/')} images` +
          (skipped.length > 0 ? ` (${skipped.length} other entries: ${summarise(skipped)})` : ' (it is empty)') +
          '.' +
          idxHint,
      );
    }
  } else {
    idx = await openIdx(input);
    const d = idx.header.dims;
    const c = d.length === 4 ? d[3]! : 1;
    if ((d.length !== 3 && d.length !== 4) || (c !== 1 && c !== 3)) {
      idx.close();
      throw new DatasetError(
        `--input ${input}: IDX dimensions ${d.join('×')} are not images (need count×height×width or count×height×width×1|3)` +
          (d.length === 1 ? '; this looks like a labels file: pass it with --labels' : ''),
      );
    }
    idxShape = { height: d[1]!, width: d[2]!, channels: c };
    if (opts.labels !== undefined) {
      try {
        const l = await readIdx(resolve(opts.labels));
        if (l.header.dims.length !== 1) {
          throw new DatasetError(`--labels ${opts.labels}: IDX dimensions ${l.header.dims.join('×')} are not a label vector`);
        }
        if (l.header.dims[0] !== idx.count) {
          throw new DatasetError(`--labels ${opts.labels} has ${l.header.dims[0]} labels, --input has ${idx.count} images`);
        }
        labels = l.data;
      } catch (err) {
        idx.close();
        throw err;
      }
    }
  }
  const channels: 1 | 3 = opts.channels ?? (kind === 'idx' ? 1 : 3);
  const shape: [number, number, number] = [R, R, channels];
  const total = kind === 'images' ? files.length : idx!.count;

  let staged;
  try {
    staged = await stageOutput(opts.out, { force: opts.force === true });
  } catch (err) {
    idx?.close();
    throw err;
  }
  let writer: PackedWriter | null = null;
  try {
    writer = await PackedWriter.create(staged.dir, shardSize === undefined ? { shape } : { shape, shardSize });
    let done = 0;
    const results =
      kind === 'images'
        ? mapOrdered(files, concurrency, (f) => decodeImage(f, R, channels))
        : mapOrdered(idx!.records, concurrency, (rec) => convertRaw(rec, idxShape!, R, channels));
    for await (const res of results) {
      throwIfAborted(opts.signal);
      if (res.ok) {
        await writer.append(res.value);
      } else if (kind === 'images') {
        const err = res.error;
        const reason = err instanceof DatasetError ? err.message : `cannot decode: ${(err as Error).message ?? String(err)}`;
        skipped.push({ file: relative(input, files[done]!), kind: 'corrupt', reason });
      } else {
        // An IDX record cannot be "corrupt" on its own: a failure here is a real error.
        throw res.error;
      }
      done++;
      opts.onProgress?.(done, total);
    }
    throwIfAborted(opts.signal);
    if (writer.count === 0) {
      throw new DatasetError(`none of the ${files.length} image files under ${input} could be decoded: ${summarise(skipped)}`);
    }
    const seconds = (performance.now() - t0) / 1000;
    await writeReportFile(join(staged.dir, REPORT_FILE), {
      input,
      kind,
      resolution: R,
      channels,
      scanned: total,
      written: writer.count,
      skippedCount: skipped.length,
      skipped,
      seconds,
      createdAt: new Date().toISOString(),
    });
    const source: NonNullable<PackedIndex['source']> = { kind, input };
    if (opts.labels !== undefined) source.labels = resolve(opts.labels);
    const index = await writer.finish({ ...(labels === undefined ? {} : { labels }), source, report: REPORT_FILE });
    writer = null;
    await staged.commit();
    return {
      out: staged.target,
      input,
      kind,
      count: index.count,
      shape,
      shards: index.shards,
      fingerprint: index.fingerprint,
      scanned: total,
      skippedCount: skipped.length,
      skipped,
      reportFile: join(staged.target, REPORT_FILE),
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (err) {
    idx?.close();
    await writer?.abort();
    await staged.abort();
    throw err;
  }
}

