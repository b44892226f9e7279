/**
 * Checkpoint files: everything needed to continue a run bit-exactly.
 *
 * Layout of `checkpoints/step-XXXXXXXX.ckpt`:
 *
 *   bytes 0..7    magic "DGANCKPT"
 *   bytes 8..11   header length H (uint32 LE)
 *   bytes 12..    header: UTF-8 JSON (CheckpointHeader), padded with spaces to a multiple of 4
 *   then          the arrays named in header.arrays, float32 LE, back to back
 *
 * The header records the step, the training config and model spec the state
 * belongs to, the sampler position and RNG state, array lengths, and a
 * SHA-256 of the array bytes, so a truncated or altered file is refused with
 * a CheckpointError rather than loaded. Files are written to a temp name,
 * fsynced and renamed, so a crash never leaves a half-written checkpoint under
 * the real name; only the newest `keep` are kept.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CheckpointError } from './errors.js';
import { TRAINER_STATE_ARRAYS as ARRAY_KEYS, type TrainerState } from './gan/api.js';
import type { TrainingConfig } from './config.js';
import type { SamplerPosition } from './data/sampler.js';

const MAGIC = 'DGANCKPT';
const FORMAT_VERSION = 1;

export interface CheckpointHeader {
  format: number;
  step: number;
  runId: string;
  createdAt: string;
  training: TrainingConfig;
  model: Record<string, unknown>;
  modelFingerprint: string;
  datasetFingerprint: string;
  sampler: SamplerPosition;
  /** Counter-based RNG: the seed and the step are the whole state. */
  rng: { kind: 'counter'; seed: number; step: number };
  arrays: Record<(typeof ARRAY_KEYS)[number], number>;
  sha256: string;
}

export interface Checkpoint {
  header: CheckpointHeader;
  state: TrainerState;
  path: string;
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}.ckpt`;
}

function arraysOf(state: TrainerState): Float32Array[] {
  return ARRAY_KEYS.map((k) => state[k]);
}

/** Writes atomically and prunes old checkpoints. Returns the final path. */
export async function writeCheckpoint(
  dir: string,
  header: Omit<CheckpointHeader, 'format' | 'arrays' | 'sha256' | 'createdAt'>,
  state: TrainerState,
  keep: number,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const arrays = arraysOf(state);
  const hash = createHash('sha256');
  for (const a of arrays) hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const full: CheckpointHeader = {
    ...header,
    format: FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    arrays: Object.fromEntries(ARRAY_KEYS.map((k) => [k, state[k].length])) as CheckpointHeader['arrays'],
    sha256: hash.digest('hex'),
  };
  let json = JSON.stringify(full);
  while ((12 + Buffer.byteLength(json)) % 4 !== 0) json += ' ';
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(Buffer.byteLength(json), 8);
  const finalPath = join(dir, checkpointName(header.step));
  const tmp = `${finalPath}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.write(head);
    await fh.write(Buffer.from(json));
    for (const a of arrays) await fh.write(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, finalPath);
  await prune(dir, keep);
  return finalPath;
}

async function prune(dir: string, keep: number): Promise<void> {
  const files = (await readdir(dir)).filter((f) => /^step-\d{8}\.ckpt$/.test(f)).sort();
  for (const f of files.slice(0, Math.max(0, files.length - keep))) await rm(join(dir, f), { force: true });
}

/** A run folder (its newest checkpoint), a checkpoints/ folder, or a .ckpt file. */
export async function resolveCheckpointPath(path: string): Promise<string> {
  const abs = resolve(path);
  let st;
  try {
    st = await stat(abs);
  } catch (cause) {
    throw new CheckpointError(`checkpoint ${path} does not exist`, { cause });
  }
  if (st.isFile()) return abs;
  for (const dir of [join(abs, 'checkpoints'), abs]) {
    let files: string[];
    try {
      files = (await readdir(dir)).filter((f) => /^step-\d{8}\.ckpt$/.test(f)).sort();
    } catch {
      continue;
    }
    if (files.length > 0) return join(dir, files[files.length - 1]!);
  }
  throw new CheckpointError(`no checkpoint (checkpoints/step-*.ckpt) found under ${path}`);
}

export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const file = await resolveCheckpointPath(path);
  const buf = await readFile(file);
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) throw new CheckpointError(`${file} is not a distgan checkpoint (bad magic)`);
  const hlen = buf.readUInt32LE(8);
  if (12 + hlen > buf.length) throw new CheckpointError(`${file} is truncated (header runs past the end)`);
  let header: CheckpointHeader;
  try {
    header = JSON.parse(buf.toString('utf8', 12, 12 + hlen)) as CheckpointHeader;
  } catch (cause) {
    throw new CheckpointError(`${file} has a corrupt header`, { cause });
  }
  if (header.format !== FORMAT_VERSION) throw new CheckpointError(`${file} has format ${header.format}; this distgan reads ${FORMAT_VERSION}`);
  let offset = 12 + hlen;
  const total = ARRAY_KEYS.reduce((n, k) => n + (header.arrays?.[k] ?? NaN) * 4, 0);
  if (!Number.isFinite(total) || offset + total !== buf.length) {
    throw new CheckpointError(`${file} is truncated or has trailing data: ${buf.length - offset} array bytes, header says ${total}`);
  }
  const body = new Uint8Array(buf.buffer, buf.byteOffset + offset, total);
  const sha = createHash('sha256').update(body).digest('hex');
  if (sha !== header.sha256) throw new CheckpointError(`${file} failed its SHA-256 check: the file is corrupt`);
  // Copy into a fresh aligned buffer so the arrays do not pin the whole file.
  const aligned = new Float32Array(total / 4);
  new Uint8Array(aligned.buffer).set(body);
  const state: Record<string, unknown> = { step: header.step };
  let at = 0;
  for (const k of ARRAY_KEYS) {
    const n = header.arrays[k];
    state[k] = aligned.subarray(at, at + n);
    at += n;
  }
  offset += total;
  return { header, state: state as unknown as TrainerState, path: file };
}
