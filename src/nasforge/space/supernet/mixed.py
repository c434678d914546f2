"""A choice among modules: the one piece every weight-sharing supernet is made of.

A `MixedOp` holds named candidate modules and runs one of them, the active one, per forward pass.
A supernet is an ordinary nn.Module with MixedOps where its space makes choices; a path (one
architecture) is an assignment of one candidate to every MixedOp *label*. Several MixedOps may
share a label: the NB201 cell repeats one genome in every cell, so edge `edge01` of each cell is
one decision. The functions here work on any module tree that contains MixedOps, so a cell
supernet and a define-by-run one (a user function whose `c.module(label, {...})` returns a
MixedOp in supernet mode) share activation, extraction and batch-norm recalibration.

Extraction rests on one convention: the standalone network of a path is the supernet with every
MixedOp replaced by its active candidate, so its state_dict keys are the supernet's keys with each
`<mixed op>.candidates.<name>.` collapsed to `<mixed op>.` (`path_state_dict`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ...errors import InvalidGenome

# A candidate is a module, or a zero-argument callable that builds one (so that ordinary mode,
# which builds only the chosen candidate, need not build the others).
Candidate = nn.Module | Callable[[], nn.Module]


def build_candidate(candidate: Candidate) -> nn.Module:
    module = candidate if isinstance(candidate, nn.Module) else candidate()
    if not isinstance(module, nn.Module):
        raise InvalidGenome(f"a candidate must be an nn.Module or a callable returning one, got {type(module).__name__}")
    return module


class MixedOp(nn.Module):
    """Named candidate modules under one decision `label`; `forward` runs the active candidate."""

    def __init__(self, label: str, candidates: Mapping[str, Candidate], active: str | None = None):
        super().__init__()
        if not candidates:
            raise InvalidGenome(f"choice {label!r} has no candidates")
        bad = [name for name in candidates if not isinstance(name, str) or not name or "." in name]
        if bad:
            raise InvalidGenome(f"choice {label!r}: candidate names must be non-empty strings without '.', got {bad!r}")
        self.label = label
        self.candidates = nn.ModuleDict({name: build_candidate(c) for name, c in candidates.items()})
        self.active = active if active is not None else next(iter(candidates))
        self.activate(self.active)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.candidates.keys())

    def activate(self, name: str) -> None:
        if name not in self.candidates:
            raise InvalidGenome(f"choice {self.label!r} has no candidate {name!r}; it has {', '.join(self.names)}")
        self.active = name

    def active_module(self) -> nn.Module:
        return self.candidates[self.active]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.candidates[self.active](*args, **kwargs)

    def extra_repr(self) -> str:
        return f"label={self.label!r}, active={self.active!r}"


def mixed_ops(model: nn.Module) -> list[tuple[str, MixedOp]]:
    """Every MixedOp of `model` with its module path, outermost first (a MixedOp inside an inactive
    candidate of another is listed too: it belongs to other paths)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MixedOp)]


def choices_of(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """The decisions of a supernet: label -> candidate names (in their order); MixedOps that share
    a label must offer the same candidates."""
    out: dict[str, tuple[str, ...]] = {}
    for path, op in mixed_ops(model):
        if op.label in out and out[op.label] != op.names:
            raise InvalidGenome(f"choice {op.label!r} at {path} offers {op.names}, elsewhere {out[op.label]}")
        out.setdefault(op.label, op.names)
    return out


def activate(model: nn.Module, choice: Mapping[str, str]) -> None:
    """Make `choice` (label -> candidate name) the active path. Only the choices on the path are
    needed: a MixedOp nested inside a candidate that is not chosen is left as it is."""
    _activate(model, choice, "")


def _activate(module: nn.Module, choice: Mapping[str, str], path: str) -> None:
    if isinstance(module, MixedOp):
        if module.label not in choice:
            raise InvalidGenome(f"the path gives no choice for {module.label!r} (at {path.rstrip('.') or 'the top'})")
        module.activate(choice[module.label])
        _activate(module.active_module(), choice, f"{path}candidates.{module.active}.")
        return
    for name, child in module.named_children():
        _activate(child, choice, f"{path}{name}.")


def path_keys(model: nn.Module) -> dict[str, str]:
    """standalone state_dict key -> supernet state_dict key, for the tensors of the active path."""
    out: dict[str, str] = {}
    _collect_keys(model, "", "", out)
    return out


def _collect_keys(module: nn.Module, src: str, dst: str, out: dict[str, str]) -> None:
    if isinstance(module, MixedOp):
        _collect_keys(module.active_module(), f"{src}candidates.{module.active}.", dst, out)
        return
    for name, tensor in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
        if tensor is not None and name not in module._non_persistent_buffers_set:
            out[dst + name] = src + name
    for name, child in module.named_children():
        _collect_keys(child, f"{src}{name}.", f"{dst}{name}.", out)


def path_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The active path's tensors under the keys of its standalone network (copies, on the CPU)."""
    state = model.state_dict()
    return {dst: state[src].detach().cpu().clone() for dst, src in path_keys(model).items()}


def path_parameters(model: nn.Module) -> int:
    """Trainable parameters of the active path (its standalone network's count)."""
    params = dict(model.named_parameters())
    return sum(params[src].numel() for src in path_keys(model).values() if src in params)
