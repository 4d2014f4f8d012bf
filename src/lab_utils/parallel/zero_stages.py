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

Every collective goes through :class:`lab_utils.parallel.comm.CommCounter`, which adds the
bytes the way the paper counts volume (an all-reduce = reduce-scatter + all-gather = 2x the
tensor) and what a ring implementation sends per rank. Every tensor is created on the rank's
device (:func:`lab_utils.dist.rank_device`: ``cuda:LOCAL_RANK`` under NCCL, the CPU under gloo).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from lab_utils.dist import rank_device
from lab_utils.measure import training_state_bytes
from lab_utils.parallel.comm import CommCounter, all_gather_uncounted
from lab_utils.parallel.task import make_model, train_steps
from lab_utils.parallel.zero import STAGES
from lab_utils.record import RunRecord


def _padded(n: int, world_size: int) -> int:
    return math.ceil(n / world_size) * world_size


class Stage3Unit:
    """ZeRO-3's unit (P_p, Section 5.3): one module's parameters as a flat padded buffer, of which this
    rank keeps only its partition. Gathered before the module's forward and again before its backward,
    released after each; its gradient is reduce-scattered as soon as it is complete: parameters move
    twice (all-gather) and gradients once (reduce-scatter) per step, 3Psi (Section 7.2.2)."""

    def __init__(self, module: nn.Module, rank: int, world_size: int, comm: CommCounter,
                 like: dict) -> None:
        self.params = list(module.parameters(recurse=False))
        self.numel = sum(p.numel() for p in self.params)
        self.padded = _padded(self.numel, world_size)
        size = self.padded // world_size
        self.full = torch.zeros(self.padded, **like)  # like = the rank's device and the model's dtype
        offset = 0
        for p in self.params:
            self.full[offset:offset + p.numel()].copy_(p.data.flatten())
            p.data = self.full[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        self.shard = nn.Parameter(self.full[rank * size:(rank + 1) * size].clone())
        self.shard.grad = torch.zeros(size, **like)
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
        """``model`` must already be on :func:`lab_utils.dist.rank_device`; every buffer ZeRO adds goes there too."""
        if stage not in STAGES:
            raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}")
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters: there is nothing for ZeRO to partition")
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("ZeroDataParallel needs torch.distributed initialised: run it in a worker "
                               "started by lab_utils.dist.launch(fn, world_size, ...)")
        self.device = rank_device()
        self.like = {"device": self.device, "dtype": self.params[0].dtype}  # every buffer ZeRO adds
        misplaced = {str(p.device) for p in self.params} - {str(self.device)}
        if misplaced:
            raise ValueError(f"the model's parameters are on {sorted(misplaced)} but this rank computes on "
                             f"{self.device}: build the model with device=lab_utils.dist.rank_device()")
        self.model, self.stage = model, stage
        # the process group knows rank and size; ZeRO's partitioning follows it (one source of truth)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.numel = sum(p.numel() for p in self.params)
        self.comm = CommCounter(self.world_size)
        if stage == 3:
            self.units = [Stage3Unit(m, self.rank, self.world_size, self.comm, self.like) for m in model.modules()
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
        self.flat_param = torch.zeros(n, **self.like)
        self.flat_grad = torch.zeros(n, **self.like) if self.stage < 2 else None
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
            master.grad = self.flat_grad[mine] if self.stage == 1 else torch.zeros(self.part, **self.like)
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
            reduced = torch.empty(self.part, **self.like)
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
                all_gather_uncounted(u.full, u.shard.detach())
        out = torch.cat([p.detach().flatten() for p in self.params]).cpu()
        if self.stage == 3:
            for u in self.units:
                u.release()
        return out

    def state_bytes(self) -> dict[str, int]:
        """Measured bytes of parameters, gradients and Adam states this rank holds now."""
        return training_state_bytes(list(self.model.parameters()) + self.masters, self.optimizer).as_dict()


# ------------------------------------------------------------ training runs
def train_zero(rank: int, world_size: int, stage: int, sizes: tuple[int, ...], steps: int,
               global_batch: int, lr: float = 1e-2, seed: int = 0, dtype: str = "float32") -> RunRecord:
    """Train a fresh :func:`~lab_utils.parallel.task.make_model` with ZeRO ``stage`` on this rank's
    slice of every global batch, inside an initialised process group."""
    device = rank_device()
    model = make_model(sizes, seed, device, dtype)
    zero = ZeroDataParallel(model, stage, lr=lr)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.mse_loss(model(x), y)
        zero.backward(loss)  # gradients reduced (stage 0) or reduce-scattered (1-3)
        zero.step()          # Adam on this rank's partition; parameters all-gathered (1-2)
        return loss

    losses, times = train_steps(rank, world_size, step, steps, global_batch, sizes, seed, device, dtype)
    volume, ring = zero.comm.per_step(steps)
    return RunRecord("zero-reference", rank, world_size, device=str(device), backend=dist.get_backend(),
                     config=dict(stage=stage, sizes=tuple(sizes), steps=steps, global_batch=global_batch,
                                 lr=lr, seed=seed, dtype=dtype),
                     losses=losses, step_times=times, state_bytes=zero.state_bytes(), comm_bytes=volume,
                     comm_ring_bytes=ring, params=zero.full_parameters(),
                     extra={"num_params": zero.numel, "padded_params": zero.padded,
                            "optimizer_tensors": len(zero.masters)})


def zero_worker(rank: int, world_size: int, stages: tuple[int, ...] = STAGES,
                sizes: tuple[int, ...] = (64, 127, 127, 16), steps: int = 20, global_batch: int = 32,
                lr: float = 1e-2, seed: int = 0, dtype: str = "float32") -> list[RunRecord]:
    """Worker for :func:`lab_utils.dist.launch` and ``torchrun -m lab_utils.run zero``:
    :func:`train_zero` for each of ``stages`` in turn (one process group for all)."""
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ValueError(f"stages must be among {STAGES}, got {bad}")
    return [train_zero(rank, world_size, stage, sizes, steps, global_batch, lr, seed, dtype) for stage in stages]
