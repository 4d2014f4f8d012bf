# The GPU check (CONTRIBUTING.md, "The GPU check"), in two steps:
#   here (registry access):   make gpu-wheels  -> .whl/ (git-ignored), the wheels the GPU machine lacks
#   there (a CUDA machine):   make gpu-check   (= bash scripts/gpu_check.sh) -> reports/gpu_check.{json,md}
# The GPU machine has CUDA torch, numpy, pandas, scipy, matplotlib, scikit-learn and pytest, no registry,
# and at most 64 MiB of files travel with the working tree: .whl/ holds everything else the chapters and
# tests/gpu/ import, for CPython 3.12 on manylinux x86_64, without torch, nvidia-*, triton or the packages above.
.PHONY: gpu-check gpu-wheels

GPU_WHEELS := .whl
GPU_PYVER := 3.12
# the GPU machine's torch is 2.11; torchvision must match it (0.N+15), not this machine's pin
GPU_TORCHVISION ?= 0.26.0
GPU_WHEELS_MAX_MIB ?= 55
# binary wheels (pins from constraints.txt / requirements-nodeps.txt); no debugpy: ipykernel runs without it
GPU_WHEEL_PKGS := \
	nbclient nbformat jupyter_client jupyter_core ipykernel ipython ipython_pygments_lexers traitlets comm \
	matplotlib-inline nest-asyncio2 tornado pyzmq psutil platformdirs fastjsonschema jsonschema \
	jsonschema-specifications referencing rpds-py attrs jedi parso pexpect ptyprocess prompt_toolkit wcwidth \
	stack-data asttokens executing pure_eval typing_extensions Pygments tqdm \
	hjson ninja py-cpuinfo pydantic pydantic_core annotated-types typing-inspection msgpack einops \
	opacus opt_einsum ctgan rdt Faker ISLP \
	optuna alembic SQLAlchemy Mako colorlog PyYAML greenlet fairlearn narwhals \
	pfl dp-accounting prv-accountant multiprocess absl-py dm-tree dill
# sdist-only: built here with pip wheel (DeepSpeed's ops JIT-build on the GPU machine, DS_BUILD_OPS=0)
GPU_SDIST_PKGS := deepspeed fairscale

gpu-wheels: $(STAMP)
	@set -euo pipefail; tmp=$(GPU_WHEELS).tmp; rm -rf $$tmp; mkdir -p $$tmp; trap 'rm -rf $$tmp' EXIT; \
	pin() { grep -ih -m1 "^$$1==" constraints.txt requirements-nodeps.txt | sed 's/[[:space:]].*//' | head -n1; }; \
	pins=""; for p in $(GPU_WHEEL_PKGS) $(GPU_SDIST_PKGS); do \
	  v=$$(pin $$p); test -n "$$v" || { echo "gpu-wheels: no pin for $$p in constraints.txt" >&2; exit 1; }; \
	  pins="$$pins $$v"; done; \
	sdists=""; for p in $(GPU_SDIST_PKGS); do sdists="$$sdists $$(pin $$p)"; done; \
	binaries=$$(for v in $$pins; do case " $$sdists " in *" $$v "*) ;; *) echo $$v;; esac; done); \
	echo "gpu-wheels: downloading $$(echo $$binaries | wc -w) wheels for CPython $(GPU_PYVER), manylinux x86_64"; \
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYVER) \
	  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
	  -d $$tmp $$binaries torchvision==$(GPU_TORCHVISION) 2>&1 | grep -v "^WARNING: Location" || true; \
	echo "gpu-wheels: building $$sdists (DS_BUILD_OPS=0)"; \
	DS_BUILD_OPS=0 $(BIN)/pip wheel -q --no-cache-dir --no-deps --no-build-isolation -w $$tmp $$sdists 2>&1 \
	  | grep -v "^WARNING: Location" || true; \
	for v in $$pins torchvision==$(GPU_TORCHVISION); do \
	  stem=$$(echo "$${v%%==*}" | tr 'A-Z-' 'a-z_'); ver=$${v##*==}; \
	  ls $$tmp | tr 'A-Z-' 'a-z_' | grep -q "^$${stem}_$${ver//-/_}_" \
	    || { echo "gpu-wheels: $$v is missing from $$tmp" >&2; exit 1; }; done; \
	if ls $$tmp | grep -iE '^(torch|triton|numpy|pandas|scipy|matplotlib|scikit_learn|nvidia_[a-z0-9_]+)-[0-9]'; then \
	  echo "gpu-wheels: the GPU machine has these already; they must not be in $(GPU_WHEELS)" >&2; exit 1; fi; \
	size=$$(du -cb $$tmp/*.whl | tail -n1 | cut -f1); mib=$$(( (size + 1048575) / 1048576 )); \
	(cd $$tmp && ls -l *.whl | awk '{printf "%10d  %s\n", $$5, $$9}') > $$tmp/MANIFEST.txt; \
	echo "total $$size bytes ($$mib MiB), $$(ls $$tmp/*.whl | wc -l) wheels" >> $$tmp/MANIFEST.txt; \
	cat $$tmp/MANIFEST.txt; \
	if [ $$mib -gt $(GPU_WHEELS_MAX_MIB) ]; then \
	  echo "gpu-wheels: $$mib MiB is over the $(GPU_WHEELS_MAX_MIB) MiB limit (64 MiB travel with the tree)" >&2; exit 1; fi; \
	rm -rf $(GPU_WHEELS); mv $$tmp $(GPU_WHEELS); \
	echo "gpu-wheels: $(GPU_WHEELS)/ is ready ($$mib MiB); on the GPU machine run: bash scripts/gpu_check.sh"

# on the GPU machine: no venv, no registry; the machine's python and torch (GPU_CHECK_ARGS="--only zero" ...)
gpu-check:
	bash scripts/gpu_check.sh $(GPU_CHECK_ARGS)
