"""Fairness probes for face classifiers (Khan & Fu 2021, "One Label, One Billion Faces").

``faces`` — the procedural face generator (continuous latent traits, overlapping populations, 32×32
renders, counterfactual faces); ``annotators`` — the synthetic datasets' category systems and partly
stereotyped labelling rules; ``classifier`` — the torchvision ``Dataset``/``DataLoader`` pipeline and the
small CNN; ``probes`` — cross-dataset agreement, per-category consistency, Cohen's kappa, bootstrap
intervals, counterfactual trait effects, category balancing and ``fairlearn`` per-group metrics.
"""
