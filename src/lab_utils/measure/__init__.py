"""Measurements: time, memory, bytes of real tensors, FLOPs (one module each, all importable from here).

Everything here measures real objects; nothing is estimated:

* :func:`time_it` runs a callable (warm-up, repeats) and reports the median and spread,
  with CUDA events on a GPU and ``time.perf_counter`` elsewhere (synchronising Apple MPS);
  :func:`interleaved_times` times several callables in alternating rounds.
* :func:`training_state_bytes` adds up the bytes of a model's parameters, their
  gradients and an optimizer's state tensors, counting each storage once. Works on
  any device, so the memory anatomy of training can be checked on a CPU.
* :func:`saved_activation_bytes` counts the tensors autograd saves for backward while
  running a forward pass (``torch.autograd.graph.saved_tensors_hooks``), each storage
  once, separating parameters from activations.
* :func:`live_feature_map_bytes` follows the feature maps alive during a training step.
* :func:`graph_saved_bytes` adds up what an autograd graph saved (any thread, e.g. fairscale Pipe's
  workers); :func:`live_saved_bytes` follows saved tensors until backward frees them (a stage's peak).
* :func:`peak_cuda_memory` wraps ``torch.cuda.max_memory_allocated``; :func:`free_memory_bytes`,
  :func:`release_cached_memory`; :func:`tracemalloc_peak` (Python objects, not tensors).
* :func:`interface_bytes_sent` reads what a network interface really sent (``/proc/net/dev``).
* :func:`count_flops` uses ``torch.utils.flop_counter.FlopCounterMode``.
"""

from lab_utils.measure.activations import (  # noqa: F401
    LiveBytes,
    LiveSaved,
    SavedBytes,
    graph_saved_bytes,
    live_feature_map_bytes,
    live_saved_bytes,
    saved_activation_bytes,
)
from lab_utils.measure.memory import (  # noqa: F401
    LivePeak,
    PeakMemory,
    free_memory_bytes,
    live_tensor_peak,
    peak_cuda_memory,
    release_cached_memory,
    tracemalloc_peak,
)
from lab_utils.measure.network import interface_bytes_sent  # noqa: F401
from lab_utils.measure.tensors import (  # noqa: F401
    GiB,
    KiB,
    MiB,
    TrainingBytes,
    fmt_bytes,
    local_tensor,
    sharded_state_bytes,
    storage_key,
    training_state_bytes,
    unique_storage_bytes,
)
from lab_utils.measure.timing import (  # noqa: F401
    Timing,
    as_device,
    count_flops,
    interleaved_times,
    time_it,
)
