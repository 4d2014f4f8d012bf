"""DPGAN — Differentially Private GAN (Xie, Lin, Wang, Wang & Zhou, arXiv:1802.06739, 2018), Algorithm 1.

A Wasserstein GAN (Arjovsky et al. 2017) whose *critic* f_w is trained privately:

    for each generator iteration, for t = 1..n_critic:
        sample a batch {x_i} of real records and {z_i} of noise
        g_w(x_i, z_i) = ∇_w [ f_w(x_i) − f_w(g_θ(z_i)) ]              (one pair per sampled record)
        ḡ_w = (1/m) ( Σ_i g_w(x_i, z_i) + N(0, σ² c_g² I) )          (Alg. 1, line 7)
        w ← w + α · RMSProp(w, ḡ_w);   w ← clip(w, −c_p, c_p)        (lines 8-9)
    θ ← θ − α · RMSProp(θ, ∇_θ (1/m) Σ_i −f_w(g_θ(z_i)))           (generator, no privacy cost)

The paper bounds the norm of each pair's gradient g_w(x_i, z_i) by c_g through weight
clipping (its Lemma 1, with bounded activations); that bound is hard to check for a
given network, so here each pair's gradient is *explicitly* clipped to c_g (as in
DP-SGD) before the Gaussian noise — the guarantee then holds for any network; weight
clipping is kept for the WGAN Lipschitz constraint. (Clipping only the real term and
adding the fake term unclipped is also private but biases the critic towards pushing
fakes down: its update is then dominated by the fake term and the generator stalls.)

Batches are Poisson-sampled at rate q = m/n so that Opacus' RDP accountant for the
subsampled Gaussian mechanism applies (the paper uses the moments accountant of
Abadi et al. 2016, the same analysis); σ is chosen so that n_critic × iterations
critic steps spend exactly the requested (ε, δ).

SmartNoise's ``DPGAN`` is different: a standard (non-Wasserstein) GAN whose
discriminator is trained with Opacus DP-SGD; it is not the paper's algorithm.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch.func import functional_call, grad, vmap

from .accounting import gaussian_epsilon, gaussian_noise_multiplier
from .base import Synthesizer
from .dpsgd import private_gradient
from .nets import Generator, discriminator, poisson_batch, sample_table


class DPGAN(Synthesizer):
    """DPGAN synthesizer: ``fit(df, epsilon, delta)``, ``sample(n)``, ``epsilon_spent``."""

    def __init__(self, iterations: int = 200, n_critic: int = 5, batch_size: int = 64, lr: float = 5e-4,
                 grad_clip: float = 1.0, weight_clip: float = 0.1, hidden: int = 64, seed: int = 0):
        if min(iterations, n_critic, batch_size) < 1 or grad_clip <= 0 or weight_clip <= 0:
            raise ValueError("iterations, n_critic, batch_size must be >= 1 and clip bounds > 0")
        self.iterations, self.n_critic, self.batch_size, self.lr = iterations, n_critic, batch_size, lr
        self.grad_clip, self.weight_clip, self.hidden, self.seed = grad_clip, weight_clip, hidden, seed
        self.epsilon_spent = 0.0

    def _fit(self, df: pd.DataFrame, epsilon: float, delta: float) -> None:
        torch.manual_seed(self.seed)
        tgen = torch.Generator().manual_seed(self.seed)
        x_real = torch.from_numpy(self.schema.to_unit(df))
        n, width = x_real.shape
        if self.batch_size >= n:
            raise ValueError(f"batch_size {self.batch_size} must be smaller than the {n} records")
        q = self.batch_size / n
        steps = self.iterations * self.n_critic
        self.noise_multiplier = gaussian_noise_multiplier(epsilon, delta, q, steps)

        self.generator = Generator(self.schema, hidden=self.hidden)
        critic = discriminator(width, self.hidden)
        opt_c = torch.optim.RMSprop(critic.parameters(), lr=self.lr)
        opt_g = torch.optim.RMSprop(self.generator.parameters(), lr=self.lr)

        def pair_term(params: dict, x: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
            f = functional_call(critic, params, (torch.stack([x, fake]),)).squeeze(1)
            return f[1] - f[0]  # critic loss for the pair: −[f(x_i) − f(G(z_i))]
        per_example_grads = vmap(grad(pair_term), in_dims=(None, 0, 0))

        for _ in range(self.iterations):
            for _ in range(self.n_critic):
                self._private_critic_step(critic, opt_c, per_example_grads, x_real[poisson_batch(n, q, tgen)], tgen)
            opt_g.zero_grad()
            fake = self.generator(self.generator.noise(self.batch_size, tgen))
            (-critic(fake).mean()).backward()
            opt_g.step()

        self.epsilon_spent = gaussian_epsilon(self.noise_multiplier, q, steps, delta)
        self._tgen = torch.Generator().manual_seed(self.seed + 1)

    def _private_critic_step(self, critic, opt_c, per_example_grads, xb: torch.Tensor, tgen) -> None:
        """Xie et al. 2018, Alg. 1 lines 5-9, one critic update (the DP-SGD part is ``dpsgd.private_gradient``)."""
        params = {k: v.detach() for k, v in critic.named_parameters()}
        per_pair = None
        if len(xb):  # line 5: {x_i} ~ Poisson(q) batch of real records; line 6: {z_i} ~ p(z), one per x_i
            with torch.no_grad():
                fake = self.generator(self.generator.noise(len(xb), tgen))
            per_pair = per_example_grads(params, xb, fake)  # line 7: g_w(x_i, z_i) = ∇_w[f_w(x_i) − f_w(g_θ(z_i))]
        # line 7 (cont.): ḡ_w = (1/m)(Σ_i clip(g_w(x_i, z_i), c_g) + N(0, σ²c_g²I)); m = q·n, the expected
        # batch size (a fixed normaliser, not the drawn size, so it reveals nothing about the batch)
        noisy = private_gradient(per_pair, params, self.grad_clip, self.noise_multiplier, self.batch_size, tgen)
        for name, p in critic.named_parameters():
            p.grad = noisy[name]
        opt_c.step()  # line 8: w ← w + α·RMSProp(w, ḡ_w)   (the loss is −[f(x) − f(G(z))], so a descent step)
        with torch.no_grad():  # line 9: w ← clip(w, −c_p, c_p)
            for p in critic.parameters():
                p.clamp_(-self.weight_clip, self.weight_clip)

    def _sample(self, n: int) -> pd.DataFrame:
        return sample_table(self.generator, self.schema, n, self._tgen)
