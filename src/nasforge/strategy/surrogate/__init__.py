"""Surrogates that learn a strategy's rewards over architectures: an incrementally grown Gaussian
process (gp.py) and the cache of neighbouring candidates it scores on every ask (cache.py), used by
the predictor strategy (strategy/predictor.py), which decides what to ask from their scores."""

from .cache import NeighbourhoodCache, feature_rows
from .gp import IncrementalGP

__all__ = ["IncrementalGP", "NeighbourhoodCache", "feature_rows"]
