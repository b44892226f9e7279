/**
 * Checkpoint files: everything needed to continue a run bit-exactly.
 *
 * Layout of `checkpoints/step-XXXXXXXX.ckpt`, format 2 (docs/checkpoints.md):
 *
 *   bytes 0..7    magic "DGANCKPT"
 *   bytes 8..11   header length H (uint32 LE, > 0; 12 + H is a multiple of 4)
 *   bytes 12..    header: UTF-8 JSON (CheckpointHeader), padded with spaces to H bytes
 *   then          the arrays named in header.arrays, float32 LE, back to back,
 *                 in TRAINER_STATE_ARRAYS order
 *   last 32 bytes SHA-256 of every byte before them
 *
 * The trailing digest covers the magic, the length, the header and the arrays,
 * so any change to the file (a flipped bit, a truncation, an edited step) is
 * refused with a CheckpointError before anything in it is believed. After the
 * digest, every header field is validated (exact keys, types, ranges, array
 * lengths that add up to the file) and every float must be finite. Format 1
 * files, whose hash covered only the arrays, are refused.
 *
 * `header.step` counts training steps completed; `header.optimizerStep`
 * counts Adam updates applied (TrainerState.step), which is smaller when the
 * gradient guard skipped steps.
 *
 * Files are written with writeFileAtomic (temp name, fsync, rename, fsync of
 * the folder), so a crash never leaves a half-written checkpoint under the real
 * name and a full disk gives DiskFullError with the older checkpoints intact.
 * Only the newest `keep` are kept, and temp files of killed writers are removed.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { removeStaleTempFiles, writeFileAtomic } from './atomic-write.js';
import { CheckpointError, NumericError } from './errors.js';
import { TRAINER_STATE_ARRAYS as ARRAY_KEYS, type TrainerState } from './gan/api.js';
import type { TrainingConfig } from './config.js';
import type { SamplerPosition } from './data/sampler.js';

const MAGIC = 'DGANCKPT';
/** The format this distgan writes and the only one it reads. */
export const CHECKPOINT_FORMAT = 2;
/** Magic (8 bytes) and header length (4 bytes). */
const PREFIX_BYTES = 12;
/** SHA-256 of everything before it. */
const TRAILER_BYTES = 32;
/** step-XXXXXXXX.ckpt; more digits once a run passes 99,999,999 steps. */
const CHECKPOINT_NAME = /^step-(\d{8,})\.ckpt$/;

type ArrayKey = (typeof ARRAY_KEYS)[number];

export interface CheckpointHeader {
  format: number;
  /** Training steps completed (absolute; a resumed run continues from here). */
  step: number;
  /** Optimizer (Adam) updates applied = TrainerState.step; ≤ step, smaller when steps were skipped. */
  optimizerStep: number;
  runId: string;
  /** ISO 8601 time of writing. */
  createdAt: string;
  training: TrainingConfig;
  model: Record<string, unknown>;
  modelFingerprint: string;
  datasetFingerprint: string;
  sampler: SamplerPosition;
  /** Counter-based RNG: the seed and the step are the whole state. */
  rng: { kind: 'counter'; seed: number; step: number };
  /** Float count of each array, in file order. */
  arrays: Record<ArrayKey, number>;
}

/** What the caller of writeCheckpoint supplies; the rest comes from the state and the clock. */
export type CheckpointHeaderInput = Omit<CheckpointHeader, 'format' | 'optimizerStep' | 'arrays' | 'createdAt'>;

export interface SkippedCheckpoint {
  path: string;
  /** Why it did not verify (the CheckpointError's message). */
  reason: string;
}

export interface Checkpoint {
  header: CheckpointHeader;
  /** state.step is header.optimizerStep. */
  state: TrainerState;
  path: string;
  /** Hex SHA-256 of the array bytes alone: equal for two checkpoints holding identical trainer state. */
  stateSha256: string;
  /** Newer checkpoints passed over by readCheckpoint(dir, { latestValid: true }), newest first; else empty. */
  skipped: SkippedCheckpoint[];
}

export interface ReadCheckpointOptions {
  /**
   * With a run or checkpoints folder: load the newest checkpoint that verifies,
   * listing the newer ones that did not in `skipped`. Default false: a corrupt
   * newest checkpoint is an error that names the newest intact one. A .ckpt
   * file path never falls back.
   */
  latestValid?: boolean;
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}.ckpt`;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes `<dir>/step-XXXXXXXX.ckpt` atomically and durably, then keeps only the
 * newest `keep` and removes temp files of dead writers. Returns the final path.
 *
 * Throws NumericError (and writes nothing) if an array holds NaN or ±Inf,
 * CheckpointError if the header would not pass readCheckpoint's validation,
 * DiskFullError if the disk fills up (older checkpoints stay intact).
 */
export async function writeCheckpoint(dir: string, header: CheckpointHeaderInput, state: TrainerState, keep: number): Promise<string> {
  for (const k of ARRAY_KEYS) {
    const i = firstNonFinite(state[k]);
    if (i >= 0) {
      throw new NumericError(
        `refusing to write the checkpoint of step ${header.step}: ${k}[${i}] is ${state[k][i]}, and a checkpoint must hold finite numbers; the previous checkpoints are kept`,
      );
    }
  }
  const full: CheckpointHeader = {
    format: CHECKPOINT_FORMAT,
    step: header.step,
    optimizerStep: state.step,
    runId: header.runId,
    createdAt: new Date().toISOString(),
    training: header.training,
    model: header.model,
    modelFingerprint: header.modelFingerprint,
    datasetFingerprint: header.datasetFingerprint,
    sampler: header.sampler,
    rng: header.rng,
    arrays: Object.fromEntries(ARRAY_KEYS.map((k) => [k, state[k].length])) as CheckpointHeader['arrays'],
  };
  const finalPath = join(dir, checkpointName(header.step));
  let json = JSON.stringify(full);
  // Validate what a reader will parse, so a checkpoint that could not be loaded is never written.
  const problem = headerProblem(JSON.parse(json));
  if (problem !== undefined) throw new CheckpointError(`refusing to write ${finalPath}: its header would be invalid: ${problem}`);
  while ((PREFIX_BYTES + Buffer.byteLength(json)) % 4 !== 0) json += ' ';
  const head = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(head.length, 8);
  const chunks: Uint8Array[] = [prefix, head, ...ARRAY_KEYS.map((k) => bytesOf(state[k]))];
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  chunks.push(hash.digest());

  await mkdir(dir, { recursive: true });
  await writeFileAtomic(finalPath, chunks);
  await prune(dir, keep);
  // Best effort: a failed cleanup must not fail a checkpoint that is already safely written.
  await removeStaleTempFiles(dir).catch(() => undefined);
  return finalPath;
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

interface Listed {
  name: string;
  step: number;
}

/** step-*.ckpt files in `dir`, oldest first; temp files and other names are ignored. */
async function listCheckpoints(dir: string): Promise<Listed[]> {
  const out: Listed[] = [];
  for (const name of await readdir(dir)) {
    const m = CHECKPOINT_NAME.exec(name);
    if (m) out.push({ name, step: Number(m[1]) });
  }
  return out.sort((a, b) => a.step - b.step || (a.name < b.name ? -1 : 1));
}

async function prune(dir: string, keep: number): Promise<void> {
  const files = await listCheckpoints(dir);
  for (const f of files.slice(0, Math.max(0, files.length - keep))) await rm(join(dir, f.name), { force: true });
}

/** The folder holding a run's checkpoints (`<path>/checkpoints`, else `<path>`) and its checkpoints, oldest first. */
async function findCheckpoints(abs: string, given: string): Promise<{ dir: string; files: Listed[] }> {
  for (const dir of [join(abs, 'checkpoints'), abs]) {
    let files: Listed[];
    try {
      files = await listCheckpoints(dir);
    } catch {
      continue;
    }
    if (files.length > 0) return { dir, files };
  }
  throw new CheckpointError(`no checkpoint (checkpoints/step-*.ckpt) found under ${given}`);
}

async function statOf(abs: string, given: string): Promise<{ isFile(): boolean }> {
  try {
    return await stat(abs);
  } catch (cause) {
    throw new CheckpointError(`checkpoint ${given} does not exist`, { cause });
  }
}

/** A run folder (its newest checkpoint), a checkpoints/ folder, or a .ckpt file. Does not verify it. */
export async function resolveCheckpointPath(path: string): Promise<string> {
  const abs = resolve(path);
  if ((await statOf(abs, path)).isFile()) return abs;
  const { dir, files } = await findCheckpoints(abs, path);
  return join(dir, files[files.length - 1]!.name);
}

/**
 * Reads and verifies a checkpoint: a .ckpt file, or the newest one of a run
 * folder or checkpoints folder. When a folder's newest checkpoint does not
 * verify, the error names the newest older one that does (or says none does);
 * with `latestValid` that one is loaded instead and the passed-over ones are
 * listed in `skipped`.
 */
export async function readCheckpoint(path: string, options: ReadCheckpointOptions = {}): Promise<Checkpoint> {
  const abs = resolve(path);
  if ((await statOf(abs, path)).isFile()) return loadFile(abs);
  const { dir, files } = await findCheckpoints(abs, path);
  const skipped: SkippedCheckpoint[] = [];
  let newestError: CheckpointError | undefined;
  for (const entry of [...files].reverse()) {
    const file = join(dir, entry.name);
    let ckpt: Checkpoint;
    try {
      ckpt = await loadFile(file);
    } catch (err) {
      if (!(err instanceof CheckpointError)) throw err;
      newestError ??= err;
      skipped.push({ path: file, reason: err.message });
      continue;
    }
    if (skipped.length === 0 || options.latestValid) return { ...ckpt, skipped };
    const rel = relative(abs, file);
    throw new CheckpointError(
      `cannot resume from ${path}: its newest checkpoint does not verify: ${newestError!.message}. ` +
        `${rel} (step ${ckpt.header.step}) is intact: continue from it with --resume-latest-valid, or --resume ${join(path, rel)}`,
      { cause: newestError },
    );
  }
  const also = files.length > 1 ? `, and none of the ${files.length - 1} older one(s) is intact either` : ', and there is no older one';
  throw new CheckpointError(`cannot resume from ${path}: its newest checkpoint does not verify: ${newestError!.message}${also}`, { cause: newestError });
}

async function loadFile(file: string): Promise<Checkpoint> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (cause) {
    throw new CheckpointError(`could not read ${file}: ${(cause as Error).message}`, { cause });
  }
  return parseCheckpoint(buf, file);
}

/**
 * Verifies and decodes the bytes of a checkpoint file (`file` is only used in
 * messages and as `path`). Pure: no I/O. Throws CheckpointError for anything
 * that is not an intact format-2 checkpoint with a valid header and finite arrays.
 */
export function parseCheckpoint(buf: Buffer, file: string): Checkpoint {
  if (buf.length < MAGIC.length || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) {
    throw new CheckpointError(`${file} is not a distgan checkpoint (bad magic)`);
  }
  if (buf.length < PREFIX_BYTES + TRAILER_BYTES) throw new CheckpointError(`${file} is truncated (${buf.length} bytes)`);
  const bodyEnd = buf.length - TRAILER_BYTES;
  const digest = createHash('sha256').update(buf.subarray(0, bodyEnd)).digest();
  if (!digest.equals(buf.subarray(bodyEnd))) throw new CheckpointError(explainDigestFailure(buf, file));

  const hlen = buf.readUInt32LE(8);
  if (hlen === 0) throw new CheckpointError(`${file} has an empty header (length 0)`);
  if (PREFIX_BYTES + hlen > bodyEnd) {
    throw new CheckpointError(`${file} has a header length of ${hlen} bytes, more than the ${bodyEnd - PREFIX_BYTES} bytes the file has room for`);
  }
  if ((PREFIX_BYTES + hlen) % 4 !== 0) throw new CheckpointError(`${file} has a header length of ${hlen} bytes, which leaves the arrays unaligned`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(PREFIX_BYTES, PREFIX_BYTES + hlen)));
  } catch (cause) {
    throw new CheckpointError(`${file} has a header that is not UTF-8 JSON: ${(cause as Error).message}`, { cause });
  }
  const problem = headerProblem(header);
  if (problem !== undefined) throw new CheckpointError(`${file} has an invalid header: ${problem}`);
  const h = header as CheckpointHeader;
  const start = PREFIX_BYTES + hlen;
  const floats = ARRAY_KEYS.reduce((n, k) => n + h.arrays[k], 0);
  if (start + floats * 4 !== bodyEnd) {
    throw new CheckpointError(`${file}: the header lists ${floats} floats (${floats * 4} bytes) but the file holds ${bodyEnd - start} array bytes`);
  }
  // Copy into a fresh aligned buffer so the arrays do not pin the whole file.
  const aligned = new Float32Array(floats);
  new Uint8Array(aligned.buffer).set(buf.subarray(start, bodyEnd));
  const stateSha256 = createHash('sha256').update(buf.subarray(start, bodyEnd)).digest('hex');
  const state: Record<string, unknown> = { step: h.optimizerStep };
  let at = 0;
  for (const k of ARRAY_KEYS) {
    const a = aligned.subarray(at, at + h.arrays[k]);
    const i = firstNonFinite(a);
    if (i >= 0) throw new CheckpointError(`${file}: ${k}[${i}] is ${a[i]}; a checkpoint must hold finite numbers`);
    state[k] = a;
    at += h.arrays[k];
  }
  return { header: h, state: state as unknown as TrainerState, path: file, stateSha256, skipped: [] };
}

/**
 * The digest did not match, so nothing in the file can be believed; the
 * unverified header is peeked at only to say what probably happened.
 */
function explainDigestFailure(buf: Buffer, file: string): string {
  const hlen = buf.readUInt32LE(8);
  let peek: unknown;
  if (hlen > 0 && PREFIX_BYTES + hlen <= buf.length) {
    try {
      peek = JSON.parse(buf.toString('utf8', PREFIX_BYTES, PREFIX_BYTES + hlen));
    } catch {
      peek = undefined;
    }
  }
  const p = isPlainObject(peek) ? peek : undefined;
  if (p?.format === 1) {
    return (
      `${file} was written by an older distgan (checkpoint format 1), whose header is not covered by its hash, ` +
      `so the file cannot be verified and is not loaded; this distgan reads format ${CHECKPOINT_FORMAT}. Resume it with the distgan that wrote it, or start a new run`
    );
  }
  if (p && isPlainObject(p.arrays)) {
    const arrays = p.arrays;
    const floats = ARRAY_KEYS.reduce((n, k) => n + (isCount(arrays[k]) ? (arrays[k] as number) : NaN), 0);
    const want = PREFIX_BYTES + hlen + floats * 4 + TRAILER_BYTES;
    if (Number.isFinite(floats) && want !== buf.length) {
      return `${file} failed its SHA-256 check: it is ${buf.length} bytes but its header describes ${want}, so it was truncated or extended`;
    }
  }
  return `${file} failed its SHA-256 check: the file is corrupt (its bytes changed after it was written)`;
}

// ---------------------------------------------------------------------------
// Header validation

const HEADER_KEYS = [
  'format',
  'step',
  'optimizerStep',
  'runId',
  'createdAt',
  'training',
  'model',
  'modelFingerprint',
  'datasetFingerprint',
  'sampler',
  'rng',
  'arrays',
] as const satisfies readonly (keyof CheckpointHeader)[];
const SAMPLER_KEYS = ['epoch', 'cursor'] as const satisfies readonly (keyof SamplerPosition)[];
const RNG_KEYS = ['kind', 'seed', 'step'] as const;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return String(v);
}

/** Exactly the keys `want`: none missing, none unknown. */
function keysProblem(obj: Record<string, unknown>, want: readonly string[], what: string): string | undefined {
  const missing = want.filter((k) => !Object.hasOwn(obj, k));
  if (missing.length > 0) return `${what} lacks ${missing.join(', ')}`;
  const unknown = Object.keys(obj).filter((k) => !want.includes(k));
  if (unknown.length > 0) return `${what} has unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}`;
  return undefined;
}

/** The first thing wrong with a parsed header, or undefined when it is a valid CheckpointHeader. */
function headerProblem(h: unknown): string | undefined {
  if (!isPlainObject(h)) return `the header is ${describe(h)}, not a JSON object`;
  const keys = keysProblem(h, HEADER_KEYS, 'the header');
  if (keys) return keys;
  if (h.format !== CHECKPOINT_FORMAT) return `format is ${describe(h.format)}; this distgan reads format ${CHECKPOINT_FORMAT}`;
  for (const k of ['step', 'optimizerStep'] as const) {
    if (!isCount(h[k])) return `${k} is ${describe(h[k])}, not a non-negative integer`;
  }
  if ((h.optimizerStep as number) > (h.step as number)) {
    return `optimizerStep ${h.optimizerStep} is larger than step ${h.step} (there cannot be more optimizer updates than training steps)`;
  }
  for (const k of ['runId', 'createdAt', 'modelFingerprint', 'datasetFingerprint'] as const) {
    if (!isNonEmptyString(h[k])) return `${k} is ${describe(h[k])}, not a non-empty string`;
  }
  if (!Number.isFinite(Date.parse(h.createdAt as string))) return `createdAt ${describe(h.createdAt)} is not a date`;

  if (!isPlainObject(h.training)) return `training is ${describe(h.training)}, not an object`;
  for (const [k, v] of Object.entries(h.training)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return `training.${k} is ${describe(v)}, not a string, number or boolean`;
  }
  if (!isPlainObject(h.model)) return `model is ${describe(h.model)}, not an object`;

  if (!isPlainObject(h.sampler)) return `sampler is ${describe(h.sampler)}, not an object`;
  const sampler = h.sampler;
  const samplerKeys = keysProblem(sampler, SAMPLER_KEYS, 'sampler');
  if (samplerKeys) return samplerKeys;
  for (const k of SAMPLER_KEYS) {
    if (!isCount(sampler[k])) return `sampler.${k} is ${describe(sampler[k])}, not a non-negative integer`;
  }

  if (!isPlainObject(h.rng)) return `rng is ${describe(h.rng)}, not an object`;
  const rng = h.rng;
  const rngKeys = keysProblem(rng, RNG_KEYS, 'rng');
  if (rngKeys) return rngKeys;
  if (rng.kind !== 'counter') return `rng.kind is ${describe(rng.kind)}, not "counter"`;
  if (typeof rng.seed !== 'number' || !Number.isSafeInteger(rng.seed)) return `rng.seed is ${describe(rng.seed)}, not an integer`;
  if (rng.step !== h.step) return `rng.step is ${describe(rng.step)} but step is ${h.step}; they must be equal`;

  if (!isPlainObject(h.arrays)) return `arrays is ${describe(h.arrays)}, not an object`;
  const arrays = h.arrays;
  const arrayKeys = keysProblem(arrays, ARRAY_KEYS, 'arrays');
  if (arrayKeys) return arrayKeys;
  for (const k of ARRAY_KEYS) {
    if (!isCount(arrays[k])) return `arrays.${k} is ${describe(arrays[k])}, not a non-negative integer`;
  }
  for (const [moment, weights] of [['gAdamM', 'gWeights'], ['gAdamV', 'gWeights'], ['dAdamM', 'dWeights'], ['dAdamV', 'dWeights']] as const) {
    if (arrays[moment] !== arrays[weights]) return `arrays.${moment} is ${arrays[moment]} but arrays.${weights} is ${arrays[weights]}; Adam moments match their weights`;
  }
  return undefined;
}
