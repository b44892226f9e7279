/**
 * tfjs WebGPU through Dawn (npm `webgpu`, dawn.node): a GPU backend that
 * installs from npm alone. It needs a Vulkan driver at run time (Linux):
 * the NVIDIA driver's Vulkan ICD on a GPU machine, or Mesa ≥ 25 lavapipe
 * for software Vulkan (scripts/setup-vulkan.sh unpacks one into .cache/vulkan).
 *
 * Set-up order matters: `@tensorflow/tfjs-backend-webgpu` checks
 * `navigator.gpu` once, when it is imported, so it is imported dynamically
 * only after `navigator.gpu` exists. dawn.node documents that a referenced
 * instance keeps Node's event loop alive (with webgpu 0.6.2 processes were
 * seen to exit anyway); releaseWebgpu() drops it, and is hooked to
 * 'beforeExit' so a command that simply finishes still ends.
 *
 * GPU index → adapter: dawn.node has no adapter index, only `adapter=NAME`
 * (a substring of the Vulkan device name, first match wins, in Dawn's order:
 * discrete GPUs first for 'high-performance'). listWebgpuAdapters() reads that
 * order; gpuIndex i selects the i-th entry by its name. Several identical GPUs
 * share one name, so only the first of them is reachable in-process; the
 * NVIDIA Vulkan driver ignores CUDA_VISIBLE_DEVICES, so such GPUs must be
 * isolated per worker process from outside (one container per GPU with
 * NVIDIA_VISIBLE_DEVICES). See docs/gpu.md.
 */
import { tf } from './tf.js';
import { vulkanLoaderFound } from './vulkan-env.js';
import { cudaVisibleDeviceFor } from './backends.js';

/** What initWebgpu reports about the adapter it chose. */
export interface WebgpuAdapterSummary {
  /** GPUAdapterInfo.vendor, e.g. "nvidia", "mesa" (may be empty). */
  vendor: string;
  /** GPUAdapterInfo.architecture, e.g. "hopper" (may be empty). */
  architecture: string;
  /**
   * The Vulkan device name as the driver reports it, e.g. "NVIDIA H100 80GB HBM3"
   * or "llvmpipe (LLVM 15.0.6, 256 bits)". (Dawn's GPUAdapterInfo.device is a
   * sanitised form of it, "llvmpipe-llvm-15-0-6-256-bits-"; the raw name is what
   * nvidia-smi and vulkaninfo print, and what Dawn's adapter= flag matches.)
   */
  device: string;
  /** GPUAdapterInfo.description: driver description. */
  description: string;
  /** True when the adapter is a CPU implementation (lavapipe/llvmpipe, SwiftShader). */
  software: boolean;
}

export type WebgpuInitResult =
  | { ok: true; adapter: WebgpuAdapterSummary }
  | { ok: false; reason: string };

/** Shape of the dawn.node module (npm `webgpu`), typed only as far as used here. */
interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

/** The vendor id the Vulkan/Khronos registry gives Mesa (lavapipe reports it). */
const MESA_VENDOR_ID = 0x10005;

/** Names a CPU implementation uses for itself in vendor/device/description. */
const SOFTWARE_NAME = /llvmpipe|lavapipe|swiftshader|software|softpipe|\bcpu\b/i;

/** What is needed when no adapter is found; the reason strings quote it. */
export const VULKAN_DRIVER_HINT =
  'webgpu needs a Vulkan driver: on an NVIDIA machine the NVIDIA driver\'s Vulkan ICD ' +
  '(nvidia_icd.json + libGLX_nvidia.so.0; in a container NVIDIA_DRIVER_CAPABILITIES must ' +
  'include "graphics", e.g. =compute,utility,graphics), plus the Vulkan loader libvulkan.so.1; ' +
  'for software Vulkan, Mesa ≥ 25 lavapipe (run scripts/setup-vulkan.sh and source ' +
  '.cache/vulkan/env.sh; Debian 12\'s Mesa 22.3 lavapipe is refused by Dawn)';

let dawnGpu: GPU | undefined;
let exitHooked = false;
/** The adapter this process initialised, so a second initWebgpu call reuses it. */
let current: { index: number; adapter: WebgpuAdapterSummary } | undefined;

/**
 * Decides whether adapter info describes a CPU (software) implementation.
 * Dawn reports lavapipe as vendor "mesa" with a device name "llvmpipe (…)"; the
 * spec's isFallbackAdapter is also honoured where the binding exposes it.
 */
export function isSoftwareAdapter(info: {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  vendorID?: number;
  isFallbackAdapter?: boolean;
}): boolean {
  if (info.isFallbackAdapter === true) return true;
  if (info.vendorID === MESA_VENDOR_ID) return true;
  const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
  return SOFTWARE_NAME.test(text);
}

/**
 * The physical adapter index a worker should use. Workers are pinned to GPUs
 * CUDA-style by the launcher: when CUDA_VISIBLE_DEVICES lists integer indices,
 * `gpuIndex` (default 0) indexes into that list, as CUDA would; otherwise it is
 * used as is. The NVIDIA Vulkan driver itself ignores CUDA_VISIBLE_DEVICES,
 * hence this mapping. UUID entries (GPU-…) cannot be matched to Vulkan
 * adapters by Dawn and are ignored (the raw gpuIndex is used).
 */
export function physicalGpuIndex(
  gpuIndex: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { index: number } | { error: string } {
  const local = gpuIndex ?? 0;
  if (!Number.isInteger(local) || local < 0) return { error: `GPU index must be a non-negative integer, got ${local}` };
  let entry: string;
  try {
    entry = cudaVisibleDeviceFor(local, env['CUDA_VISIBLE_DEVICES']);
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
  // UUID entries (GPU-…) cannot be matched to Vulkan adapters: the raw index is used.
  return { index: /^\d+$/.test(entry) ? Number(entry) : local };
}

/** Re-exported where backend.ts has always found it; the check lives with the other Vulkan look-ups. */
export { vulkanLoaderFound };

async function loadDawn(): Promise<DawnModule> {
  // The package's index.js resolves dist/<platform>-<arch>/dawn.node itself.
  const mod = (await import('webgpu')) as unknown as DawnModule;
  return mod;
}

/**
 * Lists the adapters Dawn enumerates on its default backend (Vulkan on Linux), in
 * Dawn's order, which is the order gpuIndex counts in. dawn.node has no
 * enumeration API; asking for an adapter name that cannot exist makes it reject
 * with the list ("Available adapters: * backend: 'vulkan', name: '…'").
 */
export async function listWebgpuAdapters(): Promise<string[]> {
  const dawn = await loadDawn();
  let gpu: GPU | undefined = dawn.create(['adapter=\u0001distgan-enumerate\u0001']);
  try {
    const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    // null: no adapter at all. An adapter here would mean the impossible name
    // matched, i.e. a binding without name filtering: report what it gave.
    return a === null ? [] : [a.info.device];
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    const names: string[] = [];
    for (const m of text.matchAll(/\* backend: '([^']*)', name: '([^']*)'/g)) names.push(m[2] ?? '');
    return names;
  } finally {
    gpu = undefined;
  }
}

function ensureNavigator(): { gpu?: GPU } {
  const g = globalThis as unknown as { navigator?: { gpu?: GPU } };
  if (g.navigator === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  }
  return g.navigator as { gpu?: GPU };
}

/**
 * Drops the Dawn instance so the process can exit, after disposing the tfjs
 * backend (which destroys its GPUDevice). Safe to call more than once.
 */
export function releaseWebgpu(): void {
  try {
    if (tf.engine().registryFactory['webgpu'] !== undefined) tf.removeBackend('webgpu');
  } catch {
    // A half-initialised backend may throw on dispose; exiting matters more.
  }
  const nav = (globalThis as unknown as { navigator?: { gpu?: GPU } }).navigator;
  if (nav !== undefined && 'gpu' in nav) delete nav.gpu;
  dawnGpu = undefined;
  current = undefined;
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // 'beforeExit' fires when the loop runs dry: the device is destroyed and the
  // instance dropped before Node exits. Were a binding to hold a loop handle
  // itself (the dawn.node README's case), 'beforeExit' could not fire: callers
  // then end with releaseWebgpu() or process.exit() (the CLI exits explicitly).
  process.once('beforeExit', releaseWebgpu);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Creates the Dawn instance on the adapter for `gpuIndex`, registers tfjs's
 * 'webgpu' backend on a device from that adapter and makes it current.
 *
 * - gpuIndex (default 0, or CUDA_VISIBLE_DEVICES-mapped, see physicalGpuIndex):
 *   index into Dawn's adapter list (listWebgpuAdapters). Dawn selects adapters
 *   by device name only, so an index whose name also belongs to an earlier
 *   adapter (several identical GPUs) cannot be chosen in-process: pin such
 *   workers from outside (one container per GPU with NVIDIA_VISIBLE_DEVICES).
 * - requireHardware: when true (auto mode), a software adapter gives ok:false.
 */
export async function initWebgpu(opts: {
  gpuIndex?: number;
  requireHardware: boolean;
}): Promise<
  | { ok: true; adapter: { vendor: string; architecture: string; device: string; description: string; software: boolean } }
  | { ok: false; reason: string }
> {
  if (process.platform !== 'linux' && process.platform !== 'win32' && process.platform !== 'darwin') {
    return { ok: false, reason: `webgpu: dawn.node has no build for platform ${process.platform}` };
  }
  let dawn: DawnModule;
  try {
    dawn = await loadDawn();
  } catch (err) {
    return { ok: false, reason: `webgpu: could not load dawn.node (npm "webgpu"): ${errText(err)}` };
  }

  const mapped = physicalGpuIndex(opts.gpuIndex);
  if ('error' in mapped) return { ok: false, reason: `webgpu: ${mapped.error}` };
  const index = mapped.index;
  if (current !== undefined && dawnGpu !== undefined) {
    // Already set up in this process: one Dawn device per process.
    if (current.index !== index) {
      return { ok: false, reason: `webgpu: this process already uses adapter ${current.index}; cannot switch to ${index}` };
    }
    if (opts.requireHardware && current.adapter.software) {
      return { ok: false, reason: `webgpu: the adapter in use is software ("${current.adapter.device}"); auto mode needs a hardware GPU` };
    }
    return { ok: true, adapter: { ...current.adapter } };
  }
  let names: string[];
  try {
    names = await listWebgpuAdapters();
  } catch (err) {
    return { ok: false, reason: `webgpu: enumerating adapters failed: ${errText(err)}. ${VULKAN_DRIVER_HINT}` };
  }
  if (names.length === 0) {
    const loader = process.platform === 'linux' && !vulkanLoaderFound() ? ' (the Vulkan loader libvulkan.so.1 is not installed: Debian/Ubuntu package libvulkan1)' : '';
    return { ok: false, reason: `webgpu: Dawn found no Vulkan adapter${loader}. ${VULKAN_DRIVER_HINT}` };
  }
  const name = names[index];
  if (name === undefined) {
    return {
      ok: false,
      reason: `webgpu: GPU index ${index} requested but Dawn sees ${names.length} adapter(s): ${names
        .map((n, i) => `${i}: ${n}`)
        .join('; ')}`,
    };
  }
  if (names.indexOf(name) !== index) {
    return {
      ok: false,
      reason:
        `webgpu: GPU index ${index} is a "${name}" like an earlier adapter; Dawn selects adapters by ` +
        `name only, so it cannot reach that one in-process. Run one worker per GPU with only that ` +
        `GPU visible to Vulkan (e.g. a container per GPU with NVIDIA_VISIBLE_DEVICES=${index}).`,
    };
  }

  const nav = ensureNavigator();
  Object.assign(globalThis, dawn.globals);
  dawnGpu = dawn.create([`adapter=${name}`]);
  nav.gpu = dawnGpu;
  hookExit();

  let adapter: GPUAdapter | null;
  try {
    adapter = await dawnGpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    releaseWebgpu();
    return { ok: false, reason: `webgpu: requestAdapter failed: ${errText(err)}. ${VULKAN_DRIVER_HINT}` };
  }
  if (adapter === null) {
    releaseWebgpu();
    return { ok: false, reason: `webgpu: no adapter named "${name}". ${VULKAN_DRIVER_HINT}` };
  }
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean; vendorID?: number };
  const summary: WebgpuAdapterSummary = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: name || info.device || '',
    description: info.description ?? '',
    software: false,
  };
  const fallback =
    info.isFallbackAdapter ?? (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  summary.software = isSoftwareAdapter({
    ...summary,
    ...(fallback === undefined ? {} : { isFallbackAdapter: fallback }),
    ...(info.vendorID === undefined ? {} : { vendorID: info.vendorID }),
  });
  process.stderr.write(
    `[webgpu] GPU ${index}: vendor=${summary.vendor || '?'} architecture=${summary.architecture || '?'} ` +
      `device=${summary.device || '?'} description=${summary.description || '?'}` +
      `${summary.software ? ' (software)' : ''}\n`,
  );
  if (opts.requireHardware && summary.software) {
    releaseWebgpu();
    return {
      ok: false,
      reason: `webgpu: Vulkan adapter ${index} is software ("${summary.device}"); auto mode needs a hardware GPU. ${VULKAN_DRIVER_HINT}`,
    };
  }

  try {
    // Imported only now: the module registers its backend factory at import
    // time, and only if navigator.gpu exists.
    const mod = (await import('@tensorflow/tfjs-backend-webgpu')) as typeof import('@tensorflow/tfjs-backend-webgpu') & {
      default?: typeof import('@tensorflow/tfjs-backend-webgpu');
    };
    // The package's Node entry is CommonJS: Node's ESM loader exposes its named
    // exports, a bundler's interop only `default`.
    const WebGPUBackend = mod.WebGPUBackend ?? mod.default?.WebGPUBackend;
    if (typeof WebGPUBackend !== 'function') throw new Error('@tensorflow/tfjs-backend-webgpu exports no WebGPUBackend');
    const limits = adapter.limits;
    const requiredFeatures: GPUFeatureName[] = [];
    if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
    const device = await adapter.requestDevice({
      requiredFeatures,
      requiredLimits: {
        maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
        maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
        maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
        maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
      },
    });
    // Replace the package's own factory (which calls requestAdapter again with
    // its own options) by one bound to the adapter chosen above.
    if (tf.engine().registryFactory['webgpu'] !== undefined) tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', () => new WebGPUBackend(device, info), 3);
    const ok = await tf.setBackend('webgpu');
    if (!ok) throw new Error('tf.setBackend("webgpu") returned false');
    await tf.ready();
  } catch (err) {
    releaseWebgpu();
    return { ok: false, reason: `webgpu: creating the tfjs backend on "${summary.device}" failed: ${errText(err)}` };
  }
  current = { index, adapter: summary };
  return { ok: true, adapter: { ...summary } };
}
