/**
 * The gradients of one GAN step (D phase, then G phase) on tfjs-webgpu over
 * Dawn match the cpu backend's within 1e-4 relative (max-abs error over the
 * tensor's max-abs value; an all-zero tensor by absolute error).
 *
 * It drives the trainer the workers use (TfGanTrainer) on the project's DCGAN
 * (src/shared/models/dcgan.ts) at a tiny width, so this checks exactly the
 * kernels training uses: dense, conv s2, convT s2, BN (training mode),
 * leakyReLU, tanh, softplus, and their gradients, plus the BN statistics.
 *
 * It runs in a CHILD process because the Vulkan loader reads the software
 * driver's env (VK_ICD_FILENAMES, LD_LIBRARY_PATH from scripts/setup-vulkan.sh)
 * only at process start. The same file is the child: it is re-executed with
 * DISTGAN_WEBGPU_GRADIENTS_CHILD=1. It skips only when the software-Vulkan
 * set-up could not be made, and says why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tf } from '../../src/shared/compute/tf.js';
import { TfGanTrainer } from '../../src/shared/gan/trainer.js';
import { resolveGanOptions } from '../../src/shared/gan/options.js';
import { resolveModelSpec } from '../../src/shared/models/spec.js';
import { networkVariables, type VariableInfo } from '../../src/shared/models/variables.js';
import { positionRange } from '../../src/shared/data/sampler.js';
import { Rng, Stream } from '../../src/shared/rng.js';

const CHILD_FLAG = 'DISTGAN_WEBGPU_GRADIENTS_CHILD';
/** Allowed max-abs error relative to the cpu tensor's max-abs value. */
const REL_TOL = 1e-4;
/** Allowed max-abs error for a cpu tensor that is all zeros. */
const ABS_TOL = 1e-4;
/** Child wall-clock limit, ms: first-run shader compilation on lavapipe takes ~10 s on 2 cores. */
const CHILD_TIMEOUT_MS = 180_000;

interface TensorReport {
  name: string;
  size: number;
  /** max |cpu| */
  scale: number;
  /** max |webgpu − cpu| */
  maxAbs: number;
}

interface ChildReport {
  ok: boolean;
  reason?: string;
  adapter?: { device: string; software: boolean };
  losses?: { cpu: number[]; webgpu: number[] };
  tensors?: TensorReport[];
}

/** Splits a flat gradient into its per-variable tensors, named by network, index, role and shape. */
function split(flat: Float32Array, infos: readonly VariableInfo[], net: string): Array<{ name: string; values: Float32Array }> {
  let offset = 0;
  return infos.map((info, i) => {
    const values = flat.subarray(offset, offset + info.size);
    offset += info.size;
    return { name: `${net}[${i}] ${info.role} ${info.shape.join('x')}`, values };
  });
}

/**
 * One step's D-phase and G-phase results on the current backend, through the
 * trainer the workers use. Both phases start from the same initial state
 * (compute calls are pure), so an Adam update cannot amplify float32 noise
 * into the G gradients before they are compared.
 */
async function stepOnCurrentBackend(): Promise<{ tensors: Array<{ name: string; values: Float32Array }>; losses: number[] }> {
  const spec = resolveModelSpec('dcgan', [28, 28, 1], { width: 0.125, latentDim: 16 });
  const trainer = new TfGanTrainer(spec, resolveGanOptions({ seed: 7 }), [28, 28, 1]);
  try {
    const batch = 8;
    const positions = positionRange(0, batch);
    // Real samples drawn on the host, identical for both backends.
    const rng = new Rng(7, Stream.Synthetic, 0, 0);
    const real = new Float32Array(batch * 28 * 28).map(() => 2 * rng.next() - 1);
    const d = await trainer.computeDGradients({ step: 0, positions, globalBatch: batch, real });
    const g = await trainer.computeGGradients({ step: 0, positions, globalBatch: batch });
    const tensors = [
      ...split(g.gradients, networkVariables(trainer.generator).trainableInfo, 'G'),
      ...split(d.gradients, networkVariables(trainer.discriminator).trainableInfo, 'D'),
      { name: 'aux (BN moving statistics after the D phase)', values: d.aux },
    ];
    return { tensors, losses: [d.stats.dLoss ?? NaN, g.stats.gLoss ?? NaN] };
  } finally {
    trainer.dispose();
  }
}

async function runChild(): Promise<ChildReport> {
  // The reference backend. Registered here because the test needs both
  // backends in one process; the product selects backends in compute/backend.ts.
  await import('@tensorflow/tfjs-backend-cpu');
  const { initWebgpu, releaseWebgpu } = await import('../../src/shared/compute/webgpu.js');
  await tf.setBackend('cpu');
  const cpu = await stepOnCurrentBackend();
  const init = await initWebgpu({ requireHardware: false });
  if (!init.ok) return { ok: false, reason: init.reason };
  try {
    const gpu = await stepOnCurrentBackend();
    const tensors: TensorReport[] = cpu.tensors.map(({ name, values: ref }, i) => {
      const got = gpu.tensors[i]?.values ?? new Float32Array(0);
      let scale = 0;
      let maxAbs = got.length === ref.length ? 0 : Infinity;
      for (let k = 0; k < ref.length; k++) {
        scale = Math.max(scale, Math.abs(ref[k]!));
        const e = Math.abs((got[k] ?? NaN) - ref[k]!);
        maxAbs = Number.isNaN(e) ? Infinity : Math.max(maxAbs, e);
      }
      return { name, size: ref.length, scale, maxAbs };
    });
    return {
      ok: true,
      adapter: { device: init.adapter.device, software: init.adapter.software },
      losses: { cpu: cpu.losses, webgpu: gpu.losses },
      tensors,
    };
  } finally {
    releaseWebgpu();
  }
}

if (process.env[CHILD_FLAG] === '1') {
  const report = await runChild().catch((err: unknown) => ({ ok: false, reason: `child threw: ${String(err)}` }));
  process.stdout.write(`${JSON.stringify(report)}\n`);
} else {
  test('webgpu (Dawn, software Vulkan) gradients of one DCGAN step match cpu', async (t) => {
    const { softwareVulkanEnv } = await import('../../src/shared/compute/vulkan-env.js');
    const vk = softwareVulkanEnv({ setup: true });
    if (!vk.ok) {
      console.log(`# skipped: software Vulkan could not be set up: ${vk.reason}`);
      t.skip(`software Vulkan could not be set up: ${vk.reason}`);
      return;
    }
    const self = fileURLToPath(import.meta.url);
    // Keep loader flags (tsx) but not the test runner's own.
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));
    const env: NodeJS.ProcessEnv = { ...process.env, ...vk.env, [CHILD_FLAG]: '1' };
    delete env['NODE_TEST_CONTEXT'];
    const r = spawnSync(process.execPath, [...execArgv, self], { env, encoding: 'utf8', timeout: CHILD_TIMEOUT_MS });
    const lines = (r.stdout ?? '').trim().split('\n');
    let report: ChildReport;
    try {
      report = JSON.parse(lines[lines.length - 1] ?? '') as ChildReport;
    } catch {
      assert.fail(`child gave no report (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
    }
    // The Vulkan set-up exists, so webgpu failing to start is a failure, not a skip.
    assert.equal(report.ok, true, `webgpu did not start over software Vulkan: ${report.reason}\n${r.stderr}`);
    assert.equal(r.status, 0, `child exited with ${r.status} (${r.signal}): it must end on its own after releaseWebgpu`);
    const tensors = report.tensors!;
    assert.ok(tensors.length >= 10, `expected G and D gradient tensors, got ${tensors.length}`);
    for (const x of tensors) {
      const ok = x.scale === 0 ? x.maxAbs <= ABS_TOL : x.maxAbs / x.scale <= REL_TOL;
      assert.ok(ok, `${x.name}: max |webgpu − cpu| = ${x.maxAbs} against max |cpu| = ${x.scale}`);
    }
    const [dCpu, gCpu] = report.losses!.cpu;
    const [dGpu, gGpu] = report.losses!.webgpu;
    assert.ok(Math.abs(dGpu! - dCpu!) <= REL_TOL * Math.abs(dCpu!), `D loss ${dGpu} vs cpu ${dCpu}`);
    assert.ok(Math.abs(gGpu! - gCpu!) <= REL_TOL * Math.abs(gCpu!), `G loss ${gGpu} vs cpu ${gCpu}`);
    const worst = Math.max(...tensors.map((x) => (x.scale === 0 ? 0 : x.maxAbs / x.scale)));
    t.diagnostic(`${report.adapter!.device}: ${tensors.length} tensors, worst relative error ${worst.toExponential(2)}`);
  });
}
