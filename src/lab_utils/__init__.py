"""lab_utils: reference algorithms and measurement helpers for the DL & AI News (Feb 2021) lab book.

The core helpers sit at the top and never import a topic; each part of the book has a subpackage:

=====================  ==========================================================
``device``             device choice and the scale profile (ci / cpu / gpu)
``seed``               deterministic seeds
``measure``            time, bytes of real tensors, saved activations, FLOPs
``dist``               launch N local processes from a notebook, safely; the rank's device
``record``             the run record every distributed experiment returns
``run``                ``torchrun ... -m lab_utils.run <experiment>``: the same experiments, any cluster
``plot``               the book's plotting style and shared plots
``gpu_report``         the last ``make gpu-check`` report, for the chapters' GPU run-time lines
``graded``, ``grading``  the graded labs (otter-grader)
``fitting``            Part I, fitting large models: memory anatomy, gradient checkpointing
``parallel``           Part II, scaling out: ZeRO (reference and DeepSpeed), sharded DP, pipelines
``synth``              Part III, privacy: DP synthetic data and the re-identification attack
=====================  ==========================================================
"""

__version__ = "0.1.0"
