/**
 * Checkpoint bytes made by hand, for tests of what the reader accepts and
 * refuses: format-2 files as distgan 0.2 wrote them (the reader must still
 * load them), format-3 (safetensors) files with any header and a correct
 * digest (so that a test reaches the validation after the digest), and the
 * states and headers those tests share. Written independently of
 * src/shared/checkpoint.ts's encoder on purpose.
 */
import { createHash } from 'node:crypto';
import { resolveConfig, trainingPart } from '../../src/shared/config.js';
import { TRAINER_STATE_ARRAYS, type TrainerState } from '../../src/shared/gan/api.js';
import { parameterCounts, type ModelSpec } from '../../src/shared/models/spec.js';

/** The seven arrays back to back, float32 LE (format 2's array region). */
export function arrayBytes(s: TrainerState): Buffer {
  return Buffer.concat(TRAINER_STATE_ARRAYS.map((k) => Buffer.from(s[k].buffer, s[k].byteOffset, s[k].byteLength)));
}

/**
 * A format-2 file: "DGANCKPT", uint32 LE header length, the JSON padded with
 * spaces so the arrays start 4-aligned, the arrays, SHA-256 of all of it.
 * `hlen` overrides the length field (the digest still matches the bytes).
 */
export function format2Bytes(headerJson: string, arrays: Buffer, opts: { hlen?: number } = {}): Buffer {
  let json = headerJson;
  while ((12 + Buffer.byteLength(json)) % 4 !== 0) json += ' ';
  const prefix = Buffer.alloc(12);
  prefix.write('DGANCKPT', 0, 'latin1');
  prefix.writeUInt32LE(opts.hlen ?? Buffer.byteLength(json), 8);
  const body = Buffer.concat([prefix, Buffer.from(json), arrays]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/**
 * A safetensors file with this header object (serialised as it is, padded
 * with spaces to a multiple of 8, then `extraSpaces` more) and buffer. When the
 * header has `__metadata__.sha256`, it is set to the digest of the file with
 * that value as 64 zeros, as distgan computes it; `n` overrides the length
 * field after hashing is arranged so the digest still matches.
 */
export function safetensorsBytes(header: Record<string, unknown>, data: Buffer, opts: { extraSpaces?: number; n?: number } = {}): Buffer {
  const meta = header['__metadata__'] as Record<string, unknown> | undefined;
  const zeros = '0'.repeat(64);
  const hasDigest = meta !== undefined && typeof meta === 'object' && meta !== null && 'sha256' in meta;
  if (hasDigest) meta['sha256'] = zeros;
  let json = JSON.stringify(header);
  while (Buffer.byteLength(json) % 8 !== 0) json += ' ';
  json += ' '.repeat(opts.extraSpaces ?? 0);
  const head = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(opts.n ?? head.length));
  const file = Buffer.concat([prefix, head, data]);
  if (hasDigest) {
    const at = file.indexOf(`"sha256":"${zeros}"`, 8, 'latin1') + '"sha256":"'.length;
    const digest = createHash('sha256').update(file).digest('hex');
    file.write(digest, at, 'latin1');
    meta['sha256'] = digest;
  }
  return file;
}

/** The header (JSON object) and buffer of a safetensors file. */
export function splitSafetensors(file: Buffer): { header: Record<string, unknown>; data: Buffer; n: number } {
  const n = Number(file.readBigUInt64LE(0));
  return { header: JSON.parse(file.toString('utf8', 8, 8 + n)) as Record<string, unknown>, data: file.subarray(8 + n), n };
}

/** A header input for writeCheckpoint, with `model` as given. */
export function headerInput(step: number, model: Record<string, unknown>) {
  return {
    step,
    runId: 'r',
    training: trainingPart(resolveConfig({})),
    model,
    modelFingerprint: 'm',
    datasetFingerprint: 'd',
    sampler: { epoch: 0, cursor: step * 64 },
    rng: { kind: 'counter' as const, seed: 1, step },
  };
}

/** A state of the sizes a model spec has, every value distinct-ish and finite (variances positive). */
export function stateFor(spec: ModelSpec, step: number, seed = 1): TrainerState {
  const c = parameterCounts(spec);
  const f = (n: number, k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731 * k + seed + step));
  const pos = (a: Float32Array): Float32Array => a.map((v) => Math.abs(v) + 0.01);
  return { step, gWeights: f(c.g, 1), dWeights: f(c.d, 2), bnStats: pos(f(c.bnStats, 3)), gAdamM: f(c.g, 4), gAdamV: pos(f(c.g, 5)), dAdamM: f(c.d, 6), dAdamV: pos(f(c.d, 7)) };
}
