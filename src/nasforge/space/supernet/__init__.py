"""Weight sharing: supernets that hold every architecture of a space as paths.

mixed.py      MixedOp (a choice among named modules, one active per forward) and the functions that
              activate a path and read its tensors: the piece any space's supernet is made of
batchnorm.py  per-path recalibration of batch-norm statistics
base.py       the Supernet contract (path, activate, extract)
cell.py       the NB201 cell space's supernet
function.py   a define-by-run space's supernet: its model function run with a recorder whose
              `module(label, candidates)` returns a MixedOp
"""

from .base import Supernet
from .batchnorm import recalibrate
from .function import FunctionSupernet, SupernetRecorder
from .mixed import MixedOp, activate, choices_of, path_keys, path_parameters, path_state_dict

__all__ = ["FunctionSupernet", "MixedOp", "Supernet", "SupernetRecorder", "activate", "choices_of", "path_keys",
           "path_parameters", "path_state_dict", "recalibrate"]
