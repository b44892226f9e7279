/*
 * The live status page's client (index.html loads it; http-server.ts serves
 * it). It polls /api/status (status-page.ts) every 1.5 s, draws the curves as
 * inline SVG and reloads the sample grid through a URL that changes with each
 * new sample. Plain browser JavaScript with no build step and no imports.
 *
 * The page's Content-Security-Policy has no 'unsafe-inline': colours and sizes
 * are set through the CSSOM (element.style.x = …), which CSP allows, and never
 * through a style attribute (setAttribute('style', …) or el(…, { style })),
 * which it blocks. Event handlers are attached here, never inline in HTML.
 */
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
        var sw = el('i', { 'class': 'dot' }); sw.style.background = s.color;
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
