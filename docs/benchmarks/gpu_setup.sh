# Sourced by the gpu_*.sh scripts: the log, the environment record, the wheels in .whl/
# (packages the GPU image lacks), an offline editable install, and the `sciml` command as
# the array SCIML (importing the solver modules named in $PLUGINS, so their entries exist
# even where the editable install fails).
export PYTHONUNBUFFERED=1
OUT=${OUT:-sciml_out/gpu}
DEVICE=${DEVICE:-cuda}
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
SCIML=(python3 -c "import sys, ${PLUGINS:-solvers.dcdm}; from sciml.cli import main; sys.exit(main(sys.argv[1:]))")
