#!/usr/bin/env bash
# Prove that ambisense installs and runs on the Raspberry Pi's architecture (aarch64).
#
# Builds a Debian 12 (bookworm, the base of Raspberry Pi OS 64-bit, Python 3.11) arm64
# root with debootstrap, runs it under qemu-user-static (binfmt_misc), installs this
# checkout into a venv there with pip (aarch64 wheels of numpy, scipy, onnxruntime, mne…
# from PyPI), then replays a bundled capture through `ambisense agent`.
#
# Usage (as root, on an x86_64 Debian/Ubuntu host; 15–40 min under emulation):
#   firmware_configs/raspberry-pi/arm64-check.sh [WORKDIR]
# WORKDIR defaults to /var/tmp/ambisense-arm64 and must lie under /tmp or /var/tmp: the
# script writes nothing anywhere else (it only reads the repository). Re-running reuses
# the root file system it built before (delete WORKDIR to start over).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-/var/tmp/ambisense-arm64}
WORK=$(realpath -m "$WORK")
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT="$WORK/rootfs"

case "$WORK/" in
  /tmp/?*|/var/tmp/?*) ;;
  *) echo "arm64-check: WORKDIR must be under /tmp or /var/tmp, got $WORK" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "arm64-check: must run as root (debootstrap, chroot)" >&2; exit 2; }

step() { printf '\n=== %s  [%s]\n' "$*" "$(date -u +%H:%M:%S)"; }
T0=$(date +%s)

step "host tools: debootstrap, qemu-user-static, binfmt_misc"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || { echo "arm64-check: binfmt handler qemu-aarch64 is not enabled" >&2; exit 1; }

mkdir -p "$WORK"
if [ ! -x "$ROOT/usr/bin/python3" ]; then
  step "debootstrap $SUITE arm64 into $ROOT"
  rm -rf "$ROOT"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,libportaudio2 \
    "$SUITE" "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
    || { tail -30 "$WORK/debootstrap.log" >&2; exit 1; }
else
  step "reusing arm64 root $ROOT"
fi

mounted=()
cleanup() {
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
# No /sys on purpose: with the host's (x86) /sys mounted, onnxruntime's cpuinfo crashes under
# qemu (SIGSEGV); without it, it prints "cpuinfo_initialize failed" warnings and runs.
for m in proc dev; do
  mkdir -p "$ROOT/$m"
  if ! mountpoint -q "$ROOT/$m"; then
    case $m in
      proc) mount -t proc proc "$ROOT/proc" ;;
      dev) mount --bind /dev "$ROOT/dev" ;;
    esac
    mounted+=("$ROOT/$m")
  fi
done
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The host's CA bundle (it may hold a site CA that fronts PyPI); pip in the root uses it.
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"

step "copy the checkout (no .git, no caches) to /opt/ambisense-src"
rm -rf "$ROOT/opt/ambisense-src"
mkdir -p "$ROOT/opt/ambisense-src"
tar -C "$REPO" --exclude=.git --exclude=__pycache__ --exclude='*.egg-info' \
    --exclude=.pytest_cache --exclude=.ruff_cache --exclude=build --exclude=dist \
    --exclude='ambisense-events.jsonl' -cf - . | tar -C "$ROOT/opt/ambisense-src" -xf -

in_root() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/opt/ambisense/bin:/usr/bin:/bin \
    LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=120 "$@"
}

step "inside: architecture and Python"
in_root /bin/sh -c 'uname -m; /usr/bin/python3 -c "import platform, sys; print(platform.machine(), sys.version.split()[0])"'

step "inside: pip install the project (binary wheels only for the scientific stack)"
in_root /usr/bin/python3 -m venv /opt/ambisense
in_root pip install -q --upgrade pip
in_root pip install --prefer-binary \
    --only-binary=numpy,scipy,onnxruntime,cffi,contourpy,kiwisolver,pillow,matplotlib \
    /opt/ambisense-src 2>&1 | tail -3
in_root pip list 2>/dev/null | grep -i -E '^(numpy|scipy|onnxruntime|mne|paho-mqtt|pydantic|ambisense) '

step "inside: import check"
in_root python -c '
import platform, numpy, scipy, onnxruntime, mne
print("machine", platform.machine(), "numpy", numpy.__version__, "scipy", scipy.__version__,
      "onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers(), "mne", mne.__version__)'

step "inside: ambisense agent --check-config on every firmware_configs/agent-*.toml"
# deploy-time files and secrets the examples name, as stand-ins inside the arm64 root
mkdir -p "$ROOT/etc/ambisense" && echo stand-in > "$ROOT/etc/ambisense/mqtt-password"
ok=0; n=0
for cfg in "$ROOT"/opt/ambisense-src/firmware_configs/agent-*.toml; do
  rel=/opt/ambisense-src/firmware_configs/$(basename "$cfg")
  n=$((n + 1))
  if in_root env AMBISENSE_MQTT_PASSWORD=x AMBISENSE_TLS_KEY_PASSPHRASE=y \
       ambisense agent --check-config --config "$rel"; then ok=$((ok + 1)); fi
done
echo "$ok of $n example configs valid"

step "inside: replay the bundled captures through the agent (ambisense agent --demo)"
in_root /bin/bash -c '
  set -u
  cd /tmp && rm -f ambisense-events.jsonl demo.out
  samples=/opt/ambisense-src/agent/samples
  if [ -z "$(ls "$samples" 2>/dev/null | grep -v -E "\.truth\.json$|^README|\.md$")" ]; then
    # no bundled captures in this checkout yet: simulate one (the same ESP32 CSV format)
    samples=/tmp/arm64-samples; mkdir -p "$samples"
    ambisense simulate csi-activity --out "$samples/activity.csv" --duration-s 30 --seed 1
  fi
  echo "captures: $(ls "$samples" | tr "\n" " ")"
  TIMEFORMAT="agent wall time %R s (user %U s, sys %S s)"
  time ambisense agent --demo --samples "$samples" --status-interval 10 > demo.out
  rc=$?
  echo "agent exit code $rc"
  echo "--- last lines of the event table:"; tail -n 6 demo.out
  echo "--- events written: $(wc -l < ambisense-events.jsonl); first one:"
  head -n 1 ambisense-events.jsonl
  exit $rc'

step "done in $(( $(date +%s) - T0 )) s: ambisense installs and runs on aarch64"
