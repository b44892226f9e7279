/**
 * Where a worker sits in a run — its rank, the world size and its GPU — from
 * explicit flags or, when those are absent, from the batch scheduler that
 * started it. Pure: the environment is passed in, so tests use their own.
 *
 * Precedence: flags win. `--rank` given → rank and world size come only from
 * flags (the scheduler's numbers are not mixed in). `--rank` absent → rank and
 * world size come from the first scheduler found, in this order, and a
 * `--world-size` flag still overrides the world size:
 *
 *  - Slurm (`srun`, one task per GPU):
 *      SLURM_PROCID  → rank (0-based, across all nodes of the step)
 *      SLURM_NTASKS  → world size
 *      SLURM_LOCALID → this task's index on its node; picks the GPU (below)
 *  - Kubernetes Indexed Job (`completionMode: Indexed`):
 *      JOB_COMPLETION_INDEX → rank
 *      DISTGAN_WORLD_SIZE   → world size (set it to the Job's `completions`;
 *                             Kubernetes exposes no such variable itself)
 *
 * GPU (`gpu`): a CUDA device ordinal as this process sees it, i.e. an index
 * into CUDA_VISIBLE_DEVICES when that is set — what initBackend's gpuIndex
 * expects.
 *  - `--gpus` with one entry → that entry; with several → undefined (the worker
 *    command starts one process per listed GPU).
 *  - Slurm: CUDA_VISIBLE_DEVICES set → index SLURM_LOCALID into it (or 0 when
 *    it names one device, as with `--gpus-per-task=1`); else SLURM_STEP_GPUS /
 *    SLURM_JOB_GPUS (physical ids, all devices visible) → the SLURM_LOCALID-th
 *    id; else SLURM_GPUS_ON_NODE > 0 → SLURM_LOCALID; else no GPU.
 *  - Kubernetes: undefined. The device plugin gives each pod exactly the GPUs
 *    it requested (`nvidia.com/gpu: 1`), which are then the default device.
 *
 * Every bad value is a ConfigError naming the variable (or flag) and the value.
 */
import { ConfigError } from './errors.js';

export interface PlacementFlags {
  /** --rank: 0-based rank of this worker. */
  rank?: number;
  /** --world-size: number of workers in the run. */
  worldSize?: number;
  /** --gpus: GPU ordinals on this node. */
  gpus?: number[];
}

export type PlacementSource = 'flags' | 'slurm' | 'kubernetes' | 'none';

export interface WorkerPlacement {
  rank?: number;
  worldSize?: number;
  gpu?: number;
  /** Where the rank came from ('flags' also when only other flags were given; 'none' when nothing said). */
  source: PlacementSource;
}

/** The environment variable that carries the world size into a Kubernetes Indexed Job's pods. */
export const K8S_WORLD_SIZE_ENV = 'DISTGAN_WORLD_SIZE';

/** Largest rank / world size accepted (matches the coordinator's --world-size limit). */
const MAX_WORLD_SIZE = 4096;

function envInt(env: NodeJS.ProcessEnv, name: string, min: number, max = MAX_WORLD_SIZE): number | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const s = raw.trim();
  if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is not an integer in [${min}, ${max}]`);
  }
  return Number(s);
}

function checkFlagInt(value: number | undefined, flag: string, min: number, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)} is not an integer in [${min}, ${max}]`);
  }
}

/** The entries of a comma-separated device list, or [] when it names no device. */
function deviceList(raw: string): string[] {
  const s = raw.trim();
  // Slurm writes "NoDevFiles" when the job has no GPUs; CUDA treats "-1" or "" as none.
  if (s === '' || s === 'NoDevFiles' || s === '-1' || s === 'none') return [];
  return s.split(',').map((p) => p.trim());
}

function slurmGpu(env: NodeJS.ProcessEnv, localId: number | undefined): number | undefined {
  const pick = (name: string, count: number): number => {
    if (count === 1) return 0;
    if (localId === undefined) {
      throw new ConfigError(`${name}=${JSON.stringify(env[name])} lists ${count} GPUs but SLURM_LOCALID is not set, so nothing says which one this task uses; start workers with srun`);
    }
    if (localId >= count) {
      throw new ConfigError(
        `SLURM_LOCALID=${localId} but ${name}=${JSON.stringify(env[name])} lists only ${count} GPUs; start one task per GPU (srun --ntasks-per-node=<GPUs per node> --gpus-per-task=1)`,
      );
    }
    return localId;
  };

  const cvd = env.CUDA_VISIBLE_DEVICES;
  if (cvd !== undefined) {
    const visible = deviceList(cvd);
    // Entries may be UUIDs or MIG names; only their count matters, since the
    // result is an ordinal within this list.
    return visible.length === 0 ? undefined : pick('CUDA_VISIBLE_DEVICES', visible.length);
  }
  for (const name of ['SLURM_STEP_GPUS', 'SLURM_JOB_GPUS']) {
    const raw = env[name];
    if (raw === undefined) continue;
    const ids = deviceList(raw);
    if (ids.length === 0) return undefined;
    for (const id of ids) {
      if (!/^\d+$/.test(id)) throw new ConfigError(`${name}=${JSON.stringify(raw)}: ${JSON.stringify(id)} is not a GPU index`);
    }
    return Number(ids[pick(name, ids.length)]);
  }
  const onNode = envInt(env, 'SLURM_GPUS_ON_NODE', 0, 1024);
  if (onNode !== undefined && onNode > 0 && localId !== undefined) {
    if (localId >= onNode) {
      throw new ConfigError(`SLURM_LOCALID=${localId} but SLURM_GPUS_ON_NODE=${onNode}; start one task per GPU`);
    }
    return localId;
  }
  return undefined;
}

/**
 * Resolves rank, world size and GPU for a worker (rules at the top of this
 * file). `flags` holds already-parsed flag values; absent flags are undefined.
 */
export function resolveWorkerPlacement(flags: PlacementFlags, env: NodeJS.ProcessEnv): WorkerPlacement {
  checkFlagInt(flags.rank, '--rank', 0, MAX_WORLD_SIZE - 1);
  checkFlagInt(flags.worldSize, '--world-size', 1, MAX_WORLD_SIZE);
  if (flags.gpus !== undefined) {
    if (flags.gpus.length === 0) throw new ConfigError('--gpus: empty GPU list');
    for (const g of flags.gpus) checkFlagInt(g, '--gpus entry', 0, 1023);
  }
  const flagGpu = flags.gpus === undefined ? undefined : flags.gpus.length === 1 ? flags.gpus[0] : undefined;
  const anyFlag = flags.rank !== undefined || flags.worldSize !== undefined || flags.gpus !== undefined;

  const inSlurm = env.SLURM_PROCID !== undefined && env.SLURM_PROCID.trim() !== '';
  const inK8s = !inSlurm && env.JOB_COMPLETION_INDEX !== undefined && env.JOB_COMPLETION_INDEX.trim() !== '';

  let placement: WorkerPlacement;
  if (inSlurm) {
    const localId = envInt(env, 'SLURM_LOCALID', 0);
    const gpu = flags.gpus !== undefined ? flagGpu : slurmGpu(env, localId);
    placement =
      flags.rank !== undefined
        ? { source: 'flags', rank: flags.rank }
        : { source: 'slurm', rank: envInt(env, 'SLURM_PROCID', 0, MAX_WORLD_SIZE - 1), worldSize: envInt(env, 'SLURM_NTASKS', 1) };
    if (gpu !== undefined) placement.gpu = gpu;
  } else if (inK8s && flags.rank === undefined) {
    placement = {
      source: 'kubernetes',
      rank: envInt(env, 'JOB_COMPLETION_INDEX', 0, MAX_WORLD_SIZE - 1),
      worldSize: envInt(env, K8S_WORLD_SIZE_ENV, 1),
      ...(flagGpu !== undefined ? { gpu: flagGpu } : {}),
    };
  } else {
    placement = {
      source: anyFlag ? 'flags' : 'none',
      ...(flags.rank !== undefined ? { rank: flags.rank } : {}),
      ...(flagGpu !== undefined ? { gpu: flagGpu } : {}),
    };
  }
  if (flags.worldSize !== undefined) placement.worldSize = flags.worldSize;
  if (placement.worldSize === undefined) delete placement.worldSize;
  if (placement.rank === undefined) delete placement.rank;

  if (placement.rank !== undefined && placement.worldSize !== undefined && placement.rank >= placement.worldSize) {
    const rankFrom = placement.source === 'slurm' ? `SLURM_PROCID=${placement.rank}` : placement.source === 'kubernetes' ? `JOB_COMPLETION_INDEX=${placement.rank}` : `--rank ${placement.rank}`;
    const sizeFrom =
      flags.worldSize !== undefined ? `--world-size ${placement.worldSize}` : placement.source === 'slurm' ? `SLURM_NTASKS=${placement.worldSize}` : `${K8S_WORLD_SIZE_ENV}=${placement.worldSize}`;
    throw new ConfigError(`rank ${rankFrom} is not below the world size ${sizeFrom}`);
  }
  return placement;
}
