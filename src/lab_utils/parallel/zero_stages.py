"""A reference implementation of ZeRO-DP stages 0-3 with ``torch.distributed`` collectives.

Rajbhandari et al., *ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models*, SC 2020, Section 5 (ZeRO-DP) and Section 7 (communication). fp32 Adam, so
the memory it holds is the fp32 analogue of the paper's model (:func:`lab_utils.parallel.zero.
fp32_adam_memory_per_device`: params 4Ψ, grads 4Ψ, Adam's m and v 8Ψ).

Stages 0-2 keep all parameters in one flat fp32 buffer, padded to a multiple of N_d so
it splits into N_d equal partitions; the model's parameters are views into it. Rank r
owns partition r = ``flat[r*S:(r+1)*S]``:

* stage 0 (plain DP): all-reduce the flat gradient, every rank runs Adam on everything;
* stage 1 (P_os, Section 5.1): reduce-scatter the gradient (each rank needs only its
  partition reduced), Adam on the own partition (so only 1/N_d of m and v exist),
  all-gather the updated partitions into the flat parameters;
* stage 2 (P_os+g, Section 5.2): as stage 1, but only the reduced gradient partition is
  kept; the full gradient is freed as soon as it is reduce-scattered. (DeepSpeed reduces
  it bucket by bucket *during* backward so it never exists at once; this reference
  reduces once after backward, so its peak differs, not its persistent state.)
* stage 3 (P_os+g+p, Section 5.3): each module that owns parameters (a "unit") gets its
  own flat padded buffer of which a rank keeps only its partition. A forward pre-hook
  all-gathers the unit's parameters, a forward hook frees them (storage resized to 0),
  a hook on the unit's output gathers them again for its backward, and when all of the
  unit's gradients are accumulated they are reduce-scattered and parameters and
  gradients are freed: 3Ψ of communication instead of 2Ψ (Section 7.2.2).

Every collective goes through :class:`CommCounter`, which adds the bytes the way the
paper counts volume (an all-reduce = reduce-scatter + all-gather = 2x the tensor).
"""

from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist
from torch import nn

from lab_utils.measure import training_state_bytes
from lab_utils.parallel.zero import STAGES

_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class CommCounter:
    """Runs collectives and counts their volume in bytes (paper convention, Section 7.1)."""

    def __init__(self) -> None:
        self.bytes = {"all_reduce": 0, "reduce_scatter": 0, "all_gather": 0}

    def all_reduce(self, t: torch.Tensor) -> None:
        dist.all_reduce(t)
        self.bytes["all_reduce"] += 2 * t.numel() * t.element_size()

    def reduce_scatter(self, out: torch.Tensor, full: torch.Tensor) -> None:
        _reduce_scatter(out, full)
        self.bytes["reduce_scatter"] += full.numel() * full.element_size()

    def all_gather(self, full: torch.Tensor, part: torch.Tensor) -> None:
        _all_gather(full, part)
        self.bytes["all_gather"] += full.numel() * full.element_size()

    @property
    def total(self) -> int:
        return sum(self.bytes.values())


def _padded(n: int, world_size: int) -> int:
    return math.ceil(n / world_size) * world_size


class _Unit:
    """Stage 3: one module's parameters as a flat padded buffer, of which this rank keeps a partition."""

    def __init__(self, module: nn.Module, rank: int, world_size: int, comm: CommCounter) -> None:
        self.params = list(module.parameters(recurse=False))
        self.numel = sum(p.numel() for p in self.params)
        self.padded = _padded(self.numel, world_size)
        size = self.padded // world_size
        self.full = torch.zeros(self.padded)
        offset = 0
        for p in self.params:
            self.full[offset:offset + p.numel()].copy_(p.data.flatten())
            p.data = self.full[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        self.shard = nn.Parameter(self.full[rank * size:(rank + 1) * size].clone())
        self.shard.grad = torch.zeros(size)
        self.comm, self.world_size, self.ready = comm, world_size, 0
        self.release()
        module.register_forward_pre_hook(lambda m, args: self.gather())
        module.register_forward_hook(self._after_forward)
        for p in self.params:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    def gather(self) -> None:
        """All-gather the partitions into the full buffer (the module's parameters are views of it)."""
        storage = self.full.untyped_storage()
        if storage.nbytes() == 0:
            storage.resize_(self.padded * self.full.element_size())
            self.comm.all_gather(self.full, self.shard.detach())

    def release(self) -> None:
        """Free the full parameters; only this rank's partition stays."""
        self.full.untyped_storage().resize_(0)

    def _after_forward(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        self.release()
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda grad: self.gather())  # runs before this unit's backward

    def _grad_ready(self, p: torch.Tensor) -> None:
        self.ready += 1
        if self.ready < len(self.params):
            return
        grads = [q.grad.flatten() for q in self.params]
        flat = torch.cat(grads + [grads[0].new_zeros(self.padded - self.numel)])
        self.comm.reduce_scatter(self.shard.grad, flat)
        self.shard.grad.div_(self.world_size)
        for q in self.params:
            q.grad = None
        self.release()


class ZeroDataParallel:
    """ZeRO-DP ``stage`` 0-3 around ``model`` with Adam; ``torch.distributed`` must be initialised.

    >>> zero = ZeroDataParallel(model, stage=2, lr=1e-2)
    >>> loss = loss_fn(model(x_local), y_local)
    >>> zero.backward(loss)   # gradients reduced (stage 0) or reduce-scattered (1-3)
    >>> zero.step()           # Adam on this rank's partition, parameters all-gathered (1-2)
    """

    def __init__(self, model: nn.Module, stage: int, lr: float = 1e-2,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}")
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters: there is nothing for ZeRO to partition")
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("ZeroDataParallel needs torch.distributed initialised: run it in a worker "
                               "started by lab_utils.dist.launch(fn, world_size, ...)")
        self.model, self.stage = model, stage
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.numel = sum(p.numel() for p in self.params)
        self.comm = CommCounter()
        if stage == 3:
            self.units = [_Unit(m, self.rank, self.world_size, self.comm) for m in model.modules()
                          if any(p.requires_grad for p in m.parameters(recurse=False))]
            self.masters = [u.shard for u in self.units]
            self.padded = sum(u.padded for u in self.units)
        else:
            self._flatten()
        self.optimizer = torch.optim.Adam(self.masters, lr=lr, betas=betas, eps=eps, foreach=False)

    def _flatten(self) -> None:
        """Stages 0-2: one flat (padded) parameter buffer; rank r's partition is its r-th slice."""
        n = self.numel if self.stage == 0 else _padded(self.numel, self.world_size)
        self.padded, self.part = n, n // self.world_size
        self.flat_param = torch.zeros(n)
        self.flat_grad = torch.zeros(n) if self.stage < 2 else None
        self.grad_views = []
        offset = 0
        for p in self.params:
            view = slice(offset, offset + p.numel())
            self.flat_param[view].copy_(p.data.flatten())
            p.data = self.flat_param[view].view_as(p)
            if self.flat_grad is not None:
                self.grad_views.append(self.flat_grad[view].view_as(p))
            offset += p.numel()
        mine = slice(self.rank * self.part, (self.rank + 1) * self.part)
        if self.stage == 0:
            master = nn.Parameter(self.flat_param)
            master.grad = self.flat_grad
        else:
            master = nn.Parameter(self.flat_param[mine])  # a view: Adam updates flat_param in place
            master.grad = self.flat_grad[mine] if self.stage == 1 else torch.zeros(self.part)
        self.masters = [master]

    def backward(self, loss: torch.Tensor) -> None:
        """Backward, then average the gradients over ranks into each rank's partition."""
        if self.stage in (0, 1):
            self.flat_grad.zero_()
            for p, view in zip(self.params, self.grad_views):
                p.grad = view  # backward accumulates into the flat gradient in place
        if self.stage == 3:
            for u in self.units:
                u.ready = 0
        loss.backward()
        master = self.masters[0]
        if self.stage == 0:
            self.comm.all_reduce(self.flat_grad)
            self.flat_grad.div_(self.world_size)
        elif self.stage == 1:
            reduced = torch.empty(self.part)
            self.comm.reduce_scatter(reduced, self.flat_grad)
            master.grad.copy_(reduced).div_(self.world_size)
        elif self.stage == 2:
            grads = [p.grad.flatten() for p in self.params]
            flat = torch.cat(grads + [grads[0].new_zeros(self.padded - self.numel)])
            for p in self.params:
                p.grad = None  # the full gradient is not kept (P_g)
            self.comm.reduce_scatter(master.grad, flat)
            master.grad.div_(self.world_size)
        else:
            missing = [i for i, u in enumerate(self.units) if u.ready != len(u.params)]
            if missing:
                raise RuntimeError(f"stage 3: units {missing} got no gradient in backward; every parameter "
                                   "must take part in the loss (unused parameters are not supported)")

    def step(self) -> None:
        """Adam on this rank's partition; stages 1-2 then all-gather the updated parameters."""
        self.optimizer.step()
        if self.stage in (1, 2):
            self.comm.all_gather(self.flat_param, self.masters[0].detach().clone())

    def full_parameters(self) -> torch.Tensor:
        """All parameters as one flat vector (model order), gathered without counting."""
        if self.stage == 3:
            for u in self.units:
                u.full.untyped_storage().resize_(u.padded * u.full.element_size())
                _all_gather(u.full, u.shard.detach())
        out = torch.cat([p.detach().flatten() for p in self.params]).clone()
        if self.stage == 3:
            for u in self.units:
                u.release()
        return out

    def state_bytes(self) -> dict[str, int]:
        """Measured bytes of parameters, gradients and Adam states this rank holds now."""
        return training_state_bytes(list(self.model.parameters()) + self.masters, self.optimizer).as_dict()


# ---------------------------------------------------------------- a tiny task
def make_model(sizes: tuple[int, ...] = (16, 32, 32, 4), seed: int = 0) -> nn.Sequential:
    """An MLP ``Linear-Tanh-...-Linear`` with deterministic initial weights."""
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list >= 2 positive layer widths, got {sizes}")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def make_batch(step: int, global_batch: int, sizes: tuple[int, ...], seed: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step`` of a fixed regression task ``y = sin(x W)``; identical on every rank."""
    w = torch.randn(sizes[0], sizes[-1], generator=torch.Generator().manual_seed(seed))
    x = torch.randn(global_batch, sizes[0], generator=torch.Generator().manual_seed(seed + 1 + step))
    return x, torch.sin(x @ w)


def train_single(sizes: tuple[int, ...], steps: int, global_batch: int, lr: float = 1e-2,
                 seed: int = 0) -> dict:
    """The baseline: one process, ``torch.optim.Adam`` on the whole global batch."""
    model = make_model(sizes, seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=False)
    losses = []
    for step in range(steps):
        x, y = make_batch(step, global_batch, sizes, seed)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    return {"losses": losses, "params": params, "num_params": params.numel()}


def train_worker(rank: int, world_size: int, stage: int, sizes: tuple[int, ...], steps: int,
                 global_batch: int, lr: float = 1e-2, seed: int = 0) -> dict:
    """Worker for ``lab_utils.dist.launch``: ZeRO ``stage`` training on this rank's share of each batch.

    Returns the global loss per step, the final parameters, the measured state bytes,
    the counted communication bytes per step, and the step times.
    """
    return train_zero(stage, sizes, steps, global_batch, lr, seed)


def train_stages_worker(rank: int, world_size: int, stages: tuple[int, ...], sizes: tuple[int, ...],
                        steps: int, global_batch: int, lr: float = 1e-2, seed: int = 0) -> list[dict]:
    """Worker: :func:`train_worker` for each of ``stages`` in turn (one launch, one process group)."""
    return [train_zero(stage, sizes, steps, global_batch, lr, seed) for stage in stages]


def train_zero(stage: int, sizes: tuple[int, ...], steps: int, global_batch: int,
               lr: float = 1e-2, seed: int = 0) -> dict:
    """Train a fresh :func:`make_model` with ZeRO ``stage`` inside an initialised process group."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if global_batch % world_size:
        raise ValueError(f"global_batch {global_batch} is not divisible by world_size {world_size}")
    model = make_model(sizes, seed)
    zero = ZeroDataParallel(model, stage, lr=lr)
    local = global_batch // world_size
    losses, times = [], []
    for step in range(steps):
        x, y = make_batch(step, global_batch, sizes, seed)
        x, y = x[rank * local:(rank + 1) * local], y[rank * local:(rank + 1) * local]
        t0 = time.perf_counter()
        loss = nn.functional.mse_loss(model(x), y)
        zero.backward(loss)
        zero.step()
        times.append(time.perf_counter() - t0)
        logged = loss.detach().clone()
        dist.all_reduce(logged)  # for the log only, not counted
        losses.append(logged.item() / world_size)
    return {"rank": rank, "stage": stage, "losses": losses, "params": zero.full_parameters(),
            "state_bytes": zero.state_bytes(), "comm_bytes_per_step": zero.comm.total / steps,
            "comm_bytes": {k: v / steps for k, v in zero.comm.bytes.items()},
            "num_params": zero.numel, "padded_params": zero.padded,
            "optimizer_tensors": len(zero.masters), "step_times": times}
