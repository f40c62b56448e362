#!/usr/bin/env bash
# The second GPU run of the session: every CUDA test, a DCDM U-Net trained on a paper-sized
# Ritz basis (6000 Lanczos vectors of one 64^3 matrix, 2.3% of the space; the paper uses
# 10,000) and benchmarked at 64^3 and 128^3, and the component benchmarks on CUDA.
#
# Usage, from the repository root on a CUDA machine with torch installed:
#   OUT=results bash docs/benchmarks/gpu_components.sh
# Wheels of packages the machine lacks (trimesh, orthogonium) may be put in .whl/ beforehand.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-sciml_out/gpu}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu RITZ=300 TRAIN_SIZE=16 BENCH_SIZES=16 TRAIN_SECONDS=5: a dry run
RITZ=${RITZ:-6000}
TRAIN_SIZE=${TRAIN_SIZE:-64}
read -r -a BENCH_SIZES <<<"${BENCH_SIZES:-64 128}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
stage() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; }

stage environment
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c \
  "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"; } >>"$LOG" 2>&1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl >>"$LOG" 2>&1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$LOG" 2>&1 \
  || echo "editable install failed; entry points come from the imports below" >>"$LOG"
PLUGINS="solvers.dcdm, solvers.orthoconv"
SCIML=(python3 -c "import sys, $PLUGINS; from sciml.cli import main; sys.exit(main(sys.argv[1:]))")

stage "CUDA tests"
timeout "${TEST_TIMEOUT:-90}" python3 -m pytest -q -p no:cacheprovider -m gpu --continue-on-collection-errors \
  tests >>"$LOG" 2>&1; echo "pytest exit $?" >>"$LOG"

stage "train DCDM U-Net on $RITZ Ritz vectors of one $TRAIN_SIZE^3 matrix (${TRAIN_SECONDS:=100} s)"
timeout $((TRAIN_SECONDS + 120)) "${SCIML[@]}" train dcdm --arch unet --sizes "$TRAIN_SIZE" --scenes two_spheres \
  --lanczos-steps "$RITZ" --lanczos-memory-gb 16 --steps 100000 --time-limit "$TRAIN_SECONDS" --device "$DEVICE" \
  --out "$OUT/dcdm-unet-ritz.safetensors" --checkpoint-dir /tmp/dcdm-ck 2>&1 | tr '\r' '\n' \
  | grep -v "^train:" | tail -n 8 >>"$LOG"

stage "bench dcdm ${BENCH_SIZES[*]}"
MODELS=(dcdm-unet)
[ -f "$OUT/dcdm-unet-ritz.safetensors" ] && MODELS+=("$OUT/dcdm-unet-ritz.safetensors")
timeout "${BENCH_TIMEOUT:-100}" "${SCIML[@]}" bench dcdm --sizes "${BENCH_SIZES[@]}" --device "$DEVICE" --repeats 2 \
  --scenes rotated_box torus plate_stack bunny many_spheres union tilted_plates --models "${MODELS[@]}" \
  --json "$OUT/dcdm-gpu-ritz.json" 2>&1 | grep -v "^WARNING\|^INFO" >>"$LOG"

stage "bench orthoconv"
timeout "${ORTHO_TIMEOUT:-90}" "${SCIML[@]}" bench orthoconv --device "$DEVICE" --repeats 5 \
  --json "$OUT/orthoconv-gpu.json" >>"$LOG" 2>&1; echo "bench exit $?" >>"$LOG"
stage done
