"""What a search leaves behind: its trials read back from the store, ensembles of the best, Pareto fronts.

Ensembling follows Model Search's default ``ensemble_spec`` (``configs/dnn_config.pbtxt`` lines 30-38):
``AVERAGE_ENSEMBLE`` (the members' logits averaged) with the *intermixed* schedule — every
``try_ensembling_every: 5`` trials, an ensemble of ``width: 3`` members drawn at random from the
``num_trials_to_consider: 15`` best (``generators/prior_generator.py`` lines 57-80, ``random.sample``).
Beside it, greedy ensemble selection (Caruana, Niculescu-Mizil, Crew & Ksikes, *Ensemble Selection from
Libraries of Models*, ICML 2004, §2: start from the best model, repeatedly add — with replacement — the
model that most improves the ensemble on held-out data, stop when none does).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from lab_utils.model_search.platform import _weights_path, open_store
from lab_utils.model_search.space import ArchSpec
from lab_utils.model_search.trainer import accuracy

ENSEMBLE_EVERY, ENSEMBLE_WIDTH, ENSEMBLE_CONSIDER = 5, 3, 15   # dnn_config.pbtxt lines 34-36


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a search, as the store holds it."""

    number: int
    state: str
    val_accuracy: float | None
    test_accuracy: float | None
    params: int | None
    spec: str | None
    how: str | None
    parent: int | None
    worker: int | None
    finished: float | None     # completion time (s since the epoch), for the completion order


def load_trials(run_dir: str | Path, study_name: str) -> list[TrialRecord]:
    """Every trial of ``study_name`` in ``run_dir`` (any state), in trial-number order."""
    study = optuna.load_study(study_name=study_name, storage=open_store(run_dir))
    out = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        out.append(TrialRecord(t.number, t.state.name, t.value, a.get("test_accuracy"), a.get("params"),
                               str(ArchSpec.from_json(a["spec"])) if "spec" in a else None, a.get("how"),
                               a.get("parent"), a.get("worker"), t.datetime_complete.timestamp() if t.datetime_complete else None))
    return out


def study_config(run_dir: str | Path, study_name: str) -> dict:
    study = optuna.load_study(study_name=study_name, storage=open_store(run_dir))
    return json.loads(study.user_attrs["config"])


def completed(records: Sequence[TrialRecord], budget: int | None = None) -> list[TrialRecord]:
    """The COMPLETE trials in the order they finished, the first ``budget`` of them."""
    done = sorted((r for r in records if r.state == TrialState.COMPLETE.name), key=lambda r: (r.finished, r.number))
    return done[:budget] if budget is not None else done


def best_so_far(records: Sequence[TrialRecord], budget: int) -> np.ndarray:
    """Validation accuracy of the best model after 1, 2, …, ``budget`` trained models (NaN past the end)."""
    values = [r.val_accuracy for r in completed(records, budget)]
    curve = np.full(budget, np.nan)
    curve[: len(values)] = np.maximum.accumulate(values) if values else []
    return curve


def load_logits(run_dir: str | Path, study_name: str, number: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation logits, test logits) that trial ``number`` saved."""
    saved = torch.load(_weights_path(Path(run_dir), study_name, number), weights_only=True)
    return saved["val_logits"], saved["test_logits"]


def average_ensemble(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """AVERAGE_ENSEMBLE: the mean of the members' logits."""
    if not logits:
        raise ValueError("an ensemble needs at least one member")
    return torch.stack(list(logits)).mean(dim=0)


def greedy_ensemble_selection(val_logits: Sequence[torch.Tensor], y_val: torch.Tensor,
                              max_size: int = 10) -> list[int]:
    """Caruana et al. 2004 §2, with replacement: member indices (repeats allowed) chosen on validation."""
    scores = [accuracy(v, y_val) for v in val_logits]
    chosen = [int(np.argmax(scores))]
    best = scores[chosen[0]]
    while len(chosen) < max_size:
        trial = [accuracy(average_ensemble([val_logits[i] for i in chosen + [j]]), y_val)
                 for j in range(len(val_logits))]
        j = int(np.argmax(trial))
        if trial[j] <= best:
            break
        chosen.append(j)
        best = trial[j]
    return chosen


def intermixed_ensembles(records: Sequence[TrialRecord], seed: int = 0, every: int = ENSEMBLE_EVERY,
                         width: int = ENSEMBLE_WIDTH, consider: int = ENSEMBLE_CONSIDER
                         ) -> list[tuple[int, list[int]]]:
    """Model Search's intermixed schedule replayed on a finished search: after every ``every`` completed
    trials, ``width`` members sampled from the ``consider`` best so far. (after n trials, trial numbers)."""
    rng = random.Random(seed)
    done = completed(records)
    out = []
    for n in range(every, len(done) + 1, every):
        pool = sorted(done[:n], key=lambda r: (-r.val_accuracy, r.number))[:consider]
        members = [r.number for r in pool] if len(pool) < width else \
            sorted(pool[i].number for i in rng.sample(range(len(pool)), width))
        out.append((n, members))
    return out


def pareto_front(params: Sequence[float], acc: Sequence[float]) -> list[int]:
    """Indices of the models no other model beats on both fewer parameters and higher accuracy, by size."""
    order = sorted(range(len(params)), key=lambda i: (params[i], -acc[i]))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return front
