/**
 * Worker processes on this machine: the one place that starts `distgan
 * worker` children. `distgan launch` starts one per GPU (or per core) beside
 * its coordinator; `distgan worker --gpus a,b` starts one per listed GPU, as
 * `torchrun --nproc-per-node` does.
 *
 * Every child
 *  - runs `distgan worker --connect E --backend B --join-timeout S`, plus
 *    `--rank firstRank+i` when ranks are given (else the coordinator numbers
 *    workers in join order), `--gpus 0` when pinned to a GPU, and extraArgs;
 *  - has DISTGAN_LAUNCHED=1 (LAUNCHED_VAR): it reads no option variables
 *    (its flags are complete) and exits when the IPC channel to this process
 *    closes, which happens even when this process is SIGKILLed, so no worker
 *    outlives its launcher;
 *  - pinned to a GPU, sees exactly that GPU: its CUDA_VISIBLE_DEVICES is the
 *    one entry cudaVisibleDeviceFor gives (counting within this process's own
 *    list, as CUDA does), so the GPU is its index 0; webgpu maps indices
 *    through that list the same way;
 *  - with --backend webgpu, gets the project's software Vulkan when the
 *    machine has no Vulkan driver (webgpuChildEnv; a note says so).
 *
 * What differs between the two callers is an option each:
 *  - output: 'inherit' (children write straight to this terminal) or a
 *    function handed each line a child writes (launch puts them in the run's
 *    log format, naming the rank);
 *  - detached: each child in its own process group, so a terminal's Ctrl-C
 *    reaches only this process, which stops them in order (launch); or in
 *    this process's group, so Ctrl-C stops them all at once (worker).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { cudaVisibleDeviceFor, type BackendRequest } from '../shared/compute/backends.js';
import { webgpuChildEnv } from '../shared/compute/vulkan-env.js';
import { CLI_BIN } from '../shared/version.js';
import { LAUNCHED_VAR } from './env.js';

/** After stop()'s grace period: how long to wait for SIGKILLed workers to be reaped, in ms. */
const KILL_WAIT_MS = 5000;

/** One worker process. Fields change as it runs. */
export interface LocalWorker {
  /** Position among the workers started together, from 0. */
  readonly index: number;
  /** The --rank it was given, or undefined (the coordinator assigns one). */
  readonly rank: number | undefined;
  /** Its process id; undefined when it could not be started. */
  readonly pid: number | undefined;
  /** True once it has exited or failed to start. */
  exited: boolean;
  /** Its exit code; null while running, after a signal or a failed start. */
  code: number | null;
  /** The signal that ended it, or null. */
  signal: NodeJS.Signals | null;
  /** How it ended, for a log line: "(pid 12) exited with code 1", "could not be started: …"; '' while running. */
  how: string;
}

export interface LocalWorkerOptions {
  /** The coordinator's endpoint (--connect). */
  connect: string;
  /** What each process runs: `distgan worker` (default), or `distgan reducer` (a shard owner of a sharded reduction; no rank, backend or GPU). */
  role?: 'worker' | 'reducer';
  /** --backend of every worker. */
  backend: BackendRequest;
  /** --join-timeout of every worker, in seconds. */
  joinTimeoutS: number;
  /** How many workers. With `gpus`, must equal gpus.length. */
  count: number;
  /** Worker i gets --rank firstRank + i (default: no --rank, ranks in join order). */
  firstRank?: number;
  /** Worker i's GPU, a local index counted within this process's CUDA_VISIBLE_DEVICES (default: not pinned). */
  gpus?: readonly number[];
  /** What names the GPU list in errors (default '--gpus'). */
  gpusLabel?: string;
  /** Further `distgan worker` arguments given to every worker, e.g. --dataset or the CURVE key files (default none). */
  extraArgs?: readonly string[];
  /** 'inherit', or a function that receives each line a worker writes on stdout or stderr. */
  output: 'inherit' | ((line: string, worker: LocalWorker) => void);
  /** Each worker in its own process group (see the file comment). */
  detached: boolean;
  /** Called once per worker when it exits or fails to start. */
  onExit?: (worker: LocalWorker) => void;
  /** Receives notes about the workers' environment (default: dropped). */
  log?: (line: string) => void;
  /** The environment the workers' environments are made from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface LocalWorkerGroup {
  readonly workers: readonly LocalWorker[];
  /** Resolves once every worker has exited: the worst exit code, a signal or a failed start counting as 1. */
  readonly done: Promise<number>;
  /**
   * Waits up to `graceMs` for every worker to exit, then SIGKILLs the ones
   * left (their process group when detached) and waits up to 5 s more.
   */
  stop(graceMs: number): Promise<void>;
}

/**
 * Starts the workers. Every GPU is mapped to its CUDA device before the first
 * process starts, so a bad --gpus entry (ConfigError) starts none.
 */
export function startLocalWorkers(opts: LocalWorkerOptions): LocalWorkerGroup {
  const base = opts.env ?? process.env;
  if (opts.gpus && opts.gpus.length !== opts.count) {
    throw new Error(`startLocalWorkers: ${opts.count} workers but ${opts.gpus.length} GPUs`);
  }
  const devices = opts.gpus?.map((gpu) => cudaVisibleDeviceFor(gpu, base.CUDA_VISIBLE_DEVICES, opts.gpusLabel ?? '--gpus'));
  const vk = opts.backend === 'webgpu' ? webgpuChildEnv(base) : { env: base };
  if (vk.note) opts.log?.(vk.note);

  const workers: LocalWorker[] = [];
  const exits: Promise<void>[] = [];
  for (let index = 0; index < opts.count; index++) {
    const rank = opts.firstRank === undefined ? undefined : opts.firstRank + index;
    const args =
      opts.role === 'reducer'
        ? [CLI_BIN, 'reducer', '--connect', opts.connect, '--idle-timeout', String(Math.max(opts.joinTimeoutS, 600))]
        : [CLI_BIN, 'worker', '--connect', opts.connect, '--backend', opts.backend, '--join-timeout', String(opts.joinTimeoutS)];
    if (rank !== undefined && opts.role !== 'reducer') args.push('--rank', String(rank));
    const env: NodeJS.ProcessEnv = { ...vk.env, [LAUNCHED_VAR]: '1' };
    const device = devices?.[index];
    if (device !== undefined) {
      env.CUDA_VISIBLE_DEVICES = device;
      args.push('--gpus', '0');
    }
    args.push(...(opts.extraArgs ?? []));
    const piped = opts.output !== 'inherit';
    const proc = spawn(process.execPath, args, {
      stdio: ['ignore', piped ? 'pipe' : 'inherit', piped ? 'pipe' : 'inherit', 'ipc'],
      env,
      detached: opts.detached,
    });
    const worker: LocalWorker = { index, rank, pid: proc.pid, exited: false, code: null, signal: null, how: '' };
    workers.push(worker);
    if (typeof opts.output === 'function') {
      const print = opts.output;
      pipeLines(proc.stdout, (line) => print(line, worker));
      pipeLines(proc.stderr, (line) => print(line, worker));
    }
    exits.push(watchExit(proc, worker, opts.onExit));
  }

  const allExited = Promise.all(exits).then(() => undefined);
  const done = allExited.then(() => workers.reduce((worst, w) => Math.max(worst, w.code ?? 1), 0));
  const stop = async (graceMs: number): Promise<void> => {
    if (await settlesWithin(allExited, graceMs)) return;
    for (const w of workers) if (!w.exited && w.pid !== undefined) kill(w.pid, opts.detached);
    await settlesWithin(allExited, KILL_WAIT_MS);
  };
  return { workers, done, stop };
}

/** Resolves when `proc` has exited, or failed to start, after updating `worker` and calling onExit once. */
function watchExit(proc: ChildProcess, worker: LocalWorker, onExit: ((w: LocalWorker) => void) | undefined): Promise<void> {
  return new Promise((resolve) => {
    const settle = (how: string): void => {
      if (worker.exited) return;
      worker.exited = true;
      worker.how = how;
      onExit?.(worker);
      resolve();
    };
    proc.on('exit', (code, signal) => {
      worker.code = code;
      worker.signal = signal;
      settle(`(pid ${proc.pid}) exited ${signal ? `on signal ${signal}` : `with code ${code}`}`);
    });
    // 'error' also reports a failed kill or IPC send on a running process;
    // only a process that never got a pid has ended with it.
    proc.on('error', (e) => {
      if (proc.pid === undefined) settle(`could not be started: ${e.message}`);
    });
  });
}

/** SIGKILL a worker, its whole process group when it leads one. */
function kill(pid: number, group: boolean): void {
  try {
    process.kill(group ? -pid : pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** True when `p` settles within `ms`. */
async function settlesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Hands each line of `stream` to `print`, the last one even without a newline. */
function pipeLines(stream: NodeJS.ReadableStream | null, print: (line: string) => void): void {
  if (!stream) return;
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      print(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => {
    if (buf) print(buf);
  });
}

/** GPUs nvidia-smi lists, as local indices, or none. Bounded: a wedged driver must not hang the launcher. */
export function detectGpus(): number[] {
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').filter((l) => /^GPU \d+/.test(l)).map((_, i) => i);
  } catch {
    return [];
  }
}

/** Default worker count with no GPU: one per core (tfjs's wasm threads do not work in Node). */
export function defaultWorkerCount(): number {
  return Math.max(1, availableParallelism());
}
