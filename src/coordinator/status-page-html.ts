/**
 * The status page served at GET / by http-server.ts. Self-contained on
 * purpose: the coordinator may run on a machine with no internet, so there are
 * no external scripts, fonts, stylesheets or CDNs. It polls /api/status
 * (status-page.ts) every 1.5 s, draws the curves as inline SVG and reloads the
 * sample grid through a URL that changes with each new sample.
 *
 * The client script avoids template literals and `${`, so that it can live
 * inside this TypeScript template string unescaped.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>distgan</title>
<link rel="icon" href="data:,">
<style>
:root {
  --bg: #0d1017; --panel: #151a23; --panel2: #1b2130; --border: #252c3b; --text: #e7eaf0; --muted: #8a93a6;
  --d: #f5a524; --g: #4ea1ff; --real: #3ccf91; --fake: #f1607d; --tput: #a98bff; --warn: #f5a524; --bad: #f1607d; --ok: #3ccf91;
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 1400px; margin: 0 auto; padding: 18px 22px 28px; }
header { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; margin-bottom: 16px; }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 700; font-size: 19px; letter-spacing: .3px; }
.brand svg { width: 28px; height: 28px; }
.runid { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); font-size: 13px; }
.chips { display: flex; gap: 6px; flex-wrap: wrap; }
.chip { background: var(--panel2); border: 1px solid var(--border); border-radius: 999px; padding: 2px 10px; font-size: 12px; color: var(--muted); }
.chip b { color: var(--text); font-weight: 600; }
.spacer { flex: 1; }
.badge { display: inline-flex; align-items: center; gap: 7px; padding: 4px 12px; border-radius: 999px; font-weight: 600; font-size: 12px;
  text-transform: uppercase; letter-spacing: .6px; border: 1px solid var(--border); background: var(--panel2); }
.badge::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: currentColor; }
.badge.running { color: var(--ok); } .badge.running::before { animation: pulse 1.6s infinite; }
.badge.finished { color: var(--g); } .badge.failed { color: var(--bad); } .badge.waiting { color: var(--warn); }
.badge.offline { color: var(--muted); }
@keyframes pulse { 0% { box-shadow: 0 0 0 0 rgba(60,207,145,.6); } 70% { box-shadow: 0 0 0 8px rgba(60,207,145,0); } 100% { box-shadow: 0 0 0 0 rgba(60,207,145,0); } }
.card { background: var(--panel); border: 1px solid var(--border); border-radius: 12px; padding: 14px 16px; }
.card h2 { margin: 0 0 10px; font-size: 13px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .7px;
  display: flex; align-items: baseline; gap: 8px; }
.card h2 .aside { margin-left: auto; text-transform: none; letter-spacing: 0; font-weight: 500; color: var(--muted); }
.progress { margin-bottom: 14px; }
.progress-top { display: flex; justify-content: space-between; align-items: baseline; flex-wrap: wrap; gap: 8px; margin-bottom: 10px; }
.big { font-size: 30px; font-weight: 700; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.bar { height: 10px; border-radius: 999px; background: var(--panel2); overflow: hidden; border: 1px solid var(--border); }
.fill { height: 100%; width: 0; background: linear-gradient(90deg, var(--g), var(--tput)); transition: width .6s ease; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin-bottom: 14px; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; display: flex; align-items: center; gap: 6px; }
.stat .value { font-size: 24px; font-weight: 700; font-variant-numeric: tabular-nums; margin-top: 2px; white-space: nowrap; }
.stat .sub { color: var(--muted); font-size: 12px; }
.dot { width: 9px; height: 9px; border-radius: 50%; display: inline-block; }
.value.bad { color: var(--bad); }
.error { background: rgba(241,96,125,.12); border: 1px solid var(--bad); color: #ffd3dc; border-radius: 12px; padding: 12px 16px; margin-bottom: 14px;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap; }
.hidden { display: none !important; }
.grid { display: grid; grid-template-columns: minmax(0, 1.7fr) minmax(0, 1fr); gap: 14px; }
.col { display: flex; flex-direction: column; gap: 14px; min-width: 0; }
@media (max-width: 980px) { .grid { grid-template-columns: 1fr; } }
.legend { display: flex; gap: 14px; flex-wrap: wrap; font-size: 12px; color: var(--muted); margin: -4px 0 6px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.legend i { width: 14px; height: 3px; border-radius: 2px; display: inline-block; }
.legend b { color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }
.chartbox { position: relative; }
svg.chart { width: 100%; height: 210px; display: block; overflow: visible; }
svg.chart .grid-line { stroke: var(--border); stroke-width: 1; }
svg.chart .axis-label { fill: var(--muted); font-size: 11px; font-variant-numeric: tabular-nums; }
svg.chart .series { fill: none; stroke-width: 1.8; stroke-linejoin: round; stroke-linecap: round; }
svg.chart .area { stroke: none; opacity: .10; }
svg.chart .nan-mark { fill: var(--bad); }
svg.chart .cursor { stroke: var(--muted); stroke-dasharray: 3 3; }
.empty-chart { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 13px; pointer-events: none; }
.tip { position: absolute; pointer-events: none; background: #0b0e14; border: 1px solid var(--border); border-radius: 8px; padding: 6px 9px;
  font-size: 12px; white-space: nowrap; box-shadow: 0 6px 20px rgba(0,0,0,.4); font-variant-numeric: tabular-nums; z-index: 2; }
.tip .row { display: flex; align-items: center; gap: 6px; }
.sample-wrap { position: relative; background: #07090d; border-radius: 10px; border: 1px solid var(--border); min-height: 220px;
  display: flex; align-items: center; justify-content: center; overflow: hidden; }
.sample-wrap img { width: 100%; height: auto; max-height: 520px; object-fit: contain; image-rendering: pixelated; display: block; }
.empty-note { color: var(--muted); font-size: 13px; padding: 30px; text-align: center; }
.phasebar { display: flex; height: 22px; border-radius: 6px; overflow: hidden; background: var(--panel2); border: 1px solid var(--border); }
.phasebar div { height: 100%; min-width: 0; transition: flex-grow .5s ease; }
.phase-legend { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 4px 16px; margin-top: 10px; font-size: 12px; }
.phase-legend span { display: flex; align-items: center; gap: 6px; color: var(--muted); }
.phase-legend b { margin-left: auto; color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }
table { width: 100%; border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 500; font-size: 11px; text-transform: uppercase; letter-spacing: .6px; padding: 4px 6px; border-bottom: 1px solid var(--border); }
td { padding: 6px; border-bottom: 1px solid var(--border); }
tr:last-child td { border-bottom: none; }
td.num, th.num { text-align: right; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.straggler { color: var(--warn); font-weight: 600; }
.kv { display: grid; grid-template-columns: 1fr auto; gap: 4px 12px; font-size: 13px; }
.kv span:nth-child(odd) { color: var(--muted); }
.kv span:nth-child(even) { text-align: right; font-variant-numeric: tabular-nums; }
footer { margin-top: 18px; color: var(--muted); font-size: 12px; display: flex; gap: 10px; flex-wrap: wrap; }
footer .path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
</style>
</head>
<body>
<div class="wrap">
  <header>
    <div class="brand">
      <svg viewBox="0 0 32 32" aria-hidden="true"><defs><linearGradient id="lg" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#4ea1ff"/><stop offset="1" stop-color="#a98bff"/></linearGradient></defs>
        <rect x="1" y="1" width="30" height="30" rx="8" fill="url(#lg)"/><path d="M8 21 L13 11 L18 18 L24 9" stroke="#0d1017" stroke-width="2.6" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>
      distgan
    </div>
    <span class="runid" id="run-id">connecting…</span>
    <div class="chips" id="chips"></div>
    <div class="spacer"></div>
    <span id="state" class="badge waiting">waiting</span>
  </header>

  <section class="card progress">
    <div class="progress-top">
      <div><span class="big" id="step">0</span> <span class="muted">/ <span id="total">0</span> steps</span> <span class="muted" id="pct"></span></div>
      <div class="muted" id="times">elapsed — · ETA —</div>
    </div>
    <div class="bar"><div class="fill" id="fill"></div></div>
  </section>

  <div id="error" class="error hidden"></div>

  <section class="stats">
    <div class="card stat"><div class="label"><i class="dot" style="background:var(--tput)"></i>Throughput</div><div class="value" id="s-tput">—</div><div class="sub" id="s-tput-sub">img/s</div></div>
    <div class="card stat"><div class="label"><i class="dot" style="background:var(--d)"></i>D loss</div><div class="value" id="s-dloss">—</div><div class="sub">discriminator</div></div>
    <div class="card stat"><div class="label"><i class="dot" style="background:var(--g)"></i>G loss</div><div class="value" id="s-gloss">—</div><div class="sub">generator</div></div>
    <div class="card stat"><div class="label"><i class="dot" style="background:var(--real)"></i>D acc real</div><div class="value" id="s-accr">—</div><div class="sub">real images judged real</div></div>
    <div class="card stat"><div class="label"><i class="dot" style="background:var(--fake)"></i>D acc fake</div><div class="value" id="s-accf">—</div><div class="sub">fakes judged fake</div></div>
    <div class="card stat"><div class="label">Workers</div><div class="value" id="s-workers">—</div><div class="sub" id="s-workers-sub">connected</div></div>
    <div class="card stat"><div class="label">Checkpoint</div><div class="value" id="s-ckpt">—</div><div class="sub" id="s-ckpt-sub">none yet</div></div>
  </section>

  <main class="grid">
    <div class="col">
      <div class="card"><h2>Losses <span class="aside" id="stride"></span></h2>
        <div class="legend" id="legend-loss"></div>
        <div class="chartbox"><svg class="chart" id="chart-loss"></svg><div class="empty-chart" id="empty-loss">waiting for the first step</div></div></div>
      <div class="card"><h2>Discriminator accuracy</h2>
        <div class="legend" id="legend-acc"></div>
        <div class="chartbox"><svg class="chart" id="chart-acc"></svg><div class="empty-chart" id="empty-acc">waiting for the first step</div></div></div>
      <div class="card"><h2>Throughput</h2>
        <div class="legend" id="legend-tput"></div>
        <div class="chartbox"><svg class="chart" id="chart-tput"></svg><div class="empty-chart" id="empty-tput">waiting for the first step</div></div></div>
    </div>
    <div class="col">
      <div class="card"><h2>Latest samples <span class="aside" id="sample-step"></span></h2>
        <div class="sample-wrap"><img id="sample" class="hidden" alt="latest sample grid"><div class="empty-note" id="sample-empty">No sample grid yet</div></div></div>
      <div class="card"><h2>Step time <span class="aside" id="step-time"></span></h2>
        <div class="phasebar" id="phasebar"></div><div class="phase-legend" id="phase-legend"></div></div>
      <div class="card"><h2>Workers</h2>
        <table><thead><tr><th>rank</th><th>host</th><th>backend</th><th></th><th class="num">compute</th><th class="num">last step</th></tr></thead>
        <tbody id="workers"><tr><td colspan="6" class="muted">no worker has joined yet</td></tr></tbody></table></div>
      <div class="card"><h2>Exchange &amp; health</h2><div class="kv" id="health"></div></div>
    </div>
  </main>
  <footer><span id="updated">not updated yet</span><span>·</span><span id="conn">connecting</span><span>·</span><span class="path" id="outdir"></span></footer>
</div>
<script>
(function () {
  'use strict';
  var POLL_MS = 1500;
  var PHASES = [
    ['data', 'data', '#7d8799'], ['d_compute', 'D compute', '#f5a524'], ['d_exchange', 'D exchange', '#b9791a'],
    ['g_compute', 'G compute', '#4ea1ff'], ['g_exchange', 'G exchange', '#2f6fb8'], ['apply', 'optimizer', '#a98bff']
  ];
  var SVGNS = 'http://www.w3.org/2000/svg';
  function $(id) { return document.getElementById(id); }
  function num(v) {
    if (typeof v === 'number') return v;
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    return NaN;
  }
  function fmt(v, digits) {
    v = num(v);
    if (isNaN(v)) return 'NaN';
    if (!isFinite(v)) return v > 0 ? '∞' : '−∞';
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return v.toFixed(digits === undefined ? 4 : digits);
  }
  function fmtCount(v) {
    v = num(v);
    if (!isFinite(v)) return '—';
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
    if (a >= 100 || Math.round(v) === v) return String(Math.round(v));
    return v.toFixed(a >= 10 ? 1 : 2);
  }
  function fmtBytes(b) {
    b = num(b);
    if (!isFinite(b)) return '—';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? String(b) : b.toFixed(b >= 100 ? 0 : 1)) + ' ' + u[i];
  }
  function fmtDuration(s) {
    s = num(s);
    if (!isFinite(s) || s < 0) return '—';
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 1 : 0) + ' ms';
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    var m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
    if (d > 0) return d + 'd ' + (h % 24) + 'h';
    if (h > 0) return h + 'h ' + pad2(m % 60) + 'm';
    return m + 'm ' + pad2(Math.floor(s % 60)) + 's';
  }
  function pad2(n) { return (n < 10 ? '0' : '') + n; }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function setText(id, text) { var e = $(id); if (e.textContent !== text) e.textContent = text; }

  // ---- charts -------------------------------------------------------------
  function niceTicks(min, max, count) {
    var span = max - min;
    if (!(span > 0)) return [min];
    var step = Math.pow(10, Math.floor(Math.log10(span / count)));
    var err = span / count / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var out = [];
    for (var t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }
  var charts = {};
  function drawChart(id, steps, series, opts) {
    var svg = $(id);
    var box = svg.parentNode;
    var W = Math.max(200, svg.clientWidth || box.clientWidth || 600), H = svg.clientHeight || 210;
    var M = { l: 52, r: 14, t: 10, b: 24 };
    var iw = W - M.l - M.r, ih = H - M.t - M.b;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    var empty = $(opts.emptyId);
    if (!steps.length) { empty.classList.remove('hidden'); charts[id] = null; return; }
    empty.classList.add('hidden');
    var x0 = steps[0], x1 = steps[steps.length - 1];
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var lo = Infinity, hi = -Infinity;
    series.forEach(function (s) { s.values.forEach(function (v) { v = num(v); if (isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }); });
    if (opts.yMin !== undefined) lo = opts.yMin;
    if (opts.yMax !== undefined) hi = Math.max(opts.yMax, hi === -Infinity ? opts.yMax : hi);
    if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
    if (hi === lo) { hi += Math.abs(hi) * 0.1 || 1; lo -= Math.abs(lo) * 0.1 || 0; }
    if (opts.yMin === undefined) lo -= (hi - lo) * 0.06;
    if (opts.yMax === undefined) hi += (hi - lo) * 0.06;
    function X(s) { return M.l + (s - x0) / (x1 - x0) * iw; }
    function Y(v) { return M.t + (1 - (v - lo) / (hi - lo)) * ih; }
    var yt = niceTicks(lo, hi, 4);
    // Enough decimals to tell neighbouring ticks apart, and the same on all of them.
    var ydec = yt.length > 1 ? Math.max(0, Math.min(6, -Math.floor(Math.log10(yt[1] - yt[0]) + 1e-9))) : 2;
    yt.forEach(function (t) {
      if (t < lo || t > hi) return;
      var y = Y(t).toFixed(1);
      svg.appendChild(svgEl('line', { x1: M.l, x2: W - M.r, y1: y, y2: y, 'class': 'grid-line' }));
      var lab = svgEl('text', { x: M.l - 8, y: +y + 4, 'text-anchor': 'end', 'class': 'axis-label' });
      lab.textContent = opts.yFormat ? opts.yFormat(t) : (Math.abs(t) >= 1e4 ? fmtCount(t) : t.toFixed(ydec));
      svg.appendChild(lab);
    });
    niceTicks(x0, x1, Math.max(2, Math.floor(iw / 110))).forEach(function (t) {
      if (t < x0 || t > x1) return;
      var lab = svgEl('text', { x: X(t).toFixed(1), y: H - 6, 'text-anchor': 'middle', 'class': 'axis-label' });
      lab.textContent = fmtCount(t);
      svg.appendChild(lab);
    });
    series.forEach(function (s) {
      var d = '', pen = false, n = 0, lastX = 0, lastY = 0, firstX = null;
      for (var i = 0; i < steps.length; i++) {
        var v = num(s.values[i]);
        if (!isFinite(v)) {
          pen = false;
          if (isNaN(v) && opts.markNaN) svg.appendChild(svgEl('path', { d: 'M' + (X(steps[i]) - 4).toFixed(1) + ' ' + M.t + 'l4 7l4 -7z', 'class': 'nan-mark' }));
          continue;
        }
        lastX = X(steps[i]); lastY = Y(Math.min(hi, Math.max(lo, v)));
        if (firstX === null) firstX = lastX;
        d += (pen ? 'L' : 'M') + lastX.toFixed(1) + ' ' + lastY.toFixed(1);
        pen = true; n++;
      }
      if (s.area && n > 1 && d.indexOf('M', 1) < 0) {
        svg.appendChild(svgEl('path', { d: d + 'L' + lastX.toFixed(1) + ' ' + Y(lo).toFixed(1) + 'L' + firstX.toFixed(1) + ' ' + Y(lo).toFixed(1) + 'Z', 'class': 'area', fill: s.color }));
      }
      svg.appendChild(svgEl('path', { d: d || 'M0 0', 'class': 'series', stroke: s.color, 'data-series': s.key, 'data-points': String(n) }));
      if (n === 1) svg.appendChild(svgEl('circle', { cx: lastX, cy: lastY, r: 3, fill: s.color }));
    });
    var cursor = svgEl('line', { x1: 0, x2: 0, y1: M.t, y2: M.t + ih, 'class': 'cursor', visibility: 'hidden' });
    svg.appendChild(cursor);
    charts[id] = { svg: svg, steps: steps, series: series, X: X, Y: Y, M: M, W: W, cursor: cursor, fmt: opts.valueFormat || fmt };
  }
  function attachHover(id) {
    var svg = $(id), tip = el('div', { 'class': 'tip hidden' });
    svg.parentNode.appendChild(tip);
    svg.addEventListener('mousemove', function (ev) {
      var c = charts[id]; if (!c) return;
      var r = svg.getBoundingClientRect();
      var px = (ev.clientX - r.left) * (c.W / r.width);
      var lo = 0, hi = c.steps.length - 1;
      while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (c.X(c.steps[mid]) < px) lo = mid; else hi = mid; }
      var i = Math.abs(c.X(c.steps[lo]) - px) <= Math.abs(c.X(c.steps[hi]) - px) ? lo : hi;
      var x = c.X(c.steps[i]);
      c.cursor.setAttribute('x1', x); c.cursor.setAttribute('x2', x); c.cursor.setAttribute('visibility', 'visible');
      tip.textContent = '';
      tip.appendChild(el('div', { 'class': 'muted' }, 'step ' + c.steps[i]));
      c.series.forEach(function (s) {
        var row = el('div', { 'class': 'row' });
        var sw = el('i', { 'class': 'dot', style: 'background:' + s.color });
        row.appendChild(sw); row.appendChild(document.createTextNode(s.label + ' ' + c.fmt(s.values[i])));
        tip.appendChild(row);
      });
      tip.classList.remove('hidden');
      var left = (x / c.W) * r.width + 12;
      if (left > r.width - 150) left = (x / c.W) * r.width - 160;
      tip.style.left = left + 'px'; tip.style.top = '8px';
    });
    svg.addEventListener('mouseleave', function () {
      tip.classList.add('hidden');
      var c = charts[id]; if (c) c.cursor.setAttribute('visibility', 'hidden');
    });
  }
  function legend(id, series) {
    var box = $(id); box.textContent = '';
    series.forEach(function (s) {
      var v = s.values.length ? s.values[s.values.length - 1] : NaN;
      var span = el('span'); var i = el('i'); i.style.background = s.color;
      span.appendChild(i); span.appendChild(document.createTextNode(s.label + ' '));
      span.appendChild(el('b', null, s.values.length ? (s.legendFormat || fmt)(v) : '—'));
      box.appendChild(span);
    });
  }

  // ---- rendering ------------------------------------------------------------
  var last = null, sampleUrl = null;
  function render(d) {
    last = d;
    var run = d.run, p = d.progress;
    setText('run-id', run ? run.runId : 'no run yet');
    var chips = $('chips'); chips.textContent = '';
    if (run) {
      [['dataset', run.dataset], ['model', run.model], ['backend', run.backend], ['batch', run.globalBatch], ['workers', run.worldSize], ['v', run.version]]
        .forEach(function (kv) { var c = el('span', { 'class': 'chip' }, kv[0] + ' '); c.appendChild(el('b', null, String(kv[1]))); chips.appendChild(c); });
    }
    var badge = $('state'); badge.className = 'badge ' + d.state; badge.textContent = d.state;
    var total = p.totalSteps, frac = total > 0 ? Math.min(1, p.step / total) : 0;
    setText('step', fmtCount(p.step)); setText('total', fmtCount(total));
    setText('pct', total > 0 ? '(' + (frac * 100).toFixed(frac < 0.1 ? 1 : 0) + '%)' : '');
    $('fill').style.width = (frac * 100).toFixed(2) + '%';
    setText('times', 'elapsed ' + fmtDuration(p.elapsedSeconds) + ' · ETA ' + (p.etaSeconds === null ? '—' : fmtDuration(p.etaSeconds)) +
      (p.lastStepAgeSeconds !== null && d.state === 'running' ? ' · last step ' + fmtDuration(p.lastStepAgeSeconds) + ' ago' : ''));
    document.title = 'distgan · ' + (total > 0 ? Math.floor(frac * 100) + '% · ' : '') + (run ? run.runId : '');
    var err = $('error');
    if (d.error) { err.textContent = 'Run failed: ' + d.error; err.classList.remove('hidden'); } else err.classList.add('hidden');

    setText('s-tput', p.imagesPerSecond === null ? '—' : fmtCount(p.imagesPerSecond));
    setText('s-tput-sub', 'img/s' + (p.stepsPerSecond ? ' · ' + fmtCount(p.stepsPerSecond) + ' steps/s' : ''));
    var L = d.latest;
    [['s-dloss', L && L.dLoss, 4], ['s-gloss', L && L.gLoss, 4], ['s-accr', L && L.dAccuracyReal, 3], ['s-accf', L && L.dAccuracyFake, 3]].forEach(function (a) {
      var e = $(a[0]);
      if (!L) { e.textContent = '—'; return; }
      e.textContent = fmt(a[1], a[2]);
      e.classList.toggle('bad', !isFinite(num(a[1])));
    });
    var up = d.workers.filter(function (w) { return w.connected; }).length;
    var ws = run ? run.worldSize : d.workers.length;
    var sw = $('s-workers'); sw.textContent = up + ' / ' + ws; sw.classList.toggle('bad', d.state === 'running' && up < ws);
    setText('s-workers-sub', d.workerFailures > 0 ? d.workerFailures + ' lost' : 'connected');
    if (d.checkpoint) { setText('s-ckpt', fmtDuration(d.checkpoint.ageSeconds)); setText('s-ckpt-sub', 'ago · step ' + fmtCount(d.checkpoint.step)); }
    else { setText('s-ckpt', '—'); setText('s-ckpt-sub', 'none yet'); }

    var h = d.history, S = h.series;
    setText('stride', h.stride > 1 ? 'each point = mean of ' + h.stride + ' steps' : '');
    var lossSeries = [
      { key: 'dLoss', label: 'D', color: '#f5a524', values: S.dLoss },
      { key: 'gLoss', label: 'G', color: '#4ea1ff', values: S.gLoss }
    ];
    var accSeries = [
      { key: 'dAccuracyReal', label: 'real', color: '#3ccf91', values: S.dAccuracyReal, legendFormat: function (v) { return fmt(v, 3); } },
      { key: 'dAccuracyFake', label: 'fake', color: '#f1607d', values: S.dAccuracyFake, legendFormat: function (v) { return fmt(v, 3); } }
    ];
    var tputSeries = [{ key: 'imagesPerSecond', label: 'img/s', color: '#a98bff', values: S.imagesPerSecond, area: true, legendFormat: fmtCount }];
    legend('legend-loss', lossSeries); legend('legend-acc', accSeries); legend('legend-tput', tputSeries);
    drawChart('chart-loss', h.steps, lossSeries, { emptyId: 'empty-loss', markNaN: true });
    drawChart('chart-acc', h.steps, accSeries, { emptyId: 'empty-acc', yMin: 0, yMax: 1, yFormat: function (t) { return t.toFixed(1); }, valueFormat: function (v) { return fmt(v, 3); } });
    drawChart('chart-tput', h.steps, tputSeries, { emptyId: 'empty-tput', yMin: 0, valueFormat: fmtCount });

    if (d.sample && d.sample.url !== sampleUrl) {
      sampleUrl = d.sample.url;
      var img = $('sample');
      img.onload = function () { img.classList.remove('hidden'); $('sample-empty').classList.add('hidden'); };
      img.onerror = function () { sampleUrl = null; };
      img.src = d.sample.url;
      setText('sample-step', 'step ' + fmtCount(d.sample.step));
    }

    var ph = p.phaseSeconds, bar = $('phasebar'), pl = $('phase-legend');
    bar.textContent = ''; pl.textContent = '';
    setText('step-time', p.stepSeconds === null ? '' : fmtDuration(p.stepSeconds) + ' / step');
    var phTotal = 0;
    PHASES.forEach(function (def) { var v = ph ? num(ph[def[0]]) : NaN; if (isFinite(v) && v > 0) phTotal += v; });
    PHASES.forEach(function (def) {
      var v = ph ? num(ph[def[0]]) : NaN;
      var seg = el('div', { title: def[1] + ' ' + fmtDuration(v) });
      // Shares of the phases' sum: flex-grow values below 1 in total would leave the bar part empty.
      seg.style.background = def[2]; seg.style.flexGrow = String(phTotal > 0 && isFinite(v) && v > 0 ? v / phTotal : 0); seg.style.flexBasis = '0';
      bar.appendChild(seg);
      var item = el('span'); var dot = el('i', { 'class': 'dot' }); dot.style.background = def[2];
      item.appendChild(dot); item.appendChild(document.createTextNode(def[1])); item.appendChild(el('b', null, ph ? fmtDuration(v) : '—'));
      pl.appendChild(item);
    });

    var tb = $('workers'); tb.textContent = '';
    if (!d.workers.length) { var tr0 = el('tr'); tr0.appendChild(el('td', { colspan: '6', 'class': 'muted' }, 'no worker has joined yet')); tb.appendChild(tr0); }
    var minCompute = Infinity;
    d.workers.forEach(function (w) { var c = num(w.computeSeconds); if (w.connected && isFinite(c) && c > 0 && c < minCompute) minCompute = c; });
    d.workers.forEach(function (w) {
      var tr = el('tr');
      tr.appendChild(el('td', { 'class': 'mono' }, String(w.rank)));
      tr.appendChild(el('td', { 'class': 'mono', title: 'pid ' + w.pid }, w.host));
      tr.appendChild(el('td', null, w.backend));
      var st = el('td'); var dot = el('i', { 'class': 'dot', title: w.connected ? 'connected' : 'lost: ' + (w.lostReason || '') });
      dot.style.background = w.connected ? 'var(--ok)' : 'var(--bad)'; st.appendChild(dot);
      if (!w.connected) st.appendChild(document.createTextNode(' lost'));
      tr.appendChild(st);
      var c = num(w.computeSeconds);
      var ct = el('td', { 'class': 'num' + (isFinite(c) && minCompute < Infinity && c > 1.5 * minCompute ? ' straggler' : '') }, w.computeSeconds === null ? '—' : fmtDuration(c));
      tr.appendChild(ct);
      tr.appendChild(el('td', { 'class': 'num' }, w.lastStepAgeSeconds === null ? '—' : fmtDuration(w.lastStepAgeSeconds) + ' ago'));
      tb.appendChild(tr);
    });

    var kv = $('health'); kv.textContent = '';
    [['sent to workers', fmtBytes(d.exchange.sentBytes)], ['received from workers', fmtBytes(d.exchange.receivedBytes)],
     ['images this run', fmtCount(p.images)], ['workers lost', String(d.workerFailures)], ['peers rejected', String(d.peerRejections)]]
      .forEach(function (r) { kv.appendChild(el('span', null, r[0])); kv.appendChild(el('span', null, r[1])); });
    setText('outdir', run ? run.outDir : '');
  }

  function poll() {
    var done = false;
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctl) ctl.abort(); }, 5000);
    fetch('/api/status', { cache: 'no-store', signal: ctl ? ctl.signal : undefined })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (d) {
        render(d);
        setText('updated', 'updated ' + new Date().toLocaleTimeString());
        setText('conn', 'live');
      })
      .catch(function (e) {
        setText('conn', 'coordinator unreachable (' + (e && e.message ? e.message : e) + '), retrying');
        var badge = $('state'); if (last && last.state === 'running') { badge.className = 'badge offline'; badge.textContent = 'offline'; }
      })
      .then(function () { if (!done) { done = true; clearTimeout(timer); setTimeout(poll, POLL_MS); } });
  }
  ['chart-loss', 'chart-acc', 'chart-tput'].forEach(attachHover);
  var resizeTimer = null;
  window.addEventListener('resize', function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(function () { if (last) render(last); }, 120); });
  poll();
})();
</script>
</body>
</html>
`;
