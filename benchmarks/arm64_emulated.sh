#!/usr/bin/env bash
# An emulated aarch64 "board" for benchmarks/cross_device.py: Debian bookworm arm64 in a
# folder, run by qemu-user, with numpy, onnxruntime and LiteRT at the versions of this
# project's .venv, and edgekit's source mounted read-only (its bench agent needs no torch).
#
#   bash benchmarks/arm64_emulated.sh setup ROOT            # once (root; ~5 min, ~600 MB)
#   bash benchmarks/arm64_emulated.sh run ROOT CPU CMD...   # CPU: a qemu -cpu model
#
# `run` mounts the project read-only at ROOT/edgekit and runs CMD in ROOT with
# PYTHONPATH=/edgekit and /opt/venv/bin on PATH (so files CMD reads or writes go under
# ROOT). The CPU model decides which int8 kernels XNNPACK and onnxruntime's MLAS pick:
# cortex-a57 (Jetson Nano/TX2: NEON only), cortex-a76 (NEON dot product, as Jetson Orin's
# A78AE and the Raspberry Pi 5 have), neoverse-v1 (also i8mm and SVE). qemu computes the
# instructions' results, not their timing: use it for outputs, never for latency.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?usage: arm64_emulated.sh setup ROOT | run ROOT CPU CMD...}
root=$(realpath -m "${2:?ROOT folder missing}")

register_binfmt() {  # lets the kernel hand aarch64 ELF files to qemu (also inside chroot)
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
        cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
}

setup() {
    # qemu >= 8.1: it prints an arm64 /proc/cpuinfo for the chosen CPU model, which the
    # runtimes' cpuinfo reads (7.2 passed the host's x86 file through, and its "max" CPU
    # computed LiteRT's i8mm/SVE kernels wrong: every TFLite file at chance accuracy)
    local release=()
    if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" \
            > /etc/apt/sources.list.d/bookworm-backports.list
        release=(-t bookworm-backports)
    fi
    apt-get update -qq
    apt-get install -y -qq "${release[@]}" qemu-user-static >/dev/null
    apt-get install -y -qq debootstrap >/dev/null
    register_binfmt
    # a marker, not python3's presence: an interrupted debootstrap leaves python3 unpacked
    # but unconfigured, and a rerun must start it again
    if [ ! -e "$root/.debootstrap-done" ]; then
        debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv \
            bookworm "$root" http://deb.debian.org/debian
        touch "$root/.debootstrap-done"
    fi
    # the wheels are fetched here (the host's pip settings reach the registry) and
    # installed there offline, at the host's versions, so both machines run the same code
    local py="$here/.venv/bin/python" pins=() wheels="$root/wheels" platforms=()
    for dist in numpy onnxruntime ai-edge-litert; do
        pins+=("$dist==$("$py" -c "import importlib.metadata as m; print(m.version('$dist'))")")
    done
    for v in 17 27 28; do platforms+=(--platform "manylinux_2_${v}_aarch64"); done
    "$py" -m pip download -q --only-binary=:all: "${platforms[@]}" --python-version 3.11 \
        --implementation cp -d "$wheels" "${pins[@]}"
    chroot "$root" /bin/sh -c "[ -x /opt/venv/bin/python ] || python3 -m venv /opt/venv"
    chroot "$root" env -u PIP_FIND_LINKS /opt/venv/bin/pip install -q --no-index \
        --find-links /wheels "${pins[@]}"
    mkdir -p "$root/edgekit"
    echo "ready: $root ($(chroot "$root" /opt/venv/bin/pip list 2>/dev/null |
        grep -E '^(numpy|onnxruntime|ai-edge-litert) ' | tr -s ' ' | paste -sd,))"
}

run() {
    local cpu=${1:?CPU model missing}; shift
    local models
    models=$(qemu-aarch64-static -cpu help || true)  # it exits 1 after listing them
    grep -qw -- "$cpu" <<< "$models" ||
        { echo "qemu has no CPU model $cpu (qemu-aarch64-static -cpu help)" >&2; exit 2; }
    register_binfmt
    local m
    for m in proc sys; do mountpoint -q "$root/$m" || mount --bind "/$m" "$root/$m"; done
    mountpoint -q "$root/edgekit" || mount -o bind,ro "$here" "$root/edgekit"
    chroot "$root" env QEMU_CPU="$cpu" PYTHONPATH=/edgekit PATH=/opt/venv/bin:/usr/bin:/bin "$@"
}

case $cmd in
    setup) setup ;;
    run) shift 2; run "$@" ;;
    *) echo "unknown command $cmd (setup, run)" >&2; exit 2 ;;
esac
