"""Weight inheritance (Lamarckian evolution): a child starts from its parent's trained weights.

The space says which child module corresponds to which parent module (`SearchSpace.module_map`);
every tensor whose shape is unchanged is copied, the rest stay freshly initialised. New modules
that can start as the identity (a square conv with stride 1, a square linear layer) do, so an
inserted layer leaves the inherited function unchanged (net2net-style).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..space.base import Genome, SearchSpace


@dataclass
class Inherited:
    copied: int = 0  # tensors copied from the parent
    fresh: int = 0  # tensors left freshly initialised
    identity: int = 0  # new modules initialised as the identity

    def as_metrics(self) -> dict[str, int]:
        return {"inherited_tensors": self.copied, "fresh_tensors": self.fresh, "identity_modules": self.identity}


@torch.no_grad()
def _identity_init(module: nn.Module) -> bool:
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        k = module.kernel_size
        if (module.in_channels == module.out_channels and module.groups == 1 and all(s == 1 for s in module.stride)
                and all(x % 2 == 1 for x in k) and tuple(module.padding) == tuple(x // 2 for x in k)):
            nn.init.dirac_(module.weight)
            if module.bias is not None:
                module.bias.zero_()
            return True
    if isinstance(module, nn.Linear) and module.in_features == module.out_features:
        module.weight.copy_(torch.eye(module.in_features))
        if module.bias is not None:
            module.bias.zero_()
        return True
    return False


@torch.no_grad()
def inherit(space: SearchSpace, child_model: nn.Module, child: Genome, parent: Genome,
            parent_state: dict[str, torch.Tensor], identity_for_new: bool = True) -> Inherited:
    mapping = space.module_map(parent, child)  # child module name -> parent module name
    if mapping is None:  # a space of fixed module names: a module inherits from its namesake
        mapping = {name: name for name, _ in child_model.named_modules()}
    report = Inherited()
    target = child_model.state_dict()
    matched_modules = set()
    for key, tensor in target.items():
        module, _, attr = key.rpartition(".")
        source = mapping.get(module)
        value = parent_state.get(f"{source}.{attr}") if source is not None else None
        if value is not None and value.shape == tensor.shape and value.dtype == tensor.dtype:
            tensor.copy_(value)
            report.copied += 1
            matched_modules.add(module)
        else:
            report.fresh += 1
    if identity_for_new:
        for name, module in child_model.named_modules():
            if name and name not in matched_modules and not any(True for _ in module.children()) and _identity_init(module):
                report.identity += 1
    return report
