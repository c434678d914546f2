"""The report's plots, each a function of a RunSnapshot returning a matplotlib Figure (or None when
the run holds nothing to show yet).

Figures are built with the object API (`matplotlib.figure.Figure`), never pyplot: no global state, so
the live view can render in a server thread, and nothing needs a display.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from matplotlib.ticker import MaxNLocator

from ..errors import NasforgeError
from ..objectives import Objective, objective_value, pareto_front, study_objectives
from ..space import space_from_record
from ..space.plan import PlanNet
from ..store import TrialRecord
from .architecture import architecture_figure
from .lineage import lineage
from .snapshot import RunSnapshot

BEST = "#d62728"
TRIAL = "#1f77b4"


def _elapsed(snap: RunSnapshot) -> list[tuple[TrialRecord, float]]:
    """Finished trials with their finishing time in seconds since the study's first trial started."""
    if not snap.trials:
        return []
    t0 = min(t.started_at for t in snap.trials)
    return sorted(((t, t.finished_at - t0) for t in snap.trials if t.finished_at is not None), key=lambda p: p[1])


def _reward_axes(ax: Axes, xs: Sequence[float], trials: Sequence[TrialRecord], reward: str, xlabel: str) -> None:
    ok = [(x, t.reward) for x, t in zip(xs, trials, strict=True) if t.status == "complete" and t.reward is not None]
    failed = [x for x, t in zip(xs, trials, strict=True) if t.status != "complete" and t.status != "running"]
    if ok:
        ax.scatter([x for x, _ in ok], [r for _, r in ok], s=18, color=TRIAL, alpha=0.75, label="trial", zorder=3)
        best, xb, yb = -np.inf, [], []
        for x, r in ok:
            best = max(best, r)
            xb.append(x)
            yb.append(best)
        ax.step(xb, yb, where="post", color=BEST, linewidth=1.6, label="best so far", zorder=4)
    if failed:
        low = min((r for _, r in ok), default=0.0)
        ax.scatter(failed, [low] * len(failed), marker="x", color="#7f7f7f", label="failed", zorder=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"validation {reward}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def reward_by_trial(snap: RunSnapshot) -> Figure | None:
    trials = [t for t in snap.trials if t.status != "running"]
    if not trials:
        return None
    fig = Figure(figsize=(6.2, 3.4), layout="constrained")
    ax = fig.add_subplot()
    _reward_axes(ax, [t.id for t in trials], trials, snap.reward_name, "trial")
    ax.set_title("Reward of every trial and best so far, by trial number")
    return fig


def reward_by_time(snap: RunSnapshot) -> Figure | None:
    pairs = _elapsed(snap)
    if not pairs:
        return None
    fig = Figure(figsize=(6.2, 3.4), layout="constrained")
    ax = fig.add_subplot()
    _reward_axes(ax, [s for _, s in pairs], [t for t, _ in pairs], snap.reward_name, "wall time since the first trial started (s)")
    ax.set_title("Reward of every trial and best so far, by wall time")
    return fig


def pareto_objectives(snap: RunSnapshot) -> tuple[list[Objective], bool]:
    """The objectives to draw a front for, and whether the study itself declared them. A
    single-objective study gets its reward against parameter count, shown as a trade-off only."""
    declared = study_objectives(snap.config)
    if len(declared) >= 2:
        return declared, True
    return [Objective(snap.reward_name if snap.reward_name != "neg_loss" else "reward", True), Objective("params", False)], False


def pareto_figure(snap: RunSnapshot, objectives: Sequence[str | Objective] | None = None) -> Figure | None:
    """Every complete trial on each pair of objectives, with the front (non-dominated on all of them) marked."""
    if objectives is None:
        objs, declared = pareto_objectives(snap)
    else:
        objs, declared = [Objective.parse(o) for o in objectives], True
    usable = [t for t in snap.complete if all(objective_value(t, o.name) is not None for o in objs)]
    if len(objs) < 2 or not usable:
        return None
    front = {t.id for t in pareto_front(usable, objs)}
    pairs = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))][:6]
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = Figure(figsize=(5.2 * cols, 4.0 * rows), layout="constrained")
    for k, (i, j) in enumerate(pairs):
        ax = fig.add_subplot(rows, cols, k + 1)
        xo, yo = objs[j], objs[i]  # cost-like objectives read naturally on x
        xs = np.array([objective_value(t, xo.name) for t in usable])
        ys = np.array([objective_value(t, yo.name) for t in usable])
        on = np.array([t.id in front for t in usable])
        ax.scatter(xs[~on], ys[~on], s=16, color="#9e9e9e", alpha=0.7, label="dominated")
        ax.scatter(xs[on], ys[on], s=30, color=BEST, zorder=3, label="Pareto front")
        if len(objs) == 2 and on.any():
            order = np.argsort(xs[on])
            ax.plot(xs[on][order], ys[on][order], color=BEST, linewidth=1)
        for t, x, y, o in zip(usable, xs, ys, on, strict=True):
            if o:
                ax.annotate(f"#{t.id}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        if xo.name in ("params", "flops") and xs.min() > 0 and xs.max() / xs.min() > 50:
            ax.set_xscale("log")
        ax.set_xlabel(xo.label)
        ax.set_ylabel(yo.label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    names = " vs ".join(o.name for o in objs)
    fig.suptitle(f"Pareto front: {names}" if declared else f"Trade-off {names} (the study optimised {snap.reward_name} alone)", fontsize=10)
    return fig


def lineage_figure(snap: RunSnapshot) -> Figure | None:
    """The best trial's ancestry: oldest ancestors left, the best model right, operators on the arrows."""
    best = snap.best
    if best is None:
        return None
    lin = lineage(snap.trials, best.id)
    max_depth = max(lin.depth.values())
    levels: dict[int, list[int]] = {}
    for i in sorted(lin.nodes):
        levels.setdefault(lin.depth[i], []).append(i)
    tallest = max(len(v) for v in levels.values())
    fig = Figure(figsize=(max(6.0, 2.3 * (max_depth + 1)), max(1.6, 0.9 * tallest + 0.7)), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    pos = {}
    for d, ids in levels.items():
        for k, i in enumerate(ids):
            pos[i] = (max_depth - d, (k - (len(ids) - 1) / 2))
    for e in lin.edges:
        (x0, y0), (x1, y1) = pos[e.parent], pos[e.child]
        ax.add_patch(FancyArrowPatch((x0 + 0.3, y0), (x1 - 0.3, y1), arrowstyle="-|>", mutation_scale=10, color="#555555"))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, e.operator, ha="center", va="bottom", fontsize=7, color="#444444")
    for i, (x, y) in pos.items():
        t = lin.nodes[i]
        reward = f"{t.reward:.3f}" if t.reward is not None else t.status
        ax.text(x, y, f"#{i}\n{reward}", ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.35", "facecolor": "#ffe0e0" if i == best.id else "#e8f0fa",
                      "edgecolor": BEST if i == best.id else "#6a8caf"})
    ax.set_xlim(-0.6, max_depth + 0.6)
    ax.set_ylim(-tallest / 2 - 0.3, tallest / 2 + 0.3)
    ax.set_title(f"Lineage of trial {best.id}: {len(lin.nodes)} trials, operator on each arrow", fontsize=9)
    return fig


def curves_figure(snap: RunSnapshot) -> Figure | None:
    """Per-trial learning curves; the best trial drawn bold, the others coloured by final reward."""
    trials = [t for t in snap.trials if t.curve]
    if not trials:
        return None
    keys = [("val_accuracy", "validation accuracy"), ("val_loss", "validation loss"), ("train_loss", "training loss")]
    keys = [(k, label) for k, label in keys if any(k in p for t in trials for p in t.curve)]
    if not keys:
        return None
    best = snap.best
    rewards = [t.reward for t in trials if t.reward is not None]
    lo, hi = (min(rewards), max(rewards)) if rewards else (0.0, 1.0)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    fig = Figure(figsize=(4.2 * len(keys), 3.5), layout="constrained")
    for n, (key, label) in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), n + 1)
        for t in trials:
            pts = [(p.get("epoch", i + 1), p[key]) for i, p in enumerate(t.curve) if key in p]
            if not pts:
                continue
            is_best = best is not None and t.id == best.id
            shade = 0.5 if t.reward is None or hi == lo else (t.reward - lo) / (hi - lo)
            ax.plot(*zip(*pts, strict=True), marker="." if len(pts) < 12 else None, linewidth=2.2 if is_best else 0.9,
                    color=BEST if is_best else cmap(shade), alpha=1.0 if is_best else 0.6, zorder=3 if is_best else 2,
                    label=f"best (#{t.id})" if is_best else None)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if best is not None and n == 0:
            ax.legend(fontsize=8)
    fig.suptitle(f"Learning curves of {len(trials)} trials (colour: final reward, low purple to high yellow)", fontsize=10)
    return fig


def confusion_figure(snap: RunSnapshot) -> Figure | None:
    best = snap.best
    if best is None:
        return None
    if snap.final is not None and snap.final.get("test", {}).get("confusion") and snap.final["trial"] == best.id:
        matrix, split = snap.final["test"]["confusion"], "test"
    elif best.metrics.get("confusion"):
        matrix, split = best.metrics["confusion"], "validation"
    else:
        return None
    m = np.asarray(matrix)
    classes = snap.dataset.get("classes") or list(range(len(m)))
    size = max(3.5, min(10.0, 0.45 * len(m) + 2))
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8)
    if len(m) <= 30:
        peak = m.max() if m.size else 0
        for (r, c), v in np.ndenumerate(m):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=7, color="white" if v > peak / 2 else "black")
        ax.set_xticks(range(len(m)), [str(c) for c in classes], fontsize=8, rotation=45 if len(m) > 12 else 0)
        ax.set_yticks(range(len(m)), [str(c) for c in classes], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix of trial {best.id} on the {split} split", fontsize=10)
    return fig


def architecture_plot(snap: RunSnapshot) -> Figure | None:
    best = snap.best
    if best is None or not snap.space:
        return None
    try:
        space = space_from_record(snap.space)
        genome = space.from_json(best.genome)
        net = space.build(genome)
    except NasforgeError:  # a user's space that cannot be rebuilt here (its function is not importable)
        return None
    if not isinstance(net, PlanNet):  # a space whose networks are not Plans has no diagram (yet)
        return None
    shape = tuple(snap.dataset.get("input_shape") or snap.space["config"].get("input_shape") or ()) or None
    return architecture_figure(net, shape, title=f"Trial {best.id}: {space.describe(genome)}")


@dataclass(frozen=True)
class PlotSpec:
    name: str  # file stem of the PNG
    title: str  # section heading in the report
    make: Callable[[RunSnapshot], Figure | None]


PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec("reward_by_trial", "Reward by trial", reward_by_trial),
    PlotSpec("reward_by_time", "Reward by wall time", reward_by_time),
    PlotSpec("pareto", "Pareto front", pareto_figure),
    PlotSpec("lineage", "Lineage of the best model", lineage_figure),
    PlotSpec("curves", "Learning curves", curves_figure),
    PlotSpec("confusion", "Confusion matrix of the best model", confusion_figure),
    PlotSpec("architecture", "Architecture of the best model", architecture_plot),
)


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.15)  # colorbar labels stay inside
    return buf.getvalue()


def render_plots(snap: RunSnapshot, dpi: int = 100) -> dict[str, bytes]:
    """PNG bytes of every plot that has data, keyed by PlotSpec.name."""
    out = {}
    for spec in PLOTS:
        fig = spec.make(snap)
        if fig is not None:
            out[spec.name] = to_png(fig, dpi)
    return out
