"""The search space a config describes for the data: a built-in space (layers, cell, sequence) sized
from the config's space fields and the data's shape and classes, or the user's own (resolve.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config import BUILTIN_SPACES, SearchConfig, SpaceConfig
from ..data.dataset import Dataset
from ..data.streamed import StreamedDataset
from ..data.text import CharCorpus, TextDataset
from ..errors import ConfigError
from ..store import Store
from .base import SearchSpace
from .cell import CellSpace
from .layers import LayerGraphSpace, LayerSpaceOptions
from .resolve import make_user_space, space_from_record
from .sequence import SequenceSpace, SequenceSpaceOptions

# Space fields the sequence space reads, under its own names; only fields the user set are passed,
# so its defaults (sized for token models) are not replaced by the layer space's.
SEQUENCE_FIELDS = {"min_blocks": "min_blocks", "max_blocks": "max_blocks", "channels": "widths", "kernels": "kernels",
                   "dropout_rates": "dropout_rates", "blocks": "kinds", "rnn_widths": "rnn_widths", "rnn_layers": "rnn_layers",
                   "ngrams": "ngrams", "bag_dims": "bag_dims"}

# Space fields of the cell space alone.
CELL_FIELDS = {"cell_channels", "cells_per_stage"}

# Space fields the layers space has no option for (it is built from the rest of the space config).
SEQUENCE_ONLY = set(SEQUENCE_FIELDS) - {f.name for f in dataclasses.fields(LayerSpaceOptions)}


def make_space_for_data(config: SearchConfig, data: Dataset | StreamedDataset | CharCorpus) -> SearchSpace:
    """The configured space for this data; a space that cannot read the data is a ConfigError."""
    name = config.space.name
    tokens = isinstance(data, (TextDataset, CharCorpus))
    if tokens != (name == "sequence"):
        what = "token sequences (text)" if isinstance(data, (TextDataset, CharCorpus)) else f"inputs of shape {list(data.input_shape)}"
        raise ConfigError(f"space.name: the {name!r} space cannot model {what}; use "
                          f"{'sequence' if tokens else 'layers or cell'} (--space)")
    if name != "layers" and config.space.hparams:
        raise ConfigError(f"space.hparams: training hyper-parameters are searched only in the layers space, not in {name!r}; "
                          "set them under training: instead")
    # Compared with the defaults, not model_fields_set: a resumed run's stored config names every field.
    cell_only = {f for f in CELL_FIELDS if getattr(config.space, f) != type(config.space).model_fields[f].default}
    if name != "cell" and cell_only:
        raise ConfigError(f"space: {', '.join(sorted(cell_only))} shape the cell space, not the {name!r} space")
    if isinstance(data, CharCorpus):  # (the sequence space: checked above)
        return SequenceSpace(data.vocab_size, None, config.dataset.max_length or 128, "lm", _sequence_options(config))
    if isinstance(data, TextDataset):
        if data.tokenizer is None:
            raise ConfigError(f"dataset: {data.name!r} holds token ids without the tokenizer that made them")
        return SequenceSpace(len(data.tokenizer), data.num_classes, data.input_shape[0], "classify", _sequence_options(config))
    if name == "cell":
        return CellSpace(data.input_shape, data.num_classes, channels=config.space.cell_channels,
                         cells_per_stage=config.space.cells_per_stage)
    return make_space_for(config, data.input_shape, data.num_classes)


def _sequence_options(config: SearchConfig) -> SequenceSpaceOptions:
    return SequenceSpaceOptions(**{SEQUENCE_FIELDS[f]: getattr(config.space, f) for f in SEQUENCE_FIELDS
                                   if f in config.space.model_fields_set})


def space_for_run(config: SearchConfig, data: Dataset | StreamedDataset | CharCorpus, given: Any = None,
                  resumed: Path | None = None) -> SearchSpace:
    """The search's space: a built-in one made for the data from the config's fields, or the user's own
    (space/resolve.py); a resumed run of the user's own rebuilds exactly the space it recorded."""
    s = config.space
    if given is None and s.function is None and s.name in BUILTIN_SPACES:
        return make_space_for_data(config, data)
    default = SpaceConfig()  # a stored config (a resume) lists every field: what differs from the defaults was set
    unused = sorted(f for f in type(s).model_fields if f not in ("name", "function", "options") and getattr(s, f) != getattr(default, f))
    if unused:
        raise ConfigError(f"space.{unused[0]}: configures the built-in spaces ({', '.join(BUILTIN_SPACES)}), not your own; "
                          "ask for such choices in your space")
    if resumed is not None:
        store = Store.in_dir(resumed)
        try:
            record = store.get("space")
        finally:
            store.close()
        if record:
            return space_from_record(record, given)
    task = {"input_shape": tuple(getattr(data, "input_shape", ()) or ()), "num_classes": getattr(data, "num_classes", None)}
    return make_user_space(s.name, s.function, s.options, task, given)


def make_space_for(config: SearchConfig, input_shape: tuple[int, ...], num_classes: int) -> SearchSpace:
    options = config.space.model_dump(exclude={"name", "function", "options", "hparams", "max_flops", *SEQUENCE_ONLY,
                                                *CELL_FIELDS})
    # batch size and epochs are counts; JSON/YAML may have given them as floats.
    hparams = tuple((name, tuple(int(v) if name in ("batch_size", "epochs") else float(v) for v in values))
                    for name, values in sorted(config.space.hparams.items()))
    return LayerGraphSpace(input_shape, num_classes, LayerSpaceOptions(**options, hparams=hparams))
