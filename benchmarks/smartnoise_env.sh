#!/usr/bin/env bash
# Create .venv-smartnoise/ beside .venv/ with smartnoise-synth 1.0.8, for
# benchmarks/smartnoise_compare.py (which runs SmartNoise through
# benchmarks/_smartnoise_worker.py inside this venv).
#
# SmartNoise cannot share the main venv: smartnoise-synth 1.0.8 pins opacus 0.14
# (the main venv has opacus 1.6) and pandas < 3. Torch 2.13.0 is taken from this
# machine's wheel directory when present (TORCH_WHEEL), else from the registry.
# Idempotent: re-running on a complete venv only re-checks the imports.
# Uses pip (not uv). Usage: bash benchmarks/smartnoise_env.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SMARTNOISE_VENV:-$ROOT/.venv-smartnoise}"
PY="${PYTHON:-python3}"
TORCH_WHEEL="${TORCH_WHEEL:-/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}"

# The exact set that resolved and ran on 2026-11-25 (Python 3.11, CPU-only).
PINS=(
  smartnoise-synth==1.0.8 smartnoise-sql==1.0.10 opacus==0.14.0 opendp==0.14.2
  mbi==1.1.0 pac-synth==0.0.8 jax==0.10.2 jaxlib==0.10.2 chex==0.1.92 optax==0.2.8
  numpy==2.4.6 pandas==2.3.3 scipy==1.17.1 packaging==26.4 ml_dtypes==0.6.0
  opt_einsum==3.4.0 absl-py==2.5.1 toolz==1.2.0 networkx==3.6.1 disjoint-set==0.9.0
  Faker==40.63.0 SQLAlchemy==2.1.9 antlr4-python3-runtime==4.9.3 graphviz==0.21
  Deprecated==1.3.1 wrapt==2.5.2 PyYAML==6.0.4 attrs==26.1.0 python-dateutil==4.0.0
  pytz==2026.6 tzdata==2026.6 sympy==1.14.0 mpmath==1.3.0 filelock==4.3.1
  fsspec==2026.9.0 Jinja2==3.1.6 MarkupSafe==3.0.4 typing_extensions==4.16.0
  setuptools==84.2.1
)

check() {
  "$VENV/bin/python" - <<'PY'
import torch, opacus, pandas, snsynth
from snsynth import Synthesizer
print(f"smartnoise venv ok: torch {torch.__version__}, opacus {opacus.__version__}, pandas {pandas.__version__}")
PY
}

if [ -x "$VENV/bin/python" ] && check 2>/dev/null; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if [ -f "$TORCH_WHEEL" ]; then TORCH="$TORCH_WHEEL"; else TORCH="torch==2.13.0"; fi
"$VENV/bin/python" -m pip install -q "$TORCH" "${PINS[@]}"
check
