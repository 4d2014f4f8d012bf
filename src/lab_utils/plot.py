"""One plotting style for the whole book, and the plots several chapters share.

* :func:`use_style` — call once per notebook.
* :func:`memory_bars` — stacked bars of a memory breakdown (params / grads / optimizer / activations).
* :func:`gantt` — a timeline of who computes what when (pipeline schedules, overlap).
* :func:`schedule_and_memory` — a timeline over a step plot of what is held after each step.
* :func:`lines_by_group` — one line per group of a table (e.g. per strategy over a depth sweep).
* :func:`table` — a list of dicts or dataclasses as a pandas DataFrame (renders as a table).
* :func:`token_slices` — how a sequence is cut into token slices (TeraPipe).
* :func:`score_histograms` — a lab's score distribution, total and per question (instructor report).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter, ScalarFormatter

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


def schedule_and_memory(events: Iterable[tuple[Any, float, float, str]], held: Sequence[float],
                        title: str = "", ylabel: str = "feature maps held",
                        xlabel: str = "time step (one layer each)") -> plt.Figure:
    """Two panels sharing the time axis: the :func:`gantt` of ``events`` above, and below a
    step plot of ``held[t]``, what is held after unit time step ``t`` (e.g. the ``(events, live)``
    of ``lab_utils.fitting.checkpointing.recompute_schedule``)."""
    if len(held) == 0:
        raise ValueError("held is empty: give one value per time step")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True, height_ratios=[1.2, 1])
    gantt(events, title=title, ax=top, xlabel="")
    bottom.step(range(1, len(held) + 1), held, where="pre")
    bottom.set_ylabel(ylabel)
    bottom.set_xlabel(xlabel)
    fig.tight_layout()
    return fig


def lines_by_group(data: pd.DataFrame, x: str, y: str, group: str, ax: plt.Axes | None = None,
                   title: str = "", xlabel: str | None = None, ylabel: str | None = None, logy: bool = False,
                   references: Mapping[str, Sequence[float]] | None = None) -> plt.Axes:
    """``y`` against ``x`` (log scale, one tick per value), one line with markers per value of
    ``group`` in order of appearance. ``references`` are black comparison curves, one value per
    distinct ``x`` in increasing order (e.g. ``"O(n)": ...``); ``logy`` ticks at powers of two."""
    ax = ax or plt.subplots()[1]
    for name, grp in data.groupby(group, sort=False):
        ax.plot(grp[x], grp[y], "o-", label=str(name))
    xs = np.sort(data[x].unique())
    for (label, values), style in zip((references or {}).items(), (":", "--", "-.")):
        if len(values) != len(xs):
            raise ValueError(f"reference {label!r} has {len(values)} values for {len(xs)} distinct {x}: give one each")
        ax.plot(xs, values, "k" + style, lw=1, label=label)
    ax.set(xscale="log", xlabel=xlabel or x, ylabel=ylabel or y, title=title)
    ax.set_xticks(xs, [str(v) for v in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.set_yticks([t for t in 2.0 ** np.arange(-12, 40) if lo <= t <= hi])
        ax.set_ylim(lo, hi)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7)
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


def score_histograms(scores: Mapping[str, Sequence[float]], maxima: Mapping[str, float],
                     title: str = "") -> plt.Figure:
    """One histogram per column of ``scores`` (e.g. ``total`` and each question), binned by point."""
    fig, axes = plt.subplots(1, len(scores), figsize=(2.6 * len(scores), 2.6), squeeze=False)
    for ax, (name, values) in zip(axes[0], scores.items()):
        top = maxima[name]
        ax.hist(values, bins=np.arange(-0.5, top + 1.0, 0.5 if top <= 4 else 1.0), color=PALETTE[0])
        ax.set(title=name, xlabel=f"points (of {top:g})", ylabel="submissions")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def tradeoff(points: Mapping[str, tuple[float, float]], xlabel: str, ylabel: str, title: str = "",
             ax: plt.Axes | None = None, ref: str | None = None) -> plt.Axes:
    """One labelled dot per option at (x, y), e.g. memory per rank vs step time; ``ref`` marks the
    baseline with dashed lines so the plot reads as ratios to it."""
    ax = ax or plt.subplots()[1]
    for i, (name, (x, y)) in enumerate(points.items()):
        ax.scatter([x], [y], color=PALETTE[i % len(PALETTE)], zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if ref is not None and ref in points:
        ax.axvline(points[ref][0], color="k", lw=0.7, ls="--")
        ax.axhline(points[ref][1], color="k", lw=0.7, ls="--")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return ax


def token_slices(slicings: Mapping[str, Sequence[int]], title: str = "", ax: plt.Axes | None = None,
                 xlabel: str = "token position") -> plt.Axes:
    """One row per slicing of a sequence (e.g. TeraPipe's DP vs uniform), one segment per token slice,
    labelled with its length: ``{"DP": [96, 96, 80], ...}``."""
    ax = ax or plt.subplots()[1]
    for row, (name, slices) in enumerate(slicings.items()):
        if len(slices) == 0 or min(slices) < 1:
            raise ValueError(f"slicing {name!r} must be positive token counts, got {list(slices)}")
        start = 0
        for i, length in enumerate(slices):
            ax.barh(row, length, left=start, height=0.7, color=PALETTE[i % 2], edgecolor="white")
            if length >= sum(slices) / 40:
                ax.text(start + length / 2, row, str(length), ha="center", va="center", fontsize=6, color="white")
            start += length
    ax.set_yticks(range(len(slicings)), list(slicings))
    ax.invert_yaxis()
    ax.set(xlabel=xlabel, title=title)
    ax.grid(axis="y", visible=False)
    return ax
