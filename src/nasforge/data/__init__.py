from .dataset import Dataset
from .datasets import BUILTIN, load_dataset

__all__ = ["BUILTIN", "Dataset", "load_dataset"]
