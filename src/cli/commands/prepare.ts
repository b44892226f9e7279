/**
 * `distgan prepare`: an image folder or IDX file → a packed dataset directory
 * that `launch --dataset DIR` trains on (docs/datasets.md).
 *
 * Progress goes to stderr: one self-overwriting line on a terminal, otherwise
 * a line every 5 %. The last stdout line is a JSON summary for scripts.
 */
import type { Command } from 'commander';
import { int, oneOf } from '../../shared/config.js';
import { prepareDataset } from '../../shared/data/prepare/index.js';
import { ConfigError } from '../../shared/errors.js';
import { DCGAN_RESOLUTIONS } from '../../shared/models/spec.js';
import { logLine } from '../output.js';

interface PrepareFlags {
  input?: string;
  out?: string;
  resolution?: string;
  channels?: string;
  labels?: string;
  shardSize?: string;
  concurrency?: string;
  force?: boolean;
}

/** Skip reasons printed on stderr; the report file has them all. */
const SHOWN_SKIPS = 10;
/** Off a terminal, one progress line per this share of the input. */
const PLAIN_PROGRESS_STEP = 0.05;

function progressPrinter(): { update(done: number, total: number): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  const t0 = performance.now();
  let nextShare = PLAIN_PROGRESS_STEP;
  let lastDraw = 0;
  let drawn = false;
  const line = (done: number, total: number): string => {
    const secs = (performance.now() - t0) / 1000;
    const rate = secs > 0 ? Math.round(done / secs) : 0;
    return `prepare: ${Math.floor((100 * done) / total)}% (${done}/${total}, ${rate} items/s)`;
  };
  return {
    update(done, total) {
      if (tty) {
        const now = performance.now();
        // Redrawing more than ~10×/s only costs time.
        if (now - lastDraw < 100 && done < total) return;
        lastDraw = now;
        process.stderr.write(`\r\x1b[2Kdistgan: ${line(done, total)}`);
        drawn = true;
      } else if (done / total >= nextShare || done === total) {
        logLine(line(done, total));
        while (nextShare <= done / total) nextShare += PLAIN_PROGRESS_STEP;
      }
    },
    end() {
      if (drawn) process.stderr.write('\n');
    },
  };
}

/**
 * --resolution, refused here unless distgan can train on it: images train on
 * the DCGAN family, which has a fixed set of sizes. Preparing a dataset that
 * every training command then refuses would waste the whole conversion.
 */
function trainableResolution(raw: string): number {
  const r = int(1, 4096)(raw, '--resolution');
  if (!(DCGAN_RESOLUTIONS as readonly number[]).includes(r)) {
    throw new ConfigError(`--resolution ${r}: distgan trains images with its DCGAN at ${DCGAN_RESOLUTIONS.join(', ')} px only; prepare at one of those (images are centre-cropped, then resized)`);
  }
  return r;
}

export function register(program: Command): void {
  program
    .command('prepare')
    .description('convert an image folder (PNG/JPEG/WebP) or an IDX file (MNIST format, gzipped or not) into a packed dataset for --dataset DIR')
    .option('--input <dir|file>', 'image folder (walked recursively) or IDX images file')
    .option('--out <dir>', 'dataset directory to create; must not exist or be empty (see --force)')
    .option('--resolution <px>', `side R of the square R×R samples, in pixels: ${DCGAN_RESOLUTIONS.join(', ')} (the sizes the DCGAN trains at; images are centre-cropped, then resized)`)
    .option('--channels <1|3>', 'channels: 1 = grey, 3 = RGB (default: 1 for an IDX file, 3 for an image folder)')
    .option('--labels <file>', 'IDX labels file matching an IDX --input (stored as labels.bin)')
    .option('--shard-size <n>', 'samples per shard file (default: as many as fit in 128 MiB)')
    .option('--concurrency <n>', 'images decoded at once (default: 2 × CPU cores)')
    .option('--force', 'replace an existing prepared dataset at --out (never deletes anything else)', false)
    .action(async (o: PrepareFlags) => {
      if (o.resolution === undefined) throw new ConfigError('--resolution is required: the side R of the R×R samples, in pixels');
      const input = o.input ?? '';
      const out = o.out ?? '';
      const opts: Parameters<typeof prepareDataset>[0] = {
        input,
        out,
        resolution: trainableResolution(o.resolution),
        force: o.force === true,
      };
      if (o.channels !== undefined) opts.channels = Number(oneOf(['1', '3'])(o.channels, '--channels')) as 1 | 3;
      if (o.labels !== undefined) opts.labels = o.labels;
      if (o.shardSize !== undefined) opts.shardSize = int(1)(o.shardSize, '--shard-size');
      if (o.concurrency !== undefined) opts.concurrency = int(1, 1024)(o.concurrency, '--concurrency');

      // Ctrl-C removes the staging directory instead of leaving it behind.
      const abort = new AbortController();
      const onSignal = (): void => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const progress = progressPrinter();
      opts.signal = abort.signal;
      opts.onProgress = (done, total) => progress.update(done, total);
      let report;
      try {
        report = await prepareDataset(opts);
      } finally {
        progress.end();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      logLine(
        `prepared ${report.count} samples of ${report.shape.join('×')} into ${report.out} in ${report.seconds.toFixed(1)} s ` +
          `(${report.shards.length} shard${report.shards.length === 1 ? '' : 's'}, fingerprint ${report.fingerprint})`,
      );
      if (report.skippedCount > 0) {
        const corrupt = report.skipped.filter((s) => s.kind === 'corrupt').length;
        logLine(
          `skipped ${report.skippedCount} files (${corrupt} could not be decoded, ${report.skippedCount - corrupt} unsupported); ` +
            `all reasons are in ${report.reportFile}:`,
        );
        for (const s of report.skipped.slice(0, SHOWN_SKIPS)) logLine(`  ${s.file}: ${s.reason}`);
        if (report.skippedCount > SHOWN_SKIPS) logLine(`  … and ${report.skippedCount - SHOWN_SKIPS} more`);
      }
      process.stdout.write(
        JSON.stringify({
          out: report.out,
          count: report.count,
          shape: report.shape,
          shards: report.shards.length,
          fingerprint: report.fingerprint,
          skipped: report.skippedCount,
          report: report.reportFile,
          seconds: Number(report.seconds.toFixed(3)),
        }) + '\n',
      );
    });
}
