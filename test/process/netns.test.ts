/**
 * distgan across machines, simulated with Linux network namespaces: three
 * "hosts" (coordinator, worker 0, worker 1) with their own addresses, joined by
 * veth pairs to a bridge that lives in a fourth namespace, so no traffic
 * touches the machine's own interfaces. CURVE is on throughout.
 *
 *  1. Plumbing: a plain ZeroMQ CURVE Router/Dealer exchange between the
 *     namespaces (independent of the CLI).
 *  2. A tiny run through the real CLI (`distgan keygen`, `coordinator`, two
 *     `worker`s; the sharded reduction with its owner threads) completes,
 *     while an unauthorised worker's attempts are refused without disturbing it.
 *  3. A worker's link is taken down mid-run: the coordinator exits non-zero
 *     within its --step-timeout and its stderr names that rank.
 *  4. The sharded reduction with a `distgan reducer` on each worker host
 *     (CURVE on every link): a run completes; then a cut host is named by
 *     what went away with it (its worker or its reducer), never the other host.
 *
 * Needs root and iproute2; skipped (saying why) only where namespaces cannot
 * be created. Namespaces and links are removed in `finally`, even on failure.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/cli.js';


const CLI = join(ROOT, 'bin', 'distgan.js');
/** ZeroMQ port the coordinator binds inside its namespace (private to it). */
const PORT = 29500;
/** Seconds a worker may take per phase in the link-down run; the coordinator must exit soon after. */
const STEP_TIMEOUT_S = 5;

// Unique per test process (full pid: ≤ 7 digits, so `v<tag>w1` stays within 15 characters).
const tag = `dg${process.pid}`;
const NAME_PATTERN = /^dg(\d+)(s|c|w0|w1)$/;
const ns = { switch: `${tag}s`, c: `${tag}c`, w0: `${tag}w0`, w1: `${tag}w1` };
const hosts = [ns.c, ns.w0, ns.w1] as const;
// A private /24; the namespaces are isolated, so it cannot clash with the host's.
const subnet = `10.213.${process.pid % 250}`;
const addr = { [ns.c]: `${subnet}.1`, [ns.w0]: `${subnet}.2`, [ns.w1]: `${subnet}.3` } as Record<string, string>;
const endpoint = `tcp://${addr[ns.c]}:${PORT}`;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

let skipReason: string | undefined;
let work = '';
const children: ChildProcess[] = [];

function teardownNetwork(): void {
  for (const name of Object.values(ns)) {
    try {
      ip('netns', 'del', name);
    } catch {
      // not created
    }
  }
  // veth ends still in the root namespace if setup stopped half-way.
  for (const h of hosts) {
    try {
      ip('link', 'del', `v${h}`);
    } catch {
      // gone with its namespace, or never made
    }
  }
}

/**
 * Removes namespaces left by an earlier run of this file that was killed
 * before its `after` hook (SIGKILL): only those whose creating process no
 * longer exists, after killing the coordinator/worker processes that run
 * started inside them (`ip netns pids` lists exactly those).
 */
function removeStaleNamespaces(): void {
  let list = '';
  try {
    list = ip('netns', 'list');
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const name = line.split(/\s+/)[0] ?? '';
    const m = NAME_PATTERN.exec(name);
    if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
    try {
      for (const pid of ip('netns', 'pids', name).split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      ip('netns', 'del', name);
    } catch {
      // raced with another cleaner
    }
  }
}

/** Removes temporary folders of earlier runs whose process no longer exists. */
async function removeStaleFolders(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const m = /^distgan-netns-(\d+)-/.exec(name);
    if (m && Number(m[1]) !== process.pid && !existsSync(`/proc/${m[1]}`)) await rm(join(tmpdir(), name), { recursive: true, force: true });
  }
}

function setupNetwork(): void {
  ip('netns', 'add', ns.switch);
  ip('-n', ns.switch, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', ns.switch, 'link', 'set', 'br0', 'up');
  for (const h of hosts) {
    ip('netns', 'add', h);
    ip('-n', h, 'link', 'set', 'lo', 'up');
    // v<host> (≤ 15 chars) goes into the host as eth0, b<host> onto the bridge.
    ip('link', 'add', `v${h}`, 'type', 'veth', 'peer', 'name', `b${h}`);
    ip('link', 'set', `v${h}`, 'netns', h);
    ip('link', 'set', `b${h}`, 'netns', ns.switch);
    ip('-n', h, 'link', 'set', `v${h}`, 'name', 'eth0');
    ip('-n', h, 'addr', 'add', `${addr[h]}/24`, 'dev', 'eth0');
    ip('-n', h, 'link', 'set', 'eth0', 'up');
    ip('-n', ns.switch, 'link', 'set', `b${h}`, 'master', 'br0');
    ip('-n', ns.switch, 'link', 'set', `b${h}`, 'up');
  }
}

before(async () => {
  if (process.platform !== 'linux') {
    skipReason = 'network namespaces are Linux-only';
    return;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    skipReason = 'creating network namespaces needs root';
    return;
  }
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    skipReason = 'iproute2 (`ip`) is not installed';
    return;
  }
  removeStaleNamespaces();
  await removeStaleFolders();
  // A runner that times out sends SIGTERM: still remove the namespaces.
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      for (const child of children) child.kill('SIGKILL');
      teardownNetwork();
      process.exit(1);
    });
  }
  try {
    setupNetwork();
  } catch (err) {
    teardownNetwork();
    const e = err as { stderr?: string; message: string };
    skipReason = `network namespaces cannot be created here: ${(e.stderr || e.message).trim()}`;
    return;
  }
  work = await mkdtemp(join(tmpdir(), `distgan-netns-${process.pid}-`));
});

after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  teardownNetwork();
  if (work) await rm(work, { recursive: true, force: true });
});

interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Exit code (or signal name), or 'timeout' when it has not exited within `ms`. */
  exited: (ms: number) => Promise<number | string>;
}

/** Starts `node args…` inside namespace `where`, capturing its output. */
function runIn(where: string, args: string[]): Proc {
  const child = spawn('ip', ['netns', 'exec', where, process.execPath, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: 'true' },
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: (ms) => Promise.race([done, new Promise<string>((r) => setTimeout(() => r('timeout'), ms).unref())]),
  };
}

function kill(p: Proc): void {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
}

/** Resolves once `probe()` is true, polling every 100 ms; rejects with `what` after `ms`. */
async function waitFor(probe: () => boolean, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The coordinator's --log-format json events, from whichever stream carries them. */
function events(p: Proc): Record<string, unknown>[] {
  return jsonEvents(`${p.stdout()}\n${p.stderr()}`);
}

function jsonEvents(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

/** The coordinator's human-readable lines (everything that is not a JSON event). */
const plainLines = (p: Proc): string[] => `${p.stdout()}\n${p.stderr()}`.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));

const dump = (label: string, p: Proc): string => `--- ${label} stdout\n${p.stdout().slice(-3000)}\n--- ${label} stderr\n${p.stderr().slice(-3000)}`;

test('namespaces: plain ZeroMQ CURVE exchange between two hosts', async (t) => {
  if (skipReason) return t.skip(skipReason);
  const curveUrl = new URL('../../src/transport/curve.js', import.meta.url).href;
  const prelude = `const zmq = await import('zeromq'); const c = await import(${JSON.stringify(curveUrl)});`;
  const keys = join(work, 'plumbing-keys');
  const { writeKeys } = await import('../../src/transport/curve.js');
  await writeKeys(keys, 1);
  const server = runIn(ns.c, [
    ...process.execArgv,
    '--input-type=module',
    '-e',
    `${prelude}
     const zap = await c.startZapHandler({ authorized: await c.readAuthorizedKeys(${JSON.stringify(join(keys, 'authorized'))}), onReject: () => {} });
     const r = new zmq.Router({ linger: 0 });
     c.applyServerCurve(r, await c.readSecretKeyFile(${JSON.stringify(join(keys, 'coordinator.key'))}));
     await r.bind(${JSON.stringify(endpoint)});
     process.stdout.write('bound\\n');
     const [id, msg] = await r.receive();
     await r.send([id, 'pong:' + msg.toString()]);
     process.stdout.write('peer ' + msg.toString() + '\\n');
     await new Promise((res) => setTimeout(res, 200));
     r.close(); await zap.close();`,
  ]);
  try {
    await waitFor(() => server.stdout().includes('bound'), 15_000, () => dump('server', server));
    const clientProc = runIn(ns.w0, [
      ...process.execArgv,
      '--input-type=module',
      '-e',
      `${prelude}
       const d = new zmq.Dealer({ linger: 0, receiveTimeout: 10000 });
       c.applyClientCurve(d, { ...(await c.readSecretKeyFile(${JSON.stringify(join(keys, 'worker-0.key'))})), serverPublicKey: await c.readPublicKeyFile(${JSON.stringify(join(keys, 'coordinator.pub'))}) });
       d.connect(${JSON.stringify(endpoint)});
       await d.send('from ' + ${JSON.stringify(addr[ns.w0])});
       const [reply] = await d.receive();
       process.stdout.write(reply.toString() + '\\n');
       d.close();`,
    ]);
    assert.equal(await clientProc.exited(20_000), 0, dump('client', clientProc));
    assert.match(clientProc.stdout(), new RegExp(`pong:from ${addr[ns.w0]!.replace(/\./g, '\\.')}`));
    assert.equal(await server.exited(10_000), 0, dump('server', server));
  } finally {
    kill(server);
  }
});

/** Fails with a clear message when the CLI is not built, rather than a confusing child error. */
function requireCli(): void {
  if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) {
    assert.fail(`the CLI is not built (${join(ROOT, 'dist', 'src', 'cli', 'main.js')} missing): run \`npx tsc -p ${ROOT}\` first`);
  }
}

function coordinatorArgs(keys: string, out: string, extra: string[]): string[] {
  return [
    CLI,
    'coordinator',
    '--bind', endpoint,
    '--world-size', '2',
    '--curve-secret-key', join(keys, 'coordinator.key'),
    '--authorized-keys', join(keys, 'authorized'),
    '--dataset', 'ring8',
    '--model', 'mlp',
    '--metrics-port', '0',
    '--log-format', 'json',
    '--log-every', '1',
    '--join-timeout', '60',
    '--out', out,
    ...extra,
  ];
}

function workerArgs(keys: string, rank: number, keyFile = join(keys, `worker-${rank}.key`), joinTimeoutS = 60): string[] {
  return [
    CLI,
    'worker',
    '--connect', endpoint,
    '--rank', String(rank),
    '--curve-secret-key', keyFile,
    '--coordinator-public-key', join(keys, 'coordinator.pub'),
    '--join-timeout', String(joinTimeoutS),
  ];
}

let cliKeys = '';

test('namespaces: a CURVE run across three hosts completes; an unauthorised worker is refused', { timeout: 180_000 }, async (t) => {
  if (skipReason) return t.skip(skipReason);
  requireCli();
  cliKeys = join(work, 'keys');
  const keygen = runIn(ns.c, [CLI, 'keygen', '--out', cliKeys, '--workers', '2']);
  assert.equal(await keygen.exited(30_000), 0, dump('keygen', keygen));
  // A second keygen into the same folder must refuse (exit 2) and change nothing.
  const before = await readFile(join(cliKeys, 'coordinator.key'), 'utf8');
  const again = runIn(ns.c, [CLI, 'keygen', '--out', cliKeys, '--workers', '2']);
  assert.equal(await again.exited(30_000), 2, dump('keygen again', again));
  assert.match(again.stderr(), /refusing to overwrite/);
  assert.equal(await readFile(join(cliKeys, 'coordinator.key'), 'utf8'), before);
  // The intruder holds a valid key pair that the coordinator never authorised.
  const strangerKeys = join(work, 'stranger');
  const strangerGen = runIn(ns.w1, [CLI, 'keygen', '--out', strangerKeys, '--workers', '1']);
  assert.equal(await strangerGen.exited(30_000), 0, dump('keygen stranger', strangerGen));

  const out = join(work, 'run-ok');
  // Sharded with owner threads: the owners' own sockets are CURVE servers too, and the intruder gets nowhere with them either.
  const coordinator = runIn(ns.c, coordinatorArgs(cliKeys, out, ['--steps', '30', '--step-timeout', '60', '--reduction', 'sharded']));
  const intruder = runIn(ns.w1, workerArgs(cliKeys, 1, join(strangerKeys, 'worker-0.key'), 20));
  const w0 = runIn(ns.w0, workerArgs(cliKeys, 0));
  const w1 = runIn(ns.w1, workerArgs(cliKeys, 1));
  try {
    const code = await coordinator.exited(150_000);
    assert.equal(code, 0, dump('coordinator', coordinator) + '\n' + dump('worker 0', w0) + '\n' + dump('worker 1', w1));
    assert.equal(await w0.exited(30_000), 0, dump('worker 0', w0));
    assert.equal(await w1.exited(30_000), 0, dump('worker 1', w1));
    t.diagnostic(`coordinator lines:\n${plainLines(coordinator).join('\n')}`);
    const evs = events(coordinator);
    const steps = evs.filter((e) => e.event === 'step').map((e) => e.step as number);
    assert.equal(Math.max(...steps), 30, 'the run reached its last step');
    const joined = evs.filter((e) => e.event === 'worker_joined').map((e) => e.rank);
    assert.deepEqual([...joined].sort(), [0, 1]);
    assert.ok(existsSync(join(out, 'summary.json')), 'summary.json written');
    // The unauthorised worker was refused at the CURVE handshake and reported.
    const rejected = evs.some((e) => e.event === 'peer_rejected') || /reject/i.test(coordinator.stderr());
    assert.ok(rejected, `the coordinator reported the refused peer\n${dump('coordinator', coordinator)}`);
    assert.match(coordinator.stdout() + coordinator.stderr(), new RegExp(addr[ns.w1]!.replace(/\./g, '\\.')), 'the refusal names the peer address');
  } finally {
    for (const p of [coordinator, intruder, w0, w1]) kill(p);
  }
});

test('namespaces: a worker whose link goes down mid-run is named, and the coordinator exits non-zero', { timeout: 180_000 }, async (t) => {
  if (skipReason) return t.skip(skipReason);
  requireCli();
  assert.ok(cliKeys, 'keys come from the previous test');
  const out = join(work, 'run-cut');
  const coordinator = runIn(ns.c, coordinatorArgs(cliKeys, out, ['--steps', '2000', '--step-timeout', String(STEP_TIMEOUT_S), '--checkpoint-every', '0', '--sample-every', '0']));
  const w0 = runIn(ns.w0, workerArgs(cliKeys, 0));
  const w1 = runIn(ns.w1, workerArgs(cliKeys, 1));
  try {
    await waitFor(
      () => events(coordinator).some((e) => e.event === 'step' && (e.step as number) >= 3),
      120_000,
      () => `three steps before cutting the link\n${dump('coordinator', coordinator)}`,
    );
    ip('-n', ns.w1, 'link', 'set', 'eth0', 'down');
    const cutAt = Date.now();
    // The bound: the step deadline plus start-up slack for writing the final state.
    const code = await coordinator.exited((STEP_TIMEOUT_S + 45) * 1000);
    const waited = (Date.now() - cutAt) / 1000;
    assert.notEqual(code, 'timeout', `coordinator still running ${waited.toFixed(1)} s after the link went down\n${dump('coordinator', coordinator)}`);
    t.diagnostic(`coordinator exited ${code} ${waited.toFixed(1)} s after the cut; its lines:\n${plainLines(coordinator).join('\n')}`);
    assert.notEqual(code, 0, dump('coordinator', coordinator));
    // The final error line on stderr (not the JSON events, which mention every rank) names rank 1.
    const errorLines = coordinator.stderr().split('\n').filter((l) => /^distgan: error:/.test(l));
    assert.ok(errorLines.length > 0, `an error line on stderr\n${dump('coordinator', coordinator)}`);
    assert.match(errorLines.join('\n'), /rank 1\b/, `the error names rank 1\n${dump('coordinator', coordinator)}`);
    assert.doesNotMatch(errorLines.join('\n'), /rank 0\b/, 'rank 0 is not blamed');
    const lost = events(coordinator).filter((e) => e.event === 'worker_lost').map((e) => e.rank);
    if (lost.length > 0) assert.deepEqual(lost, [1], 'only rank 1 is reported lost');
  } finally {
    for (const p of [coordinator, w0, w1]) kill(p);
    try {
      ip('-n', ns.w1, 'link', 'set', 'eth0', 'up');
    } catch {
      // namespace already gone
    }
  }
});

/** A `distgan reducer` on a worker host, serving with the coordinator's keys (a reducer is part of the coordinator's side). */
function reducerArgs(keys: string): string[] {
  return [CLI, 'reducer', '--connect', endpoint, '--curve-secret-key', join(keys, 'coordinator.key'), '--authorized-keys', join(keys, 'authorized'), '--idle-timeout', '60'];
}

test('namespaces: sharded reduction with a reducer on each worker host (CURVE) completes with matching replicas', { timeout: 180_000 }, async (t) => {
  if (skipReason) return t.skip(skipReason);
  requireCli();
  assert.ok(cliKeys, 'keys come from the CURVE test above');
  const out = join(work, 'run-sharded');
  const coordinator = runIn(ns.c, coordinatorArgs(cliKeys, out, ['--steps', '20', '--step-timeout', '60', '--checksum-every', '5', '--reduction', 'sharded', '--reducers', '2']));
  const r0 = runIn(ns.w0, reducerArgs(cliKeys));
  const r1 = runIn(ns.w1, reducerArgs(cliKeys));
  const w0 = runIn(ns.w0, workerArgs(cliKeys, 0));
  const w1 = runIn(ns.w1, workerArgs(cliKeys, 1));
  try {
    const code = await coordinator.exited(150_000);
    assert.equal(code, 0, [dump('coordinator', coordinator), dump('reducer 0', r0), dump('reducer 1', r1), dump('worker 0', w0), dump('worker 1', w1)].join('\n'));
    for (const [name, p] of [['reducer 0', r0], ['reducer 1', r1], ['worker 0', w0], ['worker 1', w1]] as const) assert.equal(await p.exited(30_000), 0, dump(name, p));
    const line = plainLines(coordinator).concat(events(coordinator).map((e) => String(e.message ?? ''))).find((l) => /sharded reduction: 2 shard owners at/.test(l));
    assert.ok(line, `the coordinator names its shard owners\n${dump('coordinator', coordinator)}`);
    // Each reducer listens on its own host's address: the shards' traffic does not go through the coordinator's link.
    assert.match(line, new RegExp(`tcp://${addr[ns.w0]!.replace(/\./g, '\\.')}:\\d+`));
    assert.match(line, new RegExp(`tcp://${addr[ns.w1]!.replace(/\./g, '\\.')}:\\d+`));
    const steps = events(coordinator).filter((e) => e.event === 'step').map((e) => e.step as number);
    assert.equal(Math.max(...steps), 20);
  } finally {
    for (const p of [coordinator, r0, r1, w0, w1]) kill(p);
  }
});

test('namespaces: with reducers on the worker hosts, a host whose link goes down is named by its worker, not the other', { timeout: 180_000 }, async (t) => {
  if (skipReason) return t.skip(skipReason);
  requireCli();
  assert.ok(cliKeys, 'keys come from the CURVE test above');
  const out = join(work, 'run-sharded-cut');
  const coordinator = runIn(ns.c, coordinatorArgs(cliKeys, out, ['--steps', '2000', '--step-timeout', String(STEP_TIMEOUT_S), '--checkpoint-every', '0', '--sample-every', '0', '--reduction', 'sharded', '--reducers', '2']));
  const r0 = runIn(ns.w0, reducerArgs(cliKeys));
  const r1 = runIn(ns.w1, reducerArgs(cliKeys));
  const w0 = runIn(ns.w0, workerArgs(cliKeys, 0));
  const w1 = runIn(ns.w1, workerArgs(cliKeys, 1));
  try {
    await waitFor(() => events(coordinator).some((e) => e.event === 'step' && (e.step as number) >= 3), 120_000, () => `three steps before cutting the link\n${dump('coordinator', coordinator)}`);
    ip('-n', ns.w1, 'link', 'set', 'eth0', 'down');
    const code = await coordinator.exited((STEP_TIMEOUT_S + 45) * 1000);
    assert.notEqual(code, 'timeout', `coordinator still running after the link went down\n${dump('coordinator', coordinator)}`);
    assert.notEqual(code, 0, dump('coordinator', coordinator));
    const errorLines = coordinator.stderr().split('\n').filter((l) => /^distgan: error:/.test(l)).join('\n');
    t.diagnostic(`coordinator error: ${errorLines}`);
    // What went away with the cut host: rank 1, or the reducer on that host (whichever the coordinator was waiting for). Never rank 0 or the other reducer.
    const named = /the reducer of shard \d \(\S+ pid (\d+)\)/.exec(errorLines);
    if (named) assert.equal(Number(named[1]), r1.child.pid, `the reducer named is the one on the cut host\n${dump('coordinator', coordinator)}`);
    else assert.match(errorLines, /rank 1\b/, dump('coordinator', coordinator));
    assert.doesNotMatch(errorLines, /rank 0\b/, 'rank 0 is not blamed');
  } finally {
    for (const p of [coordinator, r0, r1, w0, w1]) kill(p);
    try {
      ip('-n', ns.w1, 'link', 'set', 'eth0', 'up');
    } catch {
      // namespace already gone
    }
  }
});
