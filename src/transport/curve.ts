/**
 * CURVE security for the coordinator ↔ worker link (ZMTP-CURVE, RFC 26, with
 * ZAP, RFC 27, deciding which clients may connect).
 *
 * Without CURVE anyone who can reach the coordinator's port can join a run and
 * feed it gradients. With CURVE the traffic is encrypted and the coordinator
 * admits only workers whose public key is in its authorised-keys folder.
 *
 * Wiring, in this order (libzmq reads the options when it binds/connects):
 *  - coordinator: `startZapHandler({ authorized: await readAuthorizedKeys(dir), onReject })`,
 *    then `applyServerCurve(router, await readSecretKeyFile(file))`, then `router.bind(...)`.
 *    At the end close the router, then the handler (its close() waits `drainMs`
 *    for the router's sessions to end first; see ZapHandlerOptions.drainMs).
 *  - worker: `applyClientCurve(dealer, { ...await readSecretKeyFile(own), serverPublicKey:
 *    await readPublicKeyFile(coordinatorPub) })`, then `dealer.connect(...)`.
 *
 * Why `zapEnforceDomain` is set on the server: libzmq lets every CURVE client
 * that knows the server's public key in when no ZAP handler is bound (the
 * "Stonehouse" pattern). With the option on, a missing handler refuses every
 * client instead, so forgetting `startZapHandler` fails closed, not open.
 *
 * A rejected client's handshake fails; its queued messages never leave it.
 * Give client sockets a finite `linger`, or closing them blocks process exit
 * on those unsendable messages.
 *
 * Key files use the layout of czmq's zcert and pyzmq's `zmq.auth` certificates
 * (ZPL text with a `curve` section holding Z85 `public-key` / `secret-key`),
 * so keys made by those tools load here too:
 *
 *     #   ZeroMQ CURVE **Secret** Certificate
 *     metadata
 *         name = "worker-0"
 *     curve
 *         public-key = "<40 Z85 characters>"
 *         secret-key = "<40 Z85 characters>"
 *
 * `distgan keygen --out DIR --workers N` (writeKeys) writes:
 *  - DIR/coordinator.key            coordinator secret+public, mode 0600 — stays on the coordinator
 *  - DIR/coordinator.pub            coordinator public key, mode 0644 — copy to every worker
 *  - DIR/worker-<i>.key             worker i secret+public, mode 0600 — copy to worker i only
 *  - DIR/authorized/worker-<i>.pub  worker i public key, mode 0644 — the coordinator's --authorized-keys DIR
 */
import { randomBytes, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdir, open, link, unlink, readFile, readdir, stat, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as zmq from 'zeromq';
import { ConfigError, KeyError } from '../shared/errors.js';

/** A CURVE key pair, both halves as 40-character Z85 strings. */
export interface KeyPair {
  publicKey: string;
  secretKey: string;
}

/** The ZAP domain the coordinator's server socket announces (ZMQ_ZAP_DOMAIN). */
export const ZAP_DOMAIN = 'distgan';

/** The fixed endpoint libzmq sends ZAP requests to (RFC 27). */
export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

/** Most worker key pairs one `writeKeys` call makes. */
export const MAX_KEYGEN_WORKERS = 4096;

const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_DECODE = new Map<string, number>([...Z85_ALPHABET].map((c, i) => [c, i]));
const KEY_BYTES = 32;
const KEY_Z85_LENGTH = 40;

/** Z85 (RFC 32) encoding; `data.length` must be a multiple of 4. */
export function z85Encode(data: Uint8Array): string {
  if (data.length % 4 !== 0) throw new KeyError(`Z85 input must be a multiple of 4 bytes, got ${data.length}`);
  let out = '';
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < data.length; i += 4) {
    let value = view.getUint32(i, false);
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.push(Z85_ALPHABET[value % 85]!);
      value = Math.floor(value / 85);
    }
    out += chunk.reverse().join('');
  }
  return out;
}

/** Z85 decoding; returns undefined when `text` is not valid Z85 (wrong length, character or overflow). */
export function z85Decode(text: string): Uint8Array | undefined {
  if (text.length % 5 !== 0) return undefined;
  const out = new Uint8Array((text.length / 5) * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (let j = 0; j < 5; j++) {
      const digit = Z85_DECODE.get(text[i + j]!);
      if (digit === undefined) return undefined;
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) return undefined;
    view.setUint32((i / 5) * 4, value, false);
  }
  return out;
}

/** Why `key` is not a valid 40-character Z85 CURVE key, or undefined when it is. */
function keyProblem(key: string): string | undefined {
  if (key.length !== KEY_Z85_LENGTH) return `is ${key.length} characters long, expected ${KEY_Z85_LENGTH} Z85 characters`;
  const bad = [...key].find((c) => !Z85_DECODE.has(c));
  if (bad !== undefined) return `contains ${JSON.stringify(bad)}, which is not a Z85 character`;
  if (z85Decode(key) === undefined) return 'is not valid Z85 (a 5-character group overflows 32 bits)';
  return undefined;
}

function requireKey(key: string, what: string): void {
  const problem = keyProblem(key);
  if (problem !== undefined) throw new KeyError(`${what} ${problem}`);
}

// PKCS#8 DER header for a raw 32-byte X25519 private key (RFC 8410), so that
// node:crypto can derive the public half without a libzmq call.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The CURVE public key belonging to a Z85 secret key (X25519 base-point multiplication). */
export function publicKeyFromSecret(secretKey: string): string {
  requireKey(secretKey, 'secret key');
  const raw = Buffer.from(z85Decode(secretKey)!);
  const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new KeyError('could not derive a CURVE public key from the secret key');
  return z85Encode(Buffer.from(jwk.x, 'base64url'));
}

/** A fresh CURVE key pair from libzmq (libsodium's crypto_box_keypair). */
export function generateKeyPair(): KeyPair {
  const { publicKey, secretKey } = zmq.curveKeyPair();
  return { publicKey, secretKey };
}

function certificateText(kind: 'Secret' | 'Public', name: string, pair: { publicKey: string; secretKey?: string }): string {
  const lines = [
    `#   ****  Generated by distgan keygen on ${new Date().toISOString()}  ****`,
    `#   ZeroMQ CURVE **${kind}** Certificate`,
    kind === 'Secret'
      ? '#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.'
      : '#   Exchange securely, or use a secure mechanism to verify the contents',
    '',
    'metadata',
    `    name = "${name}"`,
    'curve',
    `    public-key = "${pair.publicKey}"`,
  ];
  if (pair.secretKey !== undefined) lines.push(`    secret-key = "${pair.secretKey}"`);
  return lines.join('\n') + '\n';
}

/**
 * Writes `data` to `path` atomically and never over an existing file: the bytes
 * go to a temporary file in the same folder first, which is then hard-linked to
 * `path` (link(2) fails with EEXIST instead of replacing, unlike rename(2)).
 */
async function writeFileExclusive(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(data, 'utf8');
    await handle.chmod(mode); // the umask may have stripped bits from open()'s mode
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new KeyError(`${path} already exists; refusing to overwrite a key (move it away or pick another --out)`, { cause: err });
    }
    throw new KeyError(`could not write ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new KeyError(`cannot inspect ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Writes a coordinator key pair and `workers` worker key pairs under `dir` in
 * the layout described at the top of this file. Secret files get mode 0600,
 * public files 0644. Refuses (KeyError) when any target file exists already,
 * before writing anything; if a write fails midway, the files this call made
 * are removed again, so a failed call leaves `dir` as it found it.
 *
 * @param dir folder to write into; created (mode 0700) when missing.
 * @param workers number of worker key pairs, 1 … MAX_KEYGEN_WORKERS.
 * @returns the paths written, in writing order.
 */
export async function writeKeys(dir: string, workers: number): Promise<{ files: string[] }> {
  if (typeof dir !== 'string' || dir.length === 0) throw new ConfigError('keygen: --out must name a folder');
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_KEYGEN_WORKERS) {
    throw new ConfigError(`keygen: --workers must be an integer from 1 to ${MAX_KEYGEN_WORKERS}, got ${String(workers)}`);
  }
  const authorizedDir = join(dir, 'authorized');
  const plan: { path: string; text: string; mode: number }[] = [];
  const coordinator = generateKeyPair();
  plan.push({ path: join(dir, 'coordinator.key'), text: certificateText('Secret', 'coordinator', coordinator), mode: 0o600 });
  plan.push({ path: join(dir, 'coordinator.pub'), text: certificateText('Public', 'coordinator', { publicKey: coordinator.publicKey }), mode: 0o644 });
  for (let i = 0; i < workers; i++) {
    const pair = generateKeyPair();
    const name = `worker-${i}`;
    plan.push({ path: join(dir, `${name}.key`), text: certificateText('Secret', name, pair), mode: 0o600 });
    plan.push({ path: join(authorizedDir, `${name}.pub`), text: certificateText('Public', name, { publicKey: pair.publicKey }), mode: 0o644 });
  }

  const present: string[] = [];
  for (const { path } of plan) if (await exists(path)) present.push(path);
  if (present.length > 0) {
    const shown = present.slice(0, 3).join(', ') + (present.length > 3 ? ` and ${present.length - 3} more` : '');
    throw new KeyError(`keygen: refusing to overwrite existing keys: ${shown} (move them away or pick another --out)`);
  }

  try {
    await mkdir(authorizedDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new KeyError(`keygen: cannot create ${authorizedDir}: ${(err as Error).message}`, { cause: err });
  }
  const written: string[] = [];
  try {
    for (const item of plan) {
      await writeFileExclusive(item.path, item.text, item.mode);
      written.push(item.path);
    }
  } catch (err) {
    for (const path of written) await rm(path, { force: true }).catch(() => undefined);
    throw err;
  }
  return { files: written };
}

interface Certificate {
  publicKey?: string;
  secretKey?: string;
}

/** Parses the `curve` section of a zcert-style file; throws KeyError naming `path` on anything malformed. */
function parseCertificate(path: string, text: string): Certificate {
  const cert: Certificate = {};
  let section = '';
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.replace(/\s+$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const indented = /^\s/.test(line);
    if (!indented) {
      section = line.trim();
      continue;
    }
    if (section !== 'curve') continue;
    const m = /^\s+([A-Za-z0-9_-]+)\s*=\s*(?:"([^"]*)"|(\S*))\s*$/.exec(line);
    if (m === null) throw new KeyError(`${path}:${n + 1}: cannot parse ${JSON.stringify(line.trim())} (expected name = "value")`);
    const name = m[1]!;
    const value = m[2] ?? m[3] ?? '';
    if (name !== 'public-key' && name !== 'secret-key') continue;
    const field = name === 'public-key' ? 'publicKey' : 'secretKey';
    if (cert[field] !== undefined) throw new KeyError(`${path}:${n + 1}: ${name} appears twice`);
    const problem = keyProblem(value);
    if (problem !== undefined) throw new KeyError(`${path}:${n + 1}: ${name} ${problem}`);
    cert[field] = value;
  }
  return cert;
}

async function readKeyText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this user' : (err as Error).message;
    throw new KeyError(`${what} ${path} ${why}`, { cause: err });
  }
}

/**
 * Reads a secret key file (coordinator.key or worker-<i>.key). Refuses files
 * that other users may access (mode & 0o007; group access is allowed because
 * Kubernetes' fsGroup makes mounted Secrets group-readable), files without a
 * secret-key, and files whose public-key does not belong to the secret-key.
 */
export async function readSecretKeyFile(path: string): Promise<KeyPair> {
  const text = await readKeyText(path, 'CURVE secret key file');
  if (process.platform !== 'win32') {
    const { mode } = await stat(path);
    if ((mode & 0o007) !== 0) {
      throw new KeyError(
        `CURVE secret key file ${path} is accessible by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run chmod 600 ${path}`,
      );
    }
  }
  const cert = parseCertificate(path, text);
  if (cert.secretKey === undefined) {
    throw new KeyError(`${path} has no secret-key in a "curve" section; is it a .pub file? pass the .key file made by distgan keygen`);
  }
  const derived = publicKeyFromSecret(cert.secretKey);
  if (cert.publicKey !== undefined && cert.publicKey !== derived) {
    throw new KeyError(`${path}: public-key does not belong to secret-key (the file was edited or mixes two key pairs)`);
  }
  return { publicKey: derived, secretKey: cert.secretKey };
}

/**
 * Reads a public key file (coordinator.pub or authorized/worker-<i>.pub) and
 * returns its Z85 public key. A file that also holds a secret-key is refused:
 * secret files must not travel to other machines.
 */
export async function readPublicKeyFile(path: string): Promise<string> {
  const text = await readKeyText(path, 'CURVE public key file');
  const cert = parseCertificate(path, text);
  if (cert.secretKey !== undefined) {
    throw new KeyError(`${path} holds a secret-key; give the other side the .pub file (e.g. coordinator.pub), never the .key file`);
  }
  if (cert.publicKey === undefined) throw new KeyError(`${path} has no public-key in a "curve" section`);
  return cert.publicKey;
}

/**
 * Reads every authorised worker key in `dir`: each regular file ending in
 * `.pub` (and `.key`, czmq's name for public certificates). Names starting with
 * a dot are skipped, which also skips the `..data` links Kubernetes puts in a
 * mounted Secret.
 *
 * @returns Z85 public key → file name without extension (e.g. "worker-0"),
 *   usable directly as startZapHandler's `authorized`.
 */
export async function readAuthorizedKeys(dir: string): Promise<Map<string, string>> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a folder' : (err as Error).message;
    throw new KeyError(`authorised keys folder ${dir} ${why}`, { cause: err });
  }
  const keys = new Map<string, string>();
  for (const entry of entries.sort()) {
    if (entry.startsWith('.') || !/\.(pub|key)$/.test(entry)) continue;
    const path = join(dir, entry);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined || !info.isFile()) continue;
    let publicKey: string;
    try {
      publicKey = await readPublicKeyFile(path);
    } catch (err) {
      if (err instanceof KeyError && /holds a secret-key/.test(err.message)) {
        throw new KeyError(`authorised keys folder ${dir} must hold public keys only, but ${path} holds a secret-key; point --authorized-keys at the authorized/ folder made by distgan keygen`, { cause: err });
      }
      throw err;
    }
    if (!keys.has(publicKey)) keys.set(publicKey, basename(entry).replace(/\.(pub|key)$/, ''));
  }
  if (keys.size === 0) {
    throw new KeyError(`authorised keys folder ${dir} holds no .pub files; copy the workers' authorized/worker-<i>.pub files there`);
  }
  return keys;
}

/** Sockets that CURVE options can be applied to (any zeromq v6 socket). */
type CurveSocket = Pick<
  zmq.Socket,
  'curveServer' | 'curveSecretKey' | 'curvePublicKey' | 'curveServerKey' | 'zapDomain' | 'zapEnforceDomain'
>;

/**
 * Makes `socket` a CURVE server (ZMQ_CURVE_SERVER=1 with its long-term key
 * pair, ZMQ_ZAP_DOMAIN=ZAP_DOMAIN, ZMQ_ZAP_ENFORCE_DOMAIN=1). Call before
 * bind(). Clients are then admitted only by a running ZAP handler.
 */
export function applyServerCurve(socket: CurveSocket, keys: KeyPair): void {
  requireKey(keys.secretKey, 'coordinator secret key');
  requireKey(keys.publicKey, 'coordinator public key');
  socket.curveServer = true;
  socket.curveSecretKey = keys.secretKey;
  socket.curvePublicKey = keys.publicKey;
  socket.zapDomain = ZAP_DOMAIN;
  socket.zapEnforceDomain = true;
}

/**
 * Makes `socket` a CURVE client of the server whose public key is
 * `serverPublicKey` (ZMQ_CURVE_SERVERKEY, ZMQ_CURVE_PUBLICKEY,
 * ZMQ_CURVE_SECRETKEY). Call before connect().
 */
export function applyClientCurve(socket: CurveSocket, keys: KeyPair & { serverPublicKey: string }): void {
  requireKey(keys.secretKey, 'worker secret key');
  requireKey(keys.publicKey, 'worker public key');
  requireKey(keys.serverPublicKey, 'coordinator public key');
  socket.curveServerKey = keys.serverPublicKey;
  socket.curvePublicKey = keys.publicKey;
  socket.curveSecretKey = keys.secretKey;
}

export interface ZapHandlerOptions {
  /** Z85 public keys allowed in. A Map's values are names reported to onAccept and sent as the ZAP User-Id. */
  authorized: ReadonlySet<string> | ReadonlyMap<string, string>;
  /** Called once per refused handshake, after the refusal was sent. `address` is the peer's IP. Must not throw. */
  onReject: (reason: string, address: string) => void;
  /** Called once per admitted handshake, after the admission was sent. Must not throw. */
  onAccept?: (publicKey: string, address: string, name: string | undefined) => void;
  /** ZAP domain to accept requests for; default ZAP_DOMAIN (what applyServerCurve sets). */
  domain?: string;
  /** ZeroMQ context the server sockets live in; default zeromq's global context. ZAP only sees its own context. */
  context?: zmq.Context;
  /**
   * Milliseconds close() waits before closing the handler's socket; default
   * DEFAULT_ZAP_DRAIN_MS. Each server session holds an inproc pipe to the
   * handler until the session ends, which after the server socket's close can
   * take up to that socket's linger. libzmq 4.3.5 may abort the process
   * (assertion in pipe.cpp:355) when the handler's side of such a pipe is torn
   * down at the same moment as the session's side; waiting longer than the
   * server sockets' linger keeps the two apart. Close server sockets first.
   */
  drainMs?: number;
}

/** Default for ZapHandlerOptions.drainMs: above the coordinator router's 1 s linger. */
export const DEFAULT_ZAP_DRAIN_MS = 1500;

export interface ZapHandler {
  /** Handshakes admitted / refused so far. */
  readonly accepted: number;
  readonly rejected: number;
  /** Waits `drainMs`, unbinds the handler and waits for its loop to end. Idempotent. Call after closing the server sockets. */
  close(): Promise<void>;
}

function frameText(frame: Buffer | undefined): string {
  return frame === undefined ? '' : frame.toString('utf8');
}

/**
 * Starts the ZAP handler (RFC 27) for `context`: a REP socket bound to
 * inproc://zeromq.zap.01 that answers each authentication request with 200
 * when the client's CURVE public key is in `authorized` and 400 otherwise
 * (500 for a request it cannot parse). Only one handler can exist per context
 * (KeyError otherwise). Start it before the server socket binds.
 */
export async function startZapHandler(opts: ZapHandlerOptions): Promise<ZapHandler> {
  const domain = opts.domain ?? ZAP_DOMAIN;
  const drainMs = opts.drainMs ?? DEFAULT_ZAP_DRAIN_MS;
  if (!(Number.isFinite(drainMs) && drainMs >= 0)) throw new ConfigError(`ZAP drainMs must be a non-negative number of milliseconds, got ${String(drainMs)}`);
  const socket = new zmq.Reply(opts.context === undefined ? {} : { context: opts.context });
  socket.linger = 0;
  try {
    await socket.bind(ZAP_ENDPOINT);
  } catch (err) {
    socket.close();
    throw new KeyError(`cannot start the CURVE authentication (ZAP) handler: ${(err as Error).message}; is another one running in this process?`, {
      cause: err,
    });
  }

  let accepted = 0;
  let rejected = 0;
  const nameOf = (key: string): string | undefined =>
    opts.authorized instanceof Map ? (opts.authorized as ReadonlyMap<string, string>).get(key) : undefined;

  // A pure decision per request; the loop below only does socket I/O.
  const decide = (frames: Buffer[]): { status: '200' | '400' | '500'; text: string; userId: string; key?: string } => {
    const [version, , reqDomain, , , mechanism, credentials] = frames;
    if (frames.length < 6 || frameText(version) !== '1.0') {
      return { status: '500', text: `malformed ZAP request (version ${JSON.stringify(frameText(version))}, ${frames.length} frames)`, userId: '' };
    }
    if (frameText(reqDomain) !== domain) {
      return { status: '400', text: `ZAP domain ${JSON.stringify(frameText(reqDomain))} is not ${JSON.stringify(domain)}`, userId: '' };
    }
    if (frameText(mechanism) !== 'CURVE') {
      return { status: '400', text: `security mechanism ${frameText(mechanism) || '(none)'} is not CURVE`, userId: '' };
    }
    if (credentials === undefined || credentials.length !== KEY_BYTES) {
      return { status: '400', text: `CURVE credentials are ${credentials?.length ?? 0} bytes, expected ${KEY_BYTES}`, userId: '' };
    }
    const key = z85Encode(credentials);
    if (!opts.authorized.has(key)) return { status: '400', text: `CURVE public key ${key} is not authorised`, userId: '', key };
    return { status: '200', text: 'OK', userId: nameOf(key) ?? key, key };
  };

  const loop = (async () => {
    // The iterator ends when the socket closes; any other receive error also
    // ends the loop, after which libzmq fails pending handshakes (fail closed).
    try {
      for await (const frames of socket) {
        const decision = decide(frames);
        const address = frameText(frames[3]);
        // Reply first: libzmq holds the client's handshake until the reply arrives.
        await socket.send(['1.0', frames[1] ?? '', decision.status, decision.text, decision.userId, '']);
        try {
          if (decision.status === '200') {
            accepted++;
            opts.onAccept?.(decision.key!, address, nameOf(decision.key!));
          } else {
            rejected++;
            opts.onReject(decision.text, address);
          }
        } catch {
          // Callbacks are for logging and counting; one that throws must not
          // stop authentication for every later client.
        }
      }
    } catch (err) {
      if (!socket.closed) throw err;
    }
  })();
  loop.catch(() => undefined); // observed through close()

  let closing: Promise<void> | undefined;
  return {
    get accepted() {
      return accepted;
    },
    get rejected() {
      return rejected;
    },
    close() {
      closing ??= (async () => {
        if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
        // zmq_close releases the inproc name later, on libzmq's reaper thread;
        // unbinding first frees it now, so a new handler can bind at once.
        await socket.unbind(ZAP_ENDPOINT).catch(() => undefined);
        socket.close();
        await loop.catch(() => undefined);
      })();
      return closing;
    },
  };
}

/**
 * Reports the handshakes libzmq refuses before ZAP is asked: a client without
 * CURVE (ERR_ZMTP_MECHANISM_MISMATCH) or one holding the wrong coordinator
 * public key (ERR_ZMTP_CRYPTOGRAPHIC). ZAP refusals are not repeated here (they
 * reach startZapHandler's onReject with the key). Such clients retry every
 * reconnect interval (100 ms by default), so expect repeated calls.
 *
 * Uses the socket's event observer in emitter mode (`socket.events.on`); other
 * code on the same socket must also use `.on`, not `for await`.
 *
 * @returns a function that unsubscribes.
 */
export function watchHandshakeFailures(
  socket: Pick<zmq.Socket, 'events'>,
  onFailure: (reason: string, endpoint: string) => void,
): () => void {
  const explain: Partial<Record<string, string>> = {
    ERR_ZMTP_MECHANISM_MISMATCH: 'the client does not use CURVE',
    ERR_ZMTP_CRYPTOGRAPHIC: 'the client holds a different coordinator public key',
  };
  const protocol = (e: zmq.EventOfType<'handshake:error:protocol'>) =>
    onFailure(`handshake refused: ${e.error.code} (${explain[e.error.code] ?? e.error.message})`, e.address);
  const other = (e: zmq.EventOfType<'handshake:error:other'>) => onFailure(`handshake failed: ${e.error.message}`, e.address);
  socket.events.on('handshake:error:protocol', protocol);
  socket.events.on('handshake:error:other', other);
  return () => {
    socket.events.off('handshake:error:protocol', protocol);
    socket.events.off('handshake:error:other', other);
  };
}
