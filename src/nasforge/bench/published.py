"""Published search results to print beside ours (NAS-Bench-201 paper, Dong & Yang, ICLR 2020:
test accuracy of the returned architecture, mean ± std, 12,000 simulated seconds of search)."""

from __future__ import annotations

# name -> {strategy: (mean, std)}; "optimum" is the best report value in the whole space.
PUBLISHED: dict[str, dict[str, tuple[float, float | None]]] = {
    "nb201-cifar10": {"rea": (93.92, 0.30), "reinforce": (93.85, 0.37), "random": (93.70, 0.36), "bohb": (93.61, 0.52),
                      "optimum": (94.37, None)},
    "nb201-cifar100": {"rea": (71.84, 0.99), "reinforce": (71.71, 1.09), "random": (71.04, 1.07), "bohb": (70.85, 1.28),
                       "optimum": (73.51, None)},
}

# Which published set matches a report column when the user leaves --published at auto. Only a
# display default: the harness itself reads whatever columns it is given.
AUTO = {"c10_test_200ep_mean": "nb201-cifar10", "c100_test_200ep_mean": "nb201-cifar100"}


def published_for(choice: str, report_column: str) -> tuple[str | None, dict[str, tuple[float, float | None]]]:
    if choice == "none":
        return None, {}
    name = AUTO.get(report_column) if choice == "auto" else choice
    if name is None:
        return None, {}
    if name not in PUBLISHED:
        from ..errors import ConfigError

        raise ConfigError(f"--published {choice!r}: choose auto, none or one of {', '.join(PUBLISHED)}")
    return name, PUBLISHED[name]
