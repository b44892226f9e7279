/**
 * The one place that decides which tfjs backend a process computes on.
 *
 * `auto` takes the first of these that works:
 *   1. tensorflow: @tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node
 *      (libtensorflow; optionalDependencies whose install script downloads
 *      libtensorflow 2.9.1, so on machines without internet at install time
 *      they are simply absent);
 *   2. webgpu, only on a hardware adapter (a software Vulkan adapter is slower
 *      than wasm on the same cores);
 *   3. wasm with SIMD, single-threaded (tfjs disables wasm threads under Node;
 *      distgan runs one worker process per core instead), with distgan's own
 *      Conv2DBackpropFilter/Conv2DBackpropInput kernels registered;
 *   4. cpu (plain JavaScript), if even wasm cannot start.
 * The choice and the reasons for skipping the ones before it are logged once.
 *
 * An explicit request either gets that backend or a BackendUnavailableError
 * (exit code 2) saying what to install; for webgpu, also the exact commands
 * that set up and select the project's software Vulkan (vulkan-env.ts) when
 * this process runs without it. `cpu` is kept as the numerical
 * reference. Nothing GPU-related is imported unless a GPU backend is tried:
 * the native packages and ./webgpu.js are loaded with dynamic import().
 *
 * The list of backends (BACKEND_REQUESTS, BackendRequest) and the GPU index →
 * CUDA_VISIBLE_DEVICES rule live in ./backends.ts, which loads no tfjs, so
 * flag parsing can use them without loading a backend.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { BackendUnavailableError, ConfigError } from '../errors.js';
import { cudaVisibleDeviceFor, parseBackendRequest, type BackendName, type BackendRequest } from './backends.js';
import { registerWasmKernels } from './kernels/register.js';
import { tf } from './tf.js';
import { vulkanSetupHint } from './vulkan-env.js';

export interface BackendChoice {
  name: BackendName;
  /** Why this backend: for `auto`, why each earlier candidate was skipped. */
  reason: string;
  /** The device it runs on, where known (adapter name, CUDA devices, "CPU, wasm SIMD"). */
  device?: string;
}

/** The native packages, best first: the CUDA build, then the CPU build of libtensorflow. */
const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
type NativePackage = (typeof NATIVE_PACKAGES)[number];

const WASM_PACKAGE = '@tensorflow/tfjs-backend-wasm';

/** How to get libtensorflow; quoted in the error for `--backend tensorflow`. */
export const TENSORFLOW_INSTALL_HINT =
  'install one of them: "npm install @tensorflow/tfjs-node" (CPU) or "npm install @tensorflow/tfjs-node-gpu" ' +
  '(NVIDIA GPU; needs CUDA 11.2 and cuDNN 8.1 on the machine). Their install script downloads libtensorflow 2.9.1, ' +
  'so the install needs internet access; npm 11 lists such scripts for review and a future npm will block them ' +
  'until approved ("npm approve-scripts @tensorflow/tfjs-node"); if the script was skipped, run ' +
  '"npm rebuild @tensorflow/tfjs-node" to fetch libtensorflow';

type Attempt = { ok: true; choice: BackendChoice; label: string } | { ok: false; reason: string };

/**
 * Selects, initialises and makes current the tfjs backend for `request`.
 * - opts.gpuIndex: which GPU (default: unset = the library's default device).
 *   For tensorflow it is applied through CUDA_VISIBLE_DEVICES before
 *   libtensorflow loads; if CUDA_VISIBLE_DEVICES already lists devices, the
 *   index counts within that list, as CUDA does. webgpu maps it the same way.
 * - opts.log: receives the one line saying what was chosen and why
 *   (default: written to stderr).
 * Throws ConfigError for an unknown request or a bad gpuIndex, and
 * BackendUnavailableError (exitCode 2) when an explicit request cannot be met.
 */
export async function initBackend(
  request: BackendRequest,
  opts: { gpuIndex?: number; log?: (line: string) => void } = {},
): Promise<BackendChoice> {
  const req = parseBackendRequest(String(request));
  const { gpuIndex } = opts;
  if (gpuIndex !== undefined && !(Number.isInteger(gpuIndex) && gpuIndex >= 0)) {
    throw new ConfigError(`GPU index must be a non-negative integer, got ${String(gpuIndex)}`);
  }
  const log = opts.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const chosen = (a: Extract<Attempt, { ok: true }>): BackendChoice => {
    log(`backend: ${a.label} — ${a.choice.reason}`);
    return a.choice;
  };

  switch (req) {
    case 'auto': {
      const skipped: string[] = [];
      const auto = (a: Extract<Attempt, { ok: true }>, why: string): BackendChoice =>
        chosen({ ...a, choice: { ...a.choice, reason: skipped.length > 0 ? skipped.join(', ') : why } });
      for (const pkg of NATIVE_PACKAGES) {
        const a = await tryNative(pkg, gpuIndex);
        if (a.ok) return auto(a, `auto: ${pkg} loaded`);
        skipped.push(a.reason);
      }
      const gpu = await tryWebgpu(true, gpuIndex);
      if (gpu.ok) return auto(gpu, 'auto: hardware WebGPU adapter found');
      skipped.push(`no hardware WebGPU adapter (${gpu.reason})`);
      const wasm = await tryWasm();
      if (wasm.ok) return auto(wasm, 'auto');
      skipped.push(wasm.reason);
      const cpu = await tryCpu();
      if (cpu.ok) return auto(cpu, 'auto');
      throw new BackendUnavailableError(`no tfjs backend could start: ${[...skipped, cpu.reason].join('; ')}`);
    }
    case 'tensorflow': {
      const reasons: string[] = [];
      for (const pkg of NATIVE_PACKAGES) {
        const a = await tryNative(pkg, gpuIndex);
        if (a.ok) return chosen({ ...a, choice: { ...a.choice, reason: `requested (--backend tensorflow), ${pkg}` } });
        reasons.push(a.reason);
      }
      throw new BackendUnavailableError(
        `--backend tensorflow needs @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (${reasons.join('; ')}); ` +
          `${TENSORFLOW_INSTALL_HINT}. Or use --backend auto / wasm.`,
      );
    }
    case 'webgpu': {
      // Asked for explicitly, a software adapter is acceptable (it works, slowly).
      const a = await tryWebgpu(false, gpuIndex);
      if (a.ok) return chosen({ ...a, choice: { ...a.choice, reason: `requested (--backend webgpu)${a.choice.reason}` } });
      // The precise step for the project's software Vulkan, when that is what is missing here.
      const setup = vulkanSetupHint();
      throw new BackendUnavailableError(`--backend webgpu: no usable WebGPU adapter: ${a.reason}${setup === '' ? '' : `. ${setup}`}`);
    }
    case 'wasm': {
      const a = await tryWasm();
      if (a.ok) return chosen({ ...a, choice: { ...a.choice, reason: 'requested (--backend wasm)' } });
      throw new BackendUnavailableError(`--backend wasm: ${a.reason}`);
    }
    case 'cpu': {
      const a = await tryCpu();
      if (a.ok) return chosen({ ...a, choice: { ...a.choice, reason: 'requested (--backend cpu)' } });
      throw new BackendUnavailableError(`--backend cpu: ${a.reason}`);
    }
  }
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split('\n').find((l) => l.trim() !== '') ?? text).trim();
}

/** True when `pkg` can be resolved from here (installed), without loading it. */
function isInstalled(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

async function tryNative(pkg: NativePackage, gpuIndex: number | undefined): Promise<Attempt> {
  if (!isInstalled(pkg)) return { ok: false, reason: `${pkg} not installed` };
  const isGpu = pkg === '@tensorflow/tfjs-node-gpu';
  const previous = process.env['CUDA_VISIBLE_DEVICES'];
  // libtensorflow reads CUDA_VISIBLE_DEVICES when it creates its context, which
  // tfjs-node does on import: set it first, and undo it if the import fails.
  if (isGpu && gpuIndex !== undefined) process.env['CUDA_VISIBLE_DEVICES'] = cudaVisibleDeviceFor(gpuIndex, previous);
  const restore = (): void => {
    if (previous === undefined) delete process.env['CUDA_VISIBLE_DEVICES'];
    else process.env['CUDA_VISIBLE_DEVICES'] = previous;
  };
  try {
    // A variable specifier: the package is optional and has no types here.
    const specifier: string = pkg;
    await import(specifier);
  } catch (err) {
    restore();
    return { ok: false, reason: `${pkg} installed but failed to load (${firstLine(err)})` };
  }
  if (tf.findBackendFactory('tensorflow') === null) {
    restore();
    return {
      ok: false,
      reason: `${pkg} loaded but registered no 'tensorflow' backend with this @tensorflow/tfjs-core ${tf.version_core} (a second tfjs-core copy of another version?)`,
    };
  }
  if (!(await tf.setBackend('tensorflow'))) {
    restore();
    return { ok: false, reason: `${pkg} loaded but the 'tensorflow' backend failed to initialise` };
  }
  const visible = process.env['CUDA_VISIBLE_DEVICES'];
  const device = isGpu ? `CUDA ${visible !== undefined ? `CUDA_VISIBLE_DEVICES=${visible}` : 'all visible GPUs'}` : 'CPU (libtensorflow)';
  return { ok: true, choice: { name: 'tensorflow', reason: '', device }, label: `tensorflow (${pkg}, ${device})` };
}

async function tryWebgpu(requireHardware: boolean, gpuIndex: number | undefined): Promise<Attempt> {
  let mod: typeof import('./webgpu.js');
  try {
    mod = await import('./webgpu.js');
  } catch (err) {
    return { ok: false, reason: `the webgpu module failed to load (${firstLine(err)})` };
  }
  // In auto mode, a machine without the Vulkan loader has no hardware adapter:
  // skip Dawn, which would otherwise print its own loader warning per process.
  if (requireHardware && !mod.vulkanLoaderFound()) {
    return { ok: false, reason: 'no Vulkan loader libvulkan.so.1' };
  }
  let result: Awaited<ReturnType<typeof mod.initWebgpu>>;
  try {
    result = await mod.initWebgpu(gpuIndex === undefined ? { requireHardware } : { gpuIndex, requireHardware });
  } catch (err) {
    result = { ok: false, reason: `webgpu: ${firstLine(err)}` };
  }
  if (!result.ok) {
    const hint = mod.VULKAN_DRIVER_HINT;
    // In auto mode the reason goes into a one-line log, so the long driver
    // advice is dropped there; an explicit request keeps (or gains) it.
    const bare = result.reason.replace(hint, '').replace(/^webgpu:\s*/, '').trim().replace(/[.\s]+$/, '');
    return { ok: false, reason: requireHardware ? bare : `${bare}. ${hint}` };
  }
  const { adapter } = result;
  const device = adapter.device || adapter.description || [adapter.vendor, adapter.architecture].filter(Boolean).join(' ') || 'unnamed adapter';
  const soft = adapter.software ? ', software adapter: slow' : '';
  return {
    ok: true,
    choice: { name: 'webgpu', reason: soft, device },
    label: `webgpu (${device}${adapter.software ? ', software' : ''})`,
  };
}

/**
 * wasm under Node: the package's Node entry (dist/tf-backend-wasm.node.js, a
 * CommonJS bundle) is what both `tsx src/…` and `node dist/…` load, and
 * Emscripten looks for the .wasm next to that file. The path is still set
 * explicitly from the resolved package location, so that a missing binary is
 * reported here by name instead of as an Emscripten abort, and so that a
 * bundled copy of this module would still find the package's binaries.
 */
async function tryWasm(): Promise<Attempt> {
  let dir: string;
  try {
    dir = dirname(createRequire(import.meta.url).resolve(WASM_PACKAGE));
  } catch {
    return { ok: false, reason: `${WASM_PACKAGE} not installed` };
  }
  let wasmModule: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    wasmModule = await import('@tensorflow/tfjs-backend-wasm');
  } catch (err) {
    return { ok: false, reason: `${WASM_PACKAGE} failed to load (${firstLine(err)})` };
  }
  // Threads would need a Worker from a blob: URL, which Node refuses
  // (ERR_WORKER_PATH); tfjs detects that already, this makes it explicit.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const binary = simd ? 'tfjs-backend-wasm-simd.wasm' : 'tfjs-backend-wasm.wasm';
  if (!existsSync(join(dir, binary))) return { ok: false, reason: `${binary} is missing from ${dir}` };
  wasmModule.setWasmPaths(`${dir}${sep}`);
  let ok = false;
  try {
    ok = await tf.setBackend('wasm');
  } catch (err) {
    return { ok: false, reason: `the wasm backend failed to initialise (${firstLine(err)})` };
  }
  if (!ok) return { ok: false, reason: `the wasm backend failed to initialise from ${join(dir, binary)}` };
  registerWasmKernels();
  const flavour = simd ? 'SIMD' : 'no SIMD';
  return {
    ok: true,
    choice: { name: 'wasm', reason: '', device: `CPU, wasm ${flavour}, 1 thread` },
    label: `wasm (${flavour})`,
  };
}

async function tryCpu(): Promise<Attempt> {
  try {
    await import('@tensorflow/tfjs-backend-cpu');
    if (!(await tf.setBackend('cpu'))) return { ok: false, reason: 'the cpu backend failed to initialise' };
  } catch (err) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-cpu failed to load (${firstLine(err)})` };
  }
  return { ok: true, choice: { name: 'cpu', reason: '', device: 'CPU, JavaScript' }, label: 'cpu' };
}
