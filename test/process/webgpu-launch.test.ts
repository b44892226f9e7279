/**
 * A 2-worker `distgan launch --backend webgpu` over software Vulkan (Mesa
 * lavapipe from bookworm-backports, set up by scripts/setup-vulkan.sh, which
 * npm test runs): the run completes and the replicas' checksums agree with
 * each other and with the coordinator's mirror (checked every 2 steps and at
 * the end; a mismatch fails the run). Also: without any Vulkan driver,
 * `--backend webgpu` fails with exit 2 and names the driver it needs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, rm } from 'node:fs/promises';
import { runCli, tempDir } from '../helpers/cli.js';
import { softwareVulkanEnv } from '../../src/shared/compute/vulkan-env.js';

test('2 workers on webgpu (software Vulkan) train a tiny DCGAN with agreeing replica checksums', { timeout: 600_000 }, async (t) => {
  const vk = softwareVulkanEnv({ setup: true });
  if (!vk.ok) {
    t.skip(`software Vulkan could not be set up: ${vk.reason}`);
    return;
  }
  const dir = await tempDir();
  try {
    const out = join(dir, 'run');
    const r = await runCli(
      ['launch', '--workers', '2', '--backend', 'webgpu', '--dataset', 'mnist', '--model', 'dcgan', '--width', '0.125', '--batch-size', '8', '--steps', '4', '--checksum-every', '2', '--metrics-port', '0', '--log-format', 'plain', '--log-every', '1', '--out', out],
      { timeoutMs: 540_000, env: { ...vk.env } },
    );
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(r.stderr, /\[rank 0\] distgan: backend: webgpu/);
    assert.match(r.stderr, /\[rank 1\] distgan: backend: webgpu/);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as { steps: number; backend: string; worldSize: number };
    assert.equal(summary.steps, 4);
    assert.equal(summary.worldSize, 2);
    assert.equal(summary.backend, 'webgpu');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('--backend webgpu with no Vulkan driver: exit 2, naming the driver needed', { timeout: 120_000 }, async () => {
  const env: NodeJS.ProcessEnv = { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' };
  const r = await runCli(['worker', '--connect', 'tcp://127.0.0.1:1', '--backend', 'webgpu', '--join-timeout', '5'], { timeoutMs: 90_000, env });
  assert.equal(r.code, 2, r.stderr.slice(-2000));
  assert.match(r.stderr, /--backend webgpu: no usable WebGPU adapter: .*Vulkan/);
  assert.match(r.stderr, /DISTGAN_E_BACKEND_UNAVAILABLE/);
});
