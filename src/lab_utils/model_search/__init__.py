"""Model Search (Google, 2021): a small, real neural architecture search platform, in PyTorch + Optuna.

* :mod:`.data` — the generated keyword-spotting task and scikit-learn's digits;
* :mod:`.space` — building blocks, the JSON spec, the builder;
* :mod:`.search` — beam search with mutation (Model Search's defaults), Optuna random / TPE baselines;
* :mod:`.transfer` — weight transfer modes and adaptively balanced distillation;
* :mod:`.trainer` — training one candidate;
* :mod:`.platform` — asynchronous workers over Optuna's SQLite store, stop / resume, crashed trials;
* :mod:`.ensemble` — trials read back, average and greedy ensembles, Pareto fronts.

Sources: github.com/google/model_search (README, configs, search/, meta/); Hanzhang Hu et al., "Efficient
forward architecture search", NeurIPS 2019, and the Interspeech 2019 paper on speech (README).
"""
