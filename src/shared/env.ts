/**
 * The one place distgan reads environment variables. Everything else receives
 * these values as arguments, so tests can pass their own environment.
 *
 * Options read from `raw` (docs/configuration.md): every flag's DISTGAN_<FLAG>
 * variable (src/shared/config.ts, src/cli/run-options.ts), and the launchers'
 * rank, world size, local rank and coordinator address — torchrun, MPI,
 * Slurm, Kubernetes (src/shared/scheduler-env.ts).
 */
export interface DistganEnv {
  /** CUDA_VISIBLE_DEVICES as set for this process (tfjs-node-gpu honours it). */
  cudaVisibleDevices: string | undefined;
  /** The raw environment, handed to the option layers and the placement resolver. */
  raw: NodeJS.ProcessEnv;
  /** Set by `launch` (and a fanning-out worker) in its workers: a worker then exits when its launcher's IPC channel closes, and reads no option variables (its parent passes flags). */
  launchedByLauncher: boolean;
  /** CI=true: never draw a progress bar. */
  ci: boolean;
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): DistganEnv {
  return {
    cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES,
    raw: env,
    launchedByLauncher: env.DISTGAN_LAUNCHED === '1',
    ci: env.CI === 'true' || env.CI === '1',
  };
}
