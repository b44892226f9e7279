/**
 * The report's curves, independent of how they are drawn: which series each
 * chart holds (the live status page's losses, D accuracy and throughput, plus
 * the step time by phase), and the geometry of a chart of a given size (scales,
 * ticks, polylines) shared by the SVG in report.html (chart-svg.ts) and the
 * PNG plots (chart-png.ts), so both show the same thing.
 *
 * Long runs are averaged into at most 2,000 points per curve with the status
 * page's own DownsampledHistory: every logged step counts, and a NaN in a
 * bucket keeps that point NaN (a divergence stays visible).
 */
import { DownsampledHistory } from '../../coordinator/downsampled-history.js';
import type { RunHistory } from './history.js';
import { fmt, fmtCount, fmtDuration } from './format.js';

export interface ChartSeries {
  key: string;
  label: string;
  /** #rrggbb. */
  color: string;
  values: number[];
  /** Shade the area under this series (the throughput chart). */
  area?: boolean;
}

export interface ChartSpec {
  /** File-name-safe id: the PNG is <report>-<id>.png, the SVG's id is chart-<id>. */
  id: string;
  title: string;
  /** X values (step numbers), ascending, aligned with every series' values. */
  steps: number[];
  series: ChartSeries[];
  /** Fixed lower and upper ends of the y axis (default: the data's range plus 6%). */
  yMin?: number;
  yMax?: number;
  /** Draw a mark at the top of the plot where a value is NaN. */
  markNaN?: boolean;
  /** Vertical dashed rules: where a --resume continued the run. */
  markers: Array<{ step: number; label: string }>;
  /** Values in legends and tooltips. */
  valueFormat: (v: number) => string;
  /** Logged points per plotted point (1 unless the run is long). */
  stride: number;
}

/** Colours of the live status page (src/coordinator/status-page/). */
export const COLORS = {
  d: '#f5a524', g: '#4ea1ff', real: '#3ccf91', fake: '#f1607d', tput: '#a98bff', step: '#e7eaf0',
} as const;

/** The phases of a step with the status page's labels and colours (metrics.ts STEP_PHASES order). */
export const PHASES = [
  ['data', 'data', '#7d8799'], ['d_compute', 'D compute', '#f5a524'], ['d_exchange', 'D exchange', '#b9791a'],
  ['g_compute', 'G compute', '#4ea1ff'], ['g_exchange', 'G exchange', '#2f6fb8'], ['apply', 'optimizer', '#a98bff'],
] as const;

const KEYS = ['dLoss', 'gLoss', 'dAccuracyReal', 'dAccuracyFake', 'imagesPerSecond', 'stepSeconds', ...PHASES.map((p) => p[0])] as const;
type Key = (typeof KEYS)[number];

/** Most points per curve. */
export const MAX_POINTS = 2000;

/** The four charts of a run's report. */
export function chartsOf(history: RunHistory, maxPoints = MAX_POINTS): ChartSpec[] {
  const h = new DownsampledHistory<Key>(KEYS, maxPoints);
  for (const s of history.steps) {
    h.add(s.step, {
      dLoss: s.dLoss, gLoss: s.gLoss, dAccuracyReal: s.dAccuracyReal, dAccuracyFake: s.dAccuracyFake,
      imagesPerSecond: s.imagesPerSecond, stepSeconds: s.stepSeconds, ...s.phaseSeconds,
    });
  }
  const { steps, series: v, stride } = h.snapshot();
  const markers = history.sessions.filter((s) => s.index > 1).map((s) => ({ step: s.start.startStep, label: `resumed (${s.index})` }));
  const base = { steps, markers, stride };
  const acc = (x: number): string => fmt(x, 3);
  return [
    { ...base, id: 'losses', title: 'Losses', markNaN: true, valueFormat: (x) => fmt(x, 4),
      series: [{ key: 'dLoss', label: 'D', color: COLORS.d, values: v.dLoss }, { key: 'gLoss', label: 'G', color: COLORS.g, values: v.gLoss }] },
    { ...base, id: 'accuracy', title: 'Discriminator accuracy', yMin: 0, yMax: 1, valueFormat: acc,
      series: [{ key: 'dAccuracyReal', label: 'real', color: COLORS.real, values: v.dAccuracyReal }, { key: 'dAccuracyFake', label: 'fake', color: COLORS.fake, values: v.dAccuracyFake }] },
    { ...base, id: 'throughput', title: 'Throughput (img/s)', yMin: 0, valueFormat: fmtCount,
      series: [{ key: 'imagesPerSecond', label: 'img/s', color: COLORS.tput, values: v.imagesPerSecond, area: true }] },
    { ...base, id: 'step-time', title: 'Step time (seconds)', yMin: 0, valueFormat: fmtDuration,
      series: [
        { key: 'stepSeconds', label: 'step', color: COLORS.step, values: v.stepSeconds },
        ...PHASES.map(([key, label, color]) => ({ key, label, color, values: v[key] })),
      ] },
  ];
}

// ---- geometry --------------------------------------------------------------

export interface Margins { l: number; r: number; t: number; b: number }

export interface ChartLayout {
  width: number;
  height: number;
  /** The plot area, pixels. */
  plot: { x0: number; y0: number; x1: number; y1: number };
  yTicks: Array<{ y: number; label: string }>;
  xTicks: Array<{ x: number; label: string }>;
  lines: Array<{ key: string; label: string; color: string; area: boolean; runs: Array<Array<[number, number]>>; points: number; last: number }>;
  nanMarks: Array<{ x: number }>;
  markers: Array<{ x: number; label: string }>;
  /** Pixel row of the y axis' lower end (where areas end). */
  baseY: number;
  /** No point to draw. */
  empty: boolean;
}

/** "Nice" round tick values covering [min, max], about `count` of them (the status page's rule). */
export function niceTicks(min: number, max: number, count: number): number[] {
  const span = max - min;
  if (!(span > 0) || !Number.isFinite(span)) return [min];
  let step = Math.pow(10, Math.floor(Math.log10(span / count)));
  const err = span / count / step;
  if (err >= 7.5) step *= 10;
  else if (err >= 3.5) step *= 5;
  else if (err >= 1.5) step *= 2;
  const out: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

/** Places a chart in a width × height box with the given margins around the plot. */
export function layoutChart(spec: ChartSpec, width: number, height: number, m: Margins): ChartLayout {
  const plot = { x0: m.l, y0: m.t, x1: width - m.r, y1: height - m.b };
  const iw = plot.x1 - plot.x0;
  const ih = plot.y1 - plot.y0;
  const steps = spec.steps;
  const lines: ChartLayout['lines'] = [];
  const out: ChartLayout = { width, height, plot, yTicks: [], xTicks: [], lines, nanMarks: [], markers: [], baseY: plot.y1, empty: steps.length === 0 };
  if (steps.length === 0) return out;

  let x0 = steps[0]!;
  let x1 = steps[steps.length - 1]!;
  for (const mk of spec.markers) {
    x0 = Math.min(x0, mk.step);
  }
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of spec.series) {
    for (const v of s.values) {
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  if (spec.yMin !== undefined) lo = spec.yMin;
  if (spec.yMax !== undefined) hi = Math.max(spec.yMax, hi === -Infinity ? spec.yMax : hi);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi === lo) {
    hi += Math.abs(hi) * 0.1 || 1;
    lo -= Math.abs(lo) * 0.1 || 0;
  }
  if (spec.yMin === undefined) lo -= (hi - lo) * 0.06;
  if (spec.yMax === undefined) hi += (hi - lo) * 0.06;
  const X = (s: number): number => plot.x0 + ((s - x0) / (x1 - x0)) * iw;
  const Y = (v: number): number => plot.y0 + (1 - (v - lo) / (hi - lo)) * ih;
  out.baseY = Y(lo);

  const yt = niceTicks(lo, hi, 4);
  // Enough decimals to tell neighbouring ticks apart, and the same on all of them.
  const ydec = yt.length > 1 ? Math.max(0, Math.min(6, -Math.floor(Math.log10(yt[1]! - yt[0]!) + 1e-9))) : 2;
  for (const t of yt) {
    if (t < lo || t > hi) continue;
    out.yTicks.push({ y: Y(t), label: Math.abs(t) >= 1e4 ? fmtCount(t) : t.toFixed(ydec) });
  }
  for (const t of niceTicks(x0, x1, Math.max(2, Math.floor(iw / 110)))) {
    if (t < x0 || t > x1) continue;
    out.xTicks.push({ x: X(t), label: fmtCount(t) });
  }
  for (const mk of spec.markers) out.markers.push({ x: X(mk.step), label: mk.label });

  for (const s of spec.series) {
    const runs: Array<Array<[number, number]>> = [];
    let run: Array<[number, number]> | undefined;
    let points = 0;
    for (let i = 0; i < steps.length; i++) {
      const v = s.values[i] ?? NaN;
      if (!Number.isFinite(v)) {
        run = undefined;
        if (Number.isNaN(v) && spec.markNaN) out.nanMarks.push({ x: X(steps[i]!) });
        continue;
      }
      if (!run) {
        run = [];
        runs.push(run);
      }
      run.push([X(steps[i]!), Y(Math.min(hi, Math.max(lo, v)))]);
      points++;
    }
    lines.push({ key: s.key, label: s.label, color: s.color, area: s.area === true, runs, points, last: s.values[s.values.length - 1] ?? NaN });
  }
  return out;
}
