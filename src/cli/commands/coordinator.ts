/**
 * `distgan coordinator`: the coordinator alone, for workers started elsewhere
 * (other hosts, Slurm tasks, Kubernetes pods).
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Router } from 'zeromq';
import { ConfigError } from '../../shared/errors.js';
import { envValue, int, labelOf, type ConfigFile, type RawValue } from '../../shared/config.js';
import { masterEndpoint } from '../../transport/scheduler-env.js';
import { readEnv } from '../env.js';
import { addRunOptions, commandValue, rawString, resolveRun } from '../run-options.js';
import { hostRun } from '../coordinator-host.js';
import { logLine } from '../output.js';
import { printable } from '../../coordinator/peer-limiter.js';
import { applyServerCurve, readAuthorizedKeys, readSecretKeyFile, startZapHandler, watchHandshakeFailures } from '../../transport/curve.js';
import { isLoopbackEndpoint } from '../../transport/endpoints.js';

/** The coordinator's own options, resolved, and where each came from. */
interface CoordinatorOptions {
  bind: string;
  /** How errors name the bind address when it did not come from --bind. */
  bindFlag?: string;
  worldSize: number;
  curveSecretKey?: string;
  authorizedKeys?: string;
  sources: Record<string, string>;
}

/**
 * --bind: flag > DISTGAN_BIND > MASTER_ADDR + MASTER_PORT (see masterEndpoint).
 * --world-size: flag > DISTGAN_WORLD_SIZE > WORLD_SIZE (torchrun's: the
 * number of training processes, which are distgan's workers) > the --config
 * file's worldSize. The coordinator reads no launcher rank variables: under
 * srun or mpirun they would describe its own task, not the workers.
 */
function resolveCoordinatorOptions(command: Command, env: NodeJS.ProcessEnv, file: ConfigFile | undefined): CoordinatorOptions {
  const sources: Record<string, string> = {};
  const given = commandValue(command, 'bind', env);
  const master = given ? undefined : masterEndpoint(env, 'bind');
  if (!given && !master) {
    throw new ConfigError('no address to listen on: give --bind tcp://HOST:PORT (or set DISTGAN_BIND), or set MASTER_ADDR and MASTER_PORT as for torchrun');
  }
  if (master?.note) logLine(master.note);
  const bind = given ? String(given.value) : master!.endpoint;
  sources.bind = given ? given.source : master!.source;
  const bindLabel = given ? rawString(given).label : 'MASTER_ADDR/MASTER_PORT';
  if (!/^(tcp|ipc):\/\/.+/.test(bind)) throw new ConfigError(`${bindLabel} ${JSON.stringify(bind)} is not a tcp:// or ipc:// endpoint`);

  const torchrunSize = envValue(env, 'WORLD_SIZE');
  const size: RawValue | undefined =
    commandValue(command, 'worldSize', env) ??
    (torchrunSize !== undefined ? { value: torchrunSize, source: 'env:WORLD_SIZE' } : undefined) ??
    (file?.worldSize !== undefined ? { value: file.worldSize, source: `file:${file.path}` } : undefined);
  if (!size) throw new ConfigError('the number of workers is not set: give --world-size N (or set DISTGAN_WORLD_SIZE or WORLD_SIZE), or a --config run record that has worldSize');
  const worldSize = int(1, 4096)(size.value, labelOf('worldSize', size.source));
  sources.worldSize = size.source;

  const secret = commandValue(command, 'curveSecretKey', env);
  const authorized = commandValue(command, 'authorizedKeys', env);
  if ((secret === undefined) !== (authorized === undefined)) {
    throw new ConfigError('--curve-secret-key and --authorized-keys go together: CURVE needs the coordinator key and the list of admitted workers');
  }
  if (secret) sources.curveSecretKey = secret.source;
  if (authorized) sources.authorizedKeys = authorized.source;
  return {
    bind,
    ...(bindLabel !== '--bind' ? { bindFlag: bindLabel } : {}),
    worldSize,
    ...(secret ? { curveSecretKey: String(secret.value) } : {}),
    ...(authorized ? { authorizedKeys: String(authorized.value) } : {}),
    sources,
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('coordinator')
    .description('run the coordinator alone; workers join with `distgan worker --connect`')
    .option('--bind <endpoint>', 'ZeroMQ endpoint to listen on, e.g. tcp://0.0.0.0:29500 or ipc:///tmp/distgan.sock; one port is all workers need (default: tcp://MASTER_ADDR:MASTER_PORT when both are set)')
    .option('--world-size <n>', "number of workers to wait for (default: WORLD_SIZE, else a --config file's worldSize)")
    .option('--curve-secret-key <file>', "coordinator's CURVE key file (from `distgan keygen`); turns on encryption and authentication (default: none, CURVE off)")
    .option('--authorized-keys <dir>', 'directory of worker public keys (*.pub) admitted when CURVE is on (default: none)');
  addRunOptions(cmd);
  cmd.action(async (_o: unknown, command: Command) => {
    const env = readEnv().raw;
    const { config, resumeFrom, sources, file } = await resolveRun(command, env);
    const o = resolveCoordinatorOptions(command, env, file);
    const { worldSize } = o;
    if (config.dryRun) {
      process.stdout.write(JSON.stringify({ command: 'coordinator', bind: o.bind, worldSize, curve: o.curveSecretKey !== undefined, config, sources: { ...sources, ...o.sources } }, null, 2) + '\n');
      return;
    }
    let configureSocket: ((r: Router) => Promise<void>) | undefined;
    let curve: { publicKey: string; secretKey: string } | undefined;
    let zap: { close(): Promise<void> } | undefined;
    let host: Awaited<ReturnType<typeof hostRun>> | undefined;
    // Counted and printed by the coordinator within its per-peer log budget once it
    // exists; a refusal while it is still being set up (after the bind) is printed here.
    const rejectedPeer = (reason: string, address: string): void => {
      const text = `rejected a peer from ${address}: ${reason}`;
      if (host) host.coordinator.peerRejected(text, address);
      else logLine(printable(text, 500));
    };
    if (o.curveSecretKey && o.authorizedKeys) {
      const keys = await readSecretKeyFile(o.curveSecretKey);
      const authorized = await readAuthorizedKeys(o.authorizedKeys);
      // Shard-owner threads serve the workers with the same keys (sharded reduction); this process's ZAP handler admits their peers.
      curve = { publicKey: keys.publicKey, secretKey: keys.secretKey };
      // Reducer processes (--reducers) hold the coordinator's key pair and authenticate with it.
      if (config.reducers > 0) authorized.set(keys.publicKey, 'reducer');
      zap = await startZapHandler({
        authorized,
        // Printed by the coordinator within its per-peer log budget (a stranger can fail handshakes in a loop).
        onReject: (reason, address) => rejectedPeer(reason, address),
      });
      configureSocket = async (router) => {
        applyServerCurve(router, keys);
        // Keyless and wrong-coordinator-key clients fail the handshake before ZAP is asked.
        watchHandshakeFailures(router, rejectedPeer);
      };
      logLine(`CURVE on: ${authorized.size} authorised worker keys`);
    } else if (!isLoopbackEndpoint(o.bind)) {
      logLine(`WARNING: ${o.bind} is not a loopback address and CURVE is off: anyone who can reach this port can join the run and read its weights. Use --curve-secret-key and --authorized-keys (see docs/multi-node.md).`);
    }
    host = await hostRun({ config, ...(resumeFrom ? { resumeFrom } : {}), worldSize, bind: o.bind, ...(o.bindFlag ? { bindFlag: o.bindFlag } : {}), log: logLine, ...(configureSocket ? { configureSocket } : {}), ...(curve ? { curve } : {}) });
    const hosted = host;
    // SIGINT/SIGTERM (Ctrl-C, scancel, scontrol requeue, Kubernetes) and SIGUSR1
    // (Slurm's `--signal=B:USR1@60` notice, forwarded by deploy/slurm/distgan.sbatch)
    // all mean: checkpoint the last completed step, stop the workers, exit 130.
    // Listening for SIGUSR1 also keeps Node from opening its inspector on it.
    const onSignal = (sig: NodeJS.Signals): void => {
      if (sig === 'SIGUSR1') logLine(`SIGUSR1: preemption notice; checkpointing and stopping (continue with --resume ${resolve(config.out)})`);
      hosted.coordinator.interrupt(sig);
    };
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGUSR1'];
    for (const sig of signals) process.on(sig, onSignal);
    try {
      await hosted.coordinator.run();
    } finally {
      for (const sig of signals) process.off(sig, onSignal);
      await hosted.close();
      await zap?.close();
    }
  });
}
