"""The printed table, the JSON file and the best-so-far plot of a benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from .harness import BenchReport
from .published import published_for


def format_table(report: BenchReport, published: str = "auto") -> str:
    s = report.settings
    pub_name, pub = published_for(published, s.report)
    budget = " and ".join(x for x in (f"{s.queries} queries" if s.queries else "", f"{s.seconds:g} simulated s" if s.seconds else "") if x)
    lines = [
        f"table {s.table}: signal {s.signal}, report {s.report}, budget {budget}, {s.runs} runs from seed {s.seed}",
        f"{'strategy':<15} {'mean ± std':>16} {'runs':>5} {'queries':>8} {'sim. s':>8} {'us/query':>9} {'cpu us/q':>9}"
        + (f"   {f'published ({pub_name})':<28} {'inside':>6}" if pub else ""),
    ]
    lines.append("-" * len(lines[-1]))
    for name, r in report.results.items():
        row = (f"{name:<15} {f'{r.mean:.2f} ± {r.std:.2f}':>16} {len(r.runs):>5} {r.mean_queries:>8.1f} "
               f"{sum(x.seconds for x in r.runs) / len(r.runs):>8.0f} {r.us_per_query:>9.1f} {r.cpu_us_per_query:>9.1f}")
        if pub:
            ref = pub.get(name)
            if ref and ref[1] is not None:
                inside = "yes" if abs(r.mean - ref[0]) <= ref[1] else "no"
                row += f"   {f'{ref[0]:.2f} ± {ref[1]:.2f}':<28} {inside:>6}"
        lines.append(row)
    if pub:
        for name, (mean, std) in pub.items():
            if name not in report.results and std is not None:
                lines.append(f"{name:<15} {'(not run)':>16} {'':>5} {'':>8} {'':>8} {'':>9} {'':>9}   {f'{mean:.2f} ± {std:.2f}':<28}")
    peer = report.results.get("tpe")
    if peer is not None:
        ours = [(name, r) for name, r in report.results.items() if name not in ("tpe", "optuna-random")]
        if ours:
            lines.append("time per query, tpe's / ours (wall, cpu): " + ", ".join(
                f"{name} {peer.us_per_query / max(r.us_per_query, 1e-9):.1f}x, {peer.cpu_us_per_query / max(r.cpu_us_per_query, 1e-9):.1f}x"
                for name, r in ours))
    ceiling = f"ceiling (best-signal cell, mean over ties): {report.ceiling:.2f}"
    if pub and "optimum" in pub:
        ceiling += f"; optimum of the space (published): {pub['optimum'][0]:.2f}"
    lines.append(ceiling)
    for name, why in report.skipped.items():
        lines.append(f"{name}: skipped, {why}")
    return "\n".join(lines)


def write_json(report: BenchReport, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=1))
    return path


def write_plot(report: BenchReport, path: str | Path) -> Path | None:
    """Mean best-so-far report value against queries; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in report.results.items():
        curve = r.mean_curve()
        if len(curve):
            ax.plot(range(1, len(curve) + 1), curve, label=f"{name} ({r.mean:.2f})")
    ax.axhline(report.ceiling, color="grey", linestyle="--", linewidth=1, label=f"best-signal cell ({report.ceiling:.2f})")
    ax.set_xlabel("queries")
    ax.set_ylabel(f"{report.settings.report} of best by signal so far")
    ax.set_title(f"mean of {report.settings.runs} runs per strategy", fontsize=10)
    lows = [c[min(len(c) - 1, 9)] for c in (r.mean_curve() for r in report.results.values()) if len(c)]
    if lows:
        ax.set_ylim(min(lows) - 0.2, report.ceiling + 0.2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
