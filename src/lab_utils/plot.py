"""One plotting style for the whole book, and the plots several chapters share.

* :func:`use_style` — call once per notebook.
* :func:`memory_bars` — stacked bars of a memory breakdown (params / grads / optimizer / activations).
* :func:`gantt` — a timeline of who computes what when (pipeline schedules, overlap).
* :func:`schedule_and_memory` — a timeline over a step plot of what is held after each step.
* :func:`lines_by_group` — one line per group of a table (e.g. per strategy over a depth sweep).
* :func:`table` — a list of dicts or dataclasses as a pandas DataFrame (renders as a table).
* :func:`token_slices` — how a sequence is cut into token slices (TeraPipe).
* :func:`score_histograms` — a lab's score distribution, total and per question (instructor report).
* :func:`face_grid`, :func:`agreement_heatmap`, :func:`effect_bars` — example faces per dataset, a
  cross-dataset agreement matrix, effect sizes with intervals (racial-categories chapter).
* :func:`flow_diagram` — boxes and labelled arrows (a system's design, e.g. federated evaluation and tuning).
* :func:`spectrograms`, :func:`search_curves`, :func:`architectures`, :func:`pareto_scatter` — spectrogram
  grids, best-so-far curves with spread, towers drawn as blocks, accuracy-vs-size fronts (Model Search).
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


def face_grid(rows: Mapping[str, Sequence[np.ndarray]], captions: Mapping[str, Sequence[str]] | None = None,
              title: str = "", scale: float = 0.75) -> plt.Figure:
    """Small images in rows (e.g. example faces per dataset), each row named, each image captioned."""
    n_cols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(scale * n_cols, scale * 1.25 * len(rows)),
                             squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c], interpolation="nearest")
                if captions and c < len(captions.get(name, ())):
                    ax.set_title(captions[name][c], fontsize=6, pad=2)
        axes[r][0].text(-0.15, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3)
    return fig


def agreement_heatmap(matrix: pd.DataFrame, title: str = "", ax: plt.Axes | None = None,
                      vmin: float | None = None, fmt: str = "{:.2f}") -> plt.Axes:
    """A labelled heatmap of a square table (e.g. cross-dataset agreement), values written in the cells."""
    ax = ax or plt.subplots(figsize=(0.9 * len(matrix.columns) + 2.5, 0.6 * len(matrix) + 1.5))[1]
    values = matrix.to_numpy(dtype=float)
    im = ax.imshow(values, cmap="viridis", vmin=np.nanmin(values) if vmin is None else vmin, vmax=1.0)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                color="white" if v < np.nanmean(values) else "black")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(matrix.index)), matrix.index, fontsize=7)
    ax.grid(False)
    ax.figure.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title(title)
    return ax


def effect_bars(effects: Mapping[str, Any], title: str = "", xlabel: str = "effect",
                ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars of effect sizes with their intervals: ``{name: obj with estimate, low, high}``."""
    ax = ax or plt.subplots(figsize=(7.0, 0.45 * len(effects) + 1.2))[1]
    names = list(effects)
    est = np.array([effects[k].estimate for k in names])
    err = np.array([[effects[k].estimate - effects[k].low for k in names],
                    [effects[k].high - effects[k].estimate for k in names]])
    ax.barh(range(len(names)), est, xerr=err, color=[PALETTE[i % len(PALETTE)] for i in range(len(names))],
            capsize=3, height=0.6)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel=xlabel, title=title)
    return ax


# ----------------------------------------------------------------------------- Model Search chapter
def spectrograms(images: Sequence[Any], titles: Sequence[str], suptitle: str = "", cols: int = 6) -> plt.Figure:
    """A grid of (channels x time) arrays drawn as spectrograms (time on x, mel bins up)."""
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(np.asarray(image), origin="lower", aspect="auto", cmap="magma")
        ax.set_title(title, fontsize=8)
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def search_curves(curves: Mapping[str, Any], ax: plt.Axes | None = None, ylabel: str = "best validation accuracy",
                  baseline: float | None = None, xlabel: str = "trained models",
                  baseline_label: str = "fixed baseline") -> plt.Axes:
    """Best-so-far curves of several searchers: ``{name: array (seeds x budget)}``; mean line, min-max band."""
    ax = ax or plt.subplots()[1]
    for i, (name, runs) in enumerate(curves.items()):
        runs = np.atleast_2d(np.asarray(runs, dtype=float))
        x = np.arange(1, runs.shape[1] + 1)
        color = PALETTE[i % len(PALETTE)]
        ax.plot(x, np.nanmean(runs, axis=0), color=color, label=f"{name} (mean of {len(runs)})")
        ax.fill_between(x, np.nanmin(runs, axis=0), np.nanmax(runs, axis=0), color=color, alpha=0.18, lw=0)
    if baseline is not None:
        ax.axhline(baseline, color="k", lw=0.8, ls="--", label=baseline_label)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    return ax


def architectures(specs: Sequence[Sequence[str]], labels: Sequence[str], ax: plt.Axes | None = None,
                  title: str = "") -> plt.Axes:
    """Candidate towers as rows of blocks (input on the left), one colour per block kind, a label each."""
    ax = ax or plt.subplots(figsize=(9, 0.55 * len(specs) + 0.6))[1]
    kinds = sorted({b.split("_")[0].rstrip("0123456789") for spec in specs for b in spec})
    colors = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}
    for row, spec in enumerate(specs):
        for col, block in enumerate(spec):
            kind = block.split("_")[0].rstrip("0123456789")
            ax.add_patch(matplotlib.patches.FancyBboxPatch((col * 1.15, -row - 0.35), 1.0, 0.7,
                                                           boxstyle="round,pad=0.02", color=colors[kind]))
            ax.text(col * 1.15 + 0.5, -row, block, ha="center", va="center", fontsize=6.5, color="white")
        ax.text(len(spec) * 1.15 + 0.1, -row, labels[row], va="center", fontsize=8)
    width = max(len(s) for s in specs) * 1.15 + 3.2
    ax.set(xlim=(-0.2, width), ylim=(-len(specs) + 0.4, 0.6), title=title)
    ax.axis("off")
    return ax


def pareto_scatter(params: Sequence[float], acc: Sequence[float], front: Sequence[int],
                   ax: plt.Axes | None = None, highlight: Mapping[str, int] | None = None) -> plt.Axes:
    """Accuracy vs parameter count of every model, the Pareto front as a step line, named points marked."""
    ax = ax or plt.subplots()[1]
    ax.scatter(params, acc, s=12, color=PALETTE[7], alpha=0.7, label="trained models")
    fx, fy = [params[i] for i in front], [acc[i] for i in front]
    ax.step(fx, fy, where="post", color=PALETTE[3], label="Pareto front")
    for i, (name, j) in enumerate((highlight or {}).items()):
        ax.scatter([params[j]], [acc[j]], s=50, color=PALETTE[i % 3], zorder=3, label=name)
    ax.set(xscale="log", xlabel="parameters", ylabel="test accuracy")
    ax.legend(fontsize=8)
    return ax


def flow_diagram(boxes: Mapping[str, tuple[float, float]], arrows: Sequence[tuple[str, str, str]],
                 title: str = "", size: tuple[float, float] = (9.0, 4.2)) -> plt.Figure:
    """Named boxes at (x, y) in [0, 1]² and arrows ``(from, to, label)`` between them."""
    fig, ax = plt.subplots(figsize=size)
    for i, (name, (x, y)) in enumerate(boxes.items()):
        ax.text(x, y, name, ha="center", va="center", fontsize=8, zorder=3,
                bbox={"boxstyle": "round,pad=0.4", "fc": PALETTE[i % len(PALETTE)], "alpha": 0.25, "ec": "k"})
    for src, dst, label in arrows:
        (x0, y0), (x1, y1) = boxes[src], boxes[dst]
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "lw": 1, "shrinkA": 22, "shrinkB": 22})
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.03, label, ha="center", fontsize=7, color="0.25")
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), title=title)
    ax.axis("off")
    return fig
