"""Part II of the book, *Scaling out*: data, sharded and pipeline parallelism.

``zero``            the ZeRO paper's memory and communication model (Rajbhandari et al. 2020)
``zero_stages``     a reference ZeRO-DP, stages 0-3, on ``torch.distributed`` collectives
``zero_deepspeed``  DeepSpeed's ZeRO and ZeRO-Offload beside it; CPU-Adam re-measured
``task``            the small regression task every parallel reference trains
``sharded``         DDP, fairscale OSS / ShardedDDP / FSDP, PyTorch FSDP2 (and DeepSpeed) on that task, measured
``sharded_math``    flat parameters, padding and shards; the closed forms the measurements meet
``comm_trace``      counts what library code sends through ``torch.distributed``
``pipeline_sim``    GPipe / 1F1B schedules simulated: makespan, bubble, in-flight micro-batches; balance
``pipeline_run``    real pipelines on ``torch.distributed.pipelining``, busy time and bubble measured

Workers here take ``(rank, world_size, ...)`` from :func:`lab_utils.dist.launch` or from
``torchrun`` (see :mod:`lab_utils.run`), put every tensor on :func:`lab_utils.dist.rank_device`
and return a :class:`lab_utils.dist.RunRecord`.
"""
