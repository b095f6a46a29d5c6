#!/bin/bash
# The GPU engine's checks on a machine with a hardware GPU (the workplace's device tool), in one
# call that builds nothing there: the GPU-using tests and the GPU benchmarks, logs under $OUT.
#
#   bash benches/device-check.sh prepare   # here: builds, strips and packs the test and bench
#                                          # binaries into .dev/, the Vulkan loader into .gl/
#   device run, carry [".gl", ".dev"]:  bash benches/device-check.sh run
#
# The test binaries look for the stemforge binary and the repository at the paths they were built
# in (env! at compile time), so `run` links /work/main to the copy it runs in. Tests that need
# ffmpeg as the independent meter fail there (the device image has no ffmpeg); read the logs for
# the engine-parity results. The benchmark's programme: STEMFORGE_BENCH_MINUTES (30 here).
set -u
case "${1:-}" in
prepare)
    set -e
    mkdir -p .git/info .dev .gl /tmp/stemforge-dev /tmp/amd64/partial
    grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo /.dev/ >>.git/info/exclude
    grep -qx '/.gl/' .git/info/exclude || echo /.gl/ >>.git/info/exclude
    list() { python3 -c '
import sys, json
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"): print(m["target"]["name"], m["executable"])'; }
    { cargo test --release --no-run --message-format=json; cargo bench --no-run --message-format=json; } 2>/dev/null | list >/tmp/stemforge-dev/bins
    rm -f /tmp/stemforge-dev/*.bin
    for n in parity gpu_engine render memory segments cli gpu_render gpu_stage_timings; do
        cp "$(awk -v n=$n '$1 == n { print $2 }' /tmp/stemforge-dev/bins | tail -1)" /tmp/stemforge-dev/$n.bin
    done
    cp target/release/stemforge /tmp/stemforge-dev/stemforge.bin
    strip /tmp/stemforge-dev/*.bin
    tar czf .dev/bins.tgz -C /tmp/stemforge-dev $(cd /tmp/stemforge-dev && ls *.bin)
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update >/dev/null
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    du -sh .dev .gl
    ;;
run)
    exec > >(tee -a "$OUT/run.log") 2>&1
    t0=$(date +%s)
    step() { echo; echo "=== $* ($(($(date +%s) - t0)) s)"; }
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    mkdir -p /work
    [ -e /work/main ] || ln -s "$PWD" /work/main
    mkdir -p .dev/bin target/release target/tmp
    tar xzf .dev/bins.tgz -C .dev/bin
    cp .dev/bin/stemforge.bin target/release/stemforge
    export WGPU_BACKEND=vulkan RUST_BACKTRACE=0
    step info
    nvidia-smi
    nproc
    target/release/stemforge devices || true
    if ! target/release/stemforge devices --json 2>/dev/null | grep -qi nvidia; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
        export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
        target/release/stemforge devices || true
    fi
    target/release/stemforge devices --json >"$OUT/devices.json" 2>&1
    grep -qi nvidia "$OUT/devices.json" || { echo "no NVIDIA adapter: stopping"; exit 9; }
    cd /work/main || exit 9
    b=.dev/bin
    step "parity tests"
    timeout 100 $b/parity.bin >"$OUT/parity.log" 2>&1
    grep -E "^test |test result|panicked" "$OUT/parity.log" | tail -60
    step "gpu_engine tests"
    timeout 100 $b/gpu_engine.bin >"$OUT/gpu_engine.log" 2>&1
    grep -E "^test |test result|panicked" "$OUT/gpu_engine.log" | tail -60
    step "gpu_render bench"
    STEMFORGE_BENCH_MINUTES=${STEMFORGE_BENCH_MINUTES:-30} STEMFORGE_BENCH_RUNS=3 timeout 180 $b/gpu_render.bin 2>&1 | tee "$OUT/bench.log" | tail -45
    tar czf "$OUT/bench_reports.tgz" $(find target/bench-data -name '*.json' | head -20) 2>/dev/null
    rm -rf target/bench-data
    step "render, memory, segments (gpu), cli tests"
    {
        timeout 90 $b/render.bin
        timeout 40 $b/memory.bin gpu
        timeout 40 $b/segments.bin gpu_engine
        timeout 20 $b/cli.bin devices
        timeout 20 $b/cli.bin gpu
    } >"$OUT/render_etc.log" 2>&1
    grep -E "^test |test result|panicked" "$OUT/render_etc.log" | tail -80
    step "gpu_stage_timings"
    timeout 40 $b/gpu_stage_timings.bin 2>&1 | tail -40
    step done
    ;;
*)
    echo "usage: bash benches/device-check.sh prepare|run" >&2
    exit 2
    ;;
esac
