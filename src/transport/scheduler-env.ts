/**
 * Where a worker sits in a run — its rank, the world size and its GPU — and
 * where the coordinator is, from explicit settings or from the launcher that
 * started the process. Pure: the environment is passed in, so tests use their own.
 *
 * Precedence, highest first (docs/configuration.md):
 *
 *   1. flags: --rank, --world-size, --gpus
 *   2. distgan's variables: DISTGAN_RANK, DISTGAN_WORLD_SIZE, DISTGAN_GPUS
 *   3. the launcher that started this process, the innermost one first:
 *      torchrun > MPI > Slurm > Kubernetes
 *
 * Launchers nest: torchrun or mpirun run inside a Slurm allocation, and
 * anything runs inside a pod. An outer launcher's variables are inherited by
 * everything below it and describe the outer task (under `mpirun` in a batch
 * script, SLURM_PROCID is the batch step's 0 in every rank), so the innermost
 * launcher, whose variables were set for this very process, is asked first.
 *
 * Rank and world size come as a pair from the one launcher found first (found
 * by its rank or local-rank variable); they are not mixed across launchers.
 * An explicit rank (1, 2) means no launcher rank or world size is used; an
 * explicit world size overrides the launcher's.
 *
 *  - torchrun:   RANK → rank, WORLD_SIZE → world size, LOCAL_RANK → GPU
 *  - Open MPI:   OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
 *  - MPICH/PMI:  PMI_RANK, PMI_SIZE, MPI_LOCALRANKID (Hydra; Intel MPI)
 *  - Slurm (`srun`, one task per GPU):
 *      SLURM_PROCID  → rank (0-based, across all nodes of the step)
 *      SLURM_NTASKS  → world size
 *      SLURM_LOCALID → this task's index on its node; picks the GPU (below)
 *  - Kubernetes Indexed Job (`completionMode: Indexed`):
 *      JOB_COMPLETION_INDEX → rank; the world size is DISTGAN_WORLD_SIZE
 *      (set it to the Job's `completions`; Kubernetes exposes no such variable)
 *
 * GPU (`gpu`): a CUDA device ordinal as this process sees it, i.e. an index
 * into CUDA_VISIBLE_DEVICES when that is set — what initBackend's gpuIndex
 * expects.
 *  - `--gpus` / DISTGAN_GPUS with one entry → that entry; with several →
 *    undefined, and `gpus` holds the list (the worker command starts one
 *    process per listed GPU).
 *  - torchrun / MPI: the local rank, as `torch.cuda.set_device(LOCAL_RANK)`
 *    does; when CUDA_VISIBLE_DEVICES names one device it is ordinal 0, when
 *    it names none there is no GPU.
 *  - Slurm: CUDA_VISIBLE_DEVICES set → index SLURM_LOCALID into it (or 0 when
 *    it names one device, as with `--gpus-per-task=1`); else SLURM_STEP_GPUS /
 *    SLURM_JOB_GPUS (physical ids, all devices visible) → the SLURM_LOCALID-th
 *    id; else SLURM_GPUS_ON_NODE > 0 → SLURM_LOCALID; else no GPU.
 *  - Kubernetes: undefined. The device plugin gives each pod exactly the GPUs
 *    it requested (`nvidia.com/gpu: 1`), which are then the default device.
 *
 * The coordinator's address (`masterEndpoint`) follows torchrun's env://
 * convention: MASTER_ADDR and MASTER_PORT, below --connect/--bind and
 * DISTGAN_CONNECT/DISTGAN_BIND.
 *
 * An empty variable counts as unset. Every bad value is a ConfigError naming
 * the variable (or flag) and the value.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../shared/errors.js';
import { parseGpuList } from '../shared/compute/backends.js';

export interface PlacementFlags {
  /** --rank: 0-based rank of this worker. */
  rank?: number;
  /** --world-size: number of workers in the run. */
  worldSize?: number;
  /** --gpus: GPU ordinals on this node. */
  gpus?: number[];
}

/** Where the rank came from: 'flags' / 'distgan-env' also when only other explicit settings were given; 'none' when nothing said. */
export type PlacementSource = 'flags' | 'distgan-env' | 'torchrun' | 'mpi' | 'slurm' | 'kubernetes' | 'none';

export interface WorkerPlacement {
  rank?: number;
  worldSize?: number;
  gpu?: number;
  /** An explicit GPU list with several entries: start one worker process per GPU. */
  gpus?: number[];
  source: PlacementSource;
  /** Where each value came from, as --dry-run prints it ('flag:--rank', 'env:SLURM_PROCID', …). */
  sources: { rank?: string; worldSize?: string; gpu?: string };
}

/** The environment variable that carries the world size into a Kubernetes Indexed Job's pods (also DISTGAN_<FLAG> of --world-size). */
export const K8S_WORLD_SIZE_ENV = 'DISTGAN_WORLD_SIZE';

/** Largest rank / world size accepted (matches the coordinator's --world-size limit). */
const MAX_WORLD_SIZE = 4096;

/** A launcher's variables: how it names rank, world size and local rank. */
interface Launcher {
  source: PlacementSource;
  rank: string;
  size?: string;
  local?: string;
}

/** The launchers distgan knows, innermost first (see the top of this file). */
export const LAUNCHERS: readonly Launcher[] = [
  { source: 'torchrun', rank: 'RANK', size: 'WORLD_SIZE', local: 'LOCAL_RANK' },
  { source: 'mpi', rank: 'OMPI_COMM_WORLD_RANK', size: 'OMPI_COMM_WORLD_SIZE', local: 'OMPI_COMM_WORLD_LOCAL_RANK' },
  { source: 'mpi', rank: 'PMI_RANK', size: 'PMI_SIZE', local: 'MPI_LOCALRANKID' },
  { source: 'slurm', rank: 'SLURM_PROCID', size: 'SLURM_NTASKS', local: 'SLURM_LOCALID' },
  { source: 'kubernetes', rank: 'JOB_COMPLETION_INDEX' },
];

function isSet(env: NodeJS.ProcessEnv, name: string | undefined): boolean {
  return name !== undefined && env[name] !== undefined && env[name]!.trim() !== '';
}

function envInt(env: NodeJS.ProcessEnv, name: string | undefined, min: number, max = MAX_WORLD_SIZE): number | undefined {
  if (name === undefined || !isSet(env, name)) return undefined;
  const raw = env[name]!;
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

interface GpuPick {
  gpu: number;
  /** The variable that chose it. */
  from: string;
}

/** Picks the local-th of `count` devices listed in `name`; one listed device is ordinal 0 whatever the local rank. */
function pickListed(env: NodeJS.ProcessEnv, name: string, count: number, localName: string, local: number | undefined): GpuPick {
  if (count === 1) return { gpu: 0, from: name };
  if (local === undefined) {
    throw new ConfigError(`${name}=${JSON.stringify(env[name])} lists ${count} GPUs but ${localName} is not set, so nothing says which one this task uses; start workers with srun`);
  }
  if (local >= count) {
    throw new ConfigError(
      `${localName}=${local} but ${name}=${JSON.stringify(env[name])} lists only ${count} GPUs; start one task per GPU (srun --ntasks-per-node=<GPUs per node> --gpus-per-task=1)`,
    );
  }
  return { gpu: local, from: localName };
}

function slurmGpu(env: NodeJS.ProcessEnv, localId: number | undefined): GpuPick | undefined {
  const cvd = env.CUDA_VISIBLE_DEVICES;
  if (cvd !== undefined) {
    const visible = deviceList(cvd);
    // Entries may be UUIDs or MIG names; only their count matters, since the
    // result is an ordinal within this list.
    return visible.length === 0 ? undefined : pickListed(env, 'CUDA_VISIBLE_DEVICES', visible.length, 'SLURM_LOCALID', localId);
  }
  for (const name of ['SLURM_STEP_GPUS', 'SLURM_JOB_GPUS']) {
    const raw = env[name];
    if (raw === undefined) continue;
    const ids = deviceList(raw);
    if (ids.length === 0) return undefined;
    for (const id of ids) {
      if (!/^\d+$/.test(id)) throw new ConfigError(`${name}=${JSON.stringify(raw)}: ${JSON.stringify(id)} is not a GPU index`);
    }
    const p = pickListed(env, name, ids.length, 'SLURM_LOCALID', localId);
    return { gpu: Number(ids[p.gpu]), from: p.from };
  }
  const onNode = envInt(env, 'SLURM_GPUS_ON_NODE', 0, 1024);
  if (onNode !== undefined && onNode > 0 && localId !== undefined) {
    if (localId >= onNode) {
      throw new ConfigError(`SLURM_LOCALID=${localId} but SLURM_GPUS_ON_NODE=${onNode}; start one task per GPU`);
    }
    return { gpu: localId, from: 'SLURM_LOCALID' };
  }
  return undefined;
}

/** torchrun / MPI: the local rank is the device ordinal, counted within CUDA_VISIBLE_DEVICES when that is set. */
function localRankGpu(env: NodeJS.ProcessEnv, localName: string, local: number | undefined): GpuPick | undefined {
  if (local === undefined) return undefined;
  const cvd = env.CUDA_VISIBLE_DEVICES;
  if (cvd !== undefined) {
    const visible = deviceList(cvd);
    if (visible.length === 0) return undefined;
    if (visible.length === 1) return { gpu: 0, from: 'CUDA_VISIBLE_DEVICES' };
    if (local >= visible.length) {
      throw new ConfigError(`${localName}=${local} but CUDA_VISIBLE_DEVICES=${JSON.stringify(cvd)} lists only ${visible.length} GPUs; start at most one process per visible GPU on a node`);
    }
  }
  return { gpu: local, from: localName };
}

/** An explicit value (flag or DISTGAN_ variable) and how to name it in errors. */
interface Explicit<T> {
  value: T;
  source: string;
  /** '--rank 2' or 'DISTGAN_RANK=2'. */
  shown: string;
}

function explicitInt(flag: number | undefined, flagName: string, env: NodeJS.ProcessEnv, envName: string, min: number, max: number): Explicit<number> | undefined {
  if (flag !== undefined) {
    checkFlagInt(flag, flagName, min, max);
    return { value: flag, source: `flag:${flagName}`, shown: `${flagName} ${flag}` };
  }
  const v = envInt(env, envName, min, max);
  return v === undefined ? undefined : { value: v, source: `env:${envName}`, shown: `${envName}=${v}` };
}

/**
 * Resolves rank, world size and GPU for a worker (rules at the top of this
 * file). `flags` holds already-parsed flag values; absent flags are undefined.
 */
export function resolveWorkerPlacement(flags: PlacementFlags, env: NodeJS.ProcessEnv): WorkerPlacement {
  const rank = explicitInt(flags.rank, '--rank', env, 'DISTGAN_RANK', 0, MAX_WORLD_SIZE - 1);
  const size = explicitInt(flags.worldSize, '--world-size', env, K8S_WORLD_SIZE_ENV, 1, MAX_WORLD_SIZE);
  let gpus: Explicit<number[]> | undefined;
  if (flags.gpus !== undefined) {
    if (flags.gpus.length === 0) throw new ConfigError('--gpus: empty GPU list');
    for (const g of flags.gpus) checkFlagInt(g, '--gpus entry', 0, 1023);
    gpus = { value: flags.gpus, source: 'flag:--gpus', shown: `--gpus ${flags.gpus.join(',')}` };
  } else if (isSet(env, 'DISTGAN_GPUS')) {
    gpus = { value: parseGpuList(env.DISTGAN_GPUS!, 'DISTGAN_GPUS'), source: 'env:DISTGAN_GPUS', shown: `DISTGAN_GPUS=${env.DISTGAN_GPUS}` };
  }

  const launcher = LAUNCHERS.find((l) => isSet(env, l.rank) || isSet(env, l.local));
  const placement: WorkerPlacement = { source: 'none', sources: {} };
  let rankShown: string | undefined;
  let sizeShown: string | undefined;

  if (rank) {
    placement.rank = rank.value;
    placement.sources.rank = rank.source;
    placement.source = rank.source.startsWith('flag:') ? 'flags' : 'distgan-env';
    rankShown = rank.shown;
  } else if (launcher) {
    // Rank and world size as a pair from the launcher; a bad launcher rank does not matter under an explicit one.
    placement.source = launcher.source;
    const r = envInt(env, launcher.rank, 0, MAX_WORLD_SIZE - 1);
    if (r !== undefined) {
      placement.rank = r;
      placement.sources.rank = `env:${launcher.rank}`;
      rankShown = `${launcher.rank}=${r}`;
    }
    const n = envInt(env, launcher.size, 1);
    if (n !== undefined && !size) {
      placement.worldSize = n;
      placement.sources.worldSize = `env:${launcher.size}`;
      sizeShown = `${launcher.size}=${n}`;
    }
  } else if (flags.worldSize !== undefined || flags.gpus !== undefined) {
    placement.source = 'flags';
  } else if (size || gpus) {
    placement.source = 'distgan-env';
  }
  if (size) {
    placement.worldSize = size.value;
    placement.sources.worldSize = size.source;
    sizeShown = size.shown;
  }

  if (gpus) {
    if (gpus.value.length === 1) {
      placement.gpu = gpus.value[0]!;
      placement.sources.gpu = gpus.source;
    } else {
      placement.gpus = gpus.value;
    }
  } else if (launcher?.local !== undefined) {
    const local = envInt(env, launcher.local, 0, 1023);
    const pick = launcher.source === 'slurm' ? slurmGpu(env, local) : localRankGpu(env, launcher.local, local);
    if (pick) {
      placement.gpu = pick.gpu;
      placement.sources.gpu = `env:${pick.from}`;
    }
  }

  if (placement.rank !== undefined && placement.worldSize !== undefined && placement.rank >= placement.worldSize) {
    throw new ConfigError(`rank ${rankShown} is not below the world size ${sizeShown}`);
  }
  return placement;
}

/** A coordinator endpoint and where it came from. */
export interface Endpoint {
  endpoint: string;
  source: string;
  /** A line to tell the user how the endpoint was derived, when that is not obvious. */
  note?: string;
}

/**
 * The coordinator's endpoint from torchrun's MASTER_ADDR and MASTER_PORT, or
 * undefined when neither is set (one without the other is an error).
 *
 * - `connect` (worker): tcp://MASTER_ADDR:MASTER_PORT; a host name is fine.
 * - `bind` (coordinator): tcp://MASTER_ADDR:MASTER_PORT when MASTER_ADDR is an
 *   IP address (`localhost` counts as 127.0.0.1). Binding to the address the
 *   workers are told to use listens on exactly the network they come from and
 *   keeps a loopback run on loopback. ZeroMQ cannot bind to a host name,
 *   though, and Slurm scripts usually set MASTER_ADDR to one (the first node's
 *   name), so a host name binds every interface, tcp://0.0.0.0:MASTER_PORT, as
 *   torch's own TCPStore does; a note says so.
 */
export function masterEndpoint(env: NodeJS.ProcessEnv, role: 'connect' | 'bind'): Endpoint | undefined {
  const addrSet = isSet(env, 'MASTER_ADDR');
  const portSet = isSet(env, 'MASTER_PORT');
  if (!addrSet && !portSet) return undefined;
  const flag = role === 'connect' ? '--connect' : '--bind';
  if (!addrSet) throw new ConfigError(`MASTER_PORT=${JSON.stringify(env.MASTER_PORT)} is set but MASTER_ADDR is not: set both (torchrun's convention), or give ${flag}`);
  if (!portSet) throw new ConfigError(`MASTER_ADDR=${JSON.stringify(env.MASTER_ADDR)} is set but MASTER_PORT is not: set both (torchrun's convention), or give ${flag}`);
  const port = envInt(env, 'MASTER_PORT', 1, 65535)!;
  const addr = env.MASTER_ADDR!.trim().replace(/^\[(.*)\]$/, '$1');
  if (/[\s/]/.test(addr)) throw new ConfigError(`MASTER_ADDR=${JSON.stringify(env.MASTER_ADDR)} is not a host name or IP address`);
  const source = 'env:MASTER_ADDR+MASTER_PORT';
  const host = (a: string): string => (isIP(a) === 6 ? `[${a}]` : a);
  if (role === 'connect') return { endpoint: `tcp://${host(addr)}:${port}`, source };
  if (addr === 'localhost') return { endpoint: `tcp://127.0.0.1:${port}`, source };
  if (isIP(addr) !== 0) return { endpoint: `tcp://${host(addr)}:${port}`, source };
  const endpoint = `tcp://0.0.0.0:${port}`;
  return {
    endpoint,
    source,
    note: `MASTER_ADDR=${addr} is a host name, which ZeroMQ cannot bind to: listening on every interface (${endpoint}); give --bind tcp://<this host's address>:${port} to listen on one`,
  };
}
