#!/usr/bin/env bash
# Prepared for the next GPU session: where does DCDM's wall-clock time go at 128^3, and how much
# of it do precision, memory layout and autotuning buy back? CUDA tests of the linear algebra and
# DCDM, the network-call probe (docs/benchmarks/dcdm_network_speed.py), then `sciml bench dcdm` at
# 64^3 and 128^3 with the default network in float32, TF32 and bfloat16 (A-orthogonalised against
# 32 directions, the default since session 13), and in float32 with the paper's 2 (--n-orth 2);
# last, 256^3 on two scenes (BIG_SIZE=0 skips it).
#
# Usage, from the repository root on a CUDA machine with torch installed:
#   OUT=results bash docs/benchmarks/gpu_dcdm_speed.sh
# Dry run on CPU: DEVICE=cpu SIZES=16 SCENES=torus BIG_SIZE=16 bash docs/benchmarks/gpu_dcdm_speed.sh
set -u
read -r -a SIZES <<<"${SIZES:-64 128}"
read -r -a SCENES <<<"${SCENES:-rotated_box torus plate_stack bunny many_spheres union tilted_plates}"
PLUGINS="solvers.dcdm"
source "$(dirname "$0")/gpu_setup.sh"
BENCH=("${SCIML[@]}" bench dcdm --sizes "${SIZES[@]}" --scenes "${SCENES[@]}" --device "$DEVICE" --repeats 2
       --models dcdm-recursive-gpu)

stage "CUDA tests"
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/linalg tests/dcdm >>"$LOG" 2>&1
echo "pytest exit $?" >>"$LOG"

stage "network call probe"
timeout 120 python3 "$(dirname "$0")/dcdm_network_speed.py" --sizes "${SIZES[@]}" --device "$DEVICE" \
  --json "$OUT/dcdm-network-speed.json" >>"$LOG" 2>&1; echo "probe exit $?" >>"$LOG"

for variant in "float32:" "tf32:--tf32" "bfloat16:--network-dtype bfloat16" "northo2:--n-orth 2"; do
  stage "bench dcdm ${variant%%:*}"
  # shellcheck disable=SC2086
  timeout "${BENCH_TIMEOUT:-90}" "${BENCH[@]}" ${variant#*:} --json "$OUT/dcdm-gpu-${variant%%:*}.json" 2>&1 \
    | grep -v "^WARNING\|^INFO" >>"$LOG"; echo "bench exit $?" >>"$LOG"
done

if [ "${BIG_SIZE:-256}" -gt 0 ]; then
  stage "bench dcdm ${BIG_SIZE:-256}"
  timeout "${BIG_TIMEOUT:-120}" "${SCIML[@]}" bench dcdm --sizes "${BIG_SIZE:-256}" --scenes torus bunny \
    --device "$DEVICE" --repeats 1 --models dcdm-recursive-gpu --json "$OUT/dcdm-gpu-big.json" 2>&1 \
    | grep -v "^WARNING\|^INFO" >>"$LOG"; echo "bench exit $?" >>"$LOG"
fi
stage done
