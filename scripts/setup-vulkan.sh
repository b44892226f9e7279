#!/usr/bin/env bash
# Unpacks a software Vulkan driver that Dawn accepts (Mesa 25 lavapipe from
# Debian bookworm-backports) plus the Vulkan loader into .cache/vulkan/, and
# writes the environment that selects it to .cache/vulkan/env.sh.
#
# Why: Debian 12's own lavapipe (Mesa 22.3.6) is refused by Dawn
# ("Vulkan shaderUniform*ArrayDynamicIndexing required"); Mesa 25.0.7 works.
# Nothing is installed system-wide: apt runs with a private source list, list
# directory and cache under .cache/vulkan/apt, downloads .debs and `dpkg -x`
# unpacks them. The system's sources, package state and Mesa stay untouched.
#
# Idempotent: when .cache/vulkan/env.sh exists and its driver loads, it exits 0
# at once. Set DISTGAN_VULKAN_FORCE=1 to redo it. Root is not needed (only
# apt-get, dpkg-deb, network to the Debian archive and a writable folder).
# DISTGAN_VULKAN_DIR overrides the folder (default <repo>/.cache/vulkan);
# DISTGAN_DEBIAN_MIRROR the archive (default http://deb.debian.org/debian).
#
# Usage: scripts/setup-vulkan.sh [--quiet]
#   Exit 0: env.sh is ready. Exit 3: cannot be made here (message says why).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${DISTGAN_VULKAN_DIR:-$ROOT/.cache/vulkan}"
QUIET=0
[ "${1:-}" = "--quiet" ] && QUIET=1
say() { [ "$QUIET" = 1 ] || echo "setup-vulkan: $*" >&2; }
fail() { echo "setup-vulkan: $*" >&2; exit 3; }

# Versions known to work with dawn.node from npm webgpu 0.6.2 (see docs/gpu.md).
MESA_VERSION="25.0.7-2~bpo12+1"
SUITE_MAIN="bookworm"
SUITE_BPO="bookworm-backports"
MIRROR="${DISTGAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ARCH_TRIPLET="x86_64-linux-gnu"

LIBDIR="$DEST/root/usr/lib/$ARCH_TRIPLET"
ICD="$DEST/root/usr/share/vulkan/icd.d/lvp_icd.json"
ENV_FILE="$DEST/env.sh"

if [ "$(uname -s)" != "Linux" ] || [ "$(uname -m)" != "x86_64" ]; then
  fail "software Vulkan set-up supports Linux x86_64 only (this is $(uname -s) $(uname -m))"
fi

if [ "${DISTGAN_VULKAN_FORCE:-0}" != "1" ] && [ -f "$ENV_FILE" ] && [ -f "$ICD" ] \
   && [ -f "$LIBDIR/libvulkan_lvp.so" ] && [ -e "$LIBDIR/libvulkan.so.1" ] \
   && grep -qF "$LIBDIR/libvulkan_lvp.so" "$ICD" && grep -qF "$ICD" "$ENV_FILE"; then
  if ! LD_LIBRARY_PATH="$LIBDIR" ldd "$LIBDIR/libvulkan_lvp.so" | grep -q "not found"; then
    say "ready: $ENV_FILE"
    exit 0
  fi
fi

if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  fail "needs apt-get and dpkg (a Debian/Ubuntu system); missing: $(command -v apt-get >/dev/null || echo apt-get) $(command -v dpkg >/dev/null || echo dpkg)"
fi
if [ ! -r /usr/share/keyrings/debian-archive-keyring.gpg ]; then
  fail "needs /usr/share/keyrings/debian-archive-keyring.gpg (package debian-archive-keyring) to verify Debian's archive"
fi

APT_DIR="$DEST/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$DEST/debs"
cat >"$APT_DIR/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE_MAIN main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE_BPO main
EOF
# Private source list, lists and cache; the system's dpkg status is only read,
# so the simulation below names exactly what this machine lacks.
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APT_DIR/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$APT_DIR/lists"
  -o "Dir::Cache=$APT_DIR/cache"
  -o "Debug::NoLocking=1"
  # Downloads run as the caller: apt's _apt sandbox user could not write into
  # a project folder, and root is not needed for any of this.
  -o "APT::Sandbox::User=$(id -un)"
  -o "Acquire::Retries=3"
)

say "fetching package lists ($SUITE_MAIN, $SUITE_BPO) into $APT_DIR"
# apt-get update exits 0 even when a source could not be fetched; check the lists.
if ! apt-get "${APT_OPTS[@]}" -qq update >"$APT_DIR/update.log" 2>&1 \
   || ! ls "$APT_DIR/lists/"*"${SUITE_BPO}"*_Packages* >/dev/null 2>&1; then
  grep -E '^(E|W):' "$APT_DIR/update.log" >&2 || cat "$APT_DIR/update.log" >&2
  fail "apt-get update against $MIRROR ($SUITE_MAIN, $SUITE_BPO) failed: is the Debian archive reachable?"
fi

# Ask apt what installing the backported driver and the loader would need on
# this machine (simulation only, -s), then download exactly those versions.
# `pkg/suite` lets apt take the dependencies that need it (libdrm ≥ 2.4.121)
# from backports too, and nothing else.
SIM="$(apt-get "${APT_OPTS[@]}" -s install --no-install-recommends \
  "mesa-vulkan-drivers/$SUITE_BPO" libvulkan1 2>&1)" || { echo "$SIM" >&2; fail "apt could not resolve mesa-vulkan-drivers from $SUITE_BPO"; }
mapfile -t PKGS < <(echo "$SIM" | sed -n 's/^Inst \([^ ]*\) \(\[[^]]*\] \)\?(\([^ ]*\) .*/\1=\3/p')
MESA_GOT="$(printf '%s\n' "${PKGS[@]}" | sed -n 's/^mesa-vulkan-drivers=//p')"
case "$MESA_GOT" in
  25.*|2[6-9].*|[3-9][0-9].*) ;;
  *) fail "$SUITE_BPO offers mesa-vulkan-drivers '$MESA_GOT'; Dawn needs Mesa >= 25" ;;
esac
[ "$MESA_GOT" = "$MESA_VERSION" ] || say "note: backports now has Mesa $MESA_GOT (tested: $MESA_VERSION)"
# The loader may already be installed system-wide; take it anyway so the
# unpacked tree (and the GPU bundle) is self-contained.
if ! printf '%s\n' "${PKGS[@]}" | grep -q '^libvulkan1='; then
  V="$(apt-cache "${APT_OPTS[@]}" policy libvulkan1 | sed -n 's/^ *Candidate: //p')"
  PKGS+=("libvulkan1=$V")
fi
say "downloading: ${PKGS[*]}"
rm -f "$DEST/debs/"*.deb
( cd "$DEST/debs" && apt-get "${APT_OPTS[@]}" -qq download "${PKGS[@]}" ) \
  || fail "apt-get download failed for: ${PKGS[*]}"

rm -rf "$DEST/root"
mkdir -p "$DEST/root"
for deb in "$DEST/debs/"*.deb; do dpkg -x "$deb" "$DEST/root"; done

[ -f "$ICD" ] || fail "lavapipe ICD manifest missing after unpacking ($ICD)"
MISSING="$(LD_LIBRARY_PATH="$LIBDIR" ldd "$LIBDIR/libvulkan_lvp.so" | grep "not found" || true)"
[ -z "$MISSING" ] || fail "libvulkan_lvp.so still lacks libraries: $MISSING"

# Point the ICD manifest at the unpacked library by absolute path, so the
# loader does not pick a system lavapipe of the same file name.
sed -i "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$LIBDIR/libvulkan_lvp.so\"#" "$ICD"

cat >"$ENV_FILE" <<EOF
# Written by scripts/setup-vulkan.sh: software Vulkan (Mesa $MESA_GOT lavapipe).
# Source it, or let src/shared/compute/vulkan-env.ts read it.
export VK_ICD_FILENAMES="$ICD"
export VK_DRIVER_FILES="$ICD"
export LD_LIBRARY_PATH="$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
say "ready: $ENV_FILE"
