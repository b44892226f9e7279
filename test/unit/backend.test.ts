/**
 * Backend selection on this kind of machine: no libtensorflow packages (their
 * install needs internet), no GPU. Everything here is real: the packages are
 * resolved and loaded (or found absent) exactly as in production. Tests whose
 * premise does not hold on the machine at hand (a native package installed, a
 * hardware WebGPU adapter present) say so and skip instead of asserting.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { BACKEND_REQUESTS, parseBackendRequest, type BackendRequest } from '../../src/shared/compute/backends.js';
import { wasmKernelsRegistered } from '../../src/shared/compute/kernels/register.js';
import { tf } from '../../src/shared/compute/tf.js';
import { BackendUnavailableError, ConfigError, DistganError } from '../../src/shared/errors.js';

const NATIVE = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const nativeInstalled = NATIVE.filter(installed);
const noNative = nativeInstalled.length === 0;
const skipNative = noNative ? false : `native tfjs is installed here (${nativeInstalled.join(', ')})`;

function collect(): { lines: string[]; log: (line: string) => void } {
  const lines: string[] = [];
  return { lines, log: (line) => void lines.push(line) };
}

describe('initBackend', () => {
  it('auto picks wasm (SIMD) and says why the others were skipped', { skip: skipNative }, async (t) => {
    const { lines, log } = collect();
    const choice = await initBackend('auto', { log });
    if (choice.name === 'webgpu') {
      t.skip(`a hardware WebGPU adapter exists here (${choice.device ?? '?'}): auto rightly chose it`);
      return;
    }
    assert.equal(choice.name, 'wasm');
    assert.equal(tf.getBackend(), 'wasm');
    assert.ok(wasmKernelsRegistered(), 'our wasm kernels are registered');
    assert.equal(lines.length, 1, `logged once, got ${JSON.stringify(lines)}`);
    const line = lines[0] as string;
    assert.match(line, /^backend: wasm \(SIMD\) — /);
    assert.match(line, /@tensorflow\/tfjs-node-gpu not installed, @tensorflow\/tfjs-node not installed, no hardware WebGPU adapter/);
    assert.ok(line.endsWith(choice.reason), 'the log line carries the returned reason');
    assert.match(choice.device ?? '', /wasm SIMD/);
  });

  it('tensorflow without libtensorflow: BackendUnavailableError naming the package, exit code 2', { skip: skipNative }, async () => {
    const { lines, log } = collect();
    const cudaBefore = process.env['CUDA_VISIBLE_DEVICES'];
    await assert.rejects(initBackend('tensorflow', { log, gpuIndex: 0 }), (err: unknown) => {
      assert.ok(err instanceof BackendUnavailableError);
      assert.ok(err instanceof DistganError);
      assert.equal(err.code, 'DISTGAN_E_BACKEND_UNAVAILABLE');
      assert.equal(err.exitCode, 2);
      assert.match(err.message, /@tensorflow\/tfjs-node-gpu not installed/);
      assert.match(err.message, /@tensorflow\/tfjs-node not installed/);
      assert.match(err.message, /npm install @tensorflow\/tfjs-node/);
      assert.match(err.message, /libtensorflow 2\.9\.1/);
      assert.match(err.message, /CUDA 11\.2 and cuDNN 8\.1/);
      return true;
    });
    assert.deepEqual(lines, [], 'nothing was chosen, so nothing is logged');
    assert.equal(process.env['CUDA_VISIBLE_DEVICES'], cudaBefore, 'CUDA_VISIBLE_DEVICES untouched');
  });

  it('webgpu on request: a WebGPU backend, or an error naming the Vulkan driver needed', async () => {
    const { lines, log } = collect();
    let choice;
    try {
      choice = await initBackend('webgpu', { log });
    } catch (err) {
      assert.ok(err instanceof BackendUnavailableError, `unexpected ${String(err)}`);
      assert.equal(err.exitCode, 2);
      assert.match(err.message, /^--backend webgpu: /);
      assert.match(err.message, /Vulkan/);
      assert.match(err.message, /NVIDIA driver's Vulkan ICD|lavapipe/);
      assert.deepEqual(lines, []);
      return;
    }
    assert.equal(choice.name, 'webgpu');
    assert.equal(tf.getBackend(), 'webgpu');
    assert.match(lines[0] ?? '', /^backend: webgpu \(/);
  });

  it('wasm and cpu on request', async () => {
    const { lines, log } = collect();
    const wasm = await initBackend('wasm', { log });
    assert.equal(wasm.name, 'wasm');
    assert.equal(tf.getBackend(), 'wasm');
    assert.ok(wasmKernelsRegistered());
    // It computes: a 2×2 matmul on the chosen backend.
    const y = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2]));
    assert.deepEqual(Array.from(await y.data()), [19, 22, 43, 50]);
    const cpu = await initBackend('cpu', { log });
    assert.equal(cpu.name, 'cpu');
    assert.equal(tf.getBackend(), 'cpu');
    assert.deepEqual(lines, [
      'backend: wasm (SIMD) — requested (--backend wasm)',
      'backend: cpu — requested (--backend cpu)',
    ]);
  });

  it('rejects an unknown request and a bad GPU index with ConfigError (exit code 2)', async () => {
    await assert.rejects(initBackend('gpu' as BackendRequest, { log: () => {} }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.exitCode, 2);
      assert.match(err.message, /unknown backend "gpu"; expected one of auto, tensorflow, webgpu, wasm, cpu/);
      return true;
    });
    await assert.rejects(initBackend('wasm', { gpuIndex: -1, log: () => {} }), ConfigError);
    await assert.rejects(initBackend('wasm', { gpuIndex: 1.5, log: () => {} }), ConfigError);
  });

  it('parseBackendRequest accepts exactly BACKEND_REQUESTS', () => {
    assert.deepEqual([...BACKEND_REQUESTS], ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu']);
    for (const r of BACKEND_REQUESTS) assert.equal(parseBackendRequest(r), r);
    for (const bad of ['', 'WASM', 'tfjs-node', 'gpu']) assert.throws(() => parseBackendRequest(bad), ConfigError);
  });
});

it('physicalGpuIndex maps a local index through CUDA_VISIBLE_DEVICES with the one mapping (backends.ts)', async () => {
  const { physicalGpuIndex } = await import('../../src/shared/compute/webgpu.js');
  assert.deepEqual(physicalGpuIndex(1, { CUDA_VISIBLE_DEVICES: '3,5' }), { index: 5 });
  assert.deepEqual(physicalGpuIndex(undefined, {}), { index: 0 });
  assert.deepEqual(physicalGpuIndex(1, { CUDA_VISIBLE_DEVICES: 'GPU-aaa,GPU-bbb' }), { index: 1 }, 'UUIDs cannot be matched to Vulkan adapters: the raw index');
  const out = physicalGpuIndex(2, { CUDA_VISIBLE_DEVICES: '3,5' });
  assert.ok('error' in out && /GPU index 2 is out of range: CUDA_VISIBLE_DEVICES=3,5 lists 2 device\(s\)/.test(out.error));
});
