/**
 * A chart as inline SVG for report.html: the status page's look (grid lines,
 * tick labels, one path per series with data-series and data-points), drawn
 * once on the command line instead of by a script in the browser, so the
 * report needs no JavaScript at all.
 */
import { layoutChart, type ChartSpec } from './chart.js';
import { escapeHtml } from './format.js';

/** ViewBox size; the SVG scales to its box's width keeping this aspect. */
export const SVG_WIDTH = 760;
export const SVG_HEIGHT = 230;

const f1 = (v: number): string => v.toFixed(1);

function pathOf(run: Array<[number, number]>): string {
  return run.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${f1(x)} ${f1(y)}`).join('');
}

/** The chart's <svg> element (and an empty-state note when nothing was logged). */
export function chartSvg(spec: ChartSpec): string {
  const L = layoutChart(spec, SVG_WIDTH, SVG_HEIGHT, { l: 52, r: 14, t: 12, b: 24 });
  const parts: string[] = [];
  const { plot } = L;
  for (const t of L.yTicks) {
    parts.push(`<line class="grid-line" x1="${plot.x0}" x2="${plot.x1}" y1="${f1(t.y)}" y2="${f1(t.y)}"/>`);
    parts.push(`<text class="axis-label" x="${plot.x0 - 8}" y="${f1(t.y + 4)}" text-anchor="end">${escapeHtml(t.label)}</text>`);
  }
  for (const t of L.xTicks) parts.push(`<text class="axis-label" x="${f1(t.x)}" y="${L.height - 6}" text-anchor="middle">${escapeHtml(t.label)}</text>`);
  for (const m of L.markers) {
    parts.push(`<line class="marker" x1="${f1(m.x)}" x2="${f1(m.x)}" y1="${plot.y0}" y2="${plot.y1}"/>`);
    parts.push(`<text class="marker-label" x="${f1(m.x + 4)}" y="${plot.y0 + 10}">${escapeHtml(m.label)}</text>`);
  }
  for (const line of L.lines) {
    if (line.area) {
      for (const run of line.runs) {
        if (run.length < 2) continue;
        const first = run[0]!;
        const last = run[run.length - 1]!;
        parts.push(`<path class="area" fill="${line.color}" d="${pathOf(run)}L${f1(last[0])} ${f1(L.baseY)}L${f1(first[0])} ${f1(L.baseY)}Z"/>`);
      }
    }
    const d = line.runs.map(pathOf).join('');
    parts.push(
      `<path class="series" stroke="${line.color}" data-series="${escapeHtml(line.key)}" data-points="${line.points}" d="${d || 'M0 0'}">` +
        `<title>${escapeHtml(line.label)}</title></path>`,
    );
    for (const run of line.runs) {
      if (run.length === 1) parts.push(`<circle cx="${f1(run[0]![0])}" cy="${f1(run[0]![1])}" r="3" fill="${line.color}"/>`);
    }
  }
  for (const n of L.nanMarks) parts.push(`<path class="nan-mark" d="M${f1(n.x - 4)} ${plot.y0}l4 7l4 -7z"><title>NaN</title></path>`);
  const svg = `<svg class="chart" id="chart-${escapeHtml(spec.id)}" viewBox="0 0 ${L.width} ${L.height}" role="img" aria-label="${escapeHtml(spec.title)}">${parts.join('')}</svg>`;
  return L.empty ? `${svg}<div class="empty-chart">no step was logged</div>` : svg;
}

/** The legend row above a chart: each series' colour, label and last value. */
export function legendHtml(spec: ChartSpec): string {
  return spec.series
    .map((s) => {
      const v = s.values.length ? spec.valueFormat(s.values[s.values.length - 1]!) : '—';
      return `<span><i style="background:${s.color}"></i>${escapeHtml(s.label)} <b>${escapeHtml(v)}</b></span>`;
    })
    .join('');
}
