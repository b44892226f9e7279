/**
 * report.html: a run's curves, configuration, summary and latest sample grid
 * in one static file. Self-contained like the status page (no script, font,
 * stylesheet or CDN; the sample grid is embedded as a data: URL), so it can be
 * mailed, archived or opened on a machine with no network. Same palette and
 * layout as the live page (src/coordinator/status-page/).
 */
import type { RunHistory, Session } from './history.js';
import type { ChartSpec } from './chart.js';
import { chartSvg, legendHtml } from './chart-svg.js';
import { escapeHtml as esc, fmt, fmtBytes, fmtCount, fmtDuration, fmtTime } from './format.js';

export interface ReportInput {
  runDir: string;
  history: RunHistory;
  charts: ChartSpec[];
  /** samples/latest.png, or null when the run wrote none. */
  sample: { png: Buffer; step: number | null } | null;
  /** File names of the PNG plots written beside the HTML. */
  plots: string[];
  /** Unix seconds. */
  generatedAt: number;
  version: string;
}

/** Most events listed (the newest); a long run's checkpoints and samples would otherwise fill pages. */
export const MAX_EVENTS = 200;

const STYLE = `
:root { --bg: #0d1017; --panel: #151a23; --panel2: #1b2130; --border: #252c3b; --text: #e7eaf0; --muted: #8a93a6;
  --d: #f5a524; --g: #4ea1ff; --real: #3ccf91; --fake: #f1607d; --tput: #a98bff; --warn: #f5a524; --bad: #f1607d; --ok: #3ccf91; }
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 1400px; margin: 0 auto; padding: 18px 22px 28px; }
header { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; margin-bottom: 16px; }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 700; font-size: 19px; letter-spacing: .3px; }
.brand svg { width: 28px; height: 28px; }
.mono, .runid { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.runid { color: var(--muted); font-size: 13px; }
.chips { display: flex; gap: 6px; flex-wrap: wrap; }
.chip { background: var(--panel2); border: 1px solid var(--border); border-radius: 999px; padding: 2px 10px; font-size: 12px; color: var(--muted); }
.chip b { color: var(--text); font-weight: 600; }
.spacer { flex: 1; }
.badge { display: inline-flex; align-items: center; gap: 7px; padding: 4px 12px; border-radius: 999px; font-weight: 600; font-size: 12px;
  text-transform: uppercase; letter-spacing: .6px; border: 1px solid var(--border); background: var(--panel2); }
.badge::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: currentColor; }
.badge.finished { color: var(--g); } .badge.failed { color: var(--bad); } .badge.incomplete { color: var(--warn); }
.card { background: var(--panel); border: 1px solid var(--border); border-radius: 12px; padding: 14px 16px; }
.card h2 { margin: 0 0 10px; font-size: 13px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .7px; display: flex; align-items: baseline; gap: 8px; }
.card h2 .aside { margin-left: auto; text-transform: none; letter-spacing: 0; font-weight: 500; }
.progress { margin-bottom: 14px; }
.progress-top { display: flex; justify-content: space-between; align-items: baseline; flex-wrap: wrap; gap: 8px; margin-bottom: 10px; }
.big { font-size: 30px; font-weight: 700; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.bar { height: 10px; border-radius: 999px; background: var(--panel2); overflow: hidden; border: 1px solid var(--border); }
.fill { height: 100%; background: linear-gradient(90deg, var(--g), var(--tput)); }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin-bottom: 14px; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; display: flex; align-items: center; gap: 6px; }
.stat .value { font-size: 24px; font-weight: 700; font-variant-numeric: tabular-nums; margin-top: 2px; white-space: nowrap; }
.stat .sub { color: var(--muted); font-size: 12px; }
.value.bad { color: var(--bad); }
.dot { width: 9px; height: 9px; border-radius: 50%; display: inline-block; }
.error, .note { border-radius: 12px; padding: 12px 16px; margin-bottom: 14px; white-space: pre-wrap; }
.error { background: rgba(241,96,125,.12); border: 1px solid var(--bad); color: #ffd3dc; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.note { background: rgba(245,165,36,.10); border: 1px solid var(--warn); color: #ffe7bf; }
.grid { display: grid; grid-template-columns: minmax(0, 1.7fr) minmax(0, 1fr); gap: 14px; margin-bottom: 14px; }
.col { display: flex; flex-direction: column; gap: 14px; min-width: 0; }
@media (max-width: 980px) { .grid { grid-template-columns: 1fr; } }
.legend { display: flex; gap: 14px; flex-wrap: wrap; font-size: 12px; color: var(--muted); margin: -4px 0 6px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.legend i { width: 14px; height: 3px; border-radius: 2px; display: inline-block; }
.legend b { color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }
.chartbox { position: relative; }
svg.chart { width: 100%; height: auto; display: block; overflow: visible; }
svg.chart .grid-line { stroke: var(--border); stroke-width: 1; }
svg.chart .axis-label, svg.chart .marker-label { fill: var(--muted); font-size: 11px; font-variant-numeric: tabular-nums; }
svg.chart .series { fill: none; stroke-width: 1.8; stroke-linejoin: round; stroke-linecap: round; }
svg.chart .area { stroke: none; opacity: .10; }
svg.chart .nan-mark { fill: var(--bad); }
svg.chart .marker { stroke: var(--muted); stroke-dasharray: 4 4; }
.empty-chart { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 13px; }
.sample-wrap { background: #07090d; border-radius: 10px; border: 1px solid var(--border); min-height: 120px; display: flex; align-items: center; justify-content: center; overflow: hidden; }
.sample-wrap img { width: 100%; height: auto; max-height: 520px; object-fit: contain; image-rendering: pixelated; display: block; }
.empty-note { color: var(--muted); font-size: 13px; padding: 30px; text-align: center; }
table { width: 100%; border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 500; font-size: 11px; text-transform: uppercase; letter-spacing: .6px; padding: 4px 6px; border-bottom: 1px solid var(--border); }
td { padding: 6px; border-bottom: 1px solid var(--border); vertical-align: top; }
tr:last-child td { border-bottom: none; }
td.num, th.num { text-align: right; }
.kv { display: grid; grid-template-columns: 1fr auto; gap: 4px 12px; font-size: 13px; }
.kv span:nth-child(odd) { color: var(--muted); }
.kv span:nth-child(even) { text-align: right; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.section { margin-bottom: 14px; }
.cfg { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 2px 22px; font-size: 13px; }
.cfg div { display: flex; gap: 12px; justify-content: space-between; padding: 4px 0; border-bottom: 1px solid var(--border); min-width: 0; }
.cfg span { color: var(--muted); font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.cfg b { font-weight: 500; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; text-align: right; overflow-wrap: anywhere; }
.scroll { max-height: 420px; overflow: auto; }
footer { margin-top: 18px; color: var(--muted); font-size: 12px; display: flex; gap: 10px; flex-wrap: wrap; }
footer a { color: var(--g); }
`;

const BRAND_SVG = `<svg viewBox="0 0 32 32" aria-hidden="true"><defs><linearGradient id="lg" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#4ea1ff"/><stop offset="1" stop-color="#a98bff"/></linearGradient></defs>
<rect x="1" y="1" width="30" height="30" rx="8" fill="url(#lg)"/><path d="M8 21 L13 11 L18 18 L24 9" stroke="#0d1017" stroke-width="2.6" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>`;

function kv(rows: Array<[string, string]>): string {
  return `<div class="kv">${rows.map(([k, v]) => `<span>${esc(k)}</span><span>${esc(v)}</span>`).join('')}</div>`;
}

function stat(label: string, value: string, sub: string, opts: { color?: string; bad?: boolean } = {}): string {
  const dot = opts.color ? `<i class="dot" style="background:${opts.color}"></i>` : '';
  return `<div class="card stat"><div class="label">${dot}${esc(label)}</div><div class="value${opts.bad ? ' bad' : ''}">${esc(value)}</div><div class="sub">${esc(sub)}</div></div>`;
}

function outcomeOf(s: Session): string {
  if (!s.end) return 'no run_end (killed, or still running)';
  if (s.end.ok) return 'finished';
  return `failed${s.end.error?.code ? ` [${s.end.error.code}]` : ''}: ${s.end.error?.message ?? ''}`;
}

function configValue(v: unknown): string {
  if (v === undefined) return '—';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

function eventText(line: RunHistory['events'][number]['line']): [string, string] {
  switch (line.event) {
    case 'checkpoint': return ['checkpoint', `step ${line.step}: ${line.path}`];
    case 'sample': return ['sample', `step ${line.step}: ${line.path}`];
    case 'worker_joined': return ['worker joined', `rank ${line.rank}: ${line.host} pid ${line.pid}, ${line.backend}`];
    case 'worker_lost': return ['worker lost', `rank ${line.rank}: ${line.reason}`];
    case 'peer_rejected': return ['peers rejected', `${line.count} (total ${line.total}), latest: ${line.reason}`];
  }
}

/** The whole page. */
export function renderReportHtml(input: ReportInput): string {
  const { history: h, charts } = input;
  const last = h.sessions[h.sessions.length - 1]!;
  const run = last.start;
  const lastStep = h.steps[h.steps.length - 1];
  const step = Math.max(last.lastStep, lastStep?.step ?? 0);
  const total = run.totalSteps;
  const frac = total > 0 ? Math.min(1, step / total) : 0;
  const summary = h.end?.summary ?? null;
  const badBadge = h.outcome;

  const chips = ([['dataset', run.dataset], ['model', run.model], ['backend', run.backend], ['batch', String(run.globalBatch)], ['workers', String(run.worldSize)], ['v', run.version]] as const)
    .map(([k, v]) => `<span class="chip">${esc(k)} <b>${esc(v)}</b></span>`).join('');

  const notes: string[] = [];
  if (h.outcome === 'incomplete') notes.push(`The newest session has no run_end line: its process was killed (or is still running). The report shows everything it logged up to step ${step}.`);
  if (h.replacedSteps > 0) notes.push(`${h.replacedSteps} step line(s) were replaced: a --resume trained those steps again from an earlier checkpoint, and the curves follow the resumed run.`);
  if (h.partialLastLine) notes.push('The log ends in a line cut short (a process stopped mid-write); it was skipped.');
  if (h.unknownEvents > 0) notes.push(`${h.unknownEvents} line(s) of events this distgan does not know were skipped (written by a newer distgan?).`);
  const errorBox = h.end && !h.end.ok && h.end.error
    ? `<div class="error">Run failed${h.end.error.code ? ` [${esc(h.end.error.code)}]` : ''}: ${esc(h.end.error.message)}</div>` : '';

  const L = lastStep;
  const finite = (v: number | undefined): boolean => v !== undefined && Number.isFinite(v);
  const tput = summary && summary.imagesPerSecond > 0 ? summary.imagesPerSecond : L?.imagesPerSecond ?? NaN;
  const workersUp = last.workers.filter((w) => w.lost === null).length;
  const lastCheckpoint = [...h.events].reverse().find((e) => e.line.event === 'checkpoint')?.line;
  const stats = [
    stat('Throughput', fmtCount(tput), summary ? 'img/s, steady state' : 'img/s, smoothed, last logged', { color: 'var(--tput)' }),
    stat('D loss', L ? fmt(L.dLoss, 4) : '—', 'discriminator', { color: 'var(--d)', bad: L !== undefined && !finite(L.dLoss) }),
    stat('G loss', L ? fmt(L.gLoss, 4) : '—', 'generator', { color: 'var(--g)', bad: L !== undefined && !finite(L.gLoss) }),
    stat('D acc real', L ? fmt(L.dAccuracyReal, 3) : '—', 'real images judged real', { color: 'var(--real)' }),
    stat('D acc fake', L ? fmt(L.dAccuracyFake, 3) : '—', 'fakes judged fake', { color: 'var(--fake)' }),
    stat('Workers', `${workersUp} / ${run.worldSize}`, h.totals.workersLost > 0 ? `${h.totals.workersLost} lost` : 'at the end'),
    stat('Checkpoints', String(h.totals.checkpoints), lastCheckpoint && lastCheckpoint.event === 'checkpoint' ? `last at step ${fmtCount(lastCheckpoint.step)}` : 'none written'),
  ].join('');

  const chartCards = charts.map((c) => {
    const aside = c.stride > 1 ? `each point = mean of ${c.stride} logged points` : `a point every ${run.logEvery || '?'} steps`;
    return `<div class="card"><h2>${esc(c.title)} <span class="aside">${esc(aside)}</span></h2><div class="legend">${legendHtml(c)}</div><div class="chartbox">${chartSvg(c)}</div></div>`;
  }).join('');

  const sample = input.sample
    ? `<img id="sample" alt="latest sample grid" src="data:image/png;base64,${input.sample.png.toString('base64')}">`
    : '<div class="empty-note">The run wrote no sample grid (samples/latest.png)</div>';
  const sampleStep = input.sample?.step !== null && input.sample?.step !== undefined ? `step ${fmtCount(input.sample.step)}` : '';

  const summaryRows: Array<[string, string]> = summary
    ? [
        ['steps', fmtCount(summary.steps)], ['images this session', fmtCount(summary.images)], ['img/s (steady state)', fmtCount(summary.imagesPerSecond)],
        ['wall time', fmtDuration(summary.wallSeconds)], ['exchange / step', fmtDuration(summary.exchangeSecondsPerStep)],
        ['workers × backend', `${summary.worldSize} × ${summary.backend}`], ['final D / G loss', `${fmt(summary.dLoss, 4)} / ${fmt(summary.gLoss, 4)}`],
        ['final D acc real / fake', `${fmt(summary.dAccuracyReal, 3)} / ${fmt(summary.dAccuracyFake, 3)}`],
      ]
    : [['outcome', h.outcome === 'failed' ? 'failed: no summary' : 'no summary (no run_end)'], ['last step', fmtCount(step)], ['images', fmtCount(L?.images ?? NaN)]];

  const health = kv([
    ['sent to workers', fmtBytes(h.totals.sentBytes)], ['received from workers', fmtBytes(h.totals.receivedBytes)],
    ['images (from step 0)', fmtCount(L?.images ?? NaN)], ['training wall time, all sessions', fmtDuration(h.totals.wallSeconds)],
    ['workers lost', String(h.totals.workersLost)], ['peers rejected', String(h.totals.peersRejected)],
  ]);

  const workerRows = last.workers.length
    ? last.workers.map((w) => `<tr><td class="mono">${w.rank}</td><td class="mono" title="pid ${w.pid}">${esc(w.host)}</td><td>${esc(w.backend)}</td>` +
        `<td>${w.lost === null ? '<i class="dot" style="background:var(--ok)"></i>' : `<i class="dot" style="background:var(--bad)"></i> lost: ${esc(w.lost)}`}</td>` +
        `<td class="num">${fmtDuration(w.computeSeconds)}</td><td class="num">${fmtDuration(w.dataSeconds)}</td></tr>`).join('')
    : '<tr><td colspan="6" class="muted">no worker joined</td></tr>';

  const sessionRows = h.sessions.map((s) => `<tr><td class="mono">${s.index}</td><td>${esc(fmtTime(s.start.startedAt))}</td><td class="mono">${s.start.resumed ? 'resume' : 'start'}</td>` +
    `<td class="num">${fmtCount(s.start.startStep)} → ${fmtCount(s.lastStep)}</td><td class="num">${fmtCount(s.start.totalSteps)}</td><td class="num">${fmtDuration(s.wallSeconds)}</td>` +
    `<td>${esc(outcomeOf(s))}</td><td class="mono">${esc(s.start.version)}</td></tr>`).join('');

  const shown = h.events.slice(-MAX_EVENTS);
  const eventRows = shown.map(({ session, line }) => {
    const [what, detail] = eventText(line);
    return `<tr><td>${esc(fmtTime(line.time))}</td><td class="num">${session}</td><td>${esc(what)}</td><td class="mono">${esc(detail)}</td></tr>`;
  }).join('') || '<tr><td colspan="4" class="muted">none</td></tr>';
  const eventsAside = h.events.length > shown.length ? `the newest ${shown.length} of ${h.events.length}` : `${h.events.length}`;

  const config = run.config ?? {};
  const configRows = Object.keys(config).sort().map((k) => `<div><span>${esc(k)}</span><b>${esc(configValue(config[k]))}</b></div>`).join('')
    || '<div class="muted">not recorded</div>';

  const plotLinks = input.plots.map((p) => `<a href="${esc(encodeURI(p))}">${esc(p)}</a>`).join(' ');
  const title = `distgan report · ${run.runId}`;

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="distgan ${esc(input.version)}">
<title>${esc(title)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<div class="wrap">
  <header>
    <div class="brand">${BRAND_SVG} distgan report</div>
    <span class="runid" id="run-id">${esc(run.runId)}</span>
    <div class="chips">${chips}</div>
    <div class="spacer"></div>
    <span id="state" class="badge ${badBadge}">${esc(h.outcome)}</span>
  </header>
  <section class="card progress">
    <div class="progress-top">
      <div><span class="big" id="step">${fmtCount(step)}</span> <span class="muted">/ ${fmtCount(total)} steps</span> <span class="muted">(${(frac * 100).toFixed(frac < 0.1 ? 1 : 0)}%)</span></div>
      <div class="muted">${h.sessions.length} session(s) · training wall time ${esc(fmtDuration(h.totals.wallSeconds))} · ${h.steps.length} logged points · started ${esc(fmtTime(h.sessions[0]!.start.startedAt))}</div>
    </div>
    <div class="bar"><div class="fill" style="width:${(frac * 100).toFixed(2)}%"></div></div>
  </section>
  ${errorBox}
  ${notes.map((n) => `<div class="note">${esc(n)}</div>`).join('\n  ')}
  <section class="stats">${stats}</section>
  <main class="grid">
    <div class="col">${chartCards}</div>
    <div class="col">
      <div class="card"><h2>Latest samples <span class="aside">${esc(sampleStep)}</span></h2><div class="sample-wrap">${sample}</div></div>
      <div class="card"><h2>Summary</h2>${kv(summaryRows)}</div>
      <div class="card"><h2>Exchange &amp; health</h2>${health}</div>
      <div class="card"><h2>Workers <span class="aside">session ${last.index}, last logged step</span></h2>
        <table><thead><tr><th>rank</th><th>host</th><th>backend</th><th></th><th class="num">compute</th><th class="num">data</th></tr></thead><tbody id="workers">${workerRows}</tbody></table></div>
    </div>
  </main>
  <section class="card section"><h2>Sessions <span class="aside">the first launch, then each --resume</span></h2>
    <table><thead><tr><th>#</th><th>started</th><th></th><th class="num">steps</th><th class="num">target</th><th class="num">wall</th><th>outcome</th><th>version</th></tr></thead><tbody id="sessions">${sessionRows}</tbody></table></section>
  <section class="card section"><h2>Events <span class="aside">${esc(eventsAside)}</span></h2>
    <div class="scroll"><table><thead><tr><th>time</th><th class="num">session</th><th>event</th><th>detail</th></tr></thead><tbody id="events">${eventRows}</tbody></table></div></section>
  <section class="card section"><h2>Configuration <span class="aside">session ${last.index}</span></h2>
    <div class="cfg" id="config">${configRows}</div></section>
  <footer><span>generated ${esc(fmtTime(input.generatedAt))} by distgan ${esc(input.version)} from ${esc(input.runDir)}/stats.jsonl</span>${plotLinks ? `<span>·</span><span>PNG plots: ${plotLinks}</span>` : ''}</footer>
</div>
</body>
</html>
`;
}
