#!/usr/bin/env bash
# The session's last GPU run: every CUDA test (UMat included), the orthoconv layer comparison
# with the GPU orthogonalizer variants, and the DCDM U-Net trained on 6000 Ritz vectors of one
# 64^3 matrix fine-tuned for longer (from the first run's weights, carried in $INIT), benchmarked
# at 64^3 and 128^3 next to the shipped U-Net.
#
# Usage, from the repository root on a CUDA machine with torch installed:
#   OUT=results INIT=.gpu_init/dcdm-unet-ritz.safetensors bash docs/benchmarks/gpu_final.sh
# Dry run on CPU: DEVICE=cpu RITZ=300 TRAIN_SIZE=16 BENCH_SIZES=16 TRAIN_SECONDS=5 INIT= bash ...
set -u
RITZ=${RITZ:-6000}
TRAIN_SIZE=${TRAIN_SIZE:-64}
INIT=${INIT:-}
read -r -a BENCH_SIZES <<<"${BENCH_SIZES:-64 128}"
PLUGINS="solvers.dcdm, solvers.orthoconv"
source "$(dirname "$0")/gpu_setup.sh"

stage "CUDA tests"
timeout "${TEST_TIMEOUT:-60}" python3 -m pytest -q -p no:cacheprovider -m gpu --continue-on-collection-errors \
  tests >>"$LOG" 2>&1; echo "pytest exit $?" >>"$LOG"

stage "bench orthoconv (layer comparison only)"
timeout "${ORTHO_TIMEOUT:-60}" "${SCIML[@]}" bench orthoconv --device "$DEVICE" --repeats 7 --only-compare \
  --json "$OUT/orthoconv-gpu-variants.json" >>"$LOG" 2>&1; echo "bench exit $?" >>"$LOG"

stage "train DCDM U-Net on $RITZ Ritz vectors of one $TRAIN_SIZE^3 matrix (${TRAIN_SECONDS:=170} s, init ${INIT:-none})"
timeout $((TRAIN_SECONDS + 100)) "${SCIML[@]}" train dcdm --arch unet --sizes "$TRAIN_SIZE" --scenes two_spheres \
  --lanczos-steps "$RITZ" --lanczos-memory-gb 16 --steps 100000 --time-limit "$TRAIN_SECONDS" --device "$DEVICE" \
  ${INIT:+--init "$INIT" --lr 3e-4} --out "$OUT/dcdm-unet-ritz-long.safetensors" --checkpoint-dir /tmp/dcdm-ck 2>&1 \
  | tr '\r' '\n' | grep -v "^train:" | tail -n 8 >>"$LOG"

stage "bench dcdm ${BENCH_SIZES[*]}"
MODELS=(dcdm-unet dcdm-recursive)
[ -n "$INIT" ] && MODELS+=("$INIT")
[ -f "$OUT/dcdm-unet-ritz-long.safetensors" ] && MODELS+=("$OUT/dcdm-unet-ritz-long.safetensors")
timeout "${BENCH_TIMEOUT:-90}" "${SCIML[@]}" bench dcdm --sizes "${BENCH_SIZES[@]}" --device "$DEVICE" --repeats 1 \
  --scenes rotated_box torus plate_stack bunny many_spheres union tilted_plates --models "${MODELS[@]}" \
  --json "$OUT/dcdm-gpu-ritz-long.json" 2>&1 | grep -v "^WARNING\|^INFO" >>"$LOG"
stage done
