"""Part I of the book, *Fitting large models* on one device.

``memory``         the memory anatomy of training (model states, activations), gradient accumulation
``checkpointing``  gradient checkpointing: Chen et al. 2016's sqrt(n) and budgeted plans
``nin``            Network in Network (Lin et al. 2014), the checkpointing chapter's CNN
"""
