"""Benchmark tables built from the JSON the benchmark scripts keep in benchmarks/results/, so that a
figure on a docs page is the figure a script wrote, with the date and machine it wrote beside it.

A re-run of a script rewrites its JSON; the next site build shows the new figures. A missing JSON
fails the build (the site is built with --strict), naming the command that writes it.

Loaded by generate.py (the MkDocs hook), which maps the page markers to these functions. Plain
functions of a results folder, so tests can call them on JSON of their own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"

NB201 = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
NB201_COMMAND = "OMP_NUM_THREADS=1 python benchmarks/quality/nb201_bench.py"
CHEAPER_COMMAND = "python benchmarks/performance/cheaper_evaluation.py"


def _read(path: Path, command: str) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: it is written by `{command}`")
    return json.loads(path.read_text())


def _machine(machine: dict[str, Any]) -> str:
    if not machine:
        return "not recorded"
    load = " → ".join(f"{m[0]:.2f}" for m in (machine.get("load_start"), machine.get("load_end")) if m)
    return f"{machine.get('date', '?')}, {machine.get('cores', '?')} cores" + (f", load average {load}" if load else "")


def _us(value: float) -> str:
    return f"{value:,.0f}"


def nb201_markdown(folder: Path = RESULTS) -> str:
    """Each strategy's mean ± std test accuracy on CIFAR-10 and CIFAR-100, the published figures and
    the CPU time per query, from nb201_cifar10.json and nb201_cifar100.json."""
    from nasforge.bench.published import AUTO, PUBLISHED

    reports = {name: _read(folder / f"nb201_{name}.json", NB201_COMMAND) for name in NB201}
    names = list(dict.fromkeys(s for r in reports.values() for s in r["strategies"]))
    published = {name: PUBLISHED.get(AUTO.get(r["settings"]["report"], ""), {}) for name, r in reports.items()}
    first = next(iter(reports.values()))["settings"]
    budget = " and ".join(x for x in (f"{first['queries']} queries" if first.get("queries") else "",
                                      f"{first['seconds']:g} simulated seconds" if first.get("seconds") else "") if x)
    lines = [f"- **command**: `{NB201_COMMAND}` ({first['runs']} runs from seed {first['seed']}, {budget} each)"]
    lines += [f"- **{NB201[name]}**: {_machine(r.get('machine', {}))}; signal `{r['settings']['signal']}`, "
              f"report `{r['settings']['report']}`" for name, r in reports.items()]
    lines += ["", "| strategy | " + " | ".join(NB201[n] for n in reports) + " | published (" + " / ".join(NB201[n] for n in reports)
              + ") | CPU µs per query (" + " / ".join(NB201[n] for n in reports) + ") |", "| --- " * (len(reports) + 3) + "|"]
    best = {n: max(r["strategies"].values(), key=lambda s: s["mean"])["mean"] for n, r in reports.items()}
    for strategy in names:
        cells, pubs, costs = [], [], []
        for name, r in reports.items():
            s = r["strategies"].get(strategy)
            text = f"{s['mean']:.2f} ± {s['std']:.2f}" if s else "–"
            cells.append(f"**{text}**" if s and s["mean"] == best[name] else text)
            pub = published[name].get(strategy)
            pubs.append(f"{pub[0]:.2f} ± {pub[1]:.2f}" if pub and pub[1] is not None else "–")
            costs.append(_us(s["cpu_us_per_query"]) if s else "–")
        pub_cell = " / ".join(pubs) if any(p != "–" for p in pubs) else "–"
        lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {pub_cell} | {' / '.join(costs)} |")
    ceilings = " / ".join(f"{r['settings']['ceiling']:.2f}" for r in reports.values())
    lines += ["", f"Ceiling of the protocol (always the best-signal cell): {ceilings}."]
    ratios = []
    for name, r in reports.items():
        s = r["strategies"]
        if "tpe" in s and "predictor" in s:
            ratios.append(f"{s['tpe']['cpu_us_per_query'] / s['predictor']['cpu_us_per_query']:.1f}× ({NB201[name]})")
    if ratios:
        lines[-1] += " CPU time per query of Optuna's TPE over the predictor's: " + ", ".join(ratios) + "."
    return "\n".join(lines) + "\n"


def cheaper_evaluation_markdown(folder: Path = RESULTS) -> str:
    """Test accuracy and CPU of each cheaper-evaluation setting, from cheaper_evaluation.json."""
    result = _read(folder / "cheaper_evaluation.json", CHEAPER_COMMAND)
    args, summary = result["command"], result["summary"]
    command = (f"{CHEAPER_COMMAND} --jobs {args['jobs']} --seeds {' '.join(map(str, args['seeds']))} "
               f"--settings {' '.join(args['settings'])}")
    seeds = args["seeds"]
    lines = [f"- **command**: `{command}` (regularized evolution, {args['trials']} trials, one torch thread per search, "
             "CPU = process CPU time of the whole search)",
             f"- **measured**: {_machine(result.get('machine', {}))}",
             f"- **target**: validation accuracy {summary['target']:.3f} ({summary['target_from']})", "",
             f"| setting | test accuracy (mean ± sd, {len(seeds)} seeds) | CPU s (vs plain) | CPU s to the target "
             "| mean parameters of the trained candidates |", "| --- | --- | --- | --- | --- |"]
    for r in summary["settings"]:
        ratio = f" ({r['vs_plain']:.2f}×)" if r["vs_plain"] is not None else ""
        reached = f"{r['cpu_to_target']:.0f} ({r['reached']}/{r['runs']} runs)" if r["reached"] else f"never (0/{r['runs']})"
        lines.append(f"| {r['label']} | {r['test_mean']:.3f} ± {r['test_sd']:.3f} | {r['cpu']:.0f}{ratio} | {reached} | "
                     f"{r['mparams'] * 1e6:,.0f} |")
    notes = []
    if summary.get("prescreen"):
        p = summary["prescreen"]
        notes.append(f"The pre-screen built and scored {p['candidates']} candidates in {p['searches']} searches, "
                     f"{p['ms_per_candidate']:.1f} ms of CPU each.")
    if summary.get("proxies"):
        p = summary["proxies"]
        notes.append(f"Spearman correlation with trained validation accuracy over {p['trials']} plain trials: "
                     f"synflow {p['synflow']:.2f}, naswot {p['naswot']:.2f}.")
    return "\n".join(lines + ([""] + [" ".join(notes)] if notes else [])) + "\n"
