#!/usr/bin/env node
// `npm test`: brings what the tests need, builds, and runs the three test tiers.
//
// 1. System packages the tests use for real: Prometheus (promtool), Chromium,
//    Fashion-MNIST, iproute2 (network namespaces), Slurm and munge (a one-node
//    cluster), PyTorch (side-by-side peer, safetensors interop). As root, missing ones are
//    installed with apt-get; otherwise the exact command to run is printed and
//    the run fails, rather than tests silently skipping.
// 2. Software Vulkan (Mesa lavapipe from bookworm-backports) for the WebGPU tests.
// 3. tsc build (type errors fail the run), then `node --test` per tier.
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
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

function setupVulkan() {
  const r = spawnSync('bash', ['scripts/setup-vulkan.sh'], { stdio: 'inherit' });
  if (r.status !== 0) say('software Vulkan could not be set up; the WebGPU tests will say why');
}

function build() {
  say('building (tsc)');
  const r = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  if (r.status !== 0) {
    say('tsc failed');
    process.exit(r.status ?? 1);
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

const only = process.argv.slice(2);
ensurePackages();
setupVulkan();
build();

const tiers = [
  { name: 'unit', dir: 'dist/test/unit', concurrency: 2 },
  { name: 'sockets', dir: 'dist/test/sockets', concurrency: 1 },
  { name: 'process', dir: 'dist/test/process', concurrency: 1 },
];
let passed = 0;
let failed = 0;
let skipped = 0;
const started = Date.now();
for (const tier of tiers) {
  let files = testFiles(tier.dir);
  if (only.length) files = files.filter((f) => only.some((o) => f.includes(o)));
  if (files.length === 0) continue;
  say(`tier ${tier.name}: ${files.length} files`);
  const r = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${tier.concurrency}`, '--test-reporter=spec', '--test-reporter=./scripts/count-reporter.js', '--test-reporter-destination=stdout', '--test-reporter-destination=.test-counts.json', ...files],
    { stdio: 'inherit', env: { ...process.env, DISTGAN_TEST: '1' } },
  );
  try {
    const counts = JSON.parse(execFileSync('cat', ['.test-counts.json'], { encoding: 'utf8' }));
    passed += counts.passed;
    failed += counts.failed;
    skipped += counts.skipped;
  } catch {
    failed += 1;
  }
  if (r.status !== 0 && failed === 0) failed += 1;
}
const secs = ((Date.now() - started) / 1000).toFixed(0);
say(`all tiers done in ${secs} s`);
process.stdout.write(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
