#!/usr/bin/env node
// `npm test`: brings what the tests need, builds, and runs the three test tiers.
//
// 1. System packages the tests use for real: Prometheus (promtool), Chromium,
//    Fashion-MNIST, iproute2 (network namespaces), Slurm and munge (a one-node
//    cluster), PyTorch (side-by-side peer, safetensors interop). As root, missing ones are
//    installed with apt-get; otherwise the exact command to run is printed and
//    the run fails, rather than tests silently skipping.
// 2. Software Vulkan (Mesa lavapipe from bookworm-backports) for the WebGPU
//    tests, set up while tsc builds (type errors fail the run).
// 3. The test files of the three tiers (unit, sockets, process), each file in
//    a node process of its own, the longest first, several at once while the
//    CPUs have room (most process and sockets tests wait on child processes,
//    sockets and timers). A file's output is printed in one piece when it
//    ends; each tier gets a closing line, and the run one line of counts.
//
// `npm test <substring>...` runs only the files whose path contains one of them.
// DISTGAN_TEST_JOBS=<n>: at most n files at once (default twice the CPUs, 2 to 8;
// 1 = one after another).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

const say = (s) => process.stdout.write(`[npm test] ${s}\n`);

/** Debian package → a file that proves it is installed. */
const PACKAGES = [
  ['prometheus', '/usr/bin/promtool'],
  ['chromium', '/usr/bin/chromium'],
  ['dataset-fashion-mnist', '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'],
  ['iproute2', '/usr/sbin/ip'],
  ['slurm-wlm', '/usr/sbin/slurmctld'],
  ['munge', '/usr/sbin/munged'],
  ['python3-torch', '/usr/lib/python3/dist-packages/torch/__init__.py'],
];

function ensurePackages() {
  const missing = PACKAGES.filter(([, probe]) => !existsSync(probe)).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    say(`missing Debian packages: ${missing.join(' ')}`);
    say(`install them with: sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  say(`installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
  if (r.status !== 0) process.exit(r.status ?? 1);
  r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  if (r.status !== 0) process.exit(r.status ?? 1);
  // Debian may start prometheus as a service on :9090. The tests start their own
  // servers (Prometheus, munge, Slurm) on their own ports and sockets and stop
  // them by pid; the service is stopped through its own script only, never by
  // process name, so nobody else's Prometheus is touched.
  spawnSync('sh', ['-c', 'command -v service >/dev/null || exit 0; service prometheus stop >/dev/null 2>&1; true']);
}

/** Runs a command to its end with inherited output; resolves to its exit status. */
function runInherit(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: 'inherit' });
    p.on('error', () => resolve(1));
    p.on('exit', (code) => resolve(code ?? 1));
  });
}

/** Software Vulkan and the tsc build at the same time (one fetches and unpacks, the other compiles). */
async function setupAndBuild() {
  say('building (tsc); setting up software Vulkan meanwhile');
  const [vulkan, tsc] = await Promise.all([
    runInherit('bash', ['scripts/setup-vulkan.sh']),
    runInherit(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json']),
  ]);
  if (vulkan !== 0) say('software Vulkan could not be set up; the WebGPU tests will say why');
  if (tsc !== 0) {
    say('tsc failed');
    process.exit(tsc);
  }
}

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.js'))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile())
    .sort();
}

const tiers = [
  { name: 'unit', dir: 'dist/test/unit' },
  { name: 'sockets', dir: 'dist/test/sockets' },
  { name: 'process', dir: 'dist/test/process' },
];

/**
 * Seconds a file takes on its own on a 2-core machine (measured): the order in
 * which files start, longest first, so that the run does not end waiting on
 * one long file started last. Files not listed count as 2 s. Only the order
 * depends on these; a wrong figure costs time, never a result.
 */
const EXPECTED_SECONDS = {
  'process/bench': 60,
  'process/slurm': 55,
  'process/hostile-peers': 34,
  'process/netns': 30,
  'process/reducer-faults': 30,
  'process/bench-reduce-hosts': 25,
  'process/equivalence': 27,
  'process/observability': 20,
  'process/faults': 21,
  'sockets/curve': 15,
  'sockets/sharded': 15,
  'process/checkpoint-kill': 15,
  'process/prepare-images': 12,
  'unit/mode-coverage': 10,
  'process/bad-gradients': 9.5,
  'process/config-env': 9,
  'sockets/coordinator': 8.5,
  'process/report': 8,
  'process/bench-reduce': 8,
  'process/safetensors-torch': 7,
  'sockets/http-server': 5.5,
  'process/prepare-interrupt': 5,
  'process/sample': 4.5,
  'unit/gan-step-wasm': 4,
  'process/fashion-mnist': 4,
  'process/webgpu-launch': 4,
  'unit/trainer': 3.5,
  'unit/checkpoint-bitflip': 3.5,
  'unit/webgpu-gradients': 3.3,
  'process/log-format': 3,
  'process/packed-memory': 3,
  'sockets/phases': 3,
  'process/promtool': 2.5,
  'unit/checkpoint': 2.4,
  'unit/manifests': 2.4,
  'unit/export': 2.2,
};
const expected = (file) => EXPECTED_SECONDS[`${basename(dirname(file))}/${basename(file, '.test.js')}`] ?? 2;

/** At most this many files at once (more start only while the CPUs have room, below). */
function jobs() {
  const fromEnv = Number(process.env.DISTGAN_TEST_JOBS);
  if (Number.isInteger(fromEnv) && fromEnv >= 1) return fromEnv;
  return Math.max(2, Math.min(8, 2 * availableParallelism()));
}

/**
 * Runs one test file in a node process of its own (node:test runs a file's
 * tests when the file is run, and the reporters apply as under --test; one
 * process per file instead of two); resolves to its exit status, counts and output.
 */
function runFile(file, countsDir, index) {
  return new Promise((resolve) => {
    const countsFile = join(countsDir, `${index}.json`);
    const t0 = Date.now();
    const child = spawn(
      process.execPath,
      ['--test-reporter=spec', '--test-reporter=./scripts/count-reporter.js', '--test-reporter-destination=stdout', `--test-reporter-destination=${countsFile}`, file],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DISTGAN_TEST: '1' },
      },
    );
    const chunks = [];
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    let finished = false;
    const finish = (code) => {
      if (finished) return;
      finished = true;
      let counts;
      try {
        counts = JSON.parse(readFileSync(countsFile, 'utf8'));
      } catch {
        counts = undefined;
      }
      resolve({ code, counts, output: Buffer.concat(chunks).toString(), seconds: (Date.now() - t0) / 1000 });
    };
    child.on('error', (e) => {
      chunks.push(Buffer.from(`could not start node: ${e.message}\n`));
      finish(1);
    });
    // Its output ends when the pipes close; a process it left behind holding them
    // (a test's own bug) must not hold up the run, so 5 s after the exit it ends anyway.
    child.on('exit', (code, signal) => {
      const status = code ?? (signal ? 1 : 0);
      const timer = setTimeout(() => {
        chunks.push(Buffer.from(`[npm test] ${file}: output pipes still open 5 s after it exited (a process it started is still running?)\n`));
        finish(status);
      }, 5000);
      child.on('close', () => {
        clearTimeout(timer);
        finish(status);
      });
    });
  });
}

/** Idle and total CPU time of the machine so far (clock ticks, /proc/stat), or undefined where there is none. */
function cpuTimes() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
    // user nice system idle iowait irq softirq steal
    return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

/** A function that returns the share of CPU time that was idle over about the last second (1 where unknown). */
function idleMeter() {
  const samples = [];
  return () => {
    const s = cpuTimes();
    if (s === undefined) return 1;
    const now = Date.now();
    samples.push({ now, ...s });
    while (samples.length > 2 && now - samples[1].now >= 1000) samples.shift();
    const a = samples[0];
    if (now - a.now < 500 || s.total === a.total) return 1;
    return (s.idle - a.idle) / (s.total - a.total);
  };
}

const only = process.argv.slice(2);
ensurePackages();
await setupAndBuild();

const queue = [];
for (const tier of tiers) {
  let files = testFiles(tier.dir);
  if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
  tier.files = files.length;
  tier.left = files.length;
  tier.passed = 0;
  tier.failed = 0;
  tier.skipped = 0;
  for (const file of files) queue.push({ tier, file });
}
// Longest first; ties keep tier order (unit, sockets, process) and file name order.
queue.sort((a, b) => expected(b.file) - expected(a.file));

const width = jobs();
const started = Date.now();
const countsDir = mkdtempSync(join(tmpdir(), 'distgan-test-counts-'));
say(`${queue.length} files (${tiers.filter((t) => t.files > 0).map((t) => `${t.name} ${t.files}`).join(', ')}), up to ${width} at a time while the CPUs have room, longest first`);
let passed = 0;
let failed = 0;
let skipped = 0;

/** Reports one finished file: its output in one piece, its counts, and its tier's line when it was the tier's last. */
function report({ tier, file }, r) {
  // No counts: the file crashed before its tests ended (or, exiting 0, declared none).
  const c = r.counts ?? { passed: 0, failed: r.code === 0 ? 0 : 1, skipped: 0 };
  // A file that exits non-zero with no failed test (a crash, a hang killed, an unhandled error) still fails the run.
  if (r.code !== 0 && c.failed === 0) c.failed = 1;
  tier.passed += c.passed;
  tier.failed += c.failed;
  tier.skipped += c.skipped;
  process.stdout.write(r.output.endsWith('\n') || r.output === '' ? r.output : `${r.output}\n`);
  say(`${tier.name}/${basename(file, '.test.js')}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped in ${r.seconds.toFixed(1)} s${r.code !== 0 ? ` (exit ${r.code})` : ''}`);
  if (--tier.left === 0) {
    say(`tier ${tier.name}: ${tier.files} files done ${((Date.now() - started) / 1000).toFixed(0)} s after the first test started (${tier.passed} passed, ${tier.failed} failed, ${tier.skipped} skipped)`);
  }
}

// Another file starts only while at least this share of the machine's CPU time
// has been idle over the last second (and a second after the previous start,
// so that it shows in the figure): files add up while they wait on children,
// sockets and timers, but never pile onto busy CPUs, where they would only
// slow each other down (and stretch the deadlines some tests measure). On a
// machine busy with other work, files run two at a time (as the unit tier
// always did), or one after another with DISTGAN_TEST_JOBS=1.
const IDLE_TO_START = 0.25;
const MIN_AT_ONCE = Math.min(2, width);
const idleShare = idleMeter();
let next = 0;
let running = 0;
let lastStart = 0;
await new Promise((allDone) => {
  const pump = () => {
    const idle = idleShare();
    const now = Date.now();
    if (next < queue.length && running < width && (running < MIN_AT_ONCE || (idle >= IDLE_TO_START && now - lastStart >= 1000))) {
      const index = next++;
      running++;
      lastStart = now;
      runFile(queue[index].file, countsDir, index).then((r) => {
        running--;
        report(queue[index], r);
        pump();
      });
    }
    if (next >= queue.length && running === 0) {
      clearInterval(timer);
      allDone();
    }
  };
  const timer = setInterval(pump, 250);
  pump();
});
rmSync(countsDir, { recursive: true, force: true });
for (const tier of tiers) {
  passed += tier.passed;
  failed += tier.failed;
  skipped += tier.skipped;
}
const secs = ((Date.now() - started) / 1000).toFixed(0);
say(`all tiers done in ${secs} s`);
process.stdout.write(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
