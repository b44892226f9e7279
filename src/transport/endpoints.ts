/**
 * ZeroMQ endpoints as the CLI takes them: which ones a coordinator or worker
 * accepts (`--bind`, `--connect`, DISTGAN_BIND / DISTGAN_CONNECT, or built
 * from MASTER_ADDR/MASTER_PORT by scheduler-env.ts), and which ones only this
 * machine can reach (the coordinator warns when CURVE is off on any other).
 * Pure string checks: nothing here opens a socket.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../shared/errors.js';

/**
 * Where `distgan launch` listens: loopback only (its workers are local), on a
 * port the OS picks (port 0); the coordinator reports the bound endpoint.
 */
export const LOCAL_ANY_PORT = 'tcp://127.0.0.1:0';

/**
 * Checks that `endpoint` is one a coordinator binds or a worker connects to:
 * tcp://HOST:PORT or ipc://PATH (inproc:// works only within one process).
 * `label` names where it came from in the error (`--bind`, DISTGAN_CONNECT,
 * MASTER_ADDR/MASTER_PORT). Returns the endpoint; throws ConfigError.
 */
export function checkEndpoint(endpoint: string, label: string): string {
  if (!/^(tcp|ipc):\/\/.+/.test(endpoint)) throw new ConfigError(`${label} ${JSON.stringify(endpoint)} is not a tcp:// or ipc:// endpoint`);
  return endpoint;
}

/**
 * True when `endpoint` can only be reached from this machine: ipc:// and
 * inproc://, or tcp:// on a loopback address (127.0.0.0/8, ::1, localhost, lo).
 * A wildcard (`*`, 0.0.0.0, ::), another address, an interface name or a host
 * name is reachable from elsewhere. Throws ConfigError for text that is not a
 * ZeroMQ endpoint.
 */
export function isLoopbackEndpoint(endpoint: string): boolean {
  const m = /^([a-z]+):\/\/(.+)$/.exec(endpoint);
  if (m === null) throw new ConfigError(`${JSON.stringify(endpoint)} is not a ZeroMQ endpoint (expected tcp://HOST:PORT, ipc://PATH or inproc://NAME)`);
  const [, transport, rest] = m as unknown as [string, string, string];
  if (transport === 'ipc' || transport === 'inproc') return true;
  if (transport !== 'tcp') return false;
  // tcp://[source;]host:port — the part after ';' is where we bind/connect.
  const target = rest.includes(';') ? rest.slice(rest.lastIndexOf(';') + 1) : rest;
  const hm = /^(?:\[([^\]]+)\]|(.+)):([0-9]+|\*)$/.exec(target);
  if (hm === null) throw new ConfigError(`${JSON.stringify(endpoint)} is not a tcp:// endpoint of the form tcp://HOST:PORT`);
  const host = (hm[1] ?? hm[2] ?? '').toLowerCase();
  if (host === 'localhost' || host === 'lo') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return host === '::1' || /^(0{0,4}:){7}0{0,3}1$/.test(host);
  return false;
}
