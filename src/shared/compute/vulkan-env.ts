/**
 * The environment that selects the software Vulkan driver unpacked by
 * scripts/setup-vulkan.sh (Mesa 25 lavapipe under .cache/vulkan). The dynamic
 * linker reads LD_LIBRARY_PATH only at process start (and the loader it finds
 * there is the one that reads VK_ICD_FILENAMES / VK_DRIVER_FILES), so this env
 * is for a CHILD process (tests, the bench's measurement processes, the GPU
 * check), never applied in-process. A process that was started without it
 * cannot use it: vulkanSetupHint() says what to run instead.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The variables env.sh sets. */
export interface SoftwareVulkanEnv {
  VK_ICD_FILENAMES: string;
  VK_DRIVER_FILES: string;
  LD_LIBRARY_PATH: string;
}

export type SoftwareVulkanResult =
  | { ok: true; env: SoftwareVulkanEnv; envFile: string }
  | { ok: false; reason: string };

/** Walks up from this module to the directory holding package.json (works from src/ and dist/src/). */
export function findRepoRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${from}`);
    dir = up;
  }
}

/** Default location of env.sh; DISTGAN_VULKAN_DIR (a folder) overrides it, as in the script. */
export function vulkanEnvFile(root: string = findRepoRoot()): string {
  const dir = process.env['DISTGAN_VULKAN_DIR'] ?? join(root, '.cache', 'vulkan');
  return join(dir, 'env.sh');
}

/**
 * Parses env.sh's `export NAME="value"` lines. Only the three variables it
 * writes are taken; `${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}` is resolved against
 * `base` so the child keeps whatever library path it already had.
 */
export function parseVulkanEnvFile(text: string, base: NodeJS.ProcessEnv = process.env): SoftwareVulkanEnv {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^export ([A-Z_]+)="(.*)"$/.exec(line.trim());
    if (m === null) continue;
    const name = m[1] as string;
    let value = m[2] as string;
    value = value.replace(/\$\{LD_LIBRARY_PATH:\+:\$LD_LIBRARY_PATH\}/, base['LD_LIBRARY_PATH'] ? `:${base['LD_LIBRARY_PATH']}` : '');
    vars[name] = value;
  }
  const icd = vars['VK_ICD_FILENAMES'] ?? vars['VK_DRIVER_FILES'];
  const lib = vars['LD_LIBRARY_PATH'];
  if (icd === undefined || lib === undefined) {
    throw new Error('env file lacks VK_ICD_FILENAMES/VK_DRIVER_FILES or LD_LIBRARY_PATH');
  }
  return { VK_ICD_FILENAMES: icd, VK_DRIVER_FILES: vars['VK_DRIVER_FILES'] ?? icd, LD_LIBRARY_PATH: lib };
}

/**
 * Reads the software-Vulkan env. With `setup: true` (default false) it first
 * runs scripts/setup-vulkan.sh (idempotent; fast when already done), which
 * needs apt and network the first time. Never throws: the reason says what is
 * missing.
 */
export function softwareVulkanEnv(opts: { setup?: boolean; root?: string } = {}): SoftwareVulkanResult {
  let root: string;
  try {
    root = opts.root ?? findRepoRoot();
  } catch (err) {
    return { ok: false, reason: String(err) };
  }
  const envFile = vulkanEnvFile(root);
  if (opts.setup === true) {
    const script = join(root, 'scripts', 'setup-vulkan.sh');
    if (!existsSync(script)) return { ok: false, reason: `${script} is missing` };
    const r = spawnSync('bash', [script, '--quiet'], { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) {
      const why = (r.stderr || r.stdout || String(r.error ?? `exit ${r.status}`)).trim();
      return { ok: false, reason: `scripts/setup-vulkan.sh failed: ${why}` };
    }
  }
  if (!existsSync(envFile)) {
    return { ok: false, reason: `${envFile} does not exist: run scripts/setup-vulkan.sh` };
  }
  try {
    const env = parseVulkanEnvFile(readFileSync(envFile, 'utf8'));
    if (!existsSync(env.VK_ICD_FILENAMES)) {
      return { ok: false, reason: `${env.VK_ICD_FILENAMES} (named in ${envFile}) is missing: rerun scripts/setup-vulkan.sh` };
    }
    return { ok: true, env, envFile };
  } catch (err) {
    return { ok: false, reason: `${envFile}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** The variables with which a caller picks Vulkan drivers itself; any of them set means "leave the choice alone". */
const DRIVER_CHOICE_VARS = ['VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'VK_ADD_DRIVER_FILES'] as const;

/** Folders the Vulkan loader searches for ICD manifests on Linux (loader docs, "Driver Discovery on Linux"). */
function icdDirs(env: NodeJS.ProcessEnv): string[] {
  const xdgConfig = (env['XDG_CONFIG_DIRS'] || '/etc/xdg').split(':');
  const xdgData = (env['XDG_DATA_DIRS'] || '/usr/local/share:/usr/share').split(':');
  const home = env['HOME'] ?? homedir();
  return [
    ...xdgConfig.map((d) => join(d, 'vulkan', 'icd.d')),
    '/etc/vulkan/icd.d',
    ...xdgData.map((d) => join(d, 'vulkan', 'icd.d')),
    '/usr/local/share/vulkan/icd.d',
    '/usr/share/vulkan/icd.d',
    join(home, '.local', 'share', 'vulkan', 'icd.d'),
  ].filter((d) => d.startsWith('/'));
}

/**
 * Whether the dynamic linker can find libvulkan.so.1: on LD_LIBRARY_PATH, in
 * the ld.so cache, or in the usual library folders.
 */
export function vulkanLoaderFound(env: NodeJS.ProcessEnv = process.env): boolean {
  const lib = 'libvulkan.so.1';
  const dirs = [
    ...(env['LD_LIBRARY_PATH'] ?? '').split(':').filter((d) => d !== ''),
    '/usr/lib/x86_64-linux-gnu',
    '/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/usr/local/lib',
  ];
  if (dirs.some((d) => existsSync(join(d, lib)))) return true;
  try {
    return readFileSync('/etc/ld.so.cache').includes(lib);
  } catch {
    return false;
  }
}

/**
 * Whether this machine has a Vulkan set-up of its own: the loader
 * libvulkan.so.1 where the dynamic linker looks, and at least one driver
 * manifest where the loader looks. A GPU machine has both; this project's
 * build machine has neither.
 */
export function systemVulkanFound(env: NodeJS.ProcessEnv = process.env): boolean {
  const loader = vulkanLoaderFound(env);
  if (!loader) return false;
  return icdDirs(env).some((d) => {
    try {
      return readdirSync(d).some((f) => f.endsWith('.json'));
    } catch {
      return false;
    }
  });
}

/**
 * The environment for a child process that will compute with `--backend
 * webgpu`: `base` plus the project's software Vulkan (.cache/vulkan/env.sh)
 * when all of these hold:
 *   - `base` names no driver itself (VK_ICD_FILENAMES, VK_DRIVER_FILES,
 *     VK_ADD_DRIVER_FILES unset): a caller's choice is never overridden;
 *   - the machine has no Vulkan of its own (systemVulkanFound): a GPU's
 *     driver is never hidden behind the CPU one;
 *   - env.sh exists and names a driver that exists (softwareVulkanEnv).
 * `note` says when it was added, for a log line.
 */
export function webgpuChildEnv(
  base: NodeJS.ProcessEnv = process.env,
  opts: { root?: string } = {},
): { env: NodeJS.ProcessEnv; note?: string } {
  if (DRIVER_CHOICE_VARS.some((v) => base[v] !== undefined && base[v] !== '')) return { env: base };
  if (systemVulkanFound(base)) return { env: base };
  const vk = softwareVulkanEnv(opts.root === undefined ? {} : { root: opts.root });
  if (!vk.ok) return { env: base };
  return {
    env: { ...base, ...vk.env },
    note: `no system Vulkan driver: using the software Vulkan (Mesa lavapipe, CPU) from ${vk.envFile}`,
  };
}

/**
 * One sentence saying exactly what to run so that `--backend webgpu` can find
 * the project's software Vulkan, for the message of a failed webgpu start;
 * '' when this process already runs with it (the failure lies elsewhere) or
 * when there is no repository to set it up in (a bundled copy).
 */
export function vulkanSetupHint(env: NodeJS.ProcessEnv = process.env, opts: { root?: string } = {}): string {
  let root: string;
  try {
    root = opts.root ?? findRepoRoot();
  } catch {
    return '';
  }
  const script = join(root, 'scripts', 'setup-vulkan.sh');
  if (!existsSync(script)) return '';
  const envFile = vulkanEnvFile(root);
  const vk = softwareVulkanEnv({ root });
  if (!vk.ok) {
    if (!existsSync(envFile)) {
      return (
        `Software Vulkan (no GPU needed) is not set up (${envFile} does not exist): run \`bash ${script}\`, ` +
        `then \`. ${envFile}\` in the shell that starts distgan, and run this again`
      );
    }
    return `The software Vulkan set-up is broken (${vk.reason}): run \`DISTGAN_VULKAN_FORCE=1 bash ${script}\`, then \`. ${envFile}\`, and run this again`;
  }
  const inUse = [env['VK_ICD_FILENAMES'], env['VK_DRIVER_FILES']].includes(vk.env.VK_ICD_FILENAMES);
  if (inUse) return '';
  return (
    `Software Vulkan is set up in ${dirname(envFile)} but this process was not started with it ` +
    `(the dynamic linker reads LD_LIBRARY_PATH only at start): run \`. ${envFile}\` in the shell that starts distgan, and run this again`
  );
}
