/**
 * `distgan launch`: a coordinator in this process plus one local worker
 * process per GPU (or per core with no GPU), like torchrun --nproc-per-node.
 *
 * Workers run in their own process group, so a terminal's Ctrl-C reaches only
 * the launcher, which checkpoints and stops them in order. They also hold an
 * IPC channel to the launcher and exit if it closes, so even a SIGKILLed
 * launcher leaves no process behind.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import type { Command } from 'commander';
import { CLI_BIN } from '../../shared/version.js';
import { ConfigError, DistganError } from '../../shared/errors.js';
import { defaultWorkerCount, int, parseGpuList, visibleDeviceFor, type ConfigFile, type RawValue } from '../../shared/config.js';
import { addRunOptions, commandValue, rawString, resolveRun } from '../run-options.js';
import { readEnv } from '../../shared/env.js';
import { hostRun } from '../coordinator-host.js';
import { logLine } from '../output.js';
import { webgpuChildEnv } from '../../shared/compute/vulkan-env.js';

/** GPUs visible through nvidia-smi, or none. Bounded: a wedged driver must not hang the launcher. */
export function detectGpus(): number[] {
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').filter((l) => /^GPU \d+/.test(l)).map((_, i) => i);
  } catch {
    return [];
  }
}

interface Child {
  rank: number;
  proc: ChildProcess;
  exited: boolean;
  code: number | null;
}

/** Hands each line a child writes to `print` (which puts it in the run's log format, naming the child). */
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

async function waitForExit(children: Child[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (children.some((c) => !c.exited) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const c of children) {
    if (!c.exited) {
      try {
        process.kill(-c.proc.pid!, 'SIGKILL');
      } catch {
        c.proc.kill('SIGKILL');
      }
    }
  }
  const hard = Date.now() + 5000;
  while (children.some((c) => !c.exited) && Date.now() < hard) await new Promise((r) => setTimeout(r, 50));
}

/** How many workers, on which GPUs, and where each of those came from. */
interface Placement {
  workers: number;
  gpus: number[] | undefined;
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
    return { workers: gpus.length, gpus, sources: { workers: g.source, gpus: g.source } };
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

    const host = await hostRun({ config, ...(resumeFrom ? { resumeFrom } : {}), worldSize: workers, bind: 'tcp://127.0.0.1:0', bindFlag: 'launch (which listens on)', log: logLine });
    const children: Child[] = [];
    let finished = false;
    const vk = config.backend === 'webgpu' ? webgpuChildEnv() : { env: process.env };
    if ('note' in vk && vk.note) host.printLine(`distgan: ${vk.note}`);
    const childEnv = vk.env;
    for (let rank = 0; rank < workers; rank++) {
      const args = [CLI_BIN, 'worker', '--connect', host.endpoint, '--rank', String(rank), '--backend', config.backend, '--join-timeout', String(config.joinTimeout)];
      // --backend webgpu finds the project's software Vulkan (.cache/vulkan) when the machine has none.
      const env: NodeJS.ProcessEnv = { ...childEnv, DISTGAN_LAUNCHED: '1' };
      if (gpus) {
        // The worker sees exactly its GPU, as index 0 of its CUDA_VISIBLE_DEVICES
        // (webgpu maps indices through that list the same way CUDA does).
        env.CUDA_VISIBLE_DEVICES = visibleDeviceFor(gpus[rank]!, process.env.CUDA_VISIBLE_DEVICES);
        args.push('--gpus', '0');
      }
      const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env, detached: true });
      const child: Child = { rank, proc, exited: false, code: null };
      children.push(child);
      // Workers' lines join the run's output: "[rank N] …" lines, or log objects with source "rank N" in json mode.
      pipeLines(proc.stdout, (line) => host.printLine(line, `rank ${rank}`));
      pipeLines(proc.stderr, (line) => host.printLine(line, `rank ${rank}`));
      proc.on('exit', (code, signal) => {
        child.exited = true;
        child.code = code;
        if (!finished) host.coordinator.workerExited(rank, `(pid ${proc.pid}) exited ${signal ? `on signal ${signal}` : `with code ${code}`}`);
      });
      proc.on('error', (e) => {
        child.exited = true;
        if (!finished) host.coordinator.workerExited(rank, `could not be started: ${e.message}`);
      });
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
      await waitForExit(children, 5000);
      await host.close();
      // A worker that exited 2 refused its input (backend, dataset, flags): so does launch.
      const refused = children.find((c) => c.code === 2);
      if (refused && e instanceof DistganError && e.exitCode !== 2) {
        throw new DistganError(e.code, `${e.message} (its reason is in the [rank ${refused.rank}] lines above)`, { cause: e, exitCode: 2 });
      }
      throw e;
    } finally {
      finished = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    await waitForExit(children, 15000);
    await host.close();
  });
}

