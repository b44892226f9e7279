/**
 * The environment that selects the software Vulkan driver unpacked by
 * scripts/setup-vulkan.sh (Mesa 25 lavapipe under .cache/vulkan). The Vulkan
 * loader reads VK_ICD_FILENAMES / VK_DRIVER_FILES and the dynamic linker reads
 * LD_LIBRARY_PATH only at process start, so this env is for a CHILD process
 * (tests, the launcher's workers, the GPU check), never applied in-process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
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
