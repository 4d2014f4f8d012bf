# make gpu-check / make gpu-wheels: see scripts/gpu_check.sh (filled in by the GPU-check work)
.PHONY: gpu-check gpu-wheels
