"""The `nasforge` command. User errors print one line and exit 2; Ctrl-C exits 130, resumable."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import FLAGS
from .errors import NasforgeError


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: same exit code as config errors
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nasforge", description="Neural architecture search that returns trained PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("search", help="run or resume a search")
    p.add_argument("config", nargs="?", help="YAML config file (flags override it)")
    p.add_argument("--resume", action="store_true", help="continue the study in --out after a crash or Ctrl-C")
    for name, (path, kind, text) in FLAGS.items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, dest=name, type=_bool if kind is bool else kind, default=None, metavar=kind.__name__.upper(),
                       help=f"{text} [{path}]")

    p = sub.add_parser("show", help="leaderboard of a study")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="all trials as JSON")
    p.add_argument("--top", type=int, default=None, help="show only the best N trials")

    p = sub.add_parser("export", help="export a trained model: weights + genome JSON + standalone .py")
    p.add_argument("run", help="run directory")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="the study's final model (default)")
    which.add_argument("--trial", type=int, help="a specific trial (its weights must have been kept)")
    p.add_argument("--out", required=True, help="output folder")
    return parser


def _search(args: argparse.Namespace) -> int:
    from .api import build_study, resume_config
    from .config import build_config, read_yaml

    options = {name: getattr(args, name) for name in FLAGS}
    if args.resume:
        if args.config:
            raise NasforgeError("give either a config file or --resume --out RUN, not both")
        if options["out"] is None:
            raise NasforgeError("--resume needs --out RUN_DIR")
        config = resume_config(options.pop("out"), **options)
    else:
        config = build_config(read_yaml(args.config) if args.config else {}, **options)
    study = build_study(config, resume=args.resume)
    print(f"study in {config.out}: {config.strategy.name} on {config.dataset.name}", file=sys.stderr)
    try:
        study.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: nasforge search --resume --out {config.out}", file=sys.stderr)
        return 130
    final = study.final
    print(f"stopped: {study.stop_reason}; {len(study.trials)} trials")
    if final:
        best = study.store.trial(final["trial"])
        print(f"best: trial {best.id}  val {study.evaluator.reward}={best.reward:.4f}  "
              f"test accuracy={final['test']['accuracy']:.4f}  params={best.params}")
        print(f"  {study.space.describe(study.space.from_json(best.genome))}")
    return 0


def _rows(run: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:
    from .store import Store

    store = Store.in_dir(run)
    try:
        trials, final, config = store.trials(), store.get("final"), store.get("config")
    finally:
        store.close()
    rows = [t.to_dict() for t in trials]
    return rows, final, config


def _show(args: argparse.Namespace) -> int:
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
    head = f"{'rank':>4} {'trial':>5} {'status':<8} {reward:>9} {'acc':>6} {'prec':>6} {'rec':>6} {'f1':>6} {'params':>9} {'secs':>6} {'parents':<9} operator"
    print(head)
    print("-" * len(head))
    for r in ranked:
        m = r["metrics"] or {}

        def f(key: str, m: dict = m) -> str:
            return f"{m[key]:.4f}" if key in m else "-"

        rew = f"{r['reward']:.4f}" if r["reward"] is not None else "-"
        line = (f"{r['rank'] or '-':>4} {r['id']:>5} {r['status']:<8} {rew:>9} {f('accuracy'):>6} {f('precision'):>6} "
                f"{f('recall'):>6} {f('f1'):>6} {r['params'] or '-':>9} {r['train_seconds'] or 0:>6.1f} "
                f"{','.join(map(str, r['parents'])) or '-':<9} {r['operator']}")
        if r["error"]:
            line += f"  [{r['error'][:60]}]"
        print(line)
    if final:
        print(f"\nreturned model: trial {final['trial']} ({final['source']}); test accuracy {final['test']['accuracy']:.4f}, "
              f"macro F1 {final['test']['f1']:.4f}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_trial

    out = export_trial(args.run, args.out, trial_id=args.trial)
    print(f"exported to {out}: weights.pt, genome.json, model.py")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"search": _search, "show": _show, "export": _export}[args.command](args)
    except NasforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
