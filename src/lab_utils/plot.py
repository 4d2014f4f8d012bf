"""One plotting style for the whole book, and the plots several chapters share.

* :func:`use_style` — call once per notebook.
* :func:`memory_bars` — stacked bars of a memory breakdown (params / grads / optimizer / activations).
* :func:`gantt` — a timeline of who computes what when (pipeline schedules, overlap).
* :func:`table` — a list of dicts or dataclasses as a pandas DataFrame (renders as a table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
COMPONENT_COLORS = {
    "params": PALETTE[0], "grads": PALETTE[1], "optimizer_states": PALETTE[2],
    "activations": PALETTE[3], "other": PALETTE[7],
}


def use_style() -> None:
    """The book's matplotlib style: readable sizes, light grid, a fixed colour cycle."""
    plt.rcParams.update({
        "figure.figsize": (7.0, 3.8), "figure.dpi": 110, "savefig.dpi": 110,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE), "font.size": 10,
        "axes.titlesize": 11, "legend.frameon": False,
    })


def _scale_bytes(max_value: float) -> tuple[float, str]:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if max_value >= size:
            return size, unit
    return 1.0, "B"


def memory_bars(breakdowns: Mapping[str, Mapping[str, float]], title: str = "",
                ax: plt.Axes | None = None) -> plt.Axes:
    """Stacked bars: one bar per key of ``breakdowns``, one segment per component (bytes)."""
    ax = ax or plt.subplots()[1]
    labels = list(breakdowns)
    components: list[str] = []
    for b in breakdowns.values():
        components += [c for c in b if c not in components and c != "total"]
    totals = [sum(v for k, v in b.items() if k != "total") for b in breakdowns.values()]
    size, unit = _scale_bytes(max(totals) if totals else 1)
    bottom = [0.0] * len(labels)
    for i, comp in enumerate(components):
        vals = [breakdowns[lab].get(comp, 0) / size for lab in labels]
        ax.bar(labels, vals, bottom=bottom, label=comp,
               color=COMPONENT_COLORS.get(comp, PALETTE[i % len(PALETTE)]))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return ax


def gantt(events: Iterable[tuple[Any, float, float, str]], title: str = "",
          ax: plt.Axes | None = None, colors: Mapping[str, str] | None = None,
          xlabel: str = "time step") -> plt.Axes:
    """A timeline: ``events`` are ``(lane, start, end, label)``, e.g. ``("GPU 1", 2, 3, "F1")``.

    The colour follows the label's first character (``F``orward, ``B``ackward, ``R``ecompute…)
    unless ``colors`` maps labels or first characters to colours.
    """
    ax = ax or plt.subplots()[1]
    events = list(events)
    lanes: list[Any] = []
    for lane, *_ in events:
        if lane not in lanes:
            lanes.append(lane)
    default = {"F": PALETTE[0], "B": PALETTE[1], "R": PALETTE[2], "U": PALETTE[3], "C": PALETTE[4]}
    colors = {**default, **(colors or {})}
    for lane, start, end, label in events:
        y = lanes.index(lane)
        c = colors.get(label, colors.get(str(label)[:1], PALETTE[7]))
        ax.barh(y, end - start, left=start, height=0.8, color=c, edgecolor="white")
        ax.text((start + end) / 2, y, str(label), ha="center", va="center", fontsize=7, color="white")
    ax.set_yticks(range(len(lanes)), [str(lane) for lane in lanes])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    return ax


def table(rows: Sequence[Any] | Mapping[str, Any], index: str | None = None) -> pd.DataFrame:
    """Rows (dicts, dataclasses, or a mapping name → row) as a DataFrame for display."""
    if isinstance(rows, Mapping):
        rows = [{"": k, **_as_dict(v)} for k, v in rows.items()]
        index = index or ""
    df = pd.DataFrame([_as_dict(r) for r in rows])
    return df.set_index(index) if index else df


def _as_dict(row: Any) -> dict:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        d = dataclasses.asdict(row)
        d = {k: v for k, v in d.items() if not k.startswith("_")}
        for name in ("total",):
            if hasattr(row, name) and name not in d:
                d[name] = getattr(row, name)
        return d
    if hasattr(row, "as_dict"):
        return row.as_dict()
    return dict(row)
