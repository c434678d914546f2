"""The predictor strategy under constraints: the candidates it decodes are filtered like mutations are."""

from __future__ import annotations


def test_predictor_candidates_respect_constraints(tmp_path) -> None:
    from nasforge.api import build_study
    from nasforge.config import build_config

    config = build_config({"strategy": {"name": "predictor", "init": 3}, "constraints": ["params<=1000"]},
                          dataset="digits", trials=10, epochs=1, max_blocks=3, out=str(tmp_path / "run"), progress=False)
    study = build_study(config).run()
    errors = [t.error for t in study.trials if t.error]
    assert not any("infeasible" in e for e in errors), errors
    assert sum(t.operator == "predicted" for t in study.trials) >= 5
