/**
 * `distgan launch`: a coordinator in this process plus one local worker
 * process per GPU (or per core with no GPU), like torchrun --nproc-per-node.
 * The workers are started by local-workers.ts with ranks 0..n-1.
 *
 * Workers run in their own process group, so a terminal's Ctrl-C reaches only
 * the launcher, which checkpoints and stops them in order. They also hold an
 * IPC channel to the launcher and exit if it closes, so even a SIGKILLed
 * launcher leaves no process behind. A worker's exit is reported to the
 * coordinator, which ends the run naming its rank.
 */
import type { Command } from 'commander';
import { ConfigError, DistganError } from '../../shared/errors.js';
import { int, type ConfigFile, type RawValue } from '../../shared/config.js';
import { parseGpuList } from '../../shared/compute/backends.js';
import { addRunOptions, commandValue, rawString, resolveRun } from '../run-options.js';
import { readEnv } from '../env.js';
import { hostRun } from '../coordinator-host.js';
import { logLine } from '../output.js';
import { defaultWorkerCount, detectGpus, startLocalWorkers, type LocalWorkerGroup } from '../local-workers.js';
import { LOCAL_ANY_PORT } from '../../transport/endpoints.js';

/** How many workers, on which GPUs, and where each of those came from. */
interface Placement {
  workers: number;
  gpus: number[] | undefined;
  /** What names the GPU list in errors: the flag or variable it came from. */
  gpusLabel?: string;
  sources: { workers: string; gpus?: string };
}

/**
 * --workers and --gpus: flag > DISTGAN_WORKERS / DISTGAN_GPUS > the --config
 * file's worldSize (a run's config.json records it: the same number of workers
 * repeats the same float summation order) > one per detected GPU, else one
 * per core. The two exclude each other within a layer; across layers the
 * higher one wins.
 */
function resolvePlacement(command: Command, env: NodeJS.ProcessEnv, config: { backend: string }, file: ConfigFile | undefined): Placement {
  const w = commandValue(command, 'workers', env);
  const g = commandValue(command, 'gpus', env);
  const layer = (v: RawValue | undefined): number => (v === undefined ? 0 : v.source.startsWith('flag:') ? 2 : 1);
  if (w && g && layer(w) === layer(g)) {
    const [a, b] = [rawString(w).label, rawString(g).label];
    throw new ConfigError(`${a} and ${b} exclude each other: ${b} starts one worker per listed GPU`);
  }
  if (g && layer(g) > layer(w)) {
    const { raw, label } = rawString(g);
    const gpus = parseGpuList(raw, label);
    return { workers: gpus.length, gpus, gpusLabel: label, sources: { workers: g.source, gpus: g.source } };
  }
  if (w) {
    const { raw, label } = rawString(w);
    return { workers: int(1, 1024)(raw, label), gpus: undefined, sources: { workers: w.source } };
  }
  if (file?.worldSize !== undefined) return { workers: file.worldSize, gpus: undefined, sources: { workers: `file:${file.path}` } };
  const found = config.backend === 'wasm' || config.backend === 'cpu' ? [] : detectGpus();
  const gpus = found.length ? found : undefined;
  return { workers: gpus ? gpus.length : defaultWorkerCount(), gpus, sources: { workers: 'default', ...(gpus ? { gpus: 'default' } : {}) } };
}

export function register(program: Command): void {
  const cmd = program
    .command('launch')
    .description('train on this machine: a coordinator plus one worker process per GPU (or per CPU core without a GPU)')
    .option('--workers <n>', 'number of local worker processes (default: a --config file\'s worldSize, else one per GPU, else one per CPU core)')
    .option('--gpus <list>', 'comma-separated GPU indices, one worker per GPU, each with CUDA_VISIBLE_DEVICES set to its GPU (default: every GPU nvidia-smi lists)');
  addRunOptions(cmd);
  cmd.action(async (_o: unknown, command: Command) => {
    const vars = readEnv().raw;
    const { config, resumeFrom, sources, file } = await resolveRun(command, vars);
    const placement = resolvePlacement(command, vars, config, file);
    const { workers, gpus } = placement;
    if (config.dryRun) {
      process.stdout.write(JSON.stringify({ command: 'launch', workers, gpus: gpus ?? null, config, sources: { ...sources, ...placement.sources } }, null, 2) + '\n');
      return;
    }

    const host = await hostRun({ config, ...(resumeFrom ? { resumeFrom } : {}), worldSize: workers, bind: LOCAL_ANY_PORT, bindFlag: 'launch (which listens on)', log: logLine });
    // Once the run has ended, workers exiting is expected and no longer reported.
    let finished = false;
    let group: LocalWorkerGroup;
    // --reducers N: the shard owners as local `distgan reducer` processes (on one host, threads are the default and cheaper).
    let reducers: LocalWorkerGroup | undefined;
    try {
      if (config.reducers > 0) {
        reducers = startLocalWorkers({
          role: 'reducer',
          connect: host.endpoint,
          backend: config.backend,
          joinTimeoutS: config.joinTimeout,
          count: config.reducers,
          output: (line, w) => host.printLine(line, `reducer ${w.index}`),
          detached: true,
          onExit: (w) => {
            if (!finished) host.coordinator.reducerExited(`a reducer process ${w.how}`);
          },
        });
      }
      group = startLocalWorkers({
        connect: host.endpoint,
        backend: config.backend,
        joinTimeoutS: config.joinTimeout,
        count: workers,
        firstRank: 0,
        ...(gpus ? { gpus } : {}),
        ...(placement.gpusLabel ? { gpusLabel: placement.gpusLabel } : {}),
        // Workers' lines join the run's output: "[rank N] …" lines, or log objects with source "rank N" in json mode.
        output: (line, w) => host.printLine(line, `rank ${w.rank}`),
        detached: true,
        onExit: (w) => {
          if (!finished) host.coordinator.workerExited(w.rank!, w.how);
        },
        log: (line) => host.printLine(`distgan: ${line}`),
      });
    } catch (e) {
      await reducers?.stop(1000);
      await host.close();
      throw e;
    }
    const onSignal = (sig: NodeJS.Signals): void => {
      host.printLine(`distgan: received ${sig}: checkpointing and stopping ${workers} workers`);
      host.coordinator.interrupt(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      await host.coordinator.run();
    } catch (e) {
      finished = true;
      await group.stop(5000);
      await reducers?.stop(5000);
      await host.close();
      // A worker that exited 2 refused its input (backend, dataset, flags): so does launch.
      const refused = group.workers.find((w) => w.code === 2);
      if (refused && e instanceof DistganError && e.exitCode !== 2) {
        throw new DistganError(e.code, `${e.message} (its reason is in the [rank ${refused.rank}] lines above)`, { cause: e, exitCode: 2 });
      }
      throw e;
    } finally {
      finished = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    await group.stop(15000);
    await reducers?.stop(15000);
    await host.close();
  });
}

