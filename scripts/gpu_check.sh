#!/usr/bin/env bash
# The GPU check, on a CUDA machine (CONTRIBUTING.md, "The GPU check"): `bash scripts/gpu_check.sh`
# (or `make gpu-check`). It
#   1. stops at once, with exit code 2 and a message, when torch sees no CUDA GPU;
#   2. installs the wheels of .whl/ (made beforehand by `make gpu-wheels` on a machine with registry access)
#      that this machine lacks into a scratch --target folder, with no index and no dependencies;
#   3. puts that folder and src/ on PYTHONPATH (the machine's own torch stays in use) and writes a
#      kernelspec for nbclient into a scratch JUPYTER_PATH;
#   4. runs scripts/gpu_check.py, which executes every chapter at the gpu scale and the tests in
#      tests/gpu/, each under a time limit, and writes reports/gpu_check.json and reports/gpu_check.md.
# Arguments go to scripts/gpu_check.py (`--help` lists them). PYTHON=... chooses the interpreter
# (default: python3); GPU_CHECK_DIR=... the scratch folder (default: a new one under /tmp).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
if ! PYTHON_ABS=$(command -v "$PYTHON"); then
    echo "gpu_check: no Python interpreter '$PYTHON' here; set PYTHON=/path/to/python3" >&2
    exit 2
fi

# 1. CUDA, before anything else (--allow-cpu: only for testing this machinery on a CPU machine)
allow_cpu=0
for a in "$@"; do [[ $a == --allow-cpu ]] && allow_cpu=1; [[ $a == -h || $a == --help ]] && allow_cpu=1; done
if [[ $allow_cpu == 0 ]]; then
    "$PYTHON_ABS" - <<'EOF' || exit 2
import sys
try:
    import torch
except ImportError as e:
    sys.exit(f"gpu_check: FAILED - torch is not importable ({e}). The GPU check runs with the GPU "
             "machine's own CUDA torch; install one, or set PYTHON to the interpreter that has it.")
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: FAILED - no CUDA GPU is visible to torch {torch.__version__} "
             f"(CUDA build: {torch.version.cuda or 'none'}; torch.cuda.is_available() is False). "
             "This check runs only on a CUDA machine: see 'The GPU check' in CONTRIBUTING.md. "
             "On this machine run `make test` instead.")
EOF
fi

# 2. the wheels this machine lacks, into a scratch folder
WORK=${GPU_CHECK_DIR:-$(mktemp -d /tmp/lab-gpu-check.XXXXXX)}
SITE=$WORK/site
mkdir -p "$SITE" "$WORK/jupyter/kernels/lab-gpu-check" "$WORK/runtime" "$WORK/ipython" "$WORK/mpl"
WHEELS_DIR=${GPU_WHEELS:-.whl}   # GPU_WHEELS: another folder, only for testing this script
if ! compgen -G "$WHEELS_DIR/*.whl" > /dev/null; then
    echo "gpu_check: $WHEELS_DIR/ holds no wheels. Run \`make gpu-wheels\` on a machine with registry access" \
         "and bring the .whl/ folder along with the working tree." >&2
    exit 3
fi
# a wheel is installed only when its project is missing here or older (torchvision: only when missing,
# since it must match the machine's torch); this machine's own packages always win otherwise
mapfile -t WHEELS < <("$PYTHON_ABS" - "$WHEELS_DIR"/*.whl <<'EOF'
import importlib.metadata as md
import os
import re
import sys

def key(v):
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.+-]", v)[:4])

for path in sys.argv[1:]:
    name, version = os.path.basename(path).split("-")[:2]
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        print(path)
        continue
    if name.lower() != "torchvision" and key(have) < key(version):
        print(path)
    else:
        print(f"gpu_check: keeping this machine's {name} {have} (wheel: {version})", file=sys.stderr)
EOF
)
echo "gpu_check: installing ${#WHEELS[@]} wheels from $WHEELS_DIR/ into $SITE"
if [[ ${#WHEELS[@]} -gt 0 ]]; then
    if "$PYTHON_ABS" -m pip --version > /dev/null 2>&1 && [[ -z ${GPU_CHECK_NO_PIP:-} ]]; then
        "$PYTHON_ABS" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
            --no-warn-script-location --target "$SITE" "${WHEELS[@]}"
    else  # no pip: a wheel is a zip archive; unpack it as pip --target would
        echo "gpu_check: no pip for $PYTHON_ABS; unpacking the wheels directly"
        "$PYTHON_ABS" - "$SITE" "${WHEELS[@]}" <<'EOF'
import os
import sys
import zipfile

site = sys.argv[1]
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            parts = info.filename.split("/")
            if parts[0].endswith(".data") and len(parts) > 2:
                kind, rest = parts[1], parts[2:]
                if kind == "scripts":
                    dest = os.path.join(site, "bin", *rest)
                elif kind in ("purelib", "platlib"):
                    dest = os.path.join(site, *rest)
                else:
                    continue
            else:
                dest = os.path.join(site, *parts)
            if info.is_dir():
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(info) as src, open(dest, "wb") as out:
                out.write(src.read())
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111 or "/bin/" in dest:
                os.chmod(dest, mode | 0o755)
EOF
    fi
fi

# 3. environment: scratch site + src on the path, the machine's torch, a kernelspec for nbclient
export PYTHONPATH="$SITE:$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH"   # ninja, for DeepSpeed's JIT-built ops
export JUPYTER_PATH="$WORK/jupyter" JUPYTER_RUNTIME_DIR="$WORK/runtime" IPYTHONDIR="$WORK/ipython"
export MPLCONFIGDIR="$WORK/mpl" MPLBACKEND=agg TQDM_DISABLE=1 PYTHONHASHSEED=0 PYDEVD_DISABLE_FILE_VALIDATION=1
cat > "$WORK/jupyter/kernels/lab-gpu-check/kernel.json" <<EOF
{"argv": ["$PYTHON_ABS", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
 "display_name": "Python 3 (lab book GPU check)", "language": "python"}
EOF

# 4. the check itself
exec "$PYTHON_ABS" scripts/gpu_check.py --kernel lab-gpu-check "$@"
