"""lab_utils: reference algorithms and measurement helpers for the DL & AI News (Feb 2021) lab book.

One module per topic; each chapter imports what it teaches from here:

=====================  ==========================================================
``device``             device choice and the scale profile (ci / cpu / gpu)
``seed``               deterministic seeds
``measure``            time, bytes of real tensors, saved activations, FLOPs
``dist``               launch N local processes from a notebook, safely
``plot``               the book's plotting style and shared plots
``memory``             memory anatomy of training, gradient accumulation
=====================  ==========================================================

Chapter modules (``checkpointing``, ``zero``, ...) are listed in the book's intro.
"""

__version__ = "0.1.0"
