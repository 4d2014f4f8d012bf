"""Part I of the book, *Fitting large models* on one device.

``memory``         the memory anatomy of training (model states, activations), gradient accumulation
``checkpointing``  gradient checkpointing: Chen et al. 2016's sqrt(n) and budgeted plans
``nin``            Network in Network (Lin et al. 2014), the checkpointing chapter's CNN
``calculator``     "Will it fit?": per-GPU memory of a Transformer's training and the cheapest fix (the site's page)
"""
