"""The site calculator's model (lab_utils.fitting.calculator) against closed forms and its own promises."""

import random
from dataclasses import replace
from pathlib import Path

import pytest

from lab_utils.fitting import calculator as calc
from lab_utils.fitting.calculator import Config, breakdown, cheapest_fix, stage_table
from lab_utils.fitting.checkpointing import sqrt_n_bounds
from lab_utils.parallel.zero import memory_breakdown, offload_memory

ROOT = Path(__file__).resolve().parents[1]


def random_config(rng: random.Random) -> Config:
    """A random but sensible configuration (also used by tests/test_calculator_page.py)."""
    if rng.random() < 0.5:
        shape = dict(zip(("params", "layers", "hidden", "heads", "vocab", "seq"),
                         calc.PRESETS[rng.choice(list(calc.PRESETS))][1:]))
    else:
        shape = dict(params=float(round(10 ** rng.uniform(7, 11.5))), layers=rng.randint(1, 96),
                     hidden=64 * rng.randint(1, 192), heads=rng.choice([1, 4, 8, 12, 16, 32, 64, 96]),
                     vocab=rng.randint(1000, 256000), seq=rng.choice([128, 512, 1024, 2048, 4096, 8192]))
    stage = rng.randint(0, 3)
    gpu = rng.choice([g[1] for g in calc.GPUS.values()] + [24, 48.5, 12])
    return Config(**shape, micro_batch=rng.choice([1, 2, 3, 4, 6, 8, 12, 16, 32]),
                  precision=rng.choice(list(calc.PRECISIONS)), optimizer=rng.choice(list(calc.OPTIMIZERS)),
                  stage=stage, dp=rng.choice([1, 2, 4, 8, 16, 64, 256, 1000]),
                  offload=stage > 0 and rng.random() < 0.3, checkpointing=rng.choice(list(calc.CHECKPOINTING)),
                  gpu_gb=gpu)


def test_zero_figure_1_from_the_calculator():
    """ZeRO Figure 1: Ψ = 7.5 B, N_d = 64, mixed-precision Adam: 120, 31.4, 16.6, 1.9 GB per device."""
    table = stage_table(Config(params=7.5e9, dp=64))
    assert {s: round(v / 1e9, 1) for s, v in table.items()} == {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}
    assert table[0] == 16 * 7.5e9 and table[3] == 16 * 7.5e9 / 64
    assert table[1] == 2 * 7.5e9 + 2 * 7.5e9 + 12 * 7.5e9 / 64


@pytest.mark.parametrize("s,b,h,a", [(2048, 1, 12288, 96), (1024, 4, 768, 12), (4096, 2, 8192, 64)])
def test_korthikanti_eq_1(s, b, h, a):
    """§4.1, Eq. 1: s·b·h·(34 + 5as/h) bytes per layer in 16 bits; fp32 doubles all but the masks."""
    x, rest = calc.layer_activation_bytes(s, b, h, a, elem=2)
    assert x + rest == s * b * h * 34 + 5 * a * s * s * b and x == 2 * s * b * h
    x4, rest4 = calc.layer_activation_bytes(s, b, h, a, elem=4)
    assert x4 + rest4 == s * b * h * 66 + 9 * a * s * s * b
    # §4.3: embedding dropout mask sbh, final layer norm and output projection inputs 2sbh each, fp32 logits 4sbv
    assert calc.outside_layers_bytes(s, b, h, 50257) == 5 * s * b * h + 4 * s * b * 50257


def test_gpt3_175b_attention_term():
    """GPT-3 175B's shape (a = 96, s = 2048, h = 12288): the attention term 5as/h = 80 outweighs the 34."""
    x, rest = calc.layer_activation_bytes(2048, 1, 12288, 96)
    assert (x + rest) / (2048 * 12288) == 34 + 80


def test_checkpointing_closed_forms():
    x, r, L = 2, 30, 16
    assert calc.layers_peak_bytes(L, x, r, "none") == L * (x + r)
    # full recomputation (Korthikanti §5): each layer's input, 2sbhL, plus the one layer recomputed
    assert calc.layers_peak_bytes(L, x, r, "every") == L * x + (x + r)
    # √16 = 4 segments of 4 layers: 4 inputs kept, one segment of 4 layers recomputed
    assert calc.layers_peak_bytes(L, x, r, "sqrt") == 4 * x + 4 * (x + r)
    for n in (1, 2, 5, 7, 12, 32, 80, 97):
        assert calc.layers_peak_bytes(n, 1, 0, "sqrt") <= sqrt_n_bounds(n, 1)[1]
    assert calc.layers_peak_bytes(1, x, r, "every") == x + r == calc.layers_peak_bytes(1, x, r, "none")


def test_model_states_are_the_zero_model():
    rng = random.Random(1)
    for _ in range(200):
        cfg = random_config(rng)
        b = breakdown(cfg)
        w, g, k = calc.bytes_per_parameter(cfg.optimizer, cfg.precision)
        ref = memory_breakdown(cfg.params, cfg.dp, cfg.stage, k=k, param_bytes=w, grad_bytes=g)
        assert b.params == ref.params
        if cfg.offload:
            assert (b.grads, b.optimizer_states) == (0, 0)
            assert b.host == offload_memory(cfg.params, cfg.dp, k=k, param_bytes=w, grad_bytes=g).cpu
        else:
            assert (b.grads, b.optimizer_states, b.host) == (ref.grads, ref.optimizer_states, 0)
        assert b.total == b.model_states + b.activations + b.allowance
        assert b.allowance == calc.ALLOWANCE_FIXED + calc.ALLOWANCE_FRACTION * (b.model_states + b.activations)


def test_suggested_fix_applied_fits_and_is_the_cheapest():
    rng = random.Random(2)
    seen = 0
    for i in range(150):
        cfg = random_config(rng)
        fix = cheapest_fix(cfg)
        if breakdown(cfg).fits:
            assert fix is None
            continue
        seen += 1
        options = calc.candidates(cfg)
        if fix is None:
            assert not any(breakdown(c).fits for c in options), cfg
            continue
        assert breakdown(fix.config).fits, (cfg, fix)
        assert fix.config in options and calc.change_cost(cfg, fix.config) == (fix.cost, fix.changes)
        if i % 10 == 0:  # brute force: nothing cheaper fits
            cheaper = [c for c in options if calc.change_cost(cfg, c)[0] < fix.cost]
            assert not any(breakdown(c).fits for c in cheaper), (cfg, fix)
    assert seen >= 30


def test_fix_examples():
    # 7B, Adam, mixed precision on one A100 80 GB: ZeRO-Offload on the one GPU fits it (ZeRO-Offload §1)
    fix = cheapest_fix(Config.preset("7b", gpu_gb=80))
    assert fix is not None and set(fix.changes) == {"stage", "offload"} and fix.config.dp == 1
    # Figure 1's model on 32 GB GPUs: ZeRO-2 and checkpointing, on the same 64 GPUs
    fix = cheapest_fix(Config(params=7.5e9, dp=64, stage=1, gpu_gb=32))
    assert fix is not None and fix.config.stage == 2 and fix.config.checkpointing == "every"
    assert cheapest_fix(Config.preset("gpt2-124m", gpu_gb=16)) is None


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="offload"):
        Config(stage=0, offload=True)
    with pytest.raises(ValueError, match="micro_batch"):
        Config(micro_batch=0)
    with pytest.raises(ValueError, match="precision"):
        Config(precision="fp8")
    with pytest.raises(ValueError, match="preset"):
        Config.preset("gpt-5")


def test_query_and_generated_page_data_are_current():
    q = calc.to_query(Config(params=7.5e9, dp=64), only=("params", "dp", "offload"))
    assert q == "params=7500000000.0&dp=64&offload=0"
    generated = (ROOT / "book" / "_static" / "calculator" / "calculator_data.js").read_text(encoding="utf8")
    assert generated == calc.page_data_js(), "run `.venv/bin/python -m lab_utils.fitting.calculator`"


def test_every_preset_and_recipe_has_bytes():
    for o in calc.OPTIMIZERS:
        for p in calc.PRECISIONS:
            assert len(calc.bytes_per_parameter(o, p)) == 3
    assert replace(Config.preset("70b"), dp=8).dp == 8
