"""The sections of a search config about what a search optimises besides the reward: the names of
the measures it may optimise, constrain or scalarize, how cost measures are taken, and the
scalarized reward strategies see."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .sections import _Strict

# What a trained study can optimise, constrain or scalarize: the validation metrics and the cost
# measures of evaluate/cost.py (measured before training, so the only ones constraints may use).
COST_MEASURES = ("params", "flops", "size_bytes", "latency_ms")
# receptive_field: read off the genome (layers space), for constraints only.
CONSTRAINT_MEASURES = (*COST_MEASURES, "receptive_field")
METRICS = ("accuracy", "precision", "recall", "f1", "loss", "reward", "train_seconds", "auc", "average_precision",
           "label_accuracy", "rmse", "mae", "r2", *COST_MEASURES)


class CostConfig(_Strict):
    """How cost measures are taken; params, flops, size_bytes and latency_ms are recorded for every trial."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"flag_prefix": "latency_"})

    batch_size: int = Field(1, ge=1, le=1 << 16, description="samples per timed forward pass of latency_ms",
                            json_schema_extra={"flag": "latency_batch"})
    warmup: int = Field(3, ge=0, le=1000, description="untimed forward passes before latency is timed")
    repeats: int = Field(10, ge=1, le=10000, description="timed forward passes; latency_ms is their median")
    device: Literal["cpu", "cuda"] = Field("cpu", description="where latency_ms is timed: cpu, or cuda (the GPU the trial "
                                           "runs on, synchronised around every timed pass); float32, eval mode")


class ScalarizeConfig(_Strict):
    """The reward strategies see: the plain reward, MnasNet's reward x (LAT/T)^w, or a weighted sum."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"flag_prefix": "scalarize_"})

    name: Literal["none", "mnasnet", "weighted"] = Field("none", description="reward strategies see: none, mnasnet "
                                                         "(reward x (LAT/T)^w) or weighted (a weighted sum)")
    measure: Literal["params", "flops", "size_bytes", "latency_ms"] = Field("latency_ms", description="mnasnet: the cost LAT")
    target: float | None = Field(None, gt=0, description="mnasnet: the target T of the cost")
    mode: Literal["soft", "hard"] = Field("soft", description="mnasnet: soft (alpha = beta = -0.07) or hard (alpha = 0, beta = -1)")
    alpha: float | None = Field(None, description="mnasnet: exponent when LAT <= T (overrides mode)")
    beta: float | None = Field(None, description="mnasnet: exponent when LAT > T (overrides mode)")
    weights: dict[str, float] = Field(default_factory=dict, description="weighted: NAME=WEIGHT,... e.g. accuracy=1,params=-1e-6; "
                                      "'reward' is the plain reward", json_schema_extra={"flag_type": "str"})

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        out: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in v.split(","))):
            name, sep, weight = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r}: expected NAME=WEIGHT")
            out[name.strip()] = weight.strip()
        return out

    @model_validator(mode="after")
    def _complete(self) -> ScalarizeConfig:
        if self.name == "mnasnet" and self.target is None:
            raise ValueError("target: the mnasnet reward needs a target for its measure (e.g. latency_ms 5)")
        if self.name == "weighted" and not self.weights:
            raise ValueError("weights: a weighted sum needs NAME=WEIGHT pairs, e.g. accuracy=1,params=-1e-6")
        known = [m for m in METRICS if m != "train_seconds"]  # the reward is computed before that is known
        unknown = sorted(set(self.weights) - set(known))
        if unknown:
            raise ValueError(f"weights: unknown name(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return self
