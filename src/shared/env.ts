/**
 * The one place distgan reads environment variables. Everything else receives
 * these values as arguments, so tests can pass their own environment.
 */
export interface DistganEnv {
  /** CUDA_VISIBLE_DEVICES as set for this process (tfjs-node-gpu honours it). */
  cudaVisibleDevices: string | undefined;
  /** The raw environment, handed to the Slurm/Kubernetes placement resolver. */
  raw: NodeJS.ProcessEnv;
  /** Set by `launch` in its workers, so a worker exits when its launcher's IPC channel closes. */
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
