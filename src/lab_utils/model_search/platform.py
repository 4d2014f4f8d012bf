"""The platform: asynchronous workers, a persistent store, stop / resume, and what a search leaves behind.

Model Search runs N trainer processes that each ask the search algorithm for the next architecture,
train it and write the result into a metadata store (``oss_trainer_lib.py``; ``metadata/ml_metadata_db.py``
is an SQLite-backed ML Metadata store); the next suggestion reads every completed trial from that store,
so the workers never wait for each other. Here the store is **Optuna's RDB storage on SQLite**
(``<run>/store.db``) and each worker is ``study.optimize`` in its own process:

* the worker reads the completed trials, draws a spec (beam search, or Optuna's random / TPE sampler),
  keeps it in the trial's user attributes, trains it (:mod:`.trainer`), saves its weights and logits
  under ``<run>/weights/`` and reports its validation accuracy;
* a search is **stopped** at any time and **resumed** by calling :func:`run_search` again on the same
  folder: only the missing trials are trained;
* a worker that dies mid-trial leaves its trial RUNNING: Optuna's heartbeats let the other workers mark
  it FAIL (``fail_stale_trials``), and :func:`run_search` marks the leftovers of a dead run FAIL when it
  resumes; failed trials never enter the beam. A candidate that raises is caught and marked FAIL.
"""

from __future__ import annotations

import functools
import json
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from lab_utils.dist import launch
from lab_utils.model_search import data as datasets
from lab_utils.model_search.search import Completed, make_sampler, suggest_beam, suggest_optuna
from lab_utils.model_search.space import ArchSpec
from lab_utils.model_search.trainer import Outcome, load_model, train_candidate
from lab_utils.model_search.transfer import TRANSFER_MODES, average_transfer, balance_lambda, transfer_weights

HEARTBEAT_S, GRACE_S = 5, 30
TASKS = {"kws": datasets.keyword_spotting, "digits": datasets.digits}


@dataclass(frozen=True)
class SearchConfig:
    """Everything a worker needs to run its share of a search (stored with the study as JSON)."""

    searcher: str = "beam"              # "beam" | "random" | "tpe"
    task: str = "kws"
    task_options: dict = field(default_factory=dict)
    n_trials: int = 12                  # the budget: trained models
    train_steps: int = 80
    batch_size: int = 32
    lr: float = 1e-2
    seed: int = 0
    transfer: str = "snapshot"          # one of TRANSFER_MODES
    distill: bool = False
    ramp_trials: int = 10               # λ: 0 → 1 over this many trials (distillation_spec.proto l. 21-29)
    beam_size: int = 5
    min_depth: int = 1
    max_depth: int = 5
    increase_probability: float = 0.9
    depth_thresholds: tuple[int, ...] | None = None
    n_startup_trials: int = 10          # TPE's random start (Optuna's default)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.transfer not in TRANSFER_MODES:
            raise ValueError(f"transfer must be one of {TRANSFER_MODES}, got {self.transfer!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")


@functools.lru_cache(maxsize=4)
def _task(task: str, options: str) -> datasets.Splits:
    return TASKS[task](**json.loads(options))


def task_data(config: SearchConfig) -> datasets.Splits:
    return _task(config.task, json.dumps(config.task_options, sort_keys=True))


def open_store(run_dir: str | Path) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on ``<run_dir>/store.db`` (SQLite), with heartbeats for dead workers."""
    run_dir = Path(run_dir)
    (run_dir / "weights").mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.storages.RDBStorage(f"sqlite:///{run_dir / 'store.db'}",
                                      engine_kwargs={"connect_args": {"timeout": 60}},
                                      heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)


def _weights_path(run_dir: Path, study: str, number: int) -> Path:
    return Path(run_dir) / "weights" / f"{study}-{number:04d}.pt"


def _completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "spec" in t.user_attrs]


def _warm_start(config: SearchConfig, run_dir: Path, study: optuna.Study, parent: int | None,
                done: list[optuna.trial.FrozenTrial]):
    """The ``init`` of the new candidate for the configured transfer mode (None: random init)."""
    if config.transfer == "none" or not done:
        return None
    if config.transfer == "snapshot":
        if parent is None:
            return None
        state = torch.load(_weights_path(run_dir, study.study_name, parent), weights_only=True)["state"]
        return lambda model: transfer_weights(model, state)
    recent = sorted(done, key=lambda t: t.number)[-10:]       # max_completed_trials (proto lines 59-61)
    states = [torch.load(_weights_path(run_dir, study.study_name, t.number), weights_only=True)["state"]
              for t in recent]
    losses = [t.user_attrs["val_loss"] for t in recent]
    return lambda model: average_transfer(model, states, losses, mode=config.transfer)


def _teacher(config: SearchConfig, run_dir: Path, study: optuna.Study, done, data):
    """The best completed candidate so far, loaded, or None."""
    if not config.distill or not done:
        return None
    best = max(done, key=lambda t: (t.value, -t.number))
    saved = torch.load(_weights_path(run_dir, study.study_name, best.number), weights_only=True)
    return load_model(ArchSpec.from_json(best.user_attrs["spec"]), data, saved["state"])


def _objective(trial: optuna.Trial, config: SearchConfig, run_dir: Path, crash_at: int | None, rank: int) -> float:
    study = trial.study
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and "spec" in t.user_attrs]
    busy = [t for t in trials if t.state == TrialState.RUNNING and t.number != trial.number]
    if len(done) + len(busy) >= config.n_trials:          # the budget is spent or in flight
        study.stop()
        raise optuna.TrialPruned("budget reached")
    data = task_data(config)
    if config.searcher == "beam":
        history = [Completed(t.number, t.value, ArchSpec.from_json(t.user_attrs["spec"])) for t in done]
        spec, parent, how = suggest_beam(
            history, np.random.default_rng([config.seed, trial.number]), data.length, config.beam_size,
            config.min_depth, config.max_depth, config.increase_probability, config.depth_thresholds)
    else:
        spec, parent, how = suggest_optuna(trial, data.length, config.min_depth, config.max_depth), None, config.searcher
        if spec is None:
            raise optuna.TrialPruned("the sampled blocks pool the input below one frame")
    for key, value in {"spec": spec.to_json(), "parent": parent, "how": how, "worker": rank}.items():
        trial.set_user_attr(key, value)
    out: Outcome = train_candidate(
        spec, data, config.train_steps, config.batch_size, config.lr, seed=config.seed * 100_003 + trial.number,
        init=_warm_start(config, run_dir, study, parent, done), teacher=_teacher(config, run_dir, study, done, data),
        lam=balance_lambda(len(done), 0, config.ramp_trials, 0.0, 1.0), device=config.device,
        crash_at_step=config.train_steps // 2 if crash_at == trial.number else None)
    torch.save({"state": out.state, "val_logits": out.val_logits, "test_logits": out.test_logits},
               _weights_path(run_dir, study.study_name, trial.number))
    for key, value in {"val_loss": out.val_loss, "test_accuracy": out.test_accuracy, "params": out.params}.items():
        trial.set_user_attr(key, value)
    return out.val_accuracy


def search_worker(rank: int, world_size: int, run_dir: str, study_name: str, crash_at: int | None = None,
                  timeout: float | None = None) -> int:
    """One asynchronous trainer: pull, train, report, until the study's budget is spent. Returns trials run."""
    torch.set_num_threads(1)
    storage = open_store(run_dir)
    config = SearchConfig(**json.loads(optuna.load_study(study_name=study_name, storage=storage)
                                       .user_attrs["config"]))
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=make_sampler(config.searcher, config.seed * 997 + rank, config.n_startup_trials))
    before = len(study.get_trials(deepcopy=False))
    study.optimize(lambda t: _objective(t, config, Path(run_dir), crash_at, rank), n_trials=3 * config.n_trials,
                   timeout=timeout, catch=(ValueError, RuntimeError))
    return len(study.get_trials(deepcopy=False)) - before


def mark_orphans_failed(study: optuna.Study) -> list[int]:
    """Trials left RUNNING by a dead run (no worker of it is alive when it resumes) become FAIL."""
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in orphans:
        study._storage.set_trial_user_attr(t._trial_id, "failed_because", "its worker died (found at resume)")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return [t.number for t in orphans]


def create_search(run_dir: str | Path, config: SearchConfig, study_name: str) -> optuna.Study:
    """The study ``study_name`` in ``run_dir``'s store, created with ``config`` or checked against it."""
    study = optuna.create_study(study_name=study_name, storage=open_store(run_dir), direction="maximize",
                                load_if_exists=True)
    stored = study.user_attrs.get("config")
    wanted = json.dumps(asdict(config), sort_keys=True)
    if stored is not None and stored != wanted:
        raise ValueError(f"study {study_name!r} in {run_dir} was started with another config: "
                         "resume it with the same SearchConfig or choose another study_name")
    study.set_user_attr("config", wanted)
    return study


def run_search(run_dir: str | Path, config: SearchConfig, n_workers: int = 2, study_name: str | None = None,
               timeout: float = 600.0, crash_at: int | None = None, progress: bool = False) -> str:
    """Start or resume the search ``study_name`` in ``run_dir`` with ``n_workers`` processes; its name.

    ``n_workers=0`` runs the same worker in this process (sequential, deterministic, no start-up cost).
    A config different from the stored one for the same study is refused (start a new study instead).
    """
    run_dir = Path(run_dir)
    study_name = study_name or f"{config.searcher}-seed{config.seed}"
    study = create_search(run_dir, config, study_name)
    mark_orphans_failed(study)
    if n_workers == 0:
        search_worker(0, 1, str(run_dir), study_name, crash_at, timeout)
        return study_name

    def work() -> None:
        try:
            _results[study_name] = launch(search_worker, n_workers, str(run_dir), study_name, crash_at=crash_at,
                                          timeout=timeout, backend="gloo", echo="none", threads_per_rank=1)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller below
            _errors[study_name] = f"{type(exc).__name__}: {exc}"

    job = threading.Thread(target=work, daemon=True)
    _results.pop(study_name, None)
    _errors.pop(study_name, None)
    job.start()
    _watch(study, config.n_trials, job, progress)
    if study_name not in _results:
        raise RuntimeError(f"the workers of {study_name!r} failed: {_errors.get(study_name, 'see above')}; "
                           f"call run_search again on {run_dir} to resume")
    return study_name


_results: dict[str, list] = {}
_errors: dict[str, str] = {}


def _live_rows(study: optuna.Study) -> list[dict]:
    """The store's trials as table rows (what a live table shows)."""
    return [{"trial": t.number, "state": t.state.name, "worker": t.user_attrs.get("worker"),
             "how": t.user_attrs.get("how"),
             "spec": str(ArchSpec.from_json(t.user_attrs["spec"])) if "spec" in t.user_attrs else None,
             "val acc": t.value} for t in study.get_trials(deepcopy=False)]


def _watch(study: optuna.Study, total: int, job: threading.Thread, progress: bool) -> None:
    """Wait for the workers; with ``progress``, a bar of completed trials and, in a notebook, a live
    table of the trials, both read from the store every half second."""
    bar = handle = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=study.study_name, unit="trial")
        try:
            from IPython import get_ipython
            from IPython.display import display
            if get_ipython() is not None:
                import pandas as pd
                handle = display(pd.DataFrame(_live_rows(study)), display_id=True)
        except ImportError:
            handle = None
    while job.is_alive():
        job.join(timeout=0.5)
        if bar is not None:
            bar.n = min(total, len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
            bar.refresh()
        rows = _live_rows(study) if handle is not None else []
        if rows:
            import pandas as pd
            handle.update(pd.DataFrame(rows).set_index("trial"))
    if bar is not None:
        bar.close()


def _studies_worker(rank: int, world_size: int, run_dir: str, jobs: list[tuple[str, dict]],
                    timeout: float) -> list[str]:
    """Run whole studies one after the other, each sequentially in this process (deterministic)."""
    torch.set_num_threads(1)
    return [run_search(run_dir, SearchConfig(**config), n_workers=0, study_name=name, timeout=timeout)
            for name, config in jobs[rank::world_size]]


def run_studies(run_dir: str | Path, configs: dict[str, SearchConfig], n_processes: int = 2,
                timeout: float = 900.0) -> list[str]:
    """Several independent searches (searchers x seeds) shared out over ``n_processes`` processes.

    Each study runs sequentially in one process, so its result does not depend on the scheduling; the
    processes only run different studies side by side. ``n_processes=0`` runs them all here.
    """
    jobs = [(name, asdict(config)) for name, config in configs.items()]
    if n_processes == 0:
        return _studies_worker(0, 1, str(run_dir), jobs, timeout)
    open_store(run_dir)    # create the tables once, before the processes race for them
    launch(_studies_worker, min(n_processes, len(jobs)), str(run_dir), jobs, timeout, backend="gloo",
           echo="none", threads_per_rank=1, timeout=timeout)
    return list(configs)
