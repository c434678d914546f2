from .selection import SELECTIONS, Rank, RouletteWheel, Selection, Tournament

__all__ = ["SELECTIONS", "Rank", "RouletteWheel", "Selection", "Tournament"]
