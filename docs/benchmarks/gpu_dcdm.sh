#!/usr/bin/env bash
# The GPU run behind docs/benchmarks/dcdm-gpu-*.json: CUDA tests of the linear algebra and
# DCDM, a U-Net trained at 32^3 and 64^3 on the GPU for a fixed time, and `sciml bench dcdm`
# at 64^3 and 128^3 (all held-out scenes) and 256^3 (two scenes) with the shipped networks,
# the GPU-trained one, our CG and our multigrid PCG.
#
# ARCH, RITZ and TRAIN_SCENES choose the trained network (default: the U-Net on 400 Ritz vectors of
# every training scene); BIG_SIZE=0 skips the 256^3 stage; INIT (with LR)
# fine-tunes given weights; BENCH_ARGS are passed to `sciml bench dcdm` (e.g. --tf32); LANCZOS_GB
# is the memory budget of one Lanczos basis (default 16; 3000 vectors at 128^3 need 50). RITZ may
# give one count per training size ("3000 600" with TRAIN_SIZES="64 128"); PROLONG=K adds the K lowest
# modes of the next coarser size, interpolated, to each larger size's basis.
#
# Usage, from the repository root on a CUDA machine with torch installed:
#   OUT=results bash docs/benchmarks/gpu_dcdm.sh
# Wheels of packages the machine lacks (trimesh) may be put in .whl/ beforehand.
# Dry run on CPU: DEVICE=cpu TRAIN_SIZES=8 BENCH_SIZES=16 BIG_SIZE=16 TRAIN_SECONDS=5 bash ...
set -u
ARCH=${ARCH:-unet}
RITZ=${RITZ:-400}
INIT_ARGS=(); [ -n "${INIT:-}" ] && INIT_ARGS=(--init "$INIT" --lr "${LR:-3e-4}")
read -r -a TRAIN_SIZES <<<"${TRAIN_SIZES:-32 64}"
read -r -a RITZ_COUNTS <<<"$RITZ"
PROLONG_ARGS=(); [ -n "${PROLONG:-}" ] && PROLONG_ARGS=(--prolong "$PROLONG")
SCENE_ARGS=(); [ -n "${TRAIN_SCENES:-}" ] && read -r -a SCENE_ARGS <<<"--scenes $TRAIN_SCENES"
read -r -a BENCH_SIZES <<<"${BENCH_SIZES:-64 128}"
BIG_SIZE=${BIG_SIZE:-256}
PLUGINS="solvers.dcdm"
source "$(dirname "$0")/gpu_setup.sh"

if [ "${RUN_TESTS:-1}" = 1 ]; then
stage "CUDA tests"
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/linalg tests/dcdm tests/test_train.py \
  >>"$LOG" 2>&1; echo "pytest exit $?" >>"$LOG"
fi

if [ "${TRAIN_SECONDS:=90}" -gt 0 ]; then
stage "train $ARCH (sizes ${TRAIN_SIZES[*]}, scenes ${TRAIN_SCENES:-all}, $RITZ Ritz vectors, $TRAIN_SECONDS s)"
timeout $((TRAIN_SECONDS + 120)) "${SCIML[@]}" train dcdm --arch "$ARCH" --sizes "${TRAIN_SIZES[@]}" \
  "${SCENE_ARGS[@]}" "${INIT_ARGS[@]}" --lanczos-steps "${RITZ_COUNTS[@]}" "${PROLONG_ARGS[@]}" \
  --lanczos-memory-gb "${LANCZOS_GB:-16}" --steps 100000 \
  --time-limit "$TRAIN_SECONDS" --device "$DEVICE" --out "$OUT/dcdm-$ARCH-gpu.safetensors" \
  --checkpoint-dir /tmp/dcdm-ck 2>&1 | tr '\r' '\n' | grep -v "^train:" | tail -n 20 >>"$LOG"
fi

read -r -a MODELS <<<"${MODELS:-dcdm-unet dcdm-recursive dcdm-paper}"
[ -f "$OUT/dcdm-$ARCH-gpu.safetensors" ] && MODELS+=("$OUT/dcdm-$ARCH-gpu.safetensors")
# every held-out scene but `nut` (pyvista's bundled mesh; the GPU image has no pyvista)
read -r -a SCENES <<<"${SCENES:-rotated_box torus plate_stack bunny many_spheres union tilted_plates}"
read -r -a BIG_MODELS <<<"${BIG_MODELS:-${MODELS[*]}}"
stage "bench dcdm ${BENCH_SIZES[*]}"
timeout "${BENCH_TIMEOUT:-180}" "${SCIML[@]}" bench dcdm --sizes "${BENCH_SIZES[@]}" --scenes "${SCENES[@]}" --device "$DEVICE" --repeats "${REPEATS:-3}" \
  ${BENCH_ARGS:-} --models "${MODELS[@]}" \
  --json "$OUT/dcdm-gpu-small.json" >>"$LOG" 2>&1; echo "bench exit $?" >>"$LOG"
if [ "$BIG_SIZE" -gt 0 ]; then
stage "bench dcdm $BIG_SIZE"
timeout "${BIG_TIMEOUT:-75}" "${SCIML[@]}" bench dcdm --sizes "$BIG_SIZE" --scenes torus --device "$DEVICE" \
  --repeats 1 --models "${BIG_MODELS[@]}" --json "$OUT/dcdm-gpu-big.json" >>"$LOG" 2>&1; echo "bench exit $?" >>"$LOG"
fi
stage done
