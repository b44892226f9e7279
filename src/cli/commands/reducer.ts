/**
 * `distgan reducer`: a shard owner of `--reduction sharded --reducers N` as
 * its own process, one per worker host (src/reducer/process.ts). It joins the
 * coordinator at --connect, binds a port for the workers on this host's
 * address towards the coordinator (or --bind), and exits 0 when the run ends,
 * non-zero when the coordinator is gone or a failure stops it.
 *
 * With CURVE on it serves the workers with the coordinator's own key pair
 * (a reducer is part of the coordinator's side: workers check it against
 * the coordinator's public key) and admits the same authorised worker keys;
 * towards the coordinator it authenticates with that same key pair.
 */
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { num, type RawValue } from '../../shared/config.js';
import { ConfigError } from '../../shared/errors.js';
import { VERSION } from '../../shared/version.js';
import { applyClientCurve, applyServerCurve, readAuthorizedKeys, readSecretKeyFile, startZapHandler } from '../../transport/curve.js';
import { checkEndpoint } from '../../transport/endpoints.js';
import { masterEndpoint } from '../../transport/scheduler-env.js';
import { runReducer } from '../../reducer/process.js';
import { readEnv } from '../env.js';
import { logLine } from '../output.js';
import { ENV_HELP, commandValue, rawString } from '../run-options.js';

const DEFAULT_IDLE_TIMEOUT_S = 600;
/** Seconds a signalled reducer waits for the coordinator to close the run (Slurm's default KillWait is 30 s). */
const SIGNAL_GRACE_S = 25;

/** This host's address on the route towards `host` (no packet is sent: a UDP connect only picks the route). */
async function addressToward(host: string): Promise<string> {
  const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.connect(9, host, () => resolve());
    });
    return s.address().address;
  } finally {
    s.close();
  }
}

/** Where the workers reach this reducer by default: ipc beside an ipc coordinator, else a free port on the address towards it. */
async function defaultBind(connect: string): Promise<string> {
  if (connect.startsWith('ipc://')) return `ipc://${join(tmpdir(), `distgan-reducer-${process.pid}.sock`)}`;
  const host = /^tcp:\/\/([^:/]+|\[[^\]]+\]):\d+$/.exec(connect)?.[1]?.replace(/^\[|\]$/g, '');
  if (!host) throw new ConfigError(`--connect ${connect}: expected tcp://HOST:PORT or ipc://PATH`);
  const address = host === 'localhost' ? '127.0.0.1' : await addressToward(host);
  return `tcp://${address.includes(':') ? `[${address}]` : address}:0`;
}

export function register(program: Command): void {
  program
    .command('reducer')
    .description('own one shard of a sharded reduction (--reduction sharded --reducers N on the coordinator); start one per worker host')
    .option('--connect <endpoint>', "the coordinator's endpoint (default: tcp://MASTER_ADDR:MASTER_PORT when both are set)")
    .option('--bind <endpoint>', "where the workers reach this reducer (default: a free port on this host's address towards the coordinator; ipc beside an ipc coordinator)")
    .option('--idle-timeout <s>', `seconds of silence from the coordinator after which the reducer exits (default ${DEFAULT_IDLE_TIMEOUT_S})`)
    .option('--curve-secret-key <file>', "the coordinator's CURVE key file (a reducer serves the workers as the coordinator does) (default: none, CURVE off)")
    .option('--authorized-keys <dir>', "the authorised worker keys, as the coordinator's (default: none)")
    .addHelpText('after', ENV_HELP)
    .action(async (_o: unknown, command: Command) => {
      const read = readEnv();
      const env = read.raw;
      if (read.launchedByLauncher) {
        // Started by launch: its IPC channel closes when it dies, even on SIGKILL; never outlive it.
        process.on('disconnect', () => {
          logLine('launcher went away; exiting');
          process.exit(1);
        });
      }
      const value = (key: string): RawValue | undefined => commandValue(command, key, env);
      const given = value('connect');
      const master = given ? undefined : masterEndpoint(env, 'connect');
      if (!given && !master) throw new ConfigError('no coordinator to join: give --connect tcp://HOST:PORT (or set DISTGAN_CONNECT), or MASTER_ADDR and MASTER_PORT');
      const connect = given ? String(given.value) : master!.endpoint;
      checkEndpoint(connect, given ? rawString(given).label : 'MASTER_ADDR/MASTER_PORT');
      const bindV = value('bind');
      const bind = bindV ? String(bindV.value) : await defaultBind(connect);
      checkEndpoint(bind.replace(/:0$/, ':1'), bindV ? rawString(bindV).label : '--bind');
      const idleV = value('idleTimeout');
      const idleTimeoutS = idleV ? num(0, 86400, { exclusiveMin: true })(idleV.value, rawString(idleV).label) : DEFAULT_IDLE_TIMEOUT_S;
      const secret = value('curveSecretKey');
      const authorized = value('authorizedKeys');
      if ((secret === undefined) !== (authorized === undefined)) throw new ConfigError('--curve-secret-key and --authorized-keys go together');
      let curve: { keys: Awaited<ReturnType<typeof readSecretKeyFile>>; authorized: Map<string, string> } | undefined;
      if (secret && authorized) curve = { keys: await readSecretKeyFile(String(secret.value)), authorized: await readAuthorizedKeys(String(authorized.value)) };
      // SIGTERM/SIGINT (scancel, scontrol requeue, Ctrl-C) reach every process of a job at
      // once: the coordinator then checkpoints, which gathers this reducer's slice of the
      // mirror, and closes the run. So a reducer stays until it is told to close, for at
      // most SIGNAL_GRACE_S, rather than take its slice with it.
      const onSignal = (sig: NodeJS.Signals): void => {
        logLine(`received ${sig}: staying until the coordinator closes the run (at most ${SIGNAL_GRACE_S} s)`);
        setTimeout(() => {
          logLine(`the coordinator did not close the run within ${SIGNAL_GRACE_S} s of ${sig}; exiting`);
          process.exit(130);
        }, SIGNAL_GRACE_S * 1000).unref();
      };
      for (const sig of ['SIGTERM', 'SIGINT', 'SIGUSR1'] as const) process.on(sig, onSignal);
      let zap: { close(): Promise<void> } | undefined;
      try {
        const reason = await runReducer({
          connect,
          bind,
          version: VERSION,
          idleTimeoutS,
          log: logLine,
          ...(curve
            ? {
                configureDealer: async (d) => applyClientCurve(d, { ...curve.keys, serverPublicKey: curve.keys.publicKey }),
                configureRouter: async (r) => {
                  zap = await startZapHandler({ authorized: curve.authorized, onReject: (why, address) => logLine(`refused a peer from ${address}: ${why}`) });
                  applyServerCurve(r, curve.keys);
                },
              }
            : {}),
        });
        logLine(`reducer done: ${reason}`);
      } finally {
        await zap?.close();
      }
    });
}
