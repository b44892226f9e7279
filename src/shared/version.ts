/** distgan's version, read from its own package.json on disk (its exports map hides it from require). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'distgan') return dir;
    } catch {
      // keep walking up
    }
    dir = dirname(dir);
  }
  throw new Error('distgan: cannot find its package.json');
}

/** The package root (where package.json and bin/ live), from src/ or dist/src/. */
export const PACKAGE_ROOT = findRoot();
export const VERSION: string = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The CLI entry that worker processes are started with. */
export const CLI_BIN = join(PACKAGE_ROOT, 'bin', 'distgan.js');
