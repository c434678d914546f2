"""The `nasforge` command. User errors (a NasforgeError, or the file system refusing something) print one
line and exit 2; nasforge's warnings print as one line each; Ctrl-C exits 130, resumable."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .config import flags
from .errors import NasforgeError, NasforgeWarning

if TYPE_CHECKING:
    from .store import TrialRecord


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors: same exit code as config errors
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="nasforge", description="Neural architecture search that returns trained PyTorch models.")
    parser.add_argument("--version", action="version", version=f"nasforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("search", help="run or resume a search")
    p.add_argument("config", nargs="?", help="YAML config file (flags override it)")
    p.add_argument("--resume", action="store_true", help="continue the study in --out after a crash or Ctrl-C")
    for name, flag in flags().items():  # derived from the config schema (config.flags)
        text = f"{flag.help} [{flag.path}]".replace("%", "%%")  # argparse formats help with %: a literal one is %%
        if flag.kind == "repeat":  # each use adds one item (--constraint A --constraint B)
            p.add_argument(flag.option, dest=name, action="append", default=None, metavar="TEXT", help=text)
        elif flag.kind == "list":
            p.add_argument(flag.option, dest=name, default=None, metavar="A,B,...", help=text)
        else:
            kinds: dict[str, Callable[[str], Any]] = {"bool": _bool, "int": int, "float": float, "str": str}
            p.add_argument(flag.option, dest=name, type=kinds[flag.kind], default=None, metavar=flag.kind.upper(), help=text)

    p = sub.add_parser("show", help="leaderboard of a study")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="all trials as JSON")
    p.add_argument("--top", type=int, default=None, help="show only the best N trials")
    p.add_argument("--front", action="store_true", help="only the Pareto front of the study's objectives, with its hypervolume")
    p.add_argument("--reference", default=None, help="--front: hypervolume reference point, NAME=VALUE per objective "
                   "(default: a cost's upper constraint, else the worst value of each objective over the complete trials)")
    p.add_argument("--plot", default=None, help="--front: also write the front as a PNG here")

    p = sub.add_parser("export", help="export a trained model: weights + genome JSON + standalone .py (+ TorchScript / ONNX)")
    p.add_argument("run", help="run directory")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="the study's final model (default)")
    which.add_argument("--trial", type=int, help="a specific trial (its weights must have been kept)")
    which.add_argument("--front", action="store_true", help="every model of the Pareto front (studies with several objectives)")
    p.add_argument("--format", choices=("pytorch", "torchscript", "onnx"), default="pytorch",
                   help="pytorch: weights + genome + model.py; torchscript / onnx add that file, checked against PyTorch")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--space", default=None, metavar="MODULE:NAME", help="the run's own model function (or space class) "
                   "where it cannot be imported by the name the run recorded, e.g. one defined in a script: "
                   "path/to/script.py:make_model")

    p = sub.add_parser("report", help="HTML report of a study (plots, leaderboard, lineage); --serve for a live view")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="output folder or .html file (default RUN/report/)")
    p.add_argument("--serve", action="store_true", help="serve the report live over HTTP, rebuilt from the store as it changes")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port to serve on (0: any free port)")
    p.add_argument("--refresh", type=float, default=5.0, help="seconds between browser reloads of the live view")
    _add_bench_parser(sub)
    return parser


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    from .bench.harness import DEFAULT_STRATEGIES, NB201_COST

    p = sub.add_parser("bench", help="strategies x seeds over a tabular benchmark (NAS-Bench-201 protocol by default)")
    p.add_argument("--table", required=True, help="CSV with one architecture per row (e.g. ../shared/data/nb201/nb201.csv)")
    p.add_argument("--arch-column", default="arch_str", help="column holding the architecture string (default arch_str)")
    p.add_argument("--signal", default="c10_valid_12ep", help="column the strategies see as reward (default c10_valid_12ep)")
    p.add_argument("--report", default="c10_test_200ep_mean", help="column reported for the returned architecture")
    p.add_argument("--cost", default=None, help=f"simulated seconds per query: a column or an expression of columns "
                                                f"(default with a seconds budget: {NB201_COST})")
    p.add_argument("--queries", type=int, default=None, help="query budget per run")
    p.add_argument("--seconds", type=float, default=None, help="simulated-seconds budget per run (default 12000 when no --queries)")
    p.add_argument("--runs", type=int, default=200, help="runs per strategy, seeds SEED..SEED+RUNS-1 (default 200)")
    p.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES), help=f"comma-separated (default {','.join(DEFAULT_STRATEGIES)})")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--space", default="cell", help="search space whose genomes the arch column holds (default cell)")
    p.add_argument("--published", default="auto", help="published numbers to print beside ours: auto, none, nb201-cifar10, nb201-cifar100")
    p.add_argument("--json", required=True, help="write the results here as JSON")
    p.add_argument("--plot", default=None, help="PNG of mean best-so-far vs queries (default: the JSON path with .png)")


def _bench(args: argparse.Namespace) -> int:
    from .bench import BenchSettings, format_table, run_bench, write_json, write_plot
    from .bench.harness import NB201_COST
    from .bench.published import published_for

    published_for(args.published, args.report)  # a bad --published fails before hours of runs
    seconds = args.seconds if args.seconds is not None or args.queries is not None else 12000.0
    cost = args.cost if args.cost is not None else (NB201_COST if seconds is not None else None)
    settings = BenchSettings(
        table=args.table, arch_column=args.arch_column, signal=args.signal, report=args.report, cost=cost,
        queries=args.queries, seconds=seconds, runs=args.runs, seed=args.seed, space=args.space,
        strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
    )
    report = run_bench(settings, progress=lambda line: print(line, file=sys.stderr))
    print(format_table(report, args.published))
    path = write_json(report, args.json)
    plot = write_plot(report, args.plot or Path(args.json).with_suffix(".png"))
    print(f"results: {path}" + (f"; plot: {plot}" if plot else "; no plot (matplotlib is not installed)"))
    return 0


def _search(args: argparse.Namespace) -> int:
    from .api import build_study, resume_config
    from .config import build_config, read_yaml

    options = {name: getattr(args, name) for name in flags()}
    given = None
    if args.resume:
        if args.config:
            raise NasforgeError("give either a config file or --resume --out RUN, not both")
        if options["out"] is None:
            raise NasforgeError("--resume needs --out RUN_DIR")
        # A run of a model function defined in a script cannot import it by itself: --space hands it over
        # (FILE.py:NAME or MODULE:NAME), as for export; the run's recorded decisions still decide the space.
        space_text = options.pop("space", None)
        if space_text is not None:
            from .space.resolve import load_space_object

            given = load_space_object(space_text)
        config = resume_config(options.pop("out"), **options)
    else:
        config = build_config(read_yaml(args.config) if args.config else {}, **options)
    study = build_study(config, resume=args.resume, space=given)
    if study.rundir.taken_over is not None:
        print(f"note: the previous writer of {config.out} ({study.rundir.taken_over.describe()}) ended without closing the "
              "run (killed or crashed); its lock is taken over", file=sys.stderr)
    print(f"study in {config.out}: {config.strategy.name} on {config.dataset.name}", file=sys.stderr)
    try:
        study.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: nasforge search --resume --out {config.out}", file=sys.stderr)
        return 130
    print_summary(study, config)
    return 0


def print_summary(study: Any, config: Any) -> None:
    """What a newcomer needs once the search ends: the best architecture, its scores, where the run
    is, and the commands to try next on it."""
    statuses = [t.status for t in study.trials]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
    print(f"stopped: {study.stop_reason}; {len(statuses)} trials ({counts})")
    run = shlex.quote(str(config.out))
    final = study.final
    if final:
        best = study.store.trial(final["trial"])
        folds = len(best.metrics.get("cv_accuracy", ()))
        where = f"validation ({folds}-fold mean)" if folds else "validation"
        print(f"best architecture (trial {best.id}): {study.space.describe(study.space.from_json(best.genome))}")
        params = f"{best.params:,} parameters" if best.params is not None else "parameters not counted"
        candidates = final.get("candidates") or {}
        if candidates:  # the search's scores only ranked (one-shot): the returned network was retrained and re-scored
            where = "search-time validation (shared weights)"
        print(f"  {where} {study.evaluator.reward_name} {best.reward:.4f}, {params}")
        if str(best.id) in candidates:
            print(f"  retrained from scratch: validation {study.evaluator.reward_name} {candidates[str(best.id)]['reward']:.4f}, "
                  f"the best of the {len(candidates)} best trials retrained")
        test = final.get("test") or {}
        # Accuracy, the study's own reward where the test split has it (f1, precision, ...), and the loss.
        names = dict.fromkeys(("accuracy", study.evaluator.reward_name, "f1", "loss"))
        scores = [f"{name} {test[name]:.4f}" for name in names if isinstance(test.get(name), (int, float))]
        print(f"  test {', '.join(scores) or 'not scored'} (the returned model: {final['source']}; test split scored once)")
    else:
        print("no trial completed, so there is no model to return; `nasforge show` lists the failures")
    print(f"run: {run}  (study.sqlite: every trial; final.pt: the returned model's weights)")
    print("next:")
    front = len(config.objectives) >= 2
    model = str(Path(config.out) / "model")
    load = f"import nasforge; print(nasforge.load({json.dumps(model)}))"
    for command, why in (
        (f"nasforge show {run}" + (" --front" if front else ""), "the leaderboard" + (" and the Pareto front" if front else "")),
        (f"nasforge report {run}", "an HTML report with plots"),
        (f"nasforge export {run} --best --out {shlex.quote(model)}", "weights.pt + genome.json + model.py"),
        (f"python -c {shlex.quote(load)}", "the trained torch.nn.Module, back from the export"),
    ):
        if final or command.startswith("nasforge show"):
            print(f"  {command:<60}  # {why}")


def _rows(run: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:
    from .store import Store

    store = Store.in_dir(run)
    try:
        trials, final, config = store.trials(), store.get("final"), store.get("config")
        if config and store.get("reward_name"):
            config = {**config, "reward": store.get("reward_name")}  # "auto" as resolved for the study's task
    finally:
        store.close()
    rows = [t.to_dict() for t in trials]
    return rows, final, config


def _show_front(args: argparse.Namespace) -> int:
    from .evaluate.constraints import parse_constraints
    from .objectives import front_hypervolume, objective_matrix, objective_value, pareto_front, study_objectives
    from .report.snapshot import read_run

    snap = read_run(args.run)
    objs = study_objectives(snap.config)
    if len(objs) < 2:
        raise NasforgeError(f"{args.run}: --front needs a study with several objectives (search with --objectives A,B)")
    front = pareto_front(snap.trials, objs)
    if not front:
        raise NasforgeError(f"{args.run}: no complete trial has values for all objectives ({', '.join(o.name for o in objs)})")
    _, points = objective_matrix(snap.trials, objs)
    worst = points.max(axis=0)  # oriented to minimise: back to each objective's own sign below
    reference = {o.name: float(-w if o.maximize else w) for o, w in zip(objs, worst, strict=True)}
    # A cost the study capped has its cap as the natural bound (the worst a feasible model may be).
    for c in parse_constraints(snap.config.get("constraints") or ()):
        if c.measure in reference and c.op in ("<", "<=") and not next(o for o in objs if o.name == c.measure).maximize:
            reference[c.measure] = c.limit
    if args.reference:
        for item in args.reference.split(","):
            name, _, value = item.partition("=")
            if name.strip() not in reference:
                raise NasforgeError(f"--reference: {name.strip()!r} is not an objective of this study ({', '.join(reference)})")
            try:
                reference[name.strip()] = float(value)
            except ValueError:
                raise NasforgeError(f"--reference: {item!r} is not NAME=NUMBER") from None
    volume = front_hypervolume(snap.trials, objs, [reference[o.name] for o in objs])
    first = objs[0]

    def best_first(trial: TrialRecord) -> float:  # every trial of the front has every objective's value
        value = objective_value(trial, first.name)
        return math.inf if value is None else (-value if first.maximize else value)

    front = sorted(front, key=best_first)
    extra = [m for m in ("params", "flops", "latency_ms", "size_bytes") if m not in {o.name for o in objs}]
    if args.json:
        print(json.dumps({"objectives": [o.label for o in objs], "reference": reference, "hypervolume": volume,
                          "front": [t.to_dict() for t in front]}, indent=1))
        return 0
    names = [o.name for o in objs] + extra
    print(f"Pareto front of {', '.join(o.label for o in objs)}: {len(front)} of {len(snap.complete)} complete trials")
    print(f"{'trial':>5} " + " ".join(f"{n:>12}" for n in names) + "  architecture")
    for t in front:
        values = [objective_value(t, n) for n in names]
        cells = " ".join(f"{v:>12.6g}" if v is not None else f"{'-':>12}" for v in values)
        print(f"{t.id:>5} {cells}  {json.dumps(t.genome, separators=(',', ':'))[:80]}")
    ref = ", ".join(f"{k}={v:g}" for k, v in reference.items())
    print(f"hypervolume {volume:.6g} against the reference point {ref}")
    if args.plot:
        from .report.plots import pareto_figure

        figure = pareto_figure(snap)
        if figure is not None:
            figure.savefig(args.plot, dpi=110, bbox_inches="tight")
            print(f"plot: {args.plot}")
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.front:
        return _show_front(args)
    rows, final, config = _rows(Path(args.run))
    ranked = sorted(rows, key=lambda r: (r["status"] != "complete", -(r["reward"] if r["reward"] is not None else 0), r["id"]))
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank if row["status"] == "complete" else None
    if args.top:
        ranked = ranked[: args.top]
    if args.json:
        print(json.dumps(ranked if not final else [{**r, "final": r["id"] == final["trial"]} for r in ranked], indent=1))
        return 0
    reward = config.get("reward", "reward") if config else "reward"
    # Regression trials have no accuracy: their columns are the errors (in the targets' units) and R².
    regression = any("rmse" in (r["metrics"] or {}) for r in rows)
    columns = (("rmse", "rmse"), ("mae", "mae"), ("r2", "r2"), ("loss", "loss")) if regression else \
        (("accuracy", "acc"), ("precision", "prec"), ("recall", "rec"), ("f1", "f1"))
    head = (f"{'rank':>4} {'trial':>5} {'status':<8} {reward:>9} " + " ".join(f"{label:>6}" for _, label in columns)
            + f" {'params':>9} {'secs':>6} {'parents':<9} operator")
    print(head)
    print("-" * len(head))
    for r in ranked:
        m = r["metrics"] or {}

        def f(key: str, m: dict = m) -> str:
            return f"{m[key]:.4f}" if key in m else "-"

        rew = f"{r['reward']:.4f}" if r["reward"] is not None else "-"
        line = (f"{r['rank'] or '-':>4} {r['id']:>5} {r['status']:<8} {rew:>9} " + " ".join(f"{f(key):>6}" for key, _ in columns)
                + f" {r['params'] or '-':>9} {r['train_seconds'] or 0:>6.1f} {','.join(map(str, r['parents'])) or '-':<9} {r['operator']}")
        if r["error"]:
            line += f"  [{r['error'][:60]}]"
        print(line)
    if final:
        test = final.get("test") or {}
        names = {"accuracy": "accuracy", "f1": "macro F1", "auc": "AUC", "rmse": "RMSE", "mae": "MAE", "r2": "R²", "loss": "loss"}
        shown = [f"{label} {test[key]:.4f}" for key, label in names.items() if isinstance(test.get(key), (int, float))][:3]
        print(f"\nreturned model: trial {final['trial']} ({final['source']}); test " + (", ".join(shown) or "(not scored)"))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import example_batch, export_front, export_trial
    from .exported import check_export
    from .space.resolve import load_space_object

    space = load_space_object(args.space) if args.space else None
    if args.front:
        folders, skipped = export_front(args.run, args.out, format=args.format, space=space)
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
    else:
        folders = [export_trial(args.run, args.out, trial_id=args.trial, format=args.format, space=space)]
    batch = example_batch(args.run) if args.format != "pytorch" else None
    for folder in folders:
        files = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_file()))
        print(f"exported to {folder}: {files}")
        if batch is not None:
            for form, diff in check_export(folder, batch, space=space).items():
                print(f"  {form} vs PyTorch on {len(batch)} example inputs: max abs diff {diff:.3g}")
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.serve:
        from .report.serve import serve

        try:
            serve(args.run, host=args.host, port=args.port, refresh_seconds=args.refresh)
        except OSError as exc:  # port taken, address not local
            raise NasforgeError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from exc
        except KeyboardInterrupt:  # the normal way to stop serving
            return 0
        return 0
    from .report.build import write_report

    print(f"report written to {write_report(args.run, args.out)}")
    return 0


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    if issubclass(category, NasforgeWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return {"search": _search, "show": _show, "export": _export, "report": _report, "bench": _bench}[args.command](args)
    except NasforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused something nasforge did not foresee: still the user's to fix
        from .rundir import describe_os_error

        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {describe_os_error(exc)}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    raise SystemExit(main())
