"""The data a search config names: a built-in source, a file or folder, a character corpus, or the
user's own data object read under the config's split and streaming rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..usercode import PYTHON_DATA, UserObjects
from .dataset import Dataset
from .datasets import LANGUAGE_MODEL_SOURCES, SourceOptions, load_dataset, source_kind
from .objects import load_objects
from .streamed import StreamedDataset
from .text import CharCorpus, load_char_corpus

if TYPE_CHECKING:
    from ..config import SearchConfig


def load_data_for(config: SearchConfig, objects: UserObjects | None = None) -> Dataset | StreamedDataset | CharCorpus:
    """The dataset (or, for language-model sources, the character corpus) a config names, or the
    user's data object read under the config's split and streaming rules."""
    d = config.dataset
    if objects is not None and objects.data is not None:
        return load_objects(objects.data, name=d.name, val_fraction=d.val_fraction, test_fraction=d.test_fraction,
                            seed=d.split_seed, layout=d.layout, task=d.task, stream=d.stream, memory_mb=d.memory_mb,
                            workers=d.workers)
    if d.name.startswith(PYTHON_DATA):
        raise ConfigError(f"dataset: this study's data was given as a Python object ({d.name}); pass it again as data=")
    kind, path = source_kind(d.name)
    if kind in LANGUAGE_MODEL_SOURCES:
        # The corpus convention: the last 10% is held out (halved into validation and test).
        return load_char_corpus(path, held_out=0.1, name=d.name)
    return load_dataset(d.name, val_fraction=d.val_fraction, test_fraction=d.test_fraction, seed=d.split_seed,
                        label_column=d.label_column, layout=d.layout, task=d.task,
                        options=SourceOptions(d.split, d.held_out_speaker, d.image_size, d.max_length, d.cache_dir,
                                              val_speaker=d.val_speaker, augment=d.augment, band_norm=d.band_norm,
                                              test_views=d.test_views, stream=d.stream, memory_mb=d.memory_mb,
                                              workers=d.workers))
