#!/usr/bin/env bash
# The GPU checks of the Cuda device, from prebuilt binaries (a GPU machine need not have Rust).
#
#   scripts/gpu-check.sh build [DIR]   build the Cuda test and benchmark binaries into DIR
#                                      (default target/gpu-check); needs cargo, no GPU
#   scripts/gpu-check.sh run [DIR]     run them: the PyTorch-parity suite on Cuda (every fixture,
#                                      f64/f32/f16/bf16), the Cpu-vs-Cuda table per op, then the
#                                      benchmark table; needs a GPU and its driver, no cargo
#   scripts/gpu-check.sh [DIR]         both
#
# The binaries load the CUDA libraries at run time: libcuda from the driver, and libnvrtc and
# libcublas from a CUDA toolkit or from the nvidia-cuda-nvrtc-cu12 / nvidia-cublas-cu12 wheels
# (their lib/ directories on LD_LIBRARY_PATH; `run` adds the wheels' directories it finds).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=all
case "${1:-}" in
  build|run) mode=$1; shift ;;
esac
dir=${1:-target/gpu-check}

build() {
  mkdir -p "$dir"
  # Each test or bench binary that cargo builds, by name, copied into $dir.
  local json
  json=$(cargo test --release --features testing,cuda --test pytorch_parity --test cuda_kernels --no-run --message-format=json 2>/dev/null;
         cargo bench --features cuda --bench cuda --no-run --message-format=json 2>/dev/null)
  printf '%s\n' "$json" | python3 -c '
import json, shutil, sys
out = sys.argv[1]
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    exe = msg.get("executable")
    if msg.get("reason") == "compiler-artifact" and exe:
        name = msg["target"]["name"]
        shutil.copy(exe, f"{out}/{name}")
        print(f"built {out}/{name}")
' "$dir"
}

run() {
  local wheels
  wheels=$(python3 -c 'import nvidia, os; print(":".join(os.path.join(p, d, "lib") for p in nvidia.__path__ for d in os.listdir(p)))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="${wheels}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # ptxas from the nvidia-cuda-nvcc-cu12 wheel, where it is installed and none is named.
  local wheel_ptxas
  wheel_ptxas=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cuda_nvcc", "bin", "ptxas"))' 2>/dev/null || true)
  if [[ -z "${TENSILE_PTXAS:-}" && -n "$wheel_ptxas" && -x "$wheel_ptxas" ]]; then
    export TENSILE_PTXAS="$wheel_ptxas"
  fi
  for bin in pytorch_parity cuda; do
    [[ -x "$dir/$bin" ]] || { echo "no $dir/$bin: run '$0 build $dir' first" >&2; exit 1; }
  done
  echo "== the PyTorch-parity suite on Cuda, and Cpu vs Cuda per op"
  "$dir/pytorch_parity" cuda --nocapture --test-threads 1
  echo "== kernels compiled and assembled for sm_80 and sm_90 (ptxas from TENSILE_PTXAS or PATH)"
  "$dir/cuda_kernels" --nocapture || echo "(the kernel compile check needs NVRTC; see its message)"
  echo "== benchmarks"
  "$dir/cuda"
}

case $mode in
  build) build ;;
  run) run ;;
  all) build && run ;;
esac
