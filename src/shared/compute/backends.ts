/**
 * The list of compute backends and the GPU-index rules: the one place that
 * says which `--backend` values exist and how a local GPU index becomes a
 * CUDA device. The option table (config.ts), every command's flags, the
 * CLI's local worker launcher and backend selection (backend.ts) all read it
 * from here.
 *
 * Light on purpose: it imports no tfjs, so parsing flags or a config file
 * loads no backend. backend.ts, which does load them, builds on this file.
 */
import { ConfigError } from '../errors.js';

/** What the user may ask for (`--backend`). */
export type BackendRequest = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
/** What a process ends up computing on (`auto` resolves to one of these). */
export type BackendName = Exclude<BackendRequest, 'auto'>;

/** Every valid `--backend` value, `auto` first (the default). */
export const BACKEND_REQUESTS: readonly BackendRequest[] = Object.freeze(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const);

/** Validates a `--backend` value. Throws ConfigError naming the valid ones. */
export function parseBackendRequest(value: string): BackendRequest {
  if ((BACKEND_REQUESTS as readonly string[]).includes(value)) return value as BackendRequest;
  throw new ConfigError(`--backend: unknown backend "${value}"; expected one of ${BACKEND_REQUESTS.join(', ')}`);
}

/** Highest GPU index `--gpus` accepts. */
export const MAX_GPU_INDEX = 1023;

/**
 * Parses a GPU list such as "0,1,3" (`--gpus`, DISTGAN_GPUS) into indices on
 * this node. `label` names the flag or variable in errors (default --gpus).
 * Throws ConfigError for an empty list, a non-integer, an index outside
 * [0, MAX_GPU_INDEX], or a GPU listed twice.
 */
export function parseGpuList(raw: string, label = '--gpus'): number[] {
  const ids = raw.split(',').map((s) => s.trim()).map((p) => {
    const n = /^\d+$/.test(p) ? Number(p) : NaN;
    if (!Number.isInteger(n) || n > MAX_GPU_INDEX) {
      throw new ConfigError(`${label}: ${JSON.stringify(p)} is not an integer in [0, ${MAX_GPU_INDEX}]`);
    }
    return n;
  });
  if (ids.length === 0) throw new ConfigError(`${label}: empty GPU list`);
  if (new Set(ids).size !== ids.length) throw new ConfigError(`${label}: ${JSON.stringify(raw)} lists a GPU twice`);
  return ids;
}

/**
 * The CUDA_VISIBLE_DEVICES entry for local GPU `gpuIndex`, as CUDA counts:
 * an index into `visible` (this process's CUDA_VISIBLE_DEVICES) when that
 * lists devices, as torchrun's local ranks do, else the index itself.
 * Used both to pin a worker process to its GPU (the launcher sets the
 * child's CUDA_VISIBLE_DEVICES to this one entry) and, in-process, before
 * libtensorflow loads. `label` names the setting in errors (default "GPU index").
 * Throws ConfigError when the list is shorter than `gpuIndex + 1`.
 */
export function cudaVisibleDeviceFor(gpuIndex: number, visible: string | undefined, label = 'GPU index'): string {
  if (visible === undefined || visible.trim() === '') return String(gpuIndex);
  const entries = visible.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const entry = entries[gpuIndex];
  if (entry === undefined) {
    throw new ConfigError(`${label} ${gpuIndex} is out of range: CUDA_VISIBLE_DEVICES=${visible} lists ${entries.length} device(s)`);
  }
  return entry;
}
