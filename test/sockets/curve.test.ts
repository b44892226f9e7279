/**
 * CURVE + ZAP over real zeromq Router/Dealer sockets on tcp loopback, and the
 * key files they are loaded from. What must hold: an authorised key exchanges
 * messages; an unknown key, a wrong coordinator key and a keyless client
 * exchange nothing and are reported; a server without a ZAP handler fails
 * closed; the handler closes without hanging the process.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile, writeFile, stat, chmod, mkdir, symlink, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { Command } from 'commander';
import {
  applyClientCurve,
  applyServerCurve,
  generateKeyPair,
  publicKeyFromSecret,
  readAuthorizedKeys,
  readPublicKeyFile,
  readSecretKeyFile,
  startZapHandler,
  watchHandshakeFailures,
  writeKeys,
  z85Decode,
  z85Encode,
  type KeyPair,
} from '../../src/transport/curve.js';
import { isLoopbackEndpoint } from '../../src/transport/endpoints.js';
import { register as registerKeygen } from '../../src/cli/commands/keygen.js';
import { ConfigError, KeyError } from '../../src/shared/errors.js';

/** How long a refused client is given to get a message through (ms). Nothing may arrive in this window. */
const REFUSAL_WINDOW_MS = 1500;
/** ZAP handler drain for servers whose routers have linger 0 (ms); see ZapHandlerOptions.drainMs. */
const DRAIN_MS = 200;

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'distgan-curve-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('Z85 and key pairs', () => {
  test('RFC 32 test vector round-trips', () => {
    const bytes = Uint8Array.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
    assert.equal(z85Encode(bytes), 'HelloWorld');
    assert.deepEqual(z85Decode('HelloWorld'), bytes);
    assert.equal(z85Decode('Hello'.slice(0, 4)), undefined);
    assert.equal(z85Decode('Hell"'), undefined);
    assert.equal(z85Decode('#####'), undefined, '85^5-1 overflows 32 bits');
  });

  test('public keys derived from secrets match libzmq key pairs', () => {
    for (let i = 0; i < 8; i++) {
      const pair = generateKeyPair();
      assert.equal(pair.publicKey.length, 40);
      assert.equal(publicKeyFromSecret(pair.secretKey), pair.publicKey);
    }
  });
});

describe('key files', () => {
  test('writeKeys writes the documented layout with private modes and reads back', async () => {
    await withTempDir(async (dir) => {
      const out = join(dir, 'keys');
      const { files } = await writeKeys(out, 3);
      assert.deepEqual(
        files.map((f) => f.slice(out.length + 1)).sort(),
        [
          'authorized/worker-0.pub',
          'authorized/worker-1.pub',
          'authorized/worker-2.pub',
          'coordinator.key',
          'coordinator.pub',
          'worker-0.key',
          'worker-1.key',
          'worker-2.key',
        ],
      );
      for (const f of files) {
        const mode = (await stat(f)).mode & 0o777;
        assert.equal(mode, f.endsWith('.key') ? 0o600 : 0o644, `${f} mode ${mode.toString(8)}`);
      }
      assert.deepEqual((await readdir(out)).filter((n) => n.includes('.tmp-')), [], 'no temporary files left');
      const coordinator = await readSecretKeyFile(join(out, 'coordinator.key'));
      assert.equal(await readPublicKeyFile(join(out, 'coordinator.pub')), coordinator.publicKey);
      const authorized = await readAuthorizedKeys(join(out, 'authorized'));
      assert.equal(authorized.size, 3);
      for (let i = 0; i < 3; i++) {
        const worker = await readSecretKeyFile(join(out, `worker-${i}.key`));
        assert.equal(authorized.get(worker.publicKey), `worker-${i}`);
        assert.notEqual(worker.secretKey, coordinator.secretKey);
      }
      assert.ok(!authorized.has(coordinator.publicKey));
      // The secret key never appears in a public file.
      for (const f of files.filter((p) => p.endsWith('.pub'))) {
        const text = await readFile(f, 'utf8');
        assert.ok(!text.includes('secret-key'), f);
      }
    });
  });

  test('writeKeys refuses to overwrite and leaves existing files untouched', async () => {
    await withTempDir(async (dir) => {
      const first = await writeKeys(dir, 2);
      const before = await Promise.all(first.files.map((f) => readFile(f, 'utf8')));
      await assert.rejects(writeKeys(dir, 2), (err: unknown) => err instanceof KeyError && /refusing to overwrite/.test(err.message));
      // More workers than before: the new worker-2 must not be written either.
      await assert.rejects(writeKeys(dir, 3), KeyError);
      await assert.rejects(stat(join(dir, 'worker-2.key')), { code: 'ENOENT' });
      const after = await Promise.all(first.files.map((f) => readFile(f, 'utf8')));
      assert.deepEqual(after, before);
    });
  });

  test('one pre-existing file blocks the whole set', async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, 'authorized'));
      await writeFile(join(dir, 'authorized', 'worker-1.pub'), 'someone else\n');
      await assert.rejects(writeKeys(dir, 2), (err: unknown) => err instanceof KeyError && err.message.includes('worker-1.pub'));
      assert.deepEqual((await readdir(dir)).sort(), ['authorized']);
      assert.deepEqual(await readdir(join(dir, 'authorized')), ['worker-1.pub']);
    });
  });

  test('writeKeys rejects bad worker counts with ConfigError', async () => {
    await withTempDir(async (dir) => {
      for (const n of [0, -1, 1.5, Number.NaN, 100000]) {
        await assert.rejects(writeKeys(join(dir, 'k'), n), ConfigError, `workers=${n}`);
      }
      await assert.rejects(stat(join(dir, 'k')), { code: 'ENOENT' });
    });
  });

  test('malformed files raise KeyError naming the file and the problem', async () => {
    await withTempDir(async (dir) => {
      const pair = generateKeyPair();
      const other = generateKeyPair();
      const cert = (fields: string) => `metadata\n    name = "x"\ncurve\n${fields}`;
      const cases: [name: string, text: string, reader: 'secret' | 'public', pattern: RegExp][] = [
        ['short.key', cert(`    public-key = "${pair.publicKey}"\n    secret-key = "${pair.secretKey.slice(1)}"\n`), 'secret', /secret-key is 39 characters/],
        ['badchar.pub', cert(`    public-key = "${pair.publicKey.slice(0, 39)}~"\n`), 'public', /"~", which is not a Z85/],
        ['mixed.key', cert(`    public-key = "${other.publicKey}"\n    secret-key = "${pair.secretKey}"\n`), 'secret', /does not belong/],
        ['nosecret.key', cert(`    public-key = "${pair.publicKey}"\n`), 'secret', /no secret-key/],
        ['nopublic.pub', 'metadata\n    name = "x"\n', 'public', /no public-key/],
        ['secret.pub', cert(`    public-key = "${pair.publicKey}"\n    secret-key = "${pair.secretKey}"\n`), 'public', /holds a secret-key/],
        ['twice.pub', cert(`    public-key = "${pair.publicKey}"\n    public-key = "${pair.publicKey}"\n`), 'public', /appears twice/],
        ['garbage.pub', cert('    public-key "abc"\n'), 'public', /garbage\.pub:4: cannot parse/],
      ];
      for (const [name, text, reader, pattern] of cases) {
        const path = join(dir, name);
        await writeFile(path, text, { mode: 0o600 });
        const read = reader === 'secret' ? readSecretKeyFile(path) : readPublicKeyFile(path);
        await assert.rejects(read, (err: unknown) => {
          assert.ok(err instanceof KeyError, `${name}: ${String(err)}`);
          assert.match(err.message, pattern, name);
          assert.ok(err.message.includes(path), `${name}: message names the file: ${err.message}`);
          return true;
        });
      }
      await assert.rejects(readSecretKeyFile(join(dir, 'absent.key')), /absent\.key does not exist/);
    });
  });

  test('a secret key file readable by other users is refused', async (t) => {
    if (process.platform === 'win32') return t.skip('POSIX modes only');
    await withTempDir(async (dir) => {
      await writeKeys(dir, 1);
      const path = join(dir, 'worker-0.key');
      await chmod(path, 0o644);
      await assert.rejects(readSecretKeyFile(path), (err: unknown) => err instanceof KeyError && /chmod 600/.test(err.message));
      await chmod(path, 0o640); // group-readable, as a Kubernetes Secret with fsGroup is: allowed
      await readSecretKeyFile(path);
    });
  });

  test('readAuthorizedKeys skips dot entries (Kubernetes ..data links) and needs at least one key', async () => {
    await withTempDir(async (dir) => {
      await writeKeys(join(dir, 'k'), 2);
      const auth = join(dir, 'mounted');
      await mkdir(join(auth, '..2024_01_01'), { recursive: true });
      await writeFile(join(auth, '..2024_01_01', 'worker-0.pub'), await readFile(join(dir, 'k', 'authorized', 'worker-0.pub')));
      await symlink('..2024_01_01', join(auth, '..data'));
      await symlink('..data/worker-0.pub', join(auth, 'worker-0.pub'));
      await writeFile(join(auth, 'README'), 'not a key');
      const keys = await readAuthorizedKeys(auth);
      assert.deepEqual([...keys.values()], ['worker-0']);
      const empty = join(dir, 'empty');
      await mkdir(empty);
      await assert.rejects(readAuthorizedKeys(empty), (err: unknown) => err instanceof KeyError && err.message.includes(empty));
      await assert.rejects(readAuthorizedKeys(join(dir, 'nope')), /does not exist/);
      // The keygen folder itself (holding secret .key files) is not an authorised-keys folder.
      await assert.rejects(readAuthorizedKeys(join(dir, 'k')), (err: unknown) => err instanceof KeyError && /public keys only/.test(err.message));
    });
  });
});

describe('distgan keygen command', () => {
  function program(): Command {
    const p = new Command().name('distgan').exitOverride();
    p.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    registerKeygen(p);
    return p;
  }

  test('writes keys, then refuses a second run without touching them', async () => {
    await withTempDir(async (dir) => {
      const out = join(dir, 'keys');
      const log: string[] = [];
      const write = process.stdout.write;
      process.stdout.write = ((chunk: string | Uint8Array) => (log.push(String(chunk)), true)) as typeof process.stdout.write;
      try {
        await program().parseAsync(['keygen', '--out', out, '--workers', '3'], { from: 'user' });
      } finally {
        process.stdout.write = write;
      }
      assert.equal((await readAuthorizedKeys(join(out, 'authorized'))).size, 3);
      assert.match(log.join(''), /coordinator\.key/);
      const before = await readFile(join(out, 'coordinator.key'), 'utf8');
      await assert.rejects(program().parseAsync(['keygen', '--out', out], { from: 'user' }), KeyError);
      assert.equal(await readFile(join(out, 'coordinator.key'), 'utf8'), before);
    });
  });

  test('bad --workers is a ConfigError and writes nothing', async () => {
    await withTempDir(async (dir) => {
      for (const bad of ['0', 'two', '1.5', '-3', '']) {
        await assert.rejects(
          program().parseAsync(['keygen', '--out', join(dir, 'k'), '--workers', bad], { from: 'user' }),
          (err: unknown) => err instanceof ConfigError && err.message.includes('--workers'),
          `--workers ${JSON.stringify(bad)}`,
        );
      }
      await assert.rejects(stat(join(dir, 'k')), { code: 'ENOENT' });
    });
  });
});

test('isLoopbackEndpoint', () => {
  const loopback = ['tcp://127.0.0.1:5555', 'tcp://127.1.2.3:1', 'tcp://localhost:9', 'tcp://[::1]:5555', 'tcp://lo:5555', 'ipc:///tmp/x', 'inproc://a', 'tcp://10.0.0.1:0;127.0.0.1:5555'];
  const reachable = ['tcp://*:5555', 'tcp://0.0.0.0:5555', 'tcp://[::]:5555', 'tcp://10.1.2.3:5555', 'tcp://eth0:5555', 'tcp://coordinator:5555', 'tcp://128.0.0.1:1'];
  for (const e of loopback) assert.equal(isLoopbackEndpoint(e), true, e);
  for (const e of reachable) assert.equal(isLoopbackEndpoint(e), false, e);
  for (const e of ['', '127.0.0.1:5555', 'tcp://127.0.0.1', 'tcp://']) assert.throws(() => isLoopbackEndpoint(e), ConfigError, e);
});

/**
 * A CURVE server Router on tcp loopback with a ZAP handler admitting
 * `authorized`. Each gets its own ZeroMQ context: libzmq (4.3.5) can abort on
 * a pipe-termination assertion when a new ZAP handler binds inproc://zeromq.zap.01
 * in a context whose previous server sessions are still tearing down their
 * ZAP pipes, which back-to-back tests in one process would otherwise do.
 */
async function curveServer(authorized: Map<string, string>) {
  const context = new zmq.Context();
  const serverKeys = generateKeyPair();
  const rejects: { reason: string; address: string }[] = [];
  const accepts: { key: string; name: string | undefined }[] = [];
  const failures: string[] = [];
  const zap = await startZapHandler({
    authorized,
    onReject: (reason, address) => rejects.push({ reason, address }),
    onAccept: (key, _address, name) => accepts.push({ key, name }),
    context,
    drainMs: DRAIN_MS,
  });
  const router = new zmq.Router({ linger: 0, context });
  applyServerCurve(router, serverKeys);
  const unwatch = watchHandshakeFailures(router, (reason) => failures.push(reason));
  await router.bind('tcp://127.0.0.1:0');
  return {
    serverKeys,
    router,
    endpoint: router.lastEndpoint!,
    rejects,
    accepts,
    failures,
    zap,
    async close() {
      unwatch();
      router.close();
      await zap.close();
    },
  };
}

function client(endpoint: string, curve?: KeyPair & { serverPublicKey: string }): zmq.Dealer {
  // linger 0: a refused client's queued message can never be sent, and must not block exit.
  const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: REFUSAL_WINDOW_MS });
  if (curve !== undefined) applyClientCurve(dealer, curve);
  dealer.connect(endpoint);
  return dealer;
}

/** Resolves with the next message on `router`, or undefined when none arrives within the window. */
async function nextOrNothing(router: zmq.Router): Promise<Buffer[] | undefined> {
  router.receiveTimeout = REFUSAL_WINDOW_MS;
  try {
    return await router.receive();
  } catch (err) {
    if ((err as { code?: string }).code === 'EAGAIN') return undefined;
    throw err;
  }
}

describe('CURVE with ZAP over tcp loopback', () => {
  test('an authorised worker key exchanges messages both ways', async () => {
    const worker = generateKeyPair();
    const server = await curveServer(new Map([[worker.publicKey, 'worker-0']]));
    const dealer = client(server.endpoint, { ...worker, serverPublicKey: server.serverKeys.publicKey });
    try {
      await dealer.send(['ping', Buffer.alloc(4096, 7)]);
      const msg = await nextOrNothing(server.router);
      assert.ok(msg !== undefined, 'the authorised message arrived');
      const [identity, text, payload] = msg;
      assert.equal(text!.toString(), 'ping');
      assert.equal(payload!.length, 4096);
      await server.router.send([identity!, 'pong']);
      const [reply] = await dealer.receive();
      assert.equal(reply!.toString(), 'pong');
      assert.equal(server.router.securityMechanism, 'curve');
      assert.deepEqual(server.accepts, [{ key: worker.publicKey, name: 'worker-0' }]);
      assert.deepEqual(server.rejects, []);
      assert.equal(server.zap.accepted, 1);
    } finally {
      dealer.close();
      await server.close();
    }
  });

  test('an unknown worker key exchanges nothing and is reported to onReject', async () => {
    const worker = generateKeyPair();
    const intruder = generateKeyPair();
    const server = await curveServer(new Map([[worker.publicKey, 'worker-0']]));
    const dealer = client(server.endpoint, { ...intruder, serverPublicKey: server.serverKeys.publicKey });
    try {
      await dealer.send('let me in');
      assert.equal(await nextOrNothing(server.router), undefined, 'nothing from the refused key reached the router');
      await assert.rejects(dealer.receive(), { code: 'EAGAIN' });
      assert.ok(server.rejects.length >= 1, 'onReject fired');
      assert.ok(server.rejects[0]!.reason.includes(intruder.publicKey), server.rejects[0]!.reason);
      assert.equal(server.rejects[0]!.address, '127.0.0.1');
      assert.equal(server.zap.rejected, server.rejects.length);
      assert.deepEqual(server.accepts, []);
    } finally {
      dealer.close();
      await server.close();
    }
  });

  test('a client holding the wrong coordinator key exchanges nothing and is reported', async () => {
    const worker = generateKeyPair();
    const server = await curveServer(new Map([[worker.publicKey, 'worker-0']]));
    const dealer = client(server.endpoint, { ...worker, serverPublicKey: generateKeyPair().publicKey });
    try {
      await dealer.send('hello?');
      assert.equal(await nextOrNothing(server.router), undefined);
      // Usually ERR_ZMTP_CRYPTOGRAPHIC; when the client hangs up first libzmq reports the broken pipe instead.
      assert.ok(server.failures.length > 0, 'the refused handshake was reported');
      assert.ok(server.failures.every((f) => /ERR_ZMTP_CRYPTOGRAPHIC|handshake failed/.test(f)), server.failures.join('; '));
      assert.deepEqual(server.accepts, []);
    } finally {
      dealer.close();
      await server.close();
    }
  });

  test('a client without CURVE exchanges nothing and is reported', async () => {
    const worker = generateKeyPair();
    const server = await curveServer(new Map([[worker.publicKey, 'worker-0']]));
    const dealer = client(server.endpoint);
    try {
      await dealer.send('plain text');
      assert.equal(await nextOrNothing(server.router), undefined);
      await assert.rejects(dealer.receive(), { code: 'EAGAIN' });
      // Usually a mechanism mismatch; when the client hangs up first libzmq reports the broken pipe instead.
      assert.ok(server.failures.length > 0, 'the refused handshake was reported');
      assert.ok(server.failures.every((f) => /does not use CURVE|handshake failed/.test(f)), server.failures.join('; '));
      assert.deepEqual(server.accepts, []);
    } finally {
      dealer.close();
      await server.close();
    }
  });

  test('the right key still works next to refused clients', async () => {
    const worker = generateKeyPair();
    const server = await curveServer(new Map([[worker.publicKey, 'worker-0']]));
    const bad = client(server.endpoint, { ...generateKeyPair(), serverPublicKey: server.serverKeys.publicKey });
    const good = client(server.endpoint, { ...worker, serverPublicKey: server.serverKeys.publicKey });
    try {
      await bad.send('bad');
      await good.send('good');
      const msg = await nextOrNothing(server.router);
      assert.equal(msg?.[1]?.toString(), 'good');
      assert.equal(await nextOrNothing(server.router), undefined, 'and nothing else');
      assert.ok(server.rejects.length >= 1);
    } finally {
      bad.close();
      good.close();
      await server.close();
    }
  });

  test('without a ZAP handler a CURVE server refuses everyone (fails closed)', async () => {
    const worker = generateKeyPair();
    const serverKeys = generateKeyPair();
    const router = new zmq.Router({ linger: 0, context: new zmq.Context() });
    applyServerCurve(router, serverKeys);
    await router.bind('tcp://127.0.0.1:0');
    const dealer = client(router.lastEndpoint!, { ...worker, serverPublicKey: serverKeys.publicKey });
    try {
      await dealer.send('no handler');
      assert.equal(await nextOrNothing(router), undefined);
    } finally {
      dealer.close();
      router.close();
    }
  });

  test('one handler per context; close is idempotent and frees the endpoint', async () => {
    // No server sockets here, so nothing to drain.
    const opts = { authorized: new Set<string>(), onReject: () => undefined, drainMs: 0 };
    const first = await startZapHandler(opts);
    await assert.rejects(startZapHandler(opts), KeyError);
    await first.close();
    await first.close();
    const second = await startZapHandler(opts);
    await second.close();
    // A handler in a separate context does not collide with the global one.
    const context = new zmq.Context();
    const third = await startZapHandler(opts);
    const isolated = await startZapHandler({ ...opts, context });
    await Promise.all([third.close(), isolated.close()]);
  });

  test('a throwing onReject does not stop later authentication', async () => {
    const worker = generateKeyPair();
    const serverKeys = generateKeyPair();
    let calls = 0;
    const context = new zmq.Context();
    const zap = await startZapHandler({
      authorized: new Set([worker.publicKey]),
      onReject: () => {
        calls++;
        throw new Error('logger broke');
      },
      context,
      drainMs: DRAIN_MS,
    });
    const router = new zmq.Router({ linger: 0, context });
    applyServerCurve(router, serverKeys);
    await router.bind('tcp://127.0.0.1:0');
    const bad = client(router.lastEndpoint!, { ...generateKeyPair(), serverPublicKey: serverKeys.publicKey });
    try {
      await bad.send('x');
      assert.equal(await nextOrNothing(router), undefined);
      assert.ok(calls >= 1);
      const good = client(router.lastEndpoint!, { ...worker, serverPublicKey: serverKeys.publicKey });
      try {
        await good.send('y');
        assert.equal((await nextOrNothing(router))?.[1]?.toString(), 'y');
      } finally {
        good.close();
      }
    } finally {
      bad.close();
      router.close();
      await zap.close();
    }
  });

  test('drainMs must be a non-negative number', async () => {
    for (const drainMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await assert.rejects(startZapHandler({ authorized: new Set(), onReject: () => undefined, drainMs }), ConfigError, String(drainMs));
    }
  });

  test('a process using the handler exits by itself after closing (no leaked socket or hang)', async () => {
    // Run in a child so a hang shows as a timeout instead of stalling this runner.
    // It keeps the default drain, as the coordinator does.
    const curveUrl = new URL('../../src/transport/curve.js', import.meta.url).href;
    const script = `
      const zmq = await import('zeromq');
      const c = await import(${JSON.stringify(curveUrl)});
      const server = c.generateKeyPair(), intruder = c.generateKeyPair();
      let rejected = 0;
      const zap = await c.startZapHandler({ authorized: new Set(), onReject: () => rejected++ });
      const router = new zmq.Router({ linger: 0 });
      c.applyServerCurve(router, server);
      await router.bind('tcp://127.0.0.1:0');
      const dealer = new zmq.Dealer({ linger: 0 });
      c.applyClientCurve(dealer, { ...intruder, serverPublicKey: server.publicKey });
      dealer.connect(router.lastEndpoint);
      await dealer.send('x');
      while (rejected === 0) await new Promise((r) => setTimeout(r, 20));
      dealer.close(); router.close(); await zap.close();
      process.stdout.write('closed ' + rejected + '\\n');
    `;
    const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('hung');
      }, 20_000);
      child.on('exit', (c, s) => {
        clearTimeout(timer);
        resolve(c ?? String(s));
      });
    });
    assert.equal(code, 0, out);
    assert.match(out, /closed [1-9]/);
  });
});
