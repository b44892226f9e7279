/**
 * `distgan report RUN`: the run's curves after the fact, from RUN/stats.jsonl
 * (coordinator/stats-file.ts), as a self-contained RUN/report.html plus one
 * PNG plot per chart beside it (report-losses.png, report-accuracy.png,
 * report-throughput.png, report-step-time.png). Works on finished, failed,
 * killed and resumed runs. Everything is read and rendered before the first
 * byte is written: bad input (no such folder, no stats.jsonl, a corrupt line
 * other than a cut-short last one) exits 2 with DISTGAN_E_CONFIG and writes
 * nothing.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../../shared/atomic-write.js';
import { ConfigError, describeError } from '../../shared/errors.js';
import { VERSION } from '../../shared/version.js';
import { STATS_FILE_NAME, readStatsFile } from '../../coordinator/stats-file.js';
import { buildHistory } from '../report/history.js';
import { chartsOf } from '../report/chart.js';
import { chartPng } from '../report/chart-png.js';
import { renderReportHtml } from '../report/html.js';
import { logLine } from '../output.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export interface ReportFiles {
  html: string;
  plots: string[];
}

/** The report's files for RUN, written to `out` (default RUN/report.html) and beside it. */
export async function writeReport(run: string, out?: string): Promise<ReportFiles & { steps: number; outcome: string }> {
  const runDir = resolve(run);
  const st = await stat(runDir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new ConfigError(`RUN ${run}: no such folder`);
    throw new ConfigError(`RUN ${run}: ${describeError(e)}`, { cause: e });
  });
  if (!st.isDirectory()) throw new ConfigError(`RUN ${run} is not a folder (give the run folder, e.g. runs/20260101-120000)`);
  const statsPath = join(runDir, STATS_FILE_NAME);
  const history = buildHistory(await readStatsFile(statsPath), statsPath);

  const htmlPath = resolve(out ?? join(runDir, 'report.html'));
  const outSt = await stat(htmlPath).catch(() => undefined);
  if (outSt?.isDirectory()) throw new ConfigError(`--out ${out}: is a folder; give the HTML file to write, e.g. ${join(out ?? '', 'report.html')}`);

  // The newest sample grid, if the run wrote one; something that is not a PNG is left out, not fatal.
  let sample: { png: Buffer; step: number | null } | null = null;
  const png = await readFile(join(runDir, 'samples', 'latest.png')).catch(() => undefined);
  if (png && PNG_SIGNATURE.every((b, i) => png[i] === b)) {
    const lastSample = [...history.events].reverse().find((e) => e.line.event === 'sample')?.line;
    sample = { png, step: lastSample && lastSample.event === 'sample' ? lastSample.step : null };
  }

  const charts = chartsOf(history);
  const stem = basename(htmlPath).replace(/\.html?$/i, '');
  const plots = charts.map((c) => ({ name: `${stem}-${c.id}.png`, bytes: chartPng(c) }));
  const html = renderReportHtml({
    runDir,
    history,
    charts,
    sample,
    plots: plots.map((p) => p.name),
    generatedAt: Date.now() / 1000,
    version: VERSION,
  });

  const dir = dirname(htmlPath);
  await mkdir(dir, { recursive: true });
  for (const p of plots) await writeFileAtomic(join(dir, p.name), p.bytes);
  await writeFileAtomic(htmlPath, html);
  return { html: htmlPath, plots: plots.map((p) => join(dir, p.name)), steps: history.steps.length, outcome: history.outcome };
}

export function register(program: Command): void {
  program
    .command('report')
    .description("render a run's curves, config, summary and latest samples from RUN/stats.jsonl into a self-contained HTML file and PNG plots")
    .argument('<run>', 'run folder (the --out of launch or coordinator)')
    .option('--out <file.html>', 'HTML file to write; the PNG plots go beside it as <name>-<chart>.png (default RUN/report.html)')
    .action(async (run: string, o: { out?: string }) => {
      const r = await writeReport(run, o.out);
      logLine(`report (${r.outcome} run, ${r.steps} logged points): ${r.html}`);
      logLine(`plots: ${r.plots.join(', ')}`);
    });
}
