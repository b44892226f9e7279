/**
 * Checkpoint files: everything needed to continue a run bit-exactly.
 *
 * `checkpoints/step-XXXXXXXX.ckpt` is a safetensors file (format 3,
 * docs/checkpoints.md), so any safetensors reader, or a few lines of Python
 * with no library at all, can open it:
 *
 *   bytes 0..7    N, the header length (uint64 LE; N % 8 = 0, N ≤ 100,000,000)
 *   bytes 8..     header: UTF-8 JSON object, padded with spaces to N bytes:
 *                   "__metadata__": every CheckpointHeader field as a string
 *                                   (nested values JSON-encoded), plus "sha256"
 *                   "<tensor>": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}
 *   then          the tensors' bytes, float32 LE, back to back in plan order
 *                 (tensorPlan); offsets count from the first byte after the header
 *
 * Tensors: G's weights and BN statistics split per layer under PyTorch names
 * and layouts (`generator.dense.weight`, `generator.bn0.running_mean`,
 * `generator.convt1.weight`, …), which a PyTorch module such as
 * bench/torch_dcgan.py's Generator loads with load_state_dict; then `dWeights`,
 * `gAdamM`, `gAdamV`, `dAdamM`, `dAdamV` flat. The flat `gWeights` and
 * `bnStats` are rebuilt from the per-layer tensors on load (stored once, not
 * twice: the file stays the size of the state). A state whose sizes do not
 * match its header's model spec (only tests make those) stores all seven
 * arrays flat. Arrays of zero floats are left out (their count is in the
 * metadata), because some readers cannot make empty tensors.
 *
 * Integrity: `__metadata__.sha256` is the SHA-256 of the whole file as it
 * would be with that value replaced by 64 "0" characters. A reader locates
 * it, recomputes the digest the same way and refuses any mismatch, so any
 * change to any byte (a flipped bit, a truncation, an edited metadata value)
 * is refused with a CheckpointError before anything in the file is believed.
 * After the digest: exact metadata keys and values, exact tensor names,
 * dtypes, shapes and offsets (the plan the metadata implies), a buffer that
 * ends where the last tensor does, and every float finite.
 *
 * Format 2 files (magic "DGANCKPT", JSON header, arrays, 32-byte SHA-256
 * trailer over everything before it) are still read and verified the same
 * strict way. Format 1 files, whose hash covered only the arrays, are refused.
 *
 * `header.step` counts training steps completed; `header.optimizerStep`
 * counts Adam updates applied (TrainerState.step), which is smaller when the
 * gradient guard skipped steps.
 *
 * Files are written with writeFileAtomic (temp name, fsync, rename, fsync of
 * the folder), so a crash never leaves a half-written checkpoint under the real
 * name and a full disk gives DiskFullError with the older checkpoints intact.
 * Only the newest `keep` are kept, and temp files of killed writers are removed.
 * Listing, pruning and resolving take `step-N.ckpt` and `step-N.safetensors`
 * alike; distgan writes `.ckpt`.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { removeStaleTempFiles, writeFileAtomic } from './atomic-write.js';
import { CheckpointError, NumericError } from './errors.js';
import { TRAINER_STATE_ARRAYS as ARRAY_KEYS, type TrainerState } from './gan/api.js';
import { networkPlans, parameterCounts, validateModelSpec, type ModelSpec } from './models/spec.js';
import type { TrainingConfig } from './config.js';
import type { SamplerPosition } from './data/sampler.js';

/** The format this distgan writes: safetensors with distgan's metadata. */
export const CHECKPOINT_FORMAT = 3;
/** The older format this distgan still reads (DGANCKPT + trailing SHA-256). */
export const LEGACY_CHECKPOINT_FORMAT = 2;
const MAGIC = 'DGANCKPT';
/** Format 2: magic (8 bytes) and header length (4 bytes). */
const PREFIX_BYTES = 12;
/** Format 2: SHA-256 of everything before it. */
const TRAILER_BYTES = 32;
/** Safetensors: the uint64 header length. */
const ST_PREFIX_BYTES = 8;
/** Safetensors: the header is padded to a multiple of this, so the tensors start aligned. */
const ST_ALIGN = 8;
/** Safetensors' own limit on the header length (bytes). */
const ST_MAX_HEADER = 100_000_000;
/** The metadata key holding the digest, and its placeholder while hashing. */
const DIGEST_KEY = 'sha256';
const DIGEST_PLACEHOLDER = '0'.repeat(64);
/** How the digest appears in the header bytes (JSON.stringify's form: no spaces). */
const DIGEST_MARK = `"${DIGEST_KEY}":"`;
/** step-XXXXXXXX.ckpt or .safetensors; more digits once a run passes 99,999,999 steps. */
const CHECKPOINT_NAME = /^step-(\d{8,})\.(?:ckpt|safetensors)$/;

type ArrayKey = (typeof ARRAY_KEYS)[number];

export interface CheckpointHeader {
  /** 3 (safetensors) for what this distgan writes; 2 for an older file it read. */
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
  /** Float count of each array of the trainer state. */
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
  /**
   * Hex SHA-256 of the seven flat arrays' bytes in TRAINER_STATE_ARRAYS order:
   * equal for two checkpoints holding identical trainer state, whatever their format.
   */
  stateSha256: string;
  /** Newer checkpoints passed over by readCheckpoint(dir, { latestValid: true }), newest first; else empty. */
  skipped: SkippedCheckpoint[];
}

export interface ReadCheckpointOptions {
  /**
   * With a run or checkpoints folder: load the newest checkpoint that verifies,
   * listing the newer ones that did not in `skipped`. Default false: a corrupt
   * newest checkpoint is an error that names the newest intact one. A file
   * path never falls back.
   */
  latestValid?: boolean;
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}.ckpt`;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// ---------------------------------------------------------------------------
// Tensor plan: which safetensors tensors hold which floats of the trainer state

/** One tensor of a format-3 file. */
export interface TensorPlanEntry {
  /** safetensors name, e.g. "generator.convt1.weight" or "dAdamM". */
  name: string;
  /** The flat trainer array its floats belong to. */
  source: ArrayKey;
  /** First float of its slice of `source`. */
  offset: number;
  /** Floats. */
  size: number;
  /** Shape in the file (row-major), e.g. PyTorch's [in, out, kH, kW] for a transposed conv. */
  shape: number[];
  /** Shape of the slice of `source` as distgan holds it (tfjs variable order): the slice viewed so… */
  view: number[];
  /** …and transposed by these axes (numpy.transpose's meaning) is the tensor in the file. */
  axes: number[];
}

/** A tensor of distgan's G: its PyTorch name, and how the file lays out its slice of gWeights or bnStats. */
export interface GeneratorTensor {
  name: string;
  source: 'gWeights' | 'bnStats';
  /** Shape in the file. */
  shape: number[];
  /** The slice as distgan holds it (tfjs order), viewed with this shape… */
  view: number[];
  /** …and transposed by these axes, is the tensor in the file. */
  axes: number[];
}

type Layout = Pick<GeneratorTensor, 'shape' | 'view' | 'axes'>;

const asIs = (shape: number[]): Layout => ({ shape, view: shape, axes: shape.map((_, i) => i) });

/**
 * G's tensors in the positional order of variables.ts (layers in model
 * order; kernel, bias, gamma, beta; then the BN moving statistics, in layer
 * order), read off G's layer plan (layers.ts) and named and laid out as
 * PyTorch holds them:
 *   dense kernel [in, units] → `<layer>.weight` [units, in] (nn.Linear);
 *   conv2d kernel [k, k, in, out] → [out, in, k, k] (nn.Conv2d), and
 *   conv2dTranspose kernel [k, k, out, in] → [in, out, k, k] (nn.ConvTranspose2d);
 *   batchNorm γ, β, moving mean, moving variance → `weight`, `bias`,
 *   `running_mean`, `running_var`.
 * Features of a flat vector that a later reshape turns into an image are in
 * tfjs's (h, w, c) order; they are stored in PyTorch's `view(-1, c, h, w)`
 * order (c, h, w), in the dense layer's kernel and bias and in the BN between.
 * `<layer>` is the plan's layer name without its "g_" prefix: dense, bn0,
 * convt1, bn1, convt2, … for the DCGAN (bench/torch_dcgan.py's Generator),
 * dense0, dense1, out for the MLP.
 *
 * Undefined when the plan has a layer this mapping does not cover (a flatten,
 * a dense layer on an image, a reshape other than flat → image): such a G is
 * stored flat, never in a layout PyTorch would misread.
 */
export function generatorTensors(spec: ModelSpec): GeneratorTensor[] | undefined {
  const { layers, inputShape } = networkPlans(spec).generator;
  const trainable: GeneratorTensor[] = [];
  const state: GeneratorTensor[] = [];
  let shape = [...inputShape];
  for (const [i, l] of layers.entries()) {
    const name = `generator.${l.name.replace(/^g_/, '')}`;
    const last = shape[shape.length - 1]!;
    /** Layout of a vector over this layer's features: (c, h, w) when a reshape to an image follows, through BN and activations only. */
    const features = (n: number): Layout => {
      const next = layers.slice(i + 1).find((x) => x.type !== 'batchNorm' && x.type !== 'leakyReLU');
      if (shape.length === 1 && next?.type === 'reshape' && next.targetShape.length === 3) {
        const [h, w, c] = next.targetShape as [number, number, number];
        return { shape: [n], view: [h, w, c], axes: [2, 0, 1] };
      }
      return asIs([n]);
    };
    switch (l.type) {
      case 'dense': {
        if (shape.length !== 1) return undefined;
        const out = features(l.units);
        shape = [l.units];
        const image = out.view.length === 3;
        trainable.push({
          name: `${name}.weight`,
          source: 'gWeights',
          shape: [l.units, last],
          view: image ? [last, ...out.view] : [last, l.units],
          axes: image ? [3, 1, 2, 0] : [1, 0],
        });
        if (l.useBias) trainable.push({ name: `${name}.bias`, source: 'gWeights', ...features(l.units) });
        break;
      }
      case 'conv2d':
      case 'conv2dTranspose': {
        if (shape.length !== 3) return undefined;
        const k = l.kernelSize;
        const [from, to] = l.type === 'conv2d' ? [last, l.filters] : [l.filters, last];
        // tfjs [k, k, from, to] → PyTorch [to, from, k, k] (Conv2d: [out, in]; ConvTranspose2d: [in, out]).
        trainable.push({ name: `${name}.weight`, source: 'gWeights', shape: [to, from, k, k], view: [k, k, from, to], axes: [3, 2, 0, 1] });
        if (l.useBias) trainable.push({ name: `${name}.bias`, source: 'gWeights', ...asIs([l.filters]) });
        // Only the channel count matters from here; the sides are not needed.
        shape = [shape[0]!, shape[1]!, l.filters];
        break;
      }
      case 'batchNorm': {
        const t = features(last);
        trainable.push({ name: `${name}.weight`, source: 'gWeights', ...t }, { name: `${name}.bias`, source: 'gWeights', ...t });
        state.push({ name: `${name}.running_mean`, source: 'bnStats', ...t }, { name: `${name}.running_var`, source: 'bnStats', ...t });
        break;
      }
      case 'leakyReLU':
        break;
      case 'reshape':
        if (shape.length !== 1 || l.targetShape.length !== 3) return undefined;
        shape = [...l.targetShape];
        break;
      default:
        return undefined;
    }
  }
  return [...trainable, ...state];
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The model spec in a header, when it is one (tests write made-up ones). */
function specOf(model: unknown): ModelSpec | undefined {
  try {
    validateModelSpec(model);
    return model;
  } catch {
    return undefined;
  }
}

/**
 * The tensors of a format-3 file, in file order. G is split per layer when
 * `model` is a model spec whose G and BN sizes are the arrays' (every
 * checkpoint of a real run) and generatorTensors covers its layers; otherwise
 * the arrays are stored flat. Arrays of zero floats get no tensor.
 */
export function tensorPlan(model: unknown, arrays: Readonly<Record<ArrayKey, number>>): TensorPlanEntry[] {
  const plan: TensorPlanEntry[] = [];
  const flat = (k: ArrayKey): void => {
    if (arrays[k] > 0) plan.push({ name: k, source: k, offset: 0, size: arrays[k], shape: [arrays[k]], view: [arrays[k]], axes: [0] });
  };
  const spec = specOf(model);
  const counts = spec === undefined ? undefined : parameterCounts(spec);
  const tensors = spec === undefined ? undefined : generatorTensors(spec);
  const sizes = (k: 'gWeights' | 'bnStats'): number => (tensors ?? []).filter((t) => t.source === k).reduce((n, t) => n + sizeOf(t.shape), 0);
  // Split only when G's tensors are exactly gWeights and bnStats (D never has BN statistics here).
  if (tensors === undefined || counts!.g !== arrays.gWeights || counts!.bnStats !== arrays.bnStats || sizes('gWeights') !== arrays.gWeights || sizes('bnStats') !== arrays.bnStats) {
    for (const k of ARRAY_KEYS) flat(k);
    return plan;
  }
  const at: Record<'gWeights' | 'bnStats', number> = { gWeights: 0, bnStats: 0 };
  for (const t of tensors) {
    const size = sizeOf(t.shape);
    plan.push({ name: t.name, source: t.source, offset: at[t.source], size, shape: t.shape, view: t.view, axes: t.axes });
    at[t.source] += size;
  }
  for (const k of ['dWeights', 'gAdamM', 'gAdamV', 'dAdamM', 'dAdamV'] as const) flat(k);
  return plan;
}

/** out = numpy.transpose(src.reshape(shape), axes), flattened. */
function transpose(src: Float32Array, shape: readonly number[], axes: readonly number[], out: Float32Array): void {
  const rank = shape.length;
  const srcStride = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) {
    srcStride[i] = s;
    s *= shape[i]!;
  }
  const dims = axes.map((a) => shape[a]!);
  const step = axes.map((a) => srcStride[a]!);
  const idx = new Array<number>(rank).fill(0);
  let off = 0;
  for (let j = 0; j < out.length; j++) {
    out[j] = src[off]!;
    for (let d = rank - 1; d >= 0; d--) {
      off += step[d]!;
      if (++idx[d]! < dims[d]!) break;
      off -= step[d]! * dims[d]!;
      idx[d] = 0;
    }
  }
}

const isIdentity = (axes: readonly number[]): boolean => axes.every((a, i) => a === i);

/** The floats of one planned tensor, in file layout (a view when no transpose is needed). */
function tensorData(e: TensorPlanEntry, state: TrainerState): Float32Array {
  const slice = state[e.source].subarray(e.offset, e.offset + e.size);
  if (isIdentity(e.axes)) return slice;
  const out = new Float32Array(e.size);
  transpose(slice, e.view, e.axes, out);
  return out;
}

/** Writes one planned tensor's floats (file layout, `data`) back into its trainer array. */
function storeTensor(e: TensorPlanEntry, data: Float32Array, arrays: Record<ArrayKey, Float32Array>): void {
  const target = arrays[e.source].subarray(e.offset, e.offset + e.size);
  if (isIdentity(e.axes)) {
    target.set(data);
    return;
  }
  const inverse = new Array<number>(e.axes.length);
  e.axes.forEach((a, i) => (inverse[a] = i));
  transpose(data, e.axes.map((a) => e.view[a]!), inverse, target);
}

// ---------------------------------------------------------------------------
// Writing

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
  // Validate what a reader will parse, so a checkpoint that could not be loaded is never written.
  const problem = headerProblem(JSON.parse(JSON.stringify(full)), CHECKPOINT_FORMAT);
  if (problem !== undefined) throw new CheckpointError(`refusing to write ${finalPath}: its header would be invalid: ${problem}`);
  const chunks = encodeSafetensors(full, state);

  await mkdir(dir, { recursive: true });
  await writeFileAtomic(finalPath, chunks);
  await prune(dir, keep);
  // Best effort: a failed cleanup must not fail a checkpoint that is already safely written.
  await removeStaleTempFiles(dir).catch(() => undefined);
  return finalPath;
}

/** The metadata strings of a header: strings as they are, numbers in decimal, everything else as JSON. */
function metadataOf(h: CheckpointHeader): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of HEADER_KEYS) {
    const v = h[k];
    out[k] = typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v);
  }
  out[DIGEST_KEY] = DIGEST_PLACEHOLDER;
  return out;
}

/** The bytes of a format-3 file as chunks (tensor data is not copied unless it is transposed). */
function encodeSafetensors(h: CheckpointHeader, state: TrainerState): Uint8Array[] {
  const plan = tensorPlan(h.model, h.arrays);
  const json: Record<string, unknown> = { __metadata__: metadataOf(h) };
  const data: Uint8Array[] = [];
  let at = 0;
  for (const e of plan) {
    json[e.name] = { dtype: 'F32', shape: e.shape, data_offsets: [at, at + e.size * 4] };
    data.push(bytesOf(tensorData(e, state)));
    at += e.size * 4;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((ST_ALIGN - (Buffer.byteLength(text) % ST_ALIGN)) % ST_ALIGN);
  const head = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(ST_PREFIX_BYTES);
  prefix.writeBigUInt64LE(BigInt(head.length));
  const hash = createHash('sha256').update(prefix).update(head);
  for (const c of data) hash.update(c);
  const digestAt = head.indexOf(`${DIGEST_MARK}${DIGEST_PLACEHOLDER}"`) + DIGEST_MARK.length;
  head.write(hash.digest('hex'), digestAt, 'latin1');
  return [prefix, head, ...data];
}

function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

// ---------------------------------------------------------------------------
// Listing, pruning, resolving

interface Listed {
  name: string;
  step: number;
}

/** step-*.ckpt and step-*.safetensors files in `dir`, oldest first; temp files and other names are ignored. */
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
  throw new CheckpointError(`no checkpoint (checkpoints/step-*.ckpt or step-*.safetensors) found under ${given}`);
}

async function statOf(abs: string, given: string): Promise<{ isFile(): boolean }> {
  try {
    return await stat(abs);
  } catch (cause) {
    throw new CheckpointError(`checkpoint ${given} does not exist`, { cause });
  }
}

/** A run folder (its newest checkpoint), a checkpoints/ folder, or a checkpoint file. Does not verify it. */
export async function resolveCheckpointPath(path: string): Promise<string> {
  const abs = resolve(path);
  if ((await statOf(abs, path)).isFile()) return abs;
  const { dir, files } = await findCheckpoints(abs, path);
  return join(dir, files[files.length - 1]!.name);
}

/**
 * Reads and verifies a checkpoint: a file (any name; the bytes say which
 * format), or the newest one of a run folder or checkpoints folder. When a
 * folder's newest checkpoint does not verify, the error names the newest
 * older one that does (or says none does); with `latestValid` that one is
 * loaded instead and the passed-over ones are listed in `skipped`.
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

// ---------------------------------------------------------------------------
// Reading

/**
 * Verifies and decodes the bytes of a checkpoint file (`file` is only used in
 * messages and as `path`). Pure: no I/O. Format 3 (safetensors) and format 2
 * (DGANCKPT) are told apart by their bytes. Throws CheckpointError for
 * anything that is not an intact checkpoint with a valid header and finite
 * arrays.
 */
export function parseCheckpoint(buf: Buffer, file: string): Checkpoint {
  if (buf.length >= MAGIC.length && buf.toString('latin1', 0, MAGIC.length) === MAGIC) return parseFormat2(buf, file);
  if (buf.length > ST_PREFIX_BYTES && buf[ST_PREFIX_BYTES] === 0x7b /* { */) return parseSafetensors(buf, file);
  throw new CheckpointError(
    `${file} is not a distgan checkpoint (bad magic: neither a safetensors file, whose JSON header starts at byte 8, nor a format-2 file starting "${MAGIC}")`,
  );
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseSafetensors(buf: Buffer, file: string): Checkpoint {
  const n64 = buf.readBigUInt64LE(0);
  const room = buf.length - ST_PREFIX_BYTES;
  if (n64 > BigInt(Math.min(room, ST_MAX_HEADER))) {
    throw new CheckpointError(`${file} has a header length of ${n64} bytes, more than the ${Math.min(room, ST_MAX_HEADER)} bytes the file has room for`);
  }
  const n = Number(n64);
  if (n % ST_ALIGN !== 0) throw new CheckpointError(`${file} has a header length of ${n} bytes, not a multiple of ${ST_ALIGN}, which leaves the tensors unaligned`);
  const headEnd = ST_PREFIX_BYTES + n;

  // The digest first: nothing else in the file is believed before it verifies.
  const head = buf.subarray(0, headEnd);
  const first = head.indexOf(DIGEST_MARK, ST_PREFIX_BYTES, 'latin1');
  const valueAt = first + DIGEST_MARK.length;
  const once = first >= 0 && head.indexOf(DIGEST_MARK, first + 1, 'latin1') < 0;
  if (!once || valueAt + 65 > headEnd || head[valueAt + 64] !== 0x22 /* closing quote */) {
    throw new CheckpointError(
      `${file} is a safetensors file without exactly one __metadata__.${DIGEST_KEY} of 64 characters: it is not a distgan checkpoint, or its header is damaged`,
    );
  }
  const stored = buf.toString('latin1', valueAt, valueAt + 64);
  const digest = createHash('sha256')
    .update(buf.subarray(0, valueAt))
    .update(DIGEST_PLACEHOLDER, 'latin1')
    .update(buf.subarray(valueAt + 64))
    .digest('hex');
  if (digest !== stored) throw new CheckpointError(explainSafetensorsDigestFailure(buf, n, file));

  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(buf.subarray(ST_PREFIX_BYTES, headEnd)));
  } catch (cause) {
    throw new CheckpointError(`${file} has a header that is not UTF-8 JSON: ${(cause as Error).message}`, { cause });
  }
  if (!isPlainObject(parsed)) throw new CheckpointError(`${file} has an invalid header: the header is ${describe(parsed)}, not a JSON object`);
  const decoded = decodeMetadata(parsed['__metadata__'], stored);
  if (typeof decoded === 'string') throw new CheckpointError(`${file} has invalid metadata: ${decoded}`);
  const problem = headerProblem(decoded, CHECKPOINT_FORMAT);
  if (problem !== undefined) throw new CheckpointError(`${file} has an invalid header: ${problem}`);
  const h = decoded as unknown as CheckpointHeader;

  const plan = tensorPlan(h.model, h.arrays);
  const tensorProblem = tensorsProblem(parsed, plan);
  if (tensorProblem !== undefined) throw new CheckpointError(`${file} has an invalid header: ${tensorProblem}`);
  const bytes = plan.reduce((s, e) => s + e.size * 4, 0);
  if (headEnd + bytes !== buf.length) {
    throw new CheckpointError(`${file}: the header lists ${bytes / 4} floats (${bytes} bytes) but the file holds ${buf.length - headEnd} tensor bytes`);
  }

  const arrays = Object.fromEntries(ARRAY_KEYS.map((k) => [k, new Float32Array(h.arrays[k])])) as Record<ArrayKey, Float32Array>;
  let at = headEnd;
  for (const e of plan) {
    // A copy into an aligned buffer, so the arrays never pin the whole file.
    const data = new Float32Array(e.size);
    new Uint8Array(data.buffer).set(buf.subarray(at, at + e.size * 4));
    at += e.size * 4;
    const i = firstNonFinite(data);
    if (i >= 0) throw new CheckpointError(`${file}: ${e.name}[${i}] is ${data[i]}; a checkpoint must hold finite numbers`);
    storeTensor(e, data, arrays);
  }
  const hash = createHash('sha256');
  for (const k of ARRAY_KEYS) hash.update(bytesOf(arrays[k]));
  const state = { step: h.optimizerStep, ...arrays } as TrainerState;
  return { header: h, state, path: file, stateSha256: hash.digest('hex'), skipped: [] };
}

const NUMERIC_FIELDS = new Set<string>(['format', 'step', 'optimizerStep']);
const STRING_FIELDS = new Set<string>(['runId', 'createdAt', 'modelFingerprint', 'datasetFingerprint']);

/**
 * The header encoded in `__metadata__` (exactly the header's keys plus the
 * digest; every value a string), or a string saying what is wrong. Numbers
 * must be in canonical decimal; other non-strings are JSON. What the values
 * then mean is headerProblem's to judge.
 */
function decodeMetadata(meta: unknown, digest: string): Record<string, unknown> | string {
  if (!isPlainObject(meta)) return `__metadata__ is ${meta === undefined ? 'missing' : describe(meta)}, not an object of strings`;
  const keys = keysProblem(meta, [...HEADER_KEYS, DIGEST_KEY], '__metadata__');
  if (keys) return keys;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v !== 'string') return `__metadata__.${k} is ${describe(v)}, not a string (safetensors metadata values are strings)`;
    if (k === DIGEST_KEY) {
      if (v !== digest) return `__metadata__.${k} is not the digest the file was verified with`;
    } else if (NUMERIC_FIELDS.has(k)) {
      out[k] = /^(0|[1-9][0-9]*)$/.test(v) && String(Number(v)) === v ? Number(v) : v;
    } else if (STRING_FIELDS.has(k)) {
      out[k] = v;
    } else {
      try {
        out[k] = JSON.parse(v) as unknown;
      } catch (cause) {
        return `__metadata__.${k} is not JSON: ${(cause as Error).message}`;
      }
    }
  }
  return out;
}

const TENSOR_KEYS = ['dtype', 'shape', 'data_offsets'] as const;

/** The first way the header's tensor entries differ from the plan (names, dtype, shape, offsets), or undefined. */
function tensorsProblem(parsed: Record<string, unknown>, plan: readonly TensorPlanEntry[]): string | undefined {
  const want = plan.map((e) => e.name);
  const keys = keysProblem(parsed, ['__metadata__', ...want], 'the header');
  if (keys) return `${keys} (its tensors must be exactly ${want.join(', ')})`;
  let at = 0;
  for (const e of plan) {
    const t = parsed[e.name];
    if (!isPlainObject(t)) return `tensor ${e.name} is ${describe(t)}, not an object`;
    const tk = keysProblem(t, TENSOR_KEYS, `tensor ${e.name}`);
    if (tk) return tk;
    if (t.dtype !== 'F32') return `tensor ${e.name} has dtype ${describe(t.dtype)}, not "F32"`;
    const shapeOk = Array.isArray(t.shape) && t.shape.length === e.shape.length && t.shape.every((v, i) => v === e.shape[i]);
    if (!shapeOk) return `tensor ${e.name} has shape ${JSON.stringify(t.shape)}, not [${e.shape.join(', ')}]`;
    const end = at + e.size * 4;
    const o = t.data_offsets;
    if (!Array.isArray(o) || o.length !== 2 || o[0] !== at || o[1] !== end) {
      return `tensor ${e.name} has data_offsets ${JSON.stringify(o)}, not [${at}, ${end}] (tensors are stored back to back in plan order)`;
    }
    at = end;
  }
  return undefined;
}

/**
 * The digest did not match, so nothing in the file can be believed; the
 * unverified header is peeked at only to say what probably happened.
 */
function explainSafetensorsDigestFailure(buf: Buffer, n: number, file: string): string {
  let peek: unknown;
  try {
    peek = JSON.parse(buf.toString('utf8', ST_PREFIX_BYTES, ST_PREFIX_BYTES + n));
  } catch {
    peek = undefined;
  }
  if (isPlainObject(peek)) {
    let end = 0;
    for (const [k, v] of Object.entries(peek)) {
      if (k === '__metadata__' || !isPlainObject(v) || !Array.isArray(v.data_offsets)) continue;
      const e = v.data_offsets[1] as unknown;
      if (isCount(e)) end = Math.max(end, e);
    }
    const want = ST_PREFIX_BYTES + n + end;
    if (end > 0 && want !== buf.length) {
      return `${file} failed its SHA-256 check: it is ${buf.length} bytes but its header describes ${want}, so it was truncated or extended`;
    }
  }
  return `${file} failed its SHA-256 check: the file is corrupt (its bytes changed after it was written)`;
}

/** Format 2: DGANCKPT, header length, JSON header, arrays, SHA-256 trailer. */
function parseFormat2(buf: Buffer, file: string): Checkpoint {
  if (buf.length < PREFIX_BYTES + TRAILER_BYTES) throw new CheckpointError(`${file} is truncated (${buf.length} bytes)`);
  const bodyEnd = buf.length - TRAILER_BYTES;
  const digest = createHash('sha256').update(buf.subarray(0, bodyEnd)).digest();
  if (!digest.equals(buf.subarray(bodyEnd))) throw new CheckpointError(explainFormat2DigestFailure(buf, file));

  const hlen = buf.readUInt32LE(8);
  if (hlen === 0) throw new CheckpointError(`${file} has an empty header (length 0)`);
  if (PREFIX_BYTES + hlen > bodyEnd) {
    throw new CheckpointError(`${file} has a header length of ${hlen} bytes, more than the ${bodyEnd - PREFIX_BYTES} bytes the file has room for`);
  }
  if ((PREFIX_BYTES + hlen) % 4 !== 0) throw new CheckpointError(`${file} has a header length of ${hlen} bytes, which leaves the arrays unaligned`);
  let header: unknown;
  try {
    header = JSON.parse(utf8.decode(buf.subarray(PREFIX_BYTES, PREFIX_BYTES + hlen)));
  } catch (cause) {
    throw new CheckpointError(`${file} has a header that is not UTF-8 JSON: ${(cause as Error).message}`, { cause });
  }
  const problem = headerProblem(header, LEGACY_CHECKPOINT_FORMAT);
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

/** Format 2's digest did not match: peek at the unverified header only to say what probably happened. */
function explainFormat2DigestFailure(buf: Buffer, file: string): string {
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
      `so the file cannot be verified and is not loaded; this distgan reads formats ${LEGACY_CHECKPOINT_FORMAT} and ${CHECKPOINT_FORMAT}. ` +
      `Resume it with the distgan that wrote it, or start a new run`
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
// Header validation (both formats)

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

/** The first thing wrong with a parsed header of a file in `format`, or undefined when it is a valid CheckpointHeader. */
function headerProblem(h: unknown, format: number): string | undefined {
  if (!isPlainObject(h)) return `the header is ${describe(h)}, not a JSON object`;
  const keys = keysProblem(h, HEADER_KEYS, 'the header');
  if (keys) return keys;
  if (h.format !== format) {
    const container = format === CHECKPOINT_FORMAT ? 'a safetensors checkpoint' : `a ${MAGIC} checkpoint`;
    return `format is ${describe(h.format)}; ${container} holds format ${format}`;
  }
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
