"""Trial loggers for TensorBoard and MLflow: callbacks (callbacks.py) that write every finished trial's
learning curve, metrics and genome, and at the end the returned model and its scores.

    nasforge.search(..., loggers=["tensorboard", "mlflow"])          # or in the config / --loggers
    nasforge.search(..., callbacks=[TensorBoardLogger("tb/"), MLflowLogger("http://mlflow:5000")])

Both are optional extras (`pip install 'nasforge[tensorboard]'`, `'nasforge[mlflow]'`), imported only
when chosen. They write from the process that runs the search, after the trial is in the store,
under any executor. TensorBoard: one event folder per trial (RUN/tensorboard/trial_00001: the curve
by epoch, final metrics, the genome as text) and RUN/tensorboard/search (every trial's reward by trial
id, the best so far, the returned model's scores and architecture). MLflow: one run for the search
with a nested run per trial (params: genome, operator, parents, seed, status; metrics: the curve by
epoch and the final metrics; artifact genome.json), and the returned model's weights (final.pt) and
genome as artifacts of the search run. Without a tracking URI (argument or MLFLOW_TRACKING_URI) MLflow
writes a file store in RUN/mlruns (`mlflow ui --backend-store-uri RUN/mlruns`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from .callbacks import Callback
from .errors import ConfigError
from .store import TrialRecord

LOGGERS = ("tensorboard", "mlflow")


def numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite scalar metrics of a trial (drops the confusion matrix, lists, texts)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def make_logger(name: str, run_dir: str | Path) -> Callback:
    if name == "tensorboard":
        return TensorBoardLogger(Path(run_dir) / "tensorboard")
    if name == "mlflow":
        return MLflowLogger(run_dir=run_dir)
    raise ConfigError(f"loggers: unknown logger {name!r}; choose from {', '.join(LOGGERS)}")


class TensorBoardLogger(Callback):
    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError("loggers: tensorboard needs the 'tensorboard' package: pip install 'nasforge[tensorboard]'") from exc
        self.writer_class = SummaryWriter
        self.log_dir = Path(log_dir)
        self._search: Any = None

    def _search_writer(self) -> Any:
        if self._search is None:
            self._search = self.writer_class(str(self.log_dir / "search"))
        return self._search

    def on_trial_end(self, study: Any, record: TrialRecord) -> None:
        writer = self.writer_class(str(self.log_dir / f"trial_{record.id:05d}"))
        try:
            for point in record.curve:
                for key, value in numbers(point).items():
                    if key != "epoch":
                        writer.add_scalar(f"curve/{key}", value, int(point.get("epoch", 0)))
            for key, value in numbers(record.metrics).items():
                writer.add_scalar(f"metrics/{key}", value, 0)
            writer.add_text("genome", f"`{json.dumps(record.genome)}`")
            writer.add_text("status", f"{record.status}" + (f": {record.error}" if record.error else ""))
        finally:
            writer.close()
        search = self._search_writer()
        if record.reward is not None:
            search.add_scalar("search/reward", record.reward, record.id)
        best = study.best
        if best is not None:
            search.add_scalar("search/best_reward", best.reward, record.id)
        search.flush()

    def on_search_end(self, study: Any) -> None:
        search = self._search_writer()
        final = study.final
        if final is not None:
            for split in ("val", "test"):
                for key, value in numbers(final.get(split) or {}).items():
                    search.add_scalar(f"final/{split}_{key}", value, 0)
            best = study.store.trial(final["trial"])
            search.add_text("final/model", f"trial {final['trial']} ({final['source']}): "
                            f"`{study.space.describe(study.space.from_json(best.genome))}`; weights {study.run_dir / final['weights']}")
        search.close()
        self._search = None


class MLflowLogger(Callback):
    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, run_dir: str | Path | None = None):
        try:
            import mlflow
        except ImportError as exc:
            raise ConfigError("loggers: mlflow needs the 'mlflow' package: pip install 'nasforge[mlflow]'") from exc
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if uri is None:
            if run_dir is None:
                raise ConfigError("loggers: MLflowLogger needs a tracking_uri (or MLFLOW_TRACKING_URI, or a run_dir for a file store)")
            uri = (Path(run_dir).resolve() / "mlruns").as_uri()
        with _file_store_allowed(uri):
            self.client = mlflow.MlflowClient(tracking_uri=uri)
        self.uri = uri
        self.experiment_name = experiment or (Path(run_dir).name if run_dir else "nasforge")
        self._parent: str | None = None

    def _parent_run(self, study: Any) -> str:
        if self._parent is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            experiment = found.experiment_id if found else self.client.create_experiment(self.experiment_name)
            run = self.client.create_run(experiment, run_name=f"search {study.run_dir.name}",
                                         tags={"nasforge.run_dir": str(study.run_dir)})
            self._parent, self._experiment = run.info.run_id, experiment
        return self._parent

    def on_trial_end(self, study: Any, record: TrialRecord) -> None:
        parent = self._parent_run(study)
        run = self.client.create_run(self._experiment, run_name=f"trial {record.id}",
                                     tags={"mlflow.parentRunId": parent, "nasforge.status": record.status})
        rid = run.info.run_id
        for key, value in {"trial": record.id, "operator": record.operator, "parents": ",".join(map(str, record.parents)),
                           "seed": record.seed, "status": record.status,
                           "genome": json.dumps(record.genome, separators=(",", ":"))[:6000]}.items():
            self.client.log_param(rid, key, value)
        for point in record.curve:
            for key, value in numbers(point).items():
                if key != "epoch":
                    self.client.log_metric(rid, f"curve_{key}", value, step=int(point.get("epoch", 0)))
        for key, value in numbers(record.metrics).items():
            self.client.log_metric(rid, key, value)
        if record.reward is not None:
            self.client.log_metric(rid, "reward", record.reward)
            self.client.log_metric(parent, "reward", record.reward, step=record.id)
        self.client.log_text(rid, json.dumps(record.genome, indent=1), "genome.json")
        self.client.set_terminated(rid, "FINISHED" if record.status != "failed" else "FAILED")

    def on_search_end(self, study: Any) -> None:
        parent = self._parent_run(study)
        final = study.final
        if final is not None:
            for split in ("val", "test"):
                for key, value in numbers(final.get(split) or {}).items():
                    self.client.log_metric(parent, f"final_{split}_{key}", value)
            best = study.store.trial(final["trial"])
            self.client.log_param(parent, "final_trial", final["trial"])
            self.client.log_text(parent, json.dumps({"space": study.space.name, "genome": best.genome, "source": final["source"]},
                                                    indent=1), "final/genome.json")
            self.client.log_artifact(parent, str(study.run_dir / final["weights"]), "final")
        self.client.set_terminated(parent)
        self._parent = None


@contextlib.contextmanager
def _file_store_allowed(uri: str) -> Any:
    """MLflow 3 refuses a file store unless told otherwise: allowed here, for our own default store only."""
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
