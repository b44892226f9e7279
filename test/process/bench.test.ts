/**
 * `distgan bench --suite compute` as a user runs it (a real process tree):
 * the last stdout line is one JSON object with the documented fields (PyTorch
 * CPU beside distgan where python3 can import torch, `torch: {available:
 * false, reason}` and exit 0 where it cannot), `--suite scaling` adds PyTorch
 * DDP with 1 and 2 processes, `--help` gives each default once, and a bad
 * suite name exits 2 naming it. `--backend webgpu` finds the project's
 * software Vulkan (.cache/vulkan) by itself, and where no Vulkan can be found
 * the bench fails (exit 2, no JSON) with the child's coded reason and the
 * command that sets Vulkan up. Tiny batch and one step: this checks the
 * plumbing, never a speed (speeds are measured by the bench, not asserted).
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { softwareVulkanEnv, systemVulkanFound } from '../../src/shared/compute/vulkan-env.js';
import { probeTorch } from '../../bench/child.js';

/** `text` as a literal inside a RegExp. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('distgan bench', () => {
  it('--suite compute ends stdout with one JSON line: suite, backend, batchSize, imagesPerSecond, machine reference', async () => {
    const r = await runCli(['bench', '--suite', 'compute', '--batch-size', '4', '--steps', '1'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const last = r.stdout.trim().split('\n').at(-1)!;
    const result = JSON.parse(last) as Record<string, unknown>;
    assert.equal(result['suite'], 'compute');
    assert.equal(result['backend'], 'wasm');
    assert.equal(result['batchSize'], 4);
    assert.ok(typeof result['imagesPerSecond'] === 'number' && result['imagesPerSecond'] > 0);
    const ref = result['referenceConv2dGmacPerSecond'] as { before: number; after: number };
    assert.ok(ref.before > 0 && ref.after > 0, JSON.stringify(ref));
    assert.ok(typeof result['sideBySide'] === 'object');
    // PyTorch on the CPU at the same batch, 1 thread and all threads, where it can be imported.
    const torch = result['torch'] as Record<string, any>;
    const probe = await probeTorch();
    if (probe.available) {
      assert.equal(torch['available'], true, JSON.stringify(torch));
      assert.equal(torch['batchSize'], 4);
      assert.equal(torch['oneThread'].threads, 1);
      assert.equal(torch['allThreads'].threads, probe.cpus);
      for (const k of ['oneThread', 'allThreads']) assert.ok(torch[k].imagesPerSecond > 0, `${k}: ${JSON.stringify(torch[k])}`);
      assert.ok(torch['distganOverTorch'].oneThread > 0);
      assert.match(r.stderr, /PyTorch \S+ CPU at batch 4, 1 thread/);
    } else {
      assert.deepEqual(torch, { available: false, reason: probe.reason });
    }
  });

  it('without PyTorch the compute bench still succeeds and says why PyTorch is missing', async () => {
    const r = await runCli(['bench', '--suite', 'compute', '--batch-size', '2', '--steps', '1'], {
      timeoutMs: 120_000,
      env: { DISTGAN_PYTHON: '/nonexistent/python3' },
    });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, any>;
    assert.ok(result['imagesPerSecond'] > 0);
    assert.equal(result['torch'].available, false);
    assert.match(result['torch'].reason, /PyTorch is not usable with \/nonexistent\/python3 \(could not start .*ENOENT.*\); on Debian install python3-torch/);
    assert.match(r.stderr, /compute: PyTorch skipped: /);
  });

  it('--no-side-by-side measures the selected backend alone: no PyTorch either', async () => {
    const r = await runCli(['bench', '--suite', 'compute', '--batch-size', '2', '--steps', '1', '--no-side-by-side'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, any>;
    assert.deepEqual(result['torch'], { skipped: '--no-side-by-side' });
    assert.doesNotMatch(r.stderr, /PyTorch/);
  });

  it('--suite scaling reports distgan 1 and 2 workers (star and sharded) and PyTorch DDP (gloo) 1 and 2 processes in one JSON line', { timeout: 300_000 }, async () => {
    const r = await runCli(['bench', '--suite', 'scaling', '--batch-size', '2', '--steps', '1'], { timeoutMs: 280_000 });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, any>;
    assert.equal(result['suite'], 'scaling');
    for (const k of ['plainImagesPerSecond', 'oneWorkerImagesPerSecond', 'twoWorkerImagesPerSecond', 'exchangeSecondsPerStep', 'rawTransferSecondsPerStep']) {
      assert.ok(result[k] > 0, `${k}: ${result[k]}`);
    }
    const sharded = result['sharded'] as Record<string, number>;
    for (const k of ['oneWorkerImagesPerSecond', 'twoWorkerImagesPerSecond', 'exchangeSecondsPerStep', 'twoWorkersOverOne', 'exchangeOverRaw']) assert.ok(sharded[k]! > 0, `sharded.${k}: ${sharded[k]}`);
    const torch = result['torch'] as Record<string, any>;
    const probe = await probeTorch();
    if (!probe.available) return assert.deepEqual(torch, { available: false, reason: probe.reason });
    assert.equal(torch['ddpBackend'], 'gloo');
    assert.equal(torch['perProcessBatch'], 2);
    assert.ok(torch['oneProcessImagesPerSecond'] > 0 && torch['twoProcessImagesPerSecond'] > 0, JSON.stringify(torch));
    assert.ok(torch['distganOverTorch'].oneWorker > 0 && torch['distganOverTorch'].twoWorkers > 0);
  });

  it('--help states each default once (no commander "(default: …)" beside the description\'s)', async () => {
    const r = await runCli(['bench', '--help'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /\(default: "/);
    // Each option's help (wrapped over several lines) says "default" at most once.
    const options = r.stdout.split(/\n(?=  -)/).filter((block) => block.trimStart().startsWith('-'));
    assert.ok(options.length >= 7, r.stdout);
    for (const block of options) assert.ok((block.match(/default/g) ?? []).length <= 1, `said twice: ${block}`);
    for (const flag of ['--backend', '--batch-size', '--steps']) assert.match(r.stdout, new RegExp(`${flag} [^\n]*(\n {10,}[^\n]*)*\(default\\s+(auto|64|10)\)`));
  });

  it('--backend webgpu with no Vulkan to be found exits 2, giving the reason and the set-up command, and no figures', async () => {
    // The caller names a driver that does not exist (so no system Vulkan can
    // answer either), and the project's software Vulkan folder is an empty one
    // (DISTGAN_VULKAN_DIR, the folder scripts/setup-vulkan.sh writes to).
    const vulkanDir = await tempDir('distgan-no-vulkan-');
    try {
      const env = { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json', DISTGAN_VULKAN_DIR: vulkanDir };
      const r = await runCli(['bench', '--suite', 'compute', '--backend', 'webgpu', '--batch-size', '1', '--steps', '1'], { timeoutMs: 60_000, env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /distgan: error: bench --suite compute \(webgpu\): --backend webgpu: no usable WebGPU adapter: .*\[DISTGAN_E_BACKEND_UNAVAILABLE\]/);
      const envFile = literal(join(vulkanDir, 'env.sh'));
      assert.match(r.stderr, new RegExp(`not set up \\(${envFile} does not exist\\): run \`bash \\S*/scripts/setup-vulkan\\.sh\`, then \`\\. ${envFile}\``));
      // The reason, not the tail of a stack trace.
      assert.doesNotMatch(r.stderr, /Node\.js v\d|^\s+at /m);
      // A failed main measurement gives no figures: no JSON on stdout.
      assert.equal(r.stdout.trim(), '');
    } finally {
      await rm(vulkanDir, { recursive: true, force: true });
    }
  });

  it('--backend webgpu finds the software Vulkan that scripts/setup-vulkan.sh made, without env.sh sourced', async (t) => {
    const vk = softwareVulkanEnv({ setup: true });
    if (!vk.ok) return t.skip(`software Vulkan could not be set up: ${vk.reason}`);
    if (systemVulkanFound()) return t.skip('this machine has a Vulkan driver of its own, which the bench uses instead');
    // As in a shell that never sourced env.sh (undefined drops a variable).
    const softwareLibDir = vk.env.LD_LIBRARY_PATH.split(':')[0];
    const libPath = (process.env['LD_LIBRARY_PATH'] ?? '').split(':').filter((d) => d !== '' && d !== softwareLibDir);
    const env = {
      VK_ICD_FILENAMES: undefined,
      VK_DRIVER_FILES: undefined,
      VK_ADD_DRIVER_FILES: undefined,
      LD_LIBRARY_PATH: libPath.length > 0 ? libPath.join(':') : undefined,
    };
    const r = await runCli(['bench', '--suite', 'compute', '--backend', 'webgpu', '--batch-size', '1', '--steps', '1', '--no-side-by-side'], { timeoutMs: 120_000, env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`using the software Vulkan \\(Mesa lavapipe, CPU\\) from ${literal(vk.envFile)}`));
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.equal(result['backend'], 'webgpu');
    assert.ok(typeof result['imagesPerSecond'] === 'number' && result['imagesPerSecond'] > 0);
  });

  it('a bad --suite exits 2 and names it', async () => {
    const r = await runCli(['bench', '--suite', 'nonsense'], { timeoutMs: 30_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nonsense/);
  });
});
