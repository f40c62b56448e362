#!/usr/bin/env bash
# The second GPU run of the session: every CUDA test, a DCDM U-Net trained on a paper-sized
# Ritz basis (6000 Lanczos vectors of one 64^3 matrix, 2.3% of the space; the paper uses
# 10,000) and benchmarked at 64^3 and 128^3, and the component benchmarks on CUDA.
#
# Usage, from the repository root on a CUDA machine with torch installed:
#   OUT=results bash docs/benchmarks/gpu_components.sh
# Wheels of packages the machine lacks (trimesh, orthogonium) may be put in .whl/ beforehand.
# Dry run on CPU: DEVICE=cpu RITZ=300 TRAIN_SIZE=16 BENCH_SIZES=16 TRAIN_SECONDS=5 bash ...
set -u
RITZ=${RITZ:-6000}
TRAIN_SIZE=${TRAIN_SIZE:-64}
read -r -a BENCH_SIZES <<<"${BENCH_SIZES:-64 128}"
PLUGINS="solvers.dcdm, solvers.orthoconv"
source "$(dirname "$0")/gpu_setup.sh"

stage "CUDA tests"
timeout "${TEST_TIMEOUT:-90}" python3 -m pytest -q -p no:cacheprovider -m gpu --continue-on-collection-errors \
  tests >>"$LOG" 2>&1; echo "pytest exit $?" >>"$LOG"

stage "train DCDM U-Net on $RITZ Ritz vectors of one $TRAIN_SIZE^3 matrix (${TRAIN_SECONDS:=100} s)"
timeout $((TRAIN_SECONDS + 120)) "${SCIML[@]}" train dcdm --arch unet --sizes "$TRAIN_SIZE" --scenes two_spheres \
  --lanczos-steps "$RITZ" --lanczos-memory-gb 16 --steps 100000 --time-limit "$TRAIN_SECONDS" --device "$DEVICE" \
  --out "$OUT/dcdm-unet-ritz.safetensors" --checkpoint-dir /tmp/dcdm-ck 2>&1 | tr '\r' '\n' \
  | grep -v "^train:" | tail -n 8 >>"$LOG"

stage "bench dcdm ${BENCH_SIZES[*]}"
MODELS=(dcdm-unet dcdm-recursive)
[ -f "$OUT/dcdm-unet-ritz.safetensors" ] && MODELS+=("$OUT/dcdm-unet-ritz.safetensors")
timeout "${BENCH_TIMEOUT:-100}" "${SCIML[@]}" bench dcdm --sizes "${BENCH_SIZES[@]}" --device "$DEVICE" --repeats 2 \
  --scenes rotated_box torus plate_stack bunny many_spheres union tilted_plates --models "${MODELS[@]}" \
  --json "$OUT/dcdm-gpu-ritz.json" 2>&1 | grep -v "^WARNING\|^INFO" >>"$LOG"

stage "bench orthoconv"
timeout "${ORTHO_TIMEOUT:-90}" "${SCIML[@]}" bench orthoconv --device "$DEVICE" --repeats 5 \
  --json "$OUT/orthoconv-gpu.json" >>"$LOG" 2>&1; echo "bench exit $?" >>"$LOG"
stage done
