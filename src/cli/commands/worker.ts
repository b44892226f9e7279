/**
 * `distgan worker`: joins a coordinator. With several --gpus it starts one
 * worker process per GPU (local-workers.ts), as `torchrun --nproc-per-node`
 * does, each with CUDA_VISIBLE_DEVICES set to its GPU, and exits with the
 * worst of their exit codes.
 *
 * Every option may also come from its DISTGAN_ variable (--connect →
 * DISTGAN_CONNECT), and rank, world size, GPU and coordinator address from
 * the launcher that started the process — torchrun's RANK / WORLD_SIZE /
 * LOCAL_RANK / MASTER_ADDR / MASTER_PORT, MPI, Slurm, a Kubernetes Indexed
 * Job — so `RANK=1 WORLD_SIZE=2 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500
 * distgan worker` needs no flag (src/transport/scheduler-env.ts has the order).
 * A worker started by `launch` or by a fanning-out worker (DISTGAN_LAUNCHED=1)
 * reads no variables: its parent passes everything as flags.
 */
import type { Command } from 'commander';
import type { Dealer } from 'zeromq';
import { int, num, oneOf, type RawValue } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';
import { BACKEND_REQUESTS, parseGpuList, type BackendRequest } from '../../shared/compute/backends.js';
import { initBackend } from '../../shared/compute/backend.js';
import { openDataset } from '../../shared/data/open.js';
import { readEnv } from '../env.js';
import { VERSION } from '../../shared/version.js';
import { masterEndpoint, resolveWorkerPlacement, type WorkerPlacement } from '../../transport/scheduler-env.js';
import { checkEndpoint } from '../../transport/endpoints.js';
import { ENV_HELP, commandValue, rawString } from '../run-options.js';
import { applyClientCurve, readPublicKeyFile, readSecretKeyFile } from '../../transport/curve.js';
import { Worker } from '../../worker/worker.js';
import { logLine } from '../output.js';
import { startLocalWorkers } from '../local-workers.js';

/** A worker's options, resolved from flags, DISTGAN_ variables and the launcher's environment. */
interface WorkerSettings {
  connect: string;
  backend: BackendRequest;
  dataset?: string;
  joinTimeout: number;
  curveSecretKey?: string;
  coordinatorPublicKey?: string;
  placement: WorkerPlacement;
  /** Where each value came from, for --dry-run. */
  sources: Record<string, string>;
}

const DEFAULT_JOIN_TIMEOUT_S = 180;

/** Resolves the worker's options (flag > DISTGAN_ variable > launcher variables > default). */
function resolveWorker(command: Command, env: NodeJS.ProcessEnv): WorkerSettings {
  const sources: Record<string, string> = {};
  const value = (key: string): RawValue | undefined => {
    const v = commandValue(command, key, env);
    if (v) sources[key] = v.source;
    return v;
  };
  const given = value('connect');
  const master = given ? undefined : masterEndpoint(env, 'connect');
  if (!given && !master) {
    throw new ConfigError("no coordinator to join: give --connect tcp://HOST:PORT (or set DISTGAN_CONNECT), or set MASTER_ADDR and MASTER_PORT as for torchrun");
  }
  const connect = given ? String(given.value) : master!.endpoint;
  if (master) sources.connect = master.source;
  const connectLabel = given ? rawString(given).label : 'MASTER_ADDR/MASTER_PORT';
  checkEndpoint(connect, connectLabel);

  const backendV = value('backend');
  const backend = backendV ? oneOf(BACKEND_REQUESTS)(backendV.value, rawString(backendV).label) : 'auto';
  sources.backend ??= 'default';
  const timeoutV = value('joinTimeout');
  const joinTimeout = timeoutV ? num(0, 86400, { exclusiveMin: true })(timeoutV.value, rawString(timeoutV).label) : DEFAULT_JOIN_TIMEOUT_S;
  sources.joinTimeout ??= 'default';
  const dataset = value('dataset');
  const secret = value('curveSecretKey');
  const server = value('coordinatorPublicKey');
  if ((secret === undefined) !== (server === undefined)) {
    throw new ConfigError('--curve-secret-key and --coordinator-public-key go together');
  }

  // Flags here; DISTGAN_RANK / DISTGAN_GPUS and the launchers' variables are read by resolveWorkerPlacement.
  const rankFlag = command.getOptionValueSource('rank') === 'cli' ? int(0, 65535)(command.opts().rank, '--rank') : undefined;
  const gpusFlag = command.getOptionValueSource('gpus') === 'cli' ? parseGpuList(String(command.opts().gpus)) : undefined;
  const placement = resolveWorkerPlacement({ ...(rankFlag !== undefined ? { rank: rankFlag } : {}), ...(gpusFlag ? { gpus: gpusFlag } : {}) }, env);
  Object.assign(sources, placement.sources);
  if (placement.gpus) sources.gpus = gpusFlag ? 'flag:--gpus' : 'env:DISTGAN_GPUS';
  return {
    connect,
    backend,
    ...(dataset ? { dataset: String(dataset.value) } : {}),
    joinTimeout,
    ...(secret ? { curveSecretKey: String(secret.value) } : {}),
    ...(server ? { coordinatorPublicKey: String(server.value) } : {}),
    placement,
    sources,
  };
}

/** One worker process per GPU on this node, ranks from `firstRank` when given; returns the worst exit code. */
async function fanOut(w: WorkerSettings, gpus: number[], firstRank: number | undefined): Promise<number> {
  const extraArgs: string[] = [];
  if (w.dataset) extraArgs.push('--dataset', w.dataset);
  if (w.curveSecretKey) extraArgs.push('--curve-secret-key', w.curveSecretKey);
  if (w.coordinatorPublicKey) extraArgs.push('--coordinator-public-key', w.coordinatorPublicKey);
  const group = startLocalWorkers({
    connect: w.connect,
    backend: w.backend,
    joinTimeoutS: w.joinTimeout,
    count: gpus.length,
    ...(firstRank !== undefined ? { firstRank } : {}),
    gpus,
    gpusLabel: w.sources.gpus === 'env:DISTGAN_GPUS' ? 'DISTGAN_GPUS' : '--gpus',
    extraArgs,
    // The children write to this terminal; they share this process group, so Ctrl-C stops them all.
    output: 'inherit',
    detached: false,
    log: logLine,
  });
  return group.done;
}

export function register(program: Command): void {
  program
    .command('worker')
    .description('join a coordinator and train; with several --gpus, one worker process per GPU')
    .option('--connect <endpoint>', "the coordinator's endpoint, e.g. tcp://10.0.0.1:29500 (default: tcp://MASTER_ADDR:MASTER_PORT when both are set)")
    .option('--rank <r>', 'explicit rank (default: from RANK, OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID or JOB_COMPLETION_INDEX, else given in join order)')
    .option('--backend <name>', `compute backend: ${BACKEND_REQUESTS.join(', ')} (default auto)`)
    .option('--gpus <list>', 'GPU indices on this node; one worker process per GPU (default: from LOCAL_RANK or the scheduler, else the device the backend picks)')
    .option('--dataset <dir>', "this node's path to the run's dataset, when it differs from the coordinator's; its fingerprint must match (default: the coordinator's)")
    .option('--join-timeout <s>', `seconds to wait for the coordinator to answer and start the run (default ${DEFAULT_JOIN_TIMEOUT_S})`)
    .option('--curve-secret-key <file>', "this worker's CURVE key file, from `distgan keygen` (default: none, CURVE off)")
    .option('--coordinator-public-key <file>', "the coordinator's CURVE public key file (default: none)")
    .option('--dry-run', 'print the resolved endpoint, rank, GPU and where each came from as JSON, and exit (default off)')
    .addHelpText('after', `${ENV_HELP}\nRank, world size, GPU and coordinator also come from torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT),\nOpen MPI / PMI, Slurm or a Kubernetes Indexed Job when not given.`)
    .action(async (_o: unknown, command: Command) => {
      const env = readEnv();
      // A worker started by launch (or a fanning-out worker) takes everything from its parent's flags.
      const w = resolveWorker(command, env.launchedByLauncher ? {} : env.raw);
      const { placement } = w;
      const dryRun = commandValue(command, 'dryRun', env.launchedByLauncher ? {} : env.raw);
      if (dryRun?.value === true) {
        const { sources: _s, ...where } = placement;
        const out = { command: 'worker', connect: w.connect, ...where, backend: w.backend, dataset: w.dataset ?? null, joinTimeout: w.joinTimeout, curve: w.curveSecretKey !== undefined, sources: w.sources };
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      if (placement.gpus) {
        process.exitCode = await fanOut(w, placement.gpus, placement.rank);
        return;
      }
      if (env.launchedByLauncher) {
        // The launcher's IPC channel closes when it dies, even on SIGKILL: never outlive it.
        process.on('disconnect', () => {
          logLine('launcher went away; exiting');
          process.exit(1);
        });
      }
      const gpuIndex = placement.gpu;
      const choice = await initBackend(w.backend, { ...(gpuIndex !== undefined ? { gpuIndex } : {}), log: logLine });
      let configureSocket: ((d: Dealer) => Promise<void>) | undefined;
      if (w.curveSecretKey && w.coordinatorPublicKey) {
        const mine = await readSecretKeyFile(w.curveSecretKey);
        const server = await readPublicKeyFile(w.coordinatorPublicKey);
        configureSocket = async (d) => applyClientCurve(d, { ...mine, serverPublicKey: server });
      }
      const worker = new Worker({
        connect: w.connect,
        ...(placement.rank !== undefined ? { rank: placement.rank } : {}),
        backend: { name: choice.name, reason: choice.reason },
        openDataset: (ref, o) => openDataset(w.dataset ?? ref, o),
        joinTimeout: w.joinTimeout,
        version: VERSION,
        log: logLine,
        ...(configureSocket ? { configureSocket } : {}),
      });
      const exit = await worker.run();
      if (exit.code !== 0) logLine(`stopped by the coordinator: ${exit.reason}`);
      process.exitCode = exit.code;
    });
}
