/**
 * Numbers as the report shows them; the same rules as the live status page's
 * client script (src/coordinator/status-page/), so a value reads the same in both.
 */

/** A value with `digits` decimals; exponent form when tiny or huge; "NaN", "∞", "−∞" for non-finite ones. */
export function fmt(v: number, digits = 4): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return v.toFixed(digits);
}

/** A count with k/M/G suffixes: 1234 → "1234", 12345 → "12.3k". "—" when unknown. */
export function fmtCount(v: number): string {
  if (!Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(a >= 1e10 ? 0 : 1)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  if (a >= 100 || Math.round(v) === v) return String(Math.round(v));
  return v.toFixed(a >= 10 ? 1 : 2);
}

/** Bytes in binary units: 1536 → "1.5 KiB". */
export function fmtBytes(b: number): string {
  if (!Number.isFinite(b)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return i === 0 ? `${b} B` : `${b.toFixed(b >= 100 ? 0 : 1)} ${units[i]}`;
}

/** Seconds: "12 ms", "4.2 s", "3m 05s", "2h 04m", "1d 3h". */
export function fmtDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '—';
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const d = Math.floor(h / 24);
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${h % 24}h`;
  if (h > 0) return `${h}h ${pad(m % 60)}m`;
  return `${m}m ${pad(Math.floor(s % 60))}s`;
}

/** Unix seconds as "2026-11-29 17:36:18Z". */
export function fmtTime(unixSeconds: number): string {
  if (!Number.isFinite(unixSeconds)) return '—';
  return new Date(unixSeconds * 1000).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
