/**
 * `distgan coordinator`: the coordinator alone, for workers started elsewhere
 * (other hosts, Slurm tasks, Kubernetes pods).
 */
import type { Command } from 'commander';
import type { Router } from 'zeromq';
import { ConfigError } from '../../shared/errors.js';
import { int } from '../../shared/config.js';
import { addRunOptions, resolveRun } from '../run-options.js';
import { hostRun } from '../coordinator-host.js';
import { logLine } from '../output.js';
import { applyServerCurve, isLoopbackEndpoint, readAuthorizedKeys, readSecretKeyFile, startZapHandler, watchHandshakeFailures } from '../../shared/curve.js';

export function register(program: Command): void {
  const cmd = program
    .command('coordinator')
    .description('run the coordinator alone; workers join with `distgan worker --connect`')
    .requiredOption('--bind <endpoint>', 'ZeroMQ endpoint to listen on, e.g. tcp://0.0.0.0:29500 or ipc:///tmp/distgan.sock (one port is all workers need)')
    .requiredOption('--world-size <n>', 'number of workers to wait for')
    .option('--curve-secret-key <file>', "coordinator's CURVE key file (from `distgan keygen`); turns on encryption and authentication")
    .option('--authorized-keys <dir>', "directory of worker public keys (*.pub) admitted when CURVE is on");
  addRunOptions(cmd);
  cmd.action(async (_o: unknown, command: Command) => {
    const o = command.opts<{ bind: string; worldSize: string; curveSecretKey?: string; authorizedKeys?: string }>();
    const worldSize = int(1, 4096)(o.worldSize, '--world-size');
    if (!/^(tcp|ipc):\/\/.+/.test(o.bind)) throw new ConfigError(`--bind ${JSON.stringify(o.bind)} is not a tcp:// or ipc:// endpoint`);
    if ((o.curveSecretKey === undefined) !== (o.authorizedKeys === undefined)) {
      throw new ConfigError('--curve-secret-key and --authorized-keys go together: CURVE needs the coordinator key and the list of admitted workers');
    }
    const { config, resumeFrom } = await resolveRun(command);
    if (config.dryRun) {
      process.stdout.write(JSON.stringify({ command: 'coordinator', bind: o.bind, worldSize, curve: o.curveSecretKey !== undefined, config }, null, 2) + '\n');
      return;
    }
    let configureSocket: ((r: Router) => Promise<void>) | undefined;
    let zap: { close(): Promise<void> } | undefined;
    let host: Awaited<ReturnType<typeof hostRun>> | undefined;
    if (o.curveSecretKey && o.authorizedKeys) {
      const keys = await readSecretKeyFile(o.curveSecretKey);
      const authorized = await readAuthorizedKeys(o.authorizedKeys);
      zap = await startZapHandler({
        authorized,
        // Printed by the coordinator within its per-peer log budget (a stranger can fail handshakes in a loop).
        onReject: (reason, address) => host?.coordinator.peerRejected(`rejected a peer from ${address}: ${reason}`, address),
      });
      configureSocket = async (router) => {
        applyServerCurve(router, keys);
        // Keyless and wrong-coordinator-key clients fail the handshake before ZAP is asked.
        watchHandshakeFailures(router, (reason, address) => host?.coordinator.peerRejected(`rejected a peer from ${address}: ${reason}`, address));
      };
      logLine(`CURVE on: ${authorized.size} authorised worker keys`);
    } else if (!isLoopbackEndpoint(o.bind)) {
      logLine(`WARNING: ${o.bind} is not a loopback address and CURVE is off: anyone who can reach this port can join the run and read its weights. Use --curve-secret-key and --authorized-keys (see docs/multi-node.md).`);
    }
    host = await hostRun({ config, ...(resumeFrom ? { resumeFrom } : {}), worldSize, bind: o.bind, log: logLine, ...(configureSocket ? { configureSocket } : {}) });
    const hosted = host;
    const onSignal = (sig: NodeJS.Signals): void => hosted.coordinator.interrupt(sig);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      await hosted.coordinator.run();
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await hosted.close();
      await zap?.close();
    }
  });
}
