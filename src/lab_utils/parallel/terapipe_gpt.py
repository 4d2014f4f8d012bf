"""A small GPT whose pipeline stages run token slices with a carried key/value cache (TeraPipe §3).

TeraPipe (Li et al. 2021, arXiv:2102.07988, §3.1-3.2) relies on causal attention: token ``t`` attends to
tokens ``<= t`` only, so a slice ``[a, a+l)`` can be computed by a layer as soon as the keys and values of
tokens ``< a`` exist. A stage keeps them (the *KV cache*) and runs the next slice's attention over
``cache + own keys``. Backward needs care: slice ``i``'s keys and values are used by every later slice, so
their gradient is the sum of what each later slice sends back into the cache. :class:`StageRunner` does it
the simple, exact way: each slice's graph stays alive on its stage; later slices see *detached leaf
copies* of the cached keys/values, whose ``.grad`` collects those contributions; the backwards run in
reverse slice order, each one seeding its own keys/values with the collected gradient.

The model: token + position embeddings, pre-LayerNorm blocks (causal multi-head self-attention, GELU MLP of
width 4d), final LayerNorm, a linear head; loss = mean next-token cross-entropy over all ``B * L`` tokens.
:func:`reference_loss_and_grads` computes the same model in one piece with PyTorch's own causal
``scaled_dot_product_attention``: an independent path for the equality test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

Chunk = tuple[int, int, int, int]  # (batch start, batch end, token start, token end)


@dataclass(frozen=True)
class GPTConfig:
    """Vocabulary, width, heads, layers and sequence length of the small GPT."""

    vocab: int = 64
    d_model: int = 64
    n_head: int = 4
    n_layer: int = 4
    seq_len: int = 64

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention of a slice over ``cache + slice`` keys/values (causal inside the slice)."""

    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head, self.qkv, self.proj = n_head, nn.Linear(d, 3 * d), nn.Linear(d, d)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q, k, v`` of ``x`` (B, l, d), each (B, heads, l, d/heads)."""
        B, length, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        return tuple(t.view(B, length, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))

    def forward(self, x: torch.Tensor, past_k: list[torch.Tensor], past_v: list[torch.Tensor]):
        """The slice's output and its own ``k, v`` (to cache). Query ``j`` of the slice sits at position
        ``c + j`` (``c`` cached tokens) and sees keys ``0 .. c + j``: the mask is ``tril`` shifted by ``c``."""
        B, length, d = x.shape
        q, k, v = self.heads(x)
        keys, values = torch.cat([*past_k, k], dim=2), torch.cat([*past_v, v], dim=2)
        c = keys.shape[2] - length
        scores = q @ keys.transpose(-2, -1) / math.sqrt(d // self.n_head)       # (B, h, l, c + l)
        allowed = torch.ones(length, c + length, dtype=torch.bool, device=x.device).tril(diagonal=c)
        att = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        return self.proj((att @ values).transpose(1, 2).reshape(B, length, d)), k, v


class Block(nn.Module):
    """Pre-LN Transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.ln1, self.attn, self.ln2 = nn.LayerNorm(d), CausalSelfAttention(d, n_head), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, past_k, past_v):
        a, k, v = self.attn(self.ln1(x), past_k, past_v)
        x = x + a
        return x + self.mlp(self.ln2(x)), k, v


def build_gpt(cfg: GPTConfig, seed: int = 0) -> nn.ModuleDict:
    """The whole model, initialised from ``seed`` on the CPU (so every rank builds the same weights);
    parameter order: embeddings, blocks, final LayerNorm, head."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = nn.ModuleDict({
            "tok": nn.Embedding(cfg.vocab, cfg.d_model), "pos": nn.Embedding(cfg.seq_len, cfg.d_model),
            "blocks": nn.ModuleList(Block(cfg.d_model, cfg.n_head) for _ in range(cfg.n_layer)),
            "ln_f": nn.LayerNorm(cfg.d_model), "head": nn.Linear(cfg.d_model, cfg.vocab)})
    finally:
        torch.random.set_rng_state(gen_state)
    return model


def even_layers(n_layer: int, K: int) -> list[int]:
    """Blocks per stage, as even as possible (earlier stages take the extra)."""
    if not 1 <= K <= n_layer:
        raise ValueError(f"need 1 <= stages K ({K}) <= layers ({n_layer}): give the model more layers")
    base, extra = divmod(n_layer, K)
    return [base + (1 if s < extra else 0) for s in range(K)]


def stage_module(model: nn.ModuleDict, stage: int, K: int) -> nn.ModuleDict:
    """Stage ``stage`` of ``K``: its blocks, plus the embeddings on the first and the head on the last."""
    sizes = even_layers(len(model["blocks"]), K)
    start = sum(sizes[:stage])
    parts = {}
    if stage == 0:
        parts.update(tok=model["tok"], pos=model["pos"])
    parts["blocks"] = nn.ModuleList(list(model["blocks"])[start:start + sizes[stage]])
    if stage == K - 1:
        parts.update(ln_f=model["ln_f"], head=model["head"])
    return nn.ModuleDict(parts)


def make_tokens(cfg: GPTConfig, batch: int, step: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets, (batch, seq_len) each, from a generator seeded by ``(seed, step)``."""
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    seq = torch.randint(0, cfg.vocab, (batch, cfg.seq_len + 1), generator=g)
    return seq[:, :-1], seq[:, 1:]


class StageRunner:
    """Runs one stage's forward and backward per chunk ``(b0, b1, t0, t1)``, carrying the KV cache of each
    batch group ``(b0, b1)`` across its token slices; ``tokens`` (stage 0) and ``targets`` (last stage) are
    the whole batch; the loss of a chunk is its summed cross-entropy over ``batch * seq_len``."""

    def __init__(self, stage: nn.ModuleDict, tokens: torch.Tensor | None = None,
                 targets: torch.Tensor | None = None) -> None:
        self.stage, self.tokens, self.targets = stage, tokens, targets
        self.first, self.last = "tok" in stage, "head" in stage
        self.cache: dict[tuple[int, int], list[tuple[list, list]]] = {}
        self.saved: dict[Chunk, tuple] = {}

    def forward(self, chunk: Chunk, x: torch.Tensor | None = None) -> torch.Tensor:
        """The chunk's output (hidden state, or its loss share on the last stage); keeps its graph."""
        b0, b1, t0, t1 = chunk
        if self.first:
            pos = torch.arange(t0, t1, device=self.tokens.device)
            x_in, h = None, self.stage["tok"](self.tokens[b0:b1, t0:t1]) + self.stage["pos"](pos)
        else:
            x_in = h = x.detach().requires_grad_(True)
        cache = self.cache.setdefault((b0, b1), [([], []) for _ in self.stage["blocks"]])
        own = []
        for block, (ks, vs) in zip(self.stage["blocks"], cache):
            h, k, v = block(h, ks, vs)
            k_leaf, v_leaf = k.detach().requires_grad_(True), v.detach().requires_grad_(True)
            own.append((k, v, k_leaf, v_leaf))
            ks.append(k_leaf)   # later slices attend to the leaf copies; their .grad collects the sum
            vs.append(v_leaf)
        if self.last:
            logits = self.stage["head"](self.stage["ln_f"](h))
            n_total = self.targets.numel()
            h = F.cross_entropy(logits.flatten(0, 1), self.targets[b0:b1, t0:t1].flatten(), reduction="sum") / n_total
        self.saved[chunk] = (x_in, h, own)
        return h

    def backward(self, chunk: Chunk, grad_out: torch.Tensor | None = None) -> torch.Tensor | None:
        """Backward of ``chunk`` (after every later slice of its batch group): seeds its output with
        ``grad_out`` (ones for the loss) and its own keys/values with what later slices put in their leaf
        copies' ``.grad``; returns the gradient of its input hidden state (``None`` on the first stage)."""
        x_in, out, own = self.saved.pop(chunk)
        roots, seeds = [out], [torch.ones_like(out) if grad_out is None else grad_out]
        for k, v, k_leaf, v_leaf in own:
            for t, leaf in ((k, k_leaf), (v, v_leaf)):
                if leaf.grad is not None:
                    roots.append(t)
                    seeds.append(leaf.grad)
        torch.autograd.backward(roots, seeds)
        return None if x_in is None else x_in.grad

    def reset(self) -> None:
        """Forget the KV caches (between steps)."""
        self.cache.clear()
        self.saved.clear()


def run_sliced(model: nn.ModuleDict, tokens: torch.Tensor, targets: torch.Tensor, chunks: list[Chunk],
               K: int = 1) -> float:
    """All ``K`` stages in this process, chunk by chunk (forward in order, backward in reverse): the
    token-pipelined computation without the processes. Returns the loss; gradients land in ``model``."""
    runners = [StageRunner(stage_module(model, s, K), tokens, targets) for s in range(K)]
    loss = 0.0
    for ch in chunks:
        h = None
        for r in runners:
            h = r.forward(ch, h)
        loss += h.item()
    for ch in reversed(chunks):
        g = None
        for r in reversed(runners):
            g = r.backward(ch, g)
    return loss


def reference_loss_and_grads(cfg: GPTConfig, batch: int, seed: int = 0, step: int = 0,
                             device: torch.device | str = "cpu") -> tuple[float, torch.Tensor]:
    """The unsliced, unpipelined model with PyTorch's causal ``scaled_dot_product_attention``: its loss and
    flat parameter gradient (in :func:`build_gpt` order)."""
    model = build_gpt(cfg, seed).to(device)
    tokens, targets = (t.to(device) for t in make_tokens(cfg, batch, step, seed))
    h = model["tok"](tokens) + model["pos"](torch.arange(cfg.seq_len, device=device))
    for blk in model["blocks"]:
        q, k, v = blk.attn.heads(blk.ln1(h))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + blk.attn.proj(a.transpose(1, 2).reshape(h.shape))
        h = h + blk.mlp(blk.ln2(h))
    loss = F.cross_entropy(model["head"](model["ln_f"](h)).flatten(0, 1), targets.flatten())
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()]).cpu()


def token_chunks(slices: list[int], batch: int, micro_batches: int = 1) -> list[Chunk]:
    """Chunks for ``micro_batches`` equal batch groups, each cut into the token ``slices`` (§3.4's joint
    slicing; one slice is GPipe's micro-batching, one micro-batch TeraPipe's token slicing)."""
    if micro_batches < 1 or batch % micro_batches:
        raise ValueError(f"the batch {batch} must split into {micro_batches} equal micro-batches")
    if not slices or min(slices) < 1:
        raise ValueError(f"slices must be positive token counts, got {slices}")
    b = batch // micro_batches
    bounds = [0]
    for s in slices:
        bounds.append(bounds[-1] + s)
    return [(g * b, (g + 1) * b, a, e) for g in range(micro_batches) for a, e in zip(bounds, bounds[1:])]
