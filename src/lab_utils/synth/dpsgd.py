"""The one DP-SGD clip-and-noise step (Abadi et al., CCS 2016, Algorithm 1), shared by every DP-SGD user here.

Algorithm 1 of the paper, for a (Poisson-sampled) batch L_t:

    g_t(x_i)   ← ∇_θ L(θ_t, x_i)                                  (per-example gradient)
    ḡ_t(x_i)   ← g_t(x_i) / max(1, ‖g_t(x_i)‖₂ / C)                 (clip: each record's norm ≤ C)
    g̃_t        ← (1/L) ( Σ_i ḡ_t(x_i) + N(0, σ² C² I) )            (add noise, normalise)

``clip_per_example`` is the clipping line, ``add_noise`` the Gaussian line and
``private_gradient`` the whole step. The normaliser L is the *expected* batch size
q·n under Poisson sampling (fixed, so it does not depend on which records were
drawn); ``n`` is treated as public. DPGAN's critic, DP-CTGAN's discriminator, QUAIL's
classifier and the empirical audit (``audit``) all call ``private_gradient``; nothing
else in the package clips or adds Gaussian noise. The mechanism-check helpers in
``audit`` hook ``clip_per_example`` and ``add_noise`` by name, so keep the calls
going through this module's globals.
"""

from __future__ import annotations

import torch


def clip_per_example(per_example: dict[str, torch.Tensor], clip: float) -> dict[str, torch.Tensor]:
    """Alg. 1 "clip gradient": scale each record's gradient (dim 0 indexes records) to L2 norm ≤ ``clip``."""
    if clip <= 0:
        raise ValueError(f"the clipping bound C must be > 0, got {clip}")
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_example.values()))
    scale = (clip / (norms + 1e-12)).clamp(max=1.0)
    return {k: g * scale.view(-1, *[1] * (g.dim() - 1)) for k, g in per_example.items()}


def add_noise(summed: dict[str, torch.Tensor], std: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Alg. 1 "add noise": Σ_i ḡ(x_i) + N(0, std² I), one independent draw per coordinate (std = σ·C)."""
    return {k: v + torch.randn(v.shape, generator=gen) * std for k, v in summed.items()}


def private_gradient(per_example: dict[str, torch.Tensor] | None, params: dict[str, torch.Tensor], clip: float,
                     noise_multiplier: float, normaliser: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One DP-SGD gradient: (Σ_i clip(g_i, C) + N(0, σ²C²I)) / L; ``per_example=None`` for an empty batch.

    ``params`` gives the names and shapes (an empty Poisson batch still gets its noise).
    """
    if noise_multiplier < 0 or normaliser <= 0:
        raise ValueError(f"need noise_multiplier >= 0 and normaliser > 0, got {noise_multiplier}, {normaliser}")
    if per_example is None:
        summed = {k: torch.zeros_like(v) for k, v in params.items()}
    else:
        summed = {k: g.sum(0) for k, g in clip_per_example(per_example, clip).items()}
    noisy = add_noise(summed, noise_multiplier * clip, gen)
    return {k: v / normaliser for k, v in noisy.items()}
