/**
 * `distgan worker`: joins a coordinator. With several --gpus it starts one
 * worker process per GPU, as `torchrun --nproc-per-node` does, each with
 * CUDA_VISIBLE_DEVICES set to its GPU. Rank and world size may come from
 * flags, or from Slurm / a Kubernetes Indexed Job when the flags are absent.
 */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import type { Dealer } from 'zeromq';
import { BACKENDS, int, num, oneOf, parseGpuList, visibleDeviceFor, type BackendRequest } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';
import { initBackend } from '../../shared/compute/backend.js';
import { openDataset } from '../../shared/data/open.js';
import { readEnv } from '../../shared/env.js';
import { CLI_BIN, VERSION } from '../../shared/version.js';
import { resolveWorkerPlacement } from '../../shared/scheduler-env.js';
import { applyClientCurve, readPublicKeyFile, readSecretKeyFile } from '../../shared/curve.js';
import { Worker } from '../../worker/worker.js';
import { logLine } from '../output.js';
import { webgpuChildEnv } from '../../shared/compute/vulkan-env.js';

interface WorkerFlags {
  connect: string;
  rank?: string;
  backend: string;
  gpus?: string;
  dataset?: string;
  joinTimeout: string;
  curveSecretKey?: string;
  coordinatorPublicKey?: string;
}

/** One worker process per GPU on this node; returns the worst exit code. */
async function fanOut(flags: WorkerFlags, gpus: number[], baseRank: number | undefined): Promise<number> {
  const codes = await Promise.all(
    gpus.map(
      (gpu, i) =>
        new Promise<number>((resolve) => {
          const args = [CLI_BIN, 'worker', '--connect', flags.connect, '--backend', flags.backend, '--gpus', '0', '--join-timeout', flags.joinTimeout];
          if (baseRank !== undefined) args.push('--rank', String(baseRank + i));
          if (flags.dataset) args.push('--dataset', flags.dataset);
          if (flags.curveSecretKey) args.push('--curve-secret-key', flags.curveSecretKey);
          if (flags.coordinatorPublicKey) args.push('--coordinator-public-key', flags.coordinatorPublicKey);
          const base = flags.backend === 'webgpu' ? webgpuChildEnv().env : process.env;
          const env = { ...base, CUDA_VISIBLE_DEVICES: visibleDeviceFor(gpu, process.env.CUDA_VISIBLE_DEVICES), DISTGAN_LAUNCHED: '1' };
          const p = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
          p.on('exit', (code, signal) => resolve(signal ? 1 : (code ?? 1)));
          p.on('error', () => resolve(1));
        }),
    ),
  );
  return codes.reduce((a, b) => Math.max(a, b), 0);
}

export function register(program: Command): void {
  program
    .command('worker')
    .description('join a coordinator and train; with several --gpus, one worker process per GPU')
    .requiredOption('--connect <endpoint>', "the coordinator's endpoint, e.g. tcp://10.0.0.1:29500")
    .option('--rank <r>', 'explicit rank (default: from SLURM_PROCID / JOB_COMPLETION_INDEX, else given in join order)')
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')} (default auto)`, 'auto')
    .option('--gpus <list>', 'GPU indices on this node; one worker process per GPU')
    .option('--dataset <dir>', "this node's path to the run's dataset, when it differs from the coordinator's (its fingerprint must match)")
    .option('--join-timeout <s>', 'seconds to wait for the coordinator to answer and start the run (default 180)', '180')
    .option('--curve-secret-key <file>', "this worker's CURVE key file (from `distgan keygen`)")
    .option('--coordinator-public-key <file>', "the coordinator's CURVE public key file")
    .action(async (flags: WorkerFlags) => {
      const env = readEnv();
      const backend = oneOf(BACKENDS)(flags.backend, '--backend') as BackendRequest;
      const joinTimeout = num(0, 86400, { exclusiveMin: true })(flags.joinTimeout, '--join-timeout');
      if (!/^(tcp|ipc):\/\/.+/.test(flags.connect)) throw new ConfigError(`--connect ${JSON.stringify(flags.connect)} is not a tcp:// or ipc:// endpoint`);
      if ((flags.curveSecretKey === undefined) !== (flags.coordinatorPublicKey === undefined)) {
        throw new ConfigError('--curve-secret-key and --coordinator-public-key go together');
      }
      const gpuList = flags.gpus !== undefined ? parseGpuList(flags.gpus) : undefined;
      const placement = resolveWorkerPlacement(
        { ...(flags.rank !== undefined ? { rank: int(0, 65535)(flags.rank, '--rank') } : {}), ...(gpuList ? { gpus: gpuList } : {}) },
        env.raw,
      );
      if (gpuList && gpuList.length > 1) {
        process.exitCode = await fanOut(flags, gpuList, placement.rank);
        return;
      }
      if (env.launchedByLauncher) {
        // The launcher's IPC channel closes when it dies, even on SIGKILL: never outlive it.
        process.on('disconnect', () => {
          logLine('launcher went away; exiting');
          process.exit(1);
        });
      }
      const gpuIndex = gpuList?.[0] ?? placement.gpu;
      const choice = await initBackend(backend, { ...(gpuIndex !== undefined ? { gpuIndex } : {}), log: logLine });
      let configureSocket: ((d: Dealer) => Promise<void>) | undefined;
      if (flags.curveSecretKey && flags.coordinatorPublicKey) {
        const mine = await readSecretKeyFile(flags.curveSecretKey);
        const server = await readPublicKeyFile(flags.coordinatorPublicKey);
        configureSocket = async (d) => applyClientCurve(d, { ...mine, serverPublicKey: server });
      }
      const worker = new Worker({
        connect: flags.connect,
        ...(placement.rank !== undefined ? { rank: placement.rank } : {}),
        backend: { name: choice.name, reason: choice.reason },
        openDataset: (ref, o) => openDataset(flags.dataset ?? ref, o),
        joinTimeout,
        version: VERSION,
        log: logLine,
        ...(configureSocket ? { configureSocket } : {}),
      });
      const exit = await worker.run();
      if (exit.code !== 0) logLine(`stopped by the coordinator: ${exit.reason}`);
      process.exitCode = exit.code;
    });
}

