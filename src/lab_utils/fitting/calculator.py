"""*Will it fit?* — the per-GPU training memory of a Transformer, and the cheapest change that fits it.

This is the model behind the site's calculator page (``book/calculator.md``). The page's JavaScript
(``book/_static/calculator/calculator.js``) computes the same numbers in the browser; its constants come
from :func:`page_data` (``python -m lab_utils.fitting.calculator`` writes ``calculator_data.js``), and
``tests/test_calculator_page.py`` checks its outputs against this module on random configurations.

Per GPU, in bytes (GB = 10^9 bytes, as in the ZeRO paper):

* **model states** — :func:`lab_utils.parallel.zero.memory_breakdown` (Rajbhandari et al. 2020, §3.1,
  §5, Figure 1) with the bytes per parameter of :func:`lab_utils.fitting.memory.bytes_per_parameter`;
  with optimizer offload the gradients and optimizer states live on the host,
  :func:`lab_utils.parallel.zero.offload_memory` (Ren et al. 2021, §4);
* **activations** — Korthikanti et al. 2022, *Reducing Activation Recomputation in Large Transformer
  Models* (arXiv:2205.05198), no tensor, sequence or pipeline parallelism (t = p = 1):
  §4.1, Eq. 1: one layer saves s·b·h·(34 + 5·a·s/h) bytes of 16-bit activations (1-byte dropout masks);
  §4.3: outside the layers, the embedding dropout mask (sbh), the final layer norm's and the output
  projection's inputs (2sbh each) and the fp32 logits (4sbv); checkpointing keeps only each checkpointed
  segment's input (2sbh; §5's "full recomputation" with one layer per segment) and re-materialises one
  segment at a time — Chen et al. 2016's Eq. 1, :func:`lab_utils.fitting.checkpointing.
  activation_memory_estimate`, with ``sqrt_n_segments`` for √n;
* **an allowance** for the CUDA context, workspaces, communication buckets and fragmentation:
  ``ALLOWANCE_FIXED`` bytes + ``ALLOWANCE_FRACTION`` of the rest — a rule of thumb, not a measurement.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from lab_utils.fitting.checkpointing import activation_memory_estimate, even_segments, sqrt_n_segments
from lab_utils.fitting.memory import bytes_per_parameter
from lab_utils.parallel.zero import memory_breakdown, offload_memory

GB = 1e9
ALLOWANCE_FIXED = 1e9       # CUDA context, cuBLAS/cuDNN workspaces, NCCL buffers
ALLOWANCE_FRACTION = 0.10   # the caching allocator's fragmentation, temporary buffers, gradient buckets
MAX_DP = 4096               # the largest data-parallel degree the fix search proposes
# name: (label, bytes per activation element: Korthikanti's 16-bit count, or fp32 throughout)
PRECISIONS = {"fp32": ("fp32", 4), "mixed": ("fp16/bf16 mixed, fp32 master weights", 2),
              "bf16": ("bf16 pure (no master copy)", 2)}
OPTIMIZERS = {"sgd": "SGD", "momentum": "SGD with momentum", "adam": "Adam / AdamW",
              "adam8bit": "8-bit Adam"}
CHECKPOINTING = {"none": "none", "sqrt": "√n segments (Chen et al. 2016)", "every": "every layer"}
STAGES = {0: "0: plain DP", 1: "1: P_os", 2: "2: P_os+g (FSDP SHARD_GRAD_OP)",
          3: "3: P_os+g+p (FSDP FULL_SHARD)"}
# name: (label, parameters, layers L, hidden size h, heads a, vocabulary v, sequence length s)
PRESETS = {
    "gpt2-124m": ("GPT-2 124M", 124e6, 12, 768, 12, 50257, 1024),
    "1.3b": ("1.3B (GPT-3 XL)", 1.3e9, 24, 2048, 16, 50257, 2048),
    "7b": ("7B (LLaMA-7B shape)", 7e9, 32, 4096, 32, 32000, 2048),
    "13b": ("13B (LLaMA-13B shape)", 13e9, 40, 5120, 40, 32000, 2048),
    "70b": ("70B (Llama-2-70B shape)", 70e9, 80, 8192, 64, 32000, 4096),
}
# name: (label, nominal GB = 10^9 bytes; the cards hold a little more, e.g. 80 GiB = 85.9 GB)
GPUS = {"t4": ("NVIDIA T4 16 GB", 16), "a100-40": ("A100 40 GB", 40), "a100-80": ("A100 80 GB", 80),
        "h100": ("H100 80 GB", 80), "h200": ("H200 141 GB", 141)}
# What each change costs the run, in arbitrary units, for ranking fixes (cheapest first):
COSTS = {
    "micro_batch": 1,        # per halving of the micro-batch (gradient accumulation keeps the batch)
    "stage": {0: 0, 1: 0.5, 2: 1, 3: 3},  # ZeRO §7: stages 1-2 move what DP moves, stage 3 1.5x
    "checkpointing": 3,      # one more forward pass, about +33 % compute (0.5 between √n and every layer)
    "precision": 2,          # fp32 -> mixed precision: loss scaling, usually faster
    "optimizer": 4,          # Adam -> 8-bit Adam: a different optimizer's numerics
    "offload": 5,            # CPU Adam and PCIe traffic every step
    "gpus": 6,               # per doubling of the data-parallel degree: more hardware
}


@dataclass(frozen=True)
class Config:
    """One training setup, per data-parallel process (one GPU)."""

    params: float = 7e9
    layers: int = 32
    hidden: int = 4096
    heads: int = 32
    vocab: int = 32000
    seq: int = 2048
    micro_batch: int = 1
    precision: str = "mixed"
    optimizer: str = "adam"
    stage: int = 0
    dp: int = 1
    offload: bool = False
    checkpointing: str = "none"
    gpu_gb: float = 80

    def __post_init__(self) -> None:
        ints = {"layers": self.layers, "hidden": self.hidden, "heads": self.heads, "vocab": self.vocab,
                "seq": self.seq, "micro_batch": self.micro_batch, "dp": self.dp}
        for name, value in ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if not self.params > 0 or not self.gpu_gb > 0:
            raise ValueError(f"params and gpu_gb must be > 0, got {self.params!r} and {self.gpu_gb!r}")
        for name, value, known in (("precision", self.precision, PRECISIONS),
                                   ("optimizer", self.optimizer, OPTIMIZERS),
                                   ("checkpointing", self.checkpointing, CHECKPOINTING),
                                   ("stage", self.stage, STAGES)):
            if value not in known:
                raise ValueError(f"{name} must be one of {list(known)}, got {value!r}")
        if self.offload and self.stage == 0:
            raise ValueError("optimizer offload runs on ZeRO's partitioning: choose stage 1, 2 or 3 "
                             "(DeepSpeed's offload_optimizer), or switch offload off")

    @classmethod
    def preset(cls, name: str, **changes) -> Config:
        """A configuration with the shape of one of :data:`PRESETS`, plus ``changes``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: use one of {list(PRESETS)}")
        _, params, layers, hidden, heads, vocab, seq = PRESETS[name]
        return cls(**{**dict(params=params, layers=layers, hidden=hidden, heads=heads, vocab=vocab,
                             seq=seq), **changes})


@dataclass(frozen=True)
class Breakdown:
    """Bytes on each GPU (and on its host, with offload) for one :class:`Config`."""

    params: float
    grads: float
    optimizer_states: float
    activations: float
    allowance: float
    host: float
    gpu: float

    @property
    def model_states(self) -> float:
        return self.params + self.grads + self.optimizer_states

    @property
    def total(self) -> float:
        return self.model_states + self.activations + self.allowance

    @property
    def fits(self) -> bool:
        return self.total <= self.gpu


def layer_activation_bytes(seq: int, micro_batch: int, hidden: int, heads: int, elem: int = 2
                           ) -> tuple[int, int]:
    """``(input, rest)``: bytes one Transformer layer saves for backward (Korthikanti et al. §4.1, Eq. 1).

    With 16-bit elements (``elem=2``) the sum is s·b·h·(34 + 5·a·s/h): attention 11sbh + 5as²b, MLP
    19sbh, two layer norms 4sbh. Of it, 2sbh + as²b are 1-byte dropout masks; the rest is 16-bit, so
    ``elem`` bytes per element give sbh·(16·elem + 2) + (2·elem + 1)·as²b. ``input`` (elem·sbh, the
    first layer norm's input) is all a checkpointed layer keeps.
    """
    sbh = seq * micro_batch * hidden
    total = sbh * (16 * elem + 2) + (2 * elem + 1) * heads * seq * seq * micro_batch
    return elem * sbh, total - elem * sbh


def outside_layers_bytes(seq: int, micro_batch: int, hidden: int, vocab: int, elem: int = 2) -> int:
    """Korthikanti et al. §4.3: embedding dropout mask sbh, final layer norm and output projection
    inputs (elem·sbh each), fp32 logits for the cross-entropy 4sbv — 5sbh + 4sbv in 16 bits."""
    sbh = seq * micro_batch * hidden
    return sbh + 2 * elem * sbh + 4 * seq * micro_batch * vocab


@functools.lru_cache(maxsize=4096)
def layers_peak_bytes(layers: int, x: int, rest: int, checkpointing: str) -> int:
    """Peak saved bytes of ``layers`` equal layers (input ``x``, the rest ``rest``): Chen et al. Eq. 1.

    The chain is ``[x_0, r_0, x_1, r_1, ..., x_{L-1}, r_{L-1}]`` (the last layer's output is the final
    layer norm's input, counted in :func:`outside_layers_bytes`); a checkpointed segment of layers
    ``[i, j)`` keeps ``x_i`` and re-materialises ``r_i .. x_j`` in the backward pass.
    """
    n = 2 * layers - 1
    sizes = [x, rest] * layers
    if checkpointing == "none":
        return activation_memory_estimate(sizes, [(0, n)], [False]).peak
    per_layer = even_segments(layers, layers) if checkpointing == "every" else sqrt_n_segments(layers)
    segments = [(2 * b, min(2 * e, n)) for b, e in per_layer]
    return activation_memory_estimate(sizes, segments).peak


def activation_bytes(cfg: Config) -> int:
    """Bytes of activations one GPU keeps for its micro-batch (ZeRO does not partition them)."""
    elem = PRECISIONS[cfg.precision][1]
    x, rest = layer_activation_bytes(cfg.seq, cfg.micro_batch, cfg.hidden, cfg.heads, elem)
    layers = layers_peak_bytes(cfg.layers, x, rest, cfg.checkpointing)
    return layers + outside_layers_bytes(cfg.seq, cfg.micro_batch, cfg.hidden, cfg.vocab, elem)


def breakdown(cfg: Config) -> Breakdown:
    """Per-GPU bytes: model states (ZeRO §5 / ZeRO-Offload §4), activations, allowance."""
    w, g, k = bytes_per_parameter(cfg.optimizer, cfg.precision)
    states = memory_breakdown(cfg.params, cfg.dp, cfg.stage, k=k, param_bytes=w, grad_bytes=g)
    params, grads, opt, host = states.params, states.grads, states.optimizer_states, 0.0
    if cfg.offload:  # the GPU keeps its parameters (partitioned at stage 3); the host the rest
        host = offload_memory(cfg.params, cfg.dp, k=k, param_bytes=w, grad_bytes=g).cpu
        grads = opt = 0.0
    acts = activation_bytes(cfg)
    allowance = ALLOWANCE_FIXED + ALLOWANCE_FRACTION * (params + grads + opt + acts)
    return Breakdown(params, grads, opt, acts, allowance, host, cfg.gpu_gb * GB)


def stage_table(cfg: Config) -> dict[int, float]:
    """Model states per GPU at each ZeRO stage, everything else as in ``cfg`` (ZeRO Figure 1)."""
    return {s: breakdown(replace(cfg, stage=s, offload=cfg.offload and s > 0)).model_states for s in STAGES}


@dataclass(frozen=True)
class Fix:
    """The cheapest change that fits: the new configuration, what changed, and its cost."""

    config: Config
    changes: tuple[str, ...]
    cost: float


def change_cost(old: Config, new: Config) -> tuple[float, tuple[str, ...]]:
    """The cost of going from ``old`` to ``new`` (:data:`COSTS`), and the fields that changed."""
    cost, changed = 0.0, []
    if new.micro_batch != old.micro_batch:
        steps, mb = 0, new.micro_batch
        while mb < old.micro_batch:
            mb, steps = mb * 2, steps + 1
        cost, changed = cost + COSTS["micro_batch"] * steps, changed + ["micro_batch"]
    if new.dp != old.dp:
        doublings = (new.dp // old.dp).bit_length() - 1
        cost, changed = cost + COSTS["gpus"] * doublings, changed + ["dp"]
    if new.stage != old.stage:
        cost, changed = cost + COSTS["stage"][new.stage] - COSTS["stage"][old.stage], changed + ["stage"]
    if new.checkpointing != old.checkpointing:
        cost += COSTS["checkpointing"] if old.checkpointing == "none" else 0.5
        changed.append("checkpointing")
    for name in ("precision", "optimizer", "offload"):
        if getattr(new, name) != getattr(old, name):
            cost, changed = cost + COSTS[name], changed + [name]
    return cost, tuple(changed)


def candidates(cfg: Config) -> list[Config]:
    """Every configuration the fix search considers, in a fixed order (the page enumerates the same)."""
    dps = [cfg.dp * 2**j for j in range(13) if cfg.dp * 2**j <= max(MAX_DP, cfg.dp)]
    stages = list(range(cfg.stage, 4))
    offloads = [True] if cfg.offload else [False, True]
    precisions = [cfg.precision] + (["mixed"] if cfg.precision == "fp32" else [])
    optimizers = [cfg.optimizer] + (["adam8bit"] if cfg.optimizer == "adam" else [])
    ckpts = [cfg.checkpointing] + [c for c in ("sqrt", "every") if c != cfg.checkpointing]
    mbs = [d for d in range(cfg.micro_batch, 0, -1) if cfg.micro_batch % d == 0]
    out = []
    for dp, stage, off, prec, opt, ck, mb in itertools.product(dps, stages, offloads, precisions,
                                                               optimizers, ckpts, mbs):
        if not (off and stage == 0):
            out.append(replace(cfg, dp=dp, stage=stage, offload=off, precision=prec, optimizer=opt,
                               checkpointing=ck, micro_batch=mb))
    return out


def cheapest_fix(cfg: Config) -> Fix | None:
    """The lowest-cost change that makes ``cfg`` fit; ``None`` when ``cfg`` fits or nothing does.

    Ranked by cost, then by the number of fields changed, then by the bytes it needs, then by the
    order of :func:`candidates`.
    """
    if breakdown(cfg).fits:
        return None
    ranked = sorted(((*change_cost(cfg, c), i, c) for i, c in enumerate(candidates(cfg))),
                    key=lambda t: (t[0], len(t[1]), t[2]))
    best = None
    for cost, changed, _i, c in ranked:
        if best is not None and (cost, len(changed)) != (best[0], len(best[1])):
            break
        b = breakdown(c)
        if b.fits and (best is None or b.total < best[2]):
            best = (cost, changed, b.total, c)
    return None if best is None else Fix(best[3], best[1], best[0])


QUERY = {"params": "params", "layers": "layers", "hidden": "hidden", "heads": "heads", "vocab": "vocab",
         "seq": "seq", "micro_batch": "mb", "precision": "precision", "optimizer": "optimizer",
         "stage": "stage", "dp": "dp", "offload": "offload", "checkpointing": "ckpt", "gpu_gb": "gpu_gb"}


def to_query(cfg: Config, only: tuple[str, ...] | None = None) -> str:
    """The page's URL parameters for ``cfg`` (``only`` some fields: the page fills in the rest)."""
    parts = []
    for field, value in asdict(cfg).items():
        if only is None or field in only:
            text = repr(float(value)) if field in ("params", "gpu_gb") else str(int(value)) \
                if isinstance(value, bool) else str(value)
            parts.append(f"{QUERY[field]}={text}")
    return "&".join(parts)


def page_data() -> dict:
    """The constants the page's JavaScript needs, from this module and ``bytes_per_parameter``."""
    bpp = {f"{o}/{p}": list(bytes_per_parameter(o, p)) for o in OPTIMIZERS for p in PRECISIONS}
    return {"precisions": PRECISIONS, "optimizers": OPTIMIZERS, "checkpointing": CHECKPOINTING,
            "stages": {str(k): v for k, v in STAGES.items()}, "presets": PRESETS, "gpus": GPUS,
            "bytes_per_parameter": bpp, "allowance_fixed": ALLOWANCE_FIXED,
            "allowance_fraction": ALLOWANCE_FRACTION, "max_dp": MAX_DP, "costs": COSTS,
            "defaults": asdict(Config()), "query": QUERY, "gb": GB}


def page_data_js() -> str:
    """``calculator_data.js``: :func:`page_data` as a global the page reads (no fetch: works from file://)."""
    body = json.dumps(page_data(), indent=1, ensure_ascii=False)
    return ("// Generated by `python -m lab_utils.fitting.calculator` from lab_utils: do not edit.\n"
            f"window.CALCULATOR_DATA = {body};\n")


DATA_JS = Path("book/_static/calculator/calculator_data.js")

if __name__ == "__main__":
    DATA_JS.write_text(page_data_js(), encoding="utf8")
    print(f"wrote {DATA_JS}")
