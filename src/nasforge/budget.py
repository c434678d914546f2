"""When a search stops: one Budget for trained studies and table look-ups alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """Stop after `trials` evaluations, after `seconds` of time (wall-clock for a study, simulated
    for a tabular benchmark), or once the best reward reaches `target`, whichever comes first.

    The budget is checked before each new evaluation, not after: the evaluation that crosses the
    seconds budget still counts, as in the NAS-Bench-201 protocol."""

    trials: int | None = None
    seconds: float | None = None
    target: float | None = None

    def stop_reason(self, trials: int, seconds: float, best: float | None = None) -> str | None:
        """Why a search with these counts must stop ("target", "seconds", "trials"), or None."""
        if self.target is not None and best is not None and best >= self.target:
            return "target"
        if self.seconds is not None and seconds >= self.seconds:
            return "seconds"
        if self.trials is not None and trials >= self.trials:
            return "trials"
        return None

    def exhausted(self, trials: int, seconds: float, best: float | None = None) -> bool:
        return self.stop_reason(trials, seconds, best) is not None
