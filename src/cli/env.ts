/**
 * The one place the CLI reads environment variables. Everything else,
 * coordinator and worker code included, receives these values as arguments,
 * so tests can pass their own environment.
 *
 * Options read from `raw` (docs/configuration.md): every flag's DISTGAN_<FLAG>
 * variable (src/shared/config.ts, src/cli/run-options.ts), and the launchers'
 * rank, world size, local rank and coordinator address — torchrun, MPI,
 * Slurm, Kubernetes (src/transport/scheduler-env.ts).
 */

/**
 * Set to 1 by the local launcher (local-workers.ts) in every worker it starts:
 * such a worker exits when its launcher's IPC channel closes, and reads no
 * option variables (its parent passes flags).
 */
export const LAUNCHED_VAR = 'DISTGAN_LAUNCHED';

export interface DistganEnv {
  /** CUDA_VISIBLE_DEVICES as set for this process (tfjs-node-gpu honours it). */
  cudaVisibleDevices: string | undefined;
  /** The raw environment, handed to the option layers and the placement resolver. */
  raw: NodeJS.ProcessEnv;
  /** LAUNCHED_VAR is 1: started by `launch` or a fanning-out worker (see LAUNCHED_VAR). */
  launchedByLauncher: boolean;
  /** CI=true: never draw a progress bar. */
  ci: boolean;
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): DistganEnv {
  return {
    cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES,
    raw: env,
    launchedByLauncher: env[LAUNCHED_VAR] === '1',
    ci: env.CI === 'true' || env.CI === '1',
  };
}
