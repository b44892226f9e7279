#!/usr/bin/env bash
# distgan GPU check: one command, self-explanatory output.
#
#   1. which Vulkan driver and WebGPU adapter Dawn finds (vendor, architecture, device)
#   2. one DCGAN step's gradients on webgpu vs the cpu backend (must match within 1e-4 relative)
#   3. `distgan bench --suite compute --backend webgpu` at each batch size (images/s;
#      its 2 warm-up steps keep shader compilation out of the timed figure)
#   4. the same DCGAN, batch and Adam step in PyTorch on the same GPU (bench/torch_dcgan.py)
#   5. the ratio distgan / PyTorch
# Figures go to $OUT/gpu-check.json when OUT is set (and always to the work folder).
#
# Usage:
#   bash run.sh [--bundle distgan-gpu-check.tar.xz] [--software [ENV_SH]] [--batches "64 256"]
#               [--steps N] [--torch-steps N]
#   --bundle     the tarball from bench/gpu-check/build.mjs (default: next to this script,
#                or <repo>/.cache/gpu-check/ when run from bench/gpu-check/)
#   --software   use software Vulkan (Mesa lavapipe) from ENV_SH (default <repo>/.cache/vulkan/env.sh,
#                made by scripts/setup-vulkan.sh); figures are then labelled software-Vulkan
#   --batches    batch sizes (default "64 256")
#   --steps      timed distgan steps per batch (default 20; software default 2)
#   --torch-steps  timed PyTorch steps per batch (default 50, after 10 warm-up steps)
# Needs on the target: x86-64 Linux, glibc ≥ 2.34, tar + xz (or python3), an NVIDIA driver with
# its Vulkan ICD (in a container NVIDIA_DRIVER_CAPABILITIES must include graphics), python3 with
# torch for step 4. Nothing is fetched.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO=""
[ -f "$HERE/../../package.json" ] && REPO="$(cd "$HERE/../.." && pwd)"
BUNDLE=""
MODE=hardware
ENV_SH=""
BATCHES="64 256"
STEPS=""
TORCH_STEPS=50
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE="$2"; shift 2 ;;
    --software)
      MODE=software
      if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then ENV_SH="$2"; shift; fi
      shift ;;
    --batches) BATCHES="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --torch-steps) TORCH_STEPS="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$STEPS" ] || { [ "$MODE" = software ] && STEPS=2 || STEPS=20; }

hr() { printf '%s\n' "------------------------------------------------------------------------"; }
say() { printf '%s\n' "$*"; }

# --- 0. unpack ----------------------------------------------------------------
if [ -x "$HERE/bin/node" ] && [ -d "$HERE/app/dist" ]; then
  B="$HERE"   # running from inside an unpacked bundle
else
  if [ -z "$BUNDLE" ]; then
    for c in "$HERE/distgan-gpu-check.tar.xz" ${REPO:+"$REPO/.cache/gpu-check/distgan-gpu-check.tar.xz"}; do
      [ -f "$c" ] && { BUNDLE="$c"; break; }
    done
  fi
  [ -n "$BUNDLE" ] && [ -f "$BUNDLE" ] || { echo "run.sh: no bundle found; build it with: node bench/gpu-check/build.mjs" >&2; exit 2; }
  WORK="${DISTGAN_GPU_CHECK_WORK:-${TMPDIR:-/tmp}/distgan-gpu-check-$(id -u)}"
  STAMP="$(stat -c '%s-%Y' "$BUNDLE")"
  if [ "$(cat "$WORK/.stamp" 2>/dev/null)" != "$STAMP" ]; then
    rm -rf "$WORK"; mkdir -p "$WORK"
    if command -v xz >/dev/null; then
      tar -C "$WORK" -xJf "$BUNDLE" || { echo "run.sh: cannot unpack $BUNDLE" >&2; exit 2; }
    else
      python3 -c 'import sys,tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$BUNDLE" "$WORK" \
        || { echo "run.sh: cannot unpack $BUNDLE (no xz, and python3 failed)" >&2; exit 2; }
    fi
    echo "$STAMP" >"$WORK/.stamp"
  fi
  B="$WORK/distgan-gpu-check"
fi
NODE="$B/bin/node"
APP="$B/app"
RES="$B/results"
rm -rf "$RES"; mkdir -p "$RES"
"$NODE" --version >/dev/null 2>&1 || { echo "run.sh: the bundled node does not run here ($(uname -m), $(ldd --version 2>&1 | head -1))" >&2; exit 2; }

# --- 1. Vulkan environment ------------------------------------------------------
hr; say "1. Vulkan driver and WebGPU adapter ($MODE mode)"; hr
has_lib() { ldconfig -p 2>/dev/null | grep -qE "^[[:space:]]*$1 " || { local d IFS=:; for d in ${LD_LIBRARY_PATH:-}; do [ -n "$d" ] && [ -e "$d/$1" ] && return 0; done; return 1; }; }
prepend_ld() { case ":${LD_LIBRARY_PATH:-}:" in *":$1:"*) ;; *) export LD_LIBRARY_PATH="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac; }
if [ "$MODE" = software ]; then
  [ -n "$ENV_SH" ] || ENV_SH="${REPO:+$REPO/.cache/vulkan/env.sh}"
  [ -n "$ENV_SH" ] && [ -f "$ENV_SH" ] || { echo "run.sh: --software needs the env file from scripts/setup-vulkan.sh (looked for ${ENV_SH:-<repo>/.cache/vulkan/env.sh})" >&2; exit 2; }
  # shellcheck disable=SC1090
  . "$ENV_SH"
  say "software Vulkan from $ENV_SH: VK_DRIVER_FILES=$VK_DRIVER_FILES"
else
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && prepend_ld "$d"; done
  if ! has_lib libvulkan.so.1; then
    export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$B/lib/vulkan"
    say "Vulkan loader: none installed, using the bundled libvulkan.so.1"
  else
    say "Vulkan loader: $(ldconfig -p 2>/dev/null | grep -m1 -E '^[[:space:]]*libvulkan.so.1 ' | sed 's/.*=> //' | grep . || echo 'on LD_LIBRARY_PATH')"
  fi
  if ! has_lib libGLdispatch.so.0 && [ -e "$B/lib/glvnd/libGLdispatch.so.0" ]; then
    export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$B/lib/glvnd"
    say "libGLdispatch.so.0: none installed, using the bundled one (the NVIDIA ICD links it)"
  fi
  if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
    ICD=""
    for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
      f="$(ls "$d"/nvidia*.json 2>/dev/null | head -1)"; [ -n "$f" ] && { ICD="$f"; break; }
    done
    if [ -z "$ICD" ]; then
      for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/etc/vulkan/icd.d/nvidia_icd.json; do
        [ -f "$f" ] && { ICD="$f"; export VK_DRIVER_FILES="$f" VK_ICD_FILENAMES="$f"; break; }
      done
    fi
    if [ -n "$ICD" ]; then
      say "NVIDIA Vulkan ICD: $ICD ($(grep -o '"library_path"[^,}]*' "$ICD" | head -1))"
    else
      say "NVIDIA Vulkan ICD: none found (nvidia_icd.json). In a container, NVIDIA_DRIVER_CAPABILITIES must include 'graphics'."
    fi
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/nvidia-smi: GPU /'
fi
timeout 180 "$NODE" "$APP/dist/gpu-check/adapters.js" >"$RES/adapters.json" 2>"$RES/adapters.log"
ADAPTER_RC=$?
grep -v 'artificially reduced' "$RES/adapters.log" | sed 's/^/  /'
ADAPTER_OK="$("$NODE" -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
  console.log("Dawn adapters: " + (r.adapters.length ? r.adapters.map((n, i) => i + ": " + n).join("; ") : "none"));
  if (r.init.ok) { const a = r.init.adapter; console.log(`GPU 0: vendor=${a.vendor} architecture=${a.architecture} device=${a.device}`); console.log(`       ${a.description}${a.software ? "  [SOFTWARE adapter]" : ""}`); console.log("tfjs backend: webgpu, 2x2 matmul " + (r.matmulOk ? "correct" : "WRONG")); }
  else console.log("webgpu did not start: " + r.init.reason);
  console.log("@@" + (r.init.ok && r.matmulOk ? (r.init.adapter.software ? "software" : "hardware") : "fail"));
' "$RES/adapters.json" 2>&1)"
printf '%s\n' "$ADAPTER_OK" | grep -v '^@@'
KIND="$(printf '%s\n' "$ADAPTER_OK" | sed -n 's/^@@//p')"
[ "$ADAPTER_RC" = 0 ] && [ -n "$KIND" ] || KIND=fail
STOP=""
if [ "$KIND" = fail ]; then STOP="webgpu did not start (exit $ADAPTER_RC)"; fi
if [ "$MODE" = hardware ] && [ "$KIND" = software ]; then STOP="only a software Vulkan adapter was found: the NVIDIA Vulkan ICD is missing or failed to load"; fi

# --- 2. gradients ---------------------------------------------------------------
if [ -z "$STOP" ]; then
  hr; say "2. Gradients of one DCGAN step (D and G phases): webgpu vs cpu"; hr
  DISTGAN_WEBGPU_GRADIENTS_CHILD=1 timeout 600 "$NODE" "$APP/dist/test/unit/webgpu-gradients.test.js" >"$RES/gradients.json" 2>"$RES/gradients.log"
  "$NODE" -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop());
    if (!r.ok) { console.log("FAILED: " + r.reason); process.exit(1); }
    let worst = 0, bad = 0;
    for (const t of r.tensors) { const e = t.scale === 0 ? t.maxAbs : t.maxAbs / t.scale; worst = Math.max(worst, e); const ok = t.scale === 0 ? t.maxAbs <= 1e-4 : e <= 1e-4; if (!ok) bad++; console.log(`  ${ok ? "ok " : "BAD"} ${t.name.padEnd(48)} rel ${e.toExponential(2)}`); }
    console.log(`losses cpu ${r.losses.cpu.map((x) => x.toFixed(6))} webgpu ${r.losses.webgpu.map((x) => x.toFixed(6))}`);
    console.log(bad === 0 ? `PASS: ${r.tensors.length} tensors, worst relative error ${worst.toExponential(2)} (limit 1e-4)` : `FAIL: ${bad} tensors over 1e-4`);
    process.exit(bad === 0 ? 0 : 1);
  ' "$RES/gradients.json" || { grep -v 'artificially reduced' "$RES/gradients.log" | tail -5; }
fi

# --- 3. distgan bench -----------------------------------------------------------
if [ -z "$STOP" ]; then
  hr; say "3. distgan bench --suite compute --backend webgpu (DCGAN-MNIST, width 1; $STEPS timed steps after 2 warm-up)"; hr
  for b in $BATCHES; do
    say "batch $b ..."
    timeout 1500 "$NODE" "$APP/dist/src/cli/main.js" bench --suite compute --backend webgpu --no-side-by-side --batch-size "$b" --steps "$STEPS" \
      >"$RES/bench-$b.out" 2>"$RES/bench-$b.log"
    tail -n 1 "$RES/bench-$b.out" >"$RES/bench-$b.json"
    "$NODE" -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(r.error ? `  error: ${r.error}` : `  distgan webgpu: ${r.imagesPerSecond.toFixed(1)} img/s (${(r.secondsPerStep * 1000).toFixed(1)} ms/step) on ${r.backend}`);
    ' "$RES/bench-$b.json" 2>/dev/null || { say "  bench failed:"; grep -v 'artificially reduced' "$RES/bench-$b.log" | tail -5 | sed 's/^/  /'; }
  done
fi

# --- 4. PyTorch -----------------------------------------------------------------
if [ -z "$STOP" ]; then
  hr; say "4. PyTorch, same DCGAN, same batches, same Adam step (float32, TF32 off)"; hr
  TDEV=cuda; [ "$MODE" = software ] && TDEV=cpu
  if command -v python3 >/dev/null && python3 -c 'import torch' 2>/dev/null; then
    # shellcheck disable=SC2086
    timeout 900 python3 "$B/torch_dcgan.py" --device "$TDEV" --batch $BATCHES --steps "$TORCH_STEPS" --warmup 10 >"$RES/torch.jsonl" 2>"$RES/torch.log"
    "$NODE" -e '
      for (const l of require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").filter(Boolean)) {
        const r = JSON.parse(l); console.log(r.error ? `  error: ${r.error}` : `  pytorch ${r.torch} on ${r.device}: batch ${r.batchSize}: ${r.imagesPerSecond.toFixed(1)} img/s (${(r.secondsPerStep * 1000).toFixed(2)} ms/step)`);
      }' "$RES/torch.jsonl" 2>/dev/null || { say "  PyTorch run failed:"; tail -5 "$RES/torch.log" | sed 's/^/  /'; }
  else
    say "  python3 with torch is not available here: no PyTorch figures, no ratio"
    echo '{"framework":"pytorch","error":"python3 with torch not available"}' >"$RES/torch.jsonl"
  fi
fi

# --- 5. summary -----------------------------------------------------------------
hr; say "5. Summary"; hr
"$NODE" -e '
  const fs = require("fs"), p = require("path");
  const [res, mode, kind, stop, batches, steps] = process.argv.slice(1);
  const read = (f) => { try { return JSON.parse(fs.readFileSync(p.join(res, f), "utf8").trim().split("\n").pop()); } catch { return null; } };
  const adapters = read("adapters.json");
  const grads = read("gradients.json");
  const torch = (() => { try { return fs.readFileSync(p.join(res, "torch.jsonl"), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)); } catch { return []; } })();
  const rows = batches.split(/\s+/).filter(Boolean).map(Number).map((b) => {
    const d = read(`bench-${b}.json`);
    const t = torch.find((x) => x.batchSize === b);
    const dIps = d && !d.error ? d.imagesPerSecond : null;
    const tIps = t && !t.error ? t.imagesPerSecond : null;
    return { batchSize: b, distganImagesPerSecond: dIps, pytorchImagesPerSecond: tIps, ratio: dIps && tIps ? dIps / tIps : null, distgan: d, pytorch: t ?? null };
  });
  let worst = null;
  if (grads && grads.ok) worst = Math.max(...grads.tensors.map((t) => (t.scale === 0 ? t.maxAbs : t.maxAbs / t.scale)));
  const out = {
    check: "distgan-gpu-check", mode: mode === "software" ? "software-vulkan" : "hardware", adapterKind: kind, stopped: stop || null,
    adapter: adapters && adapters.init && adapters.init.ok ? adapters.init.adapter : null, dawnAdapters: adapters ? adapters.adapters : null,
    gradients: grads ? { ok: grads.ok === true && worst !== null && worst <= 1e-4, worstRelativeError: worst, tensors: grads.tensors ?? null, losses: grads.losses ?? null, reason: grads.reason ?? null } : null,
    timedSteps: Number(steps), results: rows,
  };
  if (stop) console.log("STOPPED: " + stop);
  const label = mode === "software" ? " (SOFTWARE Vulkan: lavapipe on the CPU, not a GPU figure)" : "";
  console.log(`adapter: ${out.adapter ? out.adapter.device : "none"}${label}`);
  console.log(`gradients vs cpu: ${out.gradients ? (out.gradients.ok ? "PASS" : "FAIL") + (worst !== null ? `, worst relative error ${worst.toExponential(2)}` : "") : "not run"}`);
  console.log("batch   distgan img/s   pytorch img/s   distgan/pytorch");
  for (const r of rows) console.log(`${String(r.batchSize).padEnd(8)}${(r.distganImagesPerSecond?.toFixed(1) ?? "-").padStart(13)}   ${(r.pytorchImagesPerSecond?.toFixed(1) ?? "-").padStart(13)}   ${r.ratio === null ? "-" : r.ratio.toFixed(3)}`);
  const json = JSON.stringify(out, null, 2);
  fs.writeFileSync(p.join(res, "gpu-check.json"), json);
  if (process.env.OUT) { fs.mkdirSync(process.env.OUT, { recursive: true }); fs.writeFileSync(p.join(process.env.OUT, "gpu-check.json"), json); console.log(`figures: ${p.join(process.env.OUT, "gpu-check.json")}`); }
  else console.log(`figures: ${p.join(res, "gpu-check.json")}`);
  const ok = !stop && out.gradients && out.gradients.ok && rows.every((r) => r.distganImagesPerSecond !== null);
  process.exit(ok ? 0 : 1);
' "$RES" "$MODE" "$KIND" "$STOP" "$BATCHES" "$STEPS"
