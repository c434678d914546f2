"""The user's own data as Python objects: every accepted form, the streamed path, and every bad form
named by a clear DataError (or a failed trial carrying the dataset's message)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import nasforge
from nasforge.data.batches import LoaderBatches, TensorBatches
from nasforge.data.datasets import Dataset, load_dataset
from nasforge.data.images import ImageFolder, load_image_folder
from nasforge.data.objects import load_objects
from nasforge.data.streamed import StreamedDataset
from nasforge.errors import DataError


@pytest.fixture(scope="module")
def small():
    """300 digits as 1 x 8 x 8 float arrays with labels 0..9."""
    d = load_digits()
    return d.images[:300, None].astype(np.float32), d.target[:300]


class Pairs(torch.utils.data.Dataset):
    """A user's map-style dataset (module level, so it pickles for executor workers)."""

    def __init__(self, x, y, broken: int | None = None):
        self.x, self.y, self.broken = x, y, broken

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i == self.broken:
            raise ValueError(f"cannot decode record {i}")
        return torch.from_numpy(self.x[i]), int(self.y[i])


class DuckDataset:
    """torchvision-style, without torch's base class: __len__, __getitem__ and a targets list."""

    def __init__(self, x, y):
        self.x, self.targets = x, [int(v) for v in y]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.targets[i]


def _same_split_sizes(data, n: int = 300) -> None:
    sizes = data.summary()["sizes"]
    assert sum(sizes.values()) == n and sizes["test"] == int(np.ceil(0.2 * n)) and data.num_classes == 10


@pytest.mark.parametrize("form", ["numpy", "tensors", "dict_arrays", "npz_keys", "tensor_dataset", "dataloader", "duck"])
def test_every_in_memory_form_gives_the_same_dataset(small, form) -> None:
    x, y = small
    obj = {
        "numpy": (x, y),
        "tensors": (torch.from_numpy(x), torch.from_numpy(y)),
        "dict_arrays": {"train": (x, y)},
        "npz_keys": {"x": x, "y": y},
        "tensor_dataset": torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        "dataloader": torch.utils.data.DataLoader(Pairs(x, y), batch_size=7),
        "duck": DuckDataset(x, y),
    }[form]
    data = load_objects(obj)
    assert isinstance(data, Dataset) and data.input_shape == (1, 8, 8) and data.task == "classification"
    _same_split_sizes(data)
    reference = load_objects((x, y))
    # The same rows in the same splits, standardised with the training split's statistics.
    assert torch.equal(data.y_test, reference.y_test) and torch.allclose(data.x_val, reference.x_val)
    assert abs(float(data.x_train.mean())) < 1e-4


def test_given_splits_are_kept(small) -> None:
    x, y = small
    arrays = load_objects({"train": (x[:200], y[:200]), "val": (x[200:250], y[200:250]), "test": (x[250:], y[250:])})
    assert arrays.summary()["sizes"] == {"train": 200, "val": 50, "test": 50}
    datasets = load_objects((Pairs(x[:200], y[:200]), Pairs(x[200:250], y[200:250]), Pairs(x[250:], y[250:])))
    assert torch.equal(datasets.y_test, torch.from_numpy(y[250:]).long())
    only_test = load_objects({"train": Pairs(x[:250], y[:250]), "test": Pairs(x[250:], y[250:])})
    assert only_test.summary()["sizes"] == {"train": 200, "val": 50, "test": 50}


def test_a_large_dataset_streams_with_the_same_splits_and_statistics(small) -> None:
    x, y = small
    memory = load_objects(Pairs(x, y))
    streamed = load_objects(Pairs(x, y), stream=True)
    assert isinstance(streamed, StreamedDataset) and streamed.input_shape == (1, 8, 8)
    _same_split_sizes(streamed)
    # Every split holds the same samples in the same order, standardised alike.
    for split in ("train", "val", "test"):
        xs, ys = zip(*streamed.batches(split, 64).epoch(), strict=True)
        assert torch.equal(torch.cat(ys), getattr(memory, f"y_{split}"))
        assert torch.allclose(torch.cat(xs), getattr(memory, f"x_{split}"), atol=1e-4)
    # Automatic: streamed only above the memory limit.
    assert isinstance(load_objects(Pairs(x, y), memory_mb=0.01), StreamedDataset)
    # It pickles as the user's dataset and row indices (what executor workers receive), not tensors.
    assert len(pickle.dumps(streamed)) < 2 * x.nbytes


def test_training_order_is_seeded_and_the_same_on_both_paths(small) -> None:
    x, y = small
    tensors = TensorBatches(torch.from_numpy(x), torch.from_numpy(y), 50, seed=3)
    loader = LoaderBatches(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), 50, seed=3)
    first = [yb for _, yb in loader.epoch()]
    again = [yb for _, yb in LoaderBatches(loader.dataset, 50, seed=3).epoch()]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(torch.cat(first), torch.cat([yb for _, yb in loader.epoch()]))  # a new order per epoch
    assert sum(len(yb) for _, yb in tensors.epoch()) == 300
    # A training epoch skips a last batch of one sample (batch norm cannot train on it); scoring never does.
    five = torch.arange(5.0)[:, None]
    assert [len(b) for b, _ in TensorBatches(five, five, 2, seed=0).epoch()] == [2, 2]
    assert [len(b) for b, _ in LoaderBatches(torch.utils.data.TensorDataset(five, five), 2, seed=0).epoch()] == [2, 2]
    assert [len(b) for b, _ in TensorBatches(five, five, 2).epoch()] == [2, 2, 1]


def test_loader_batches_standardise_per_channel_and_need_a_std_per_mean() -> None:
    x = torch.arange(24.0).reshape(4, 2, 3)  # 4 items, 2 channels
    data = torch.utils.data.TensorDataset(x, torch.zeros(4))
    (batch, _), = LoaderBatches(data, 4, mean=(1.0, 2.0), std=(2.0, 4.0)).epoch()
    assert torch.equal(batch[:, 0], (x[:, 0] - 1.0) / 2.0) and torch.equal(batch[:, 1], (x[:, 1] - 2.0) / 4.0)
    with pytest.raises(ValueError, match="mean and std"):
        LoaderBatches(data, 4, mean=(1.0, 2.0))


def test_a_large_npz_travels_to_workers_as_its_recipe(tmp_path, small, monkeypatch) -> None:
    import nasforge.data.dataset as dataset

    x, y = small
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_dataset(str(tmp_path / "d.npz"))
    whole = len(pickle.dumps(data))
    monkeypatch.setattr(dataset, "RECIPE_BYTES", 0)
    recipe = pickle.dumps(data)
    assert len(recipe) < whole / 10
    again = pickle.loads(recipe)
    assert torch.equal(again.x_val, data.x_val) and again.classes == data.classes


def _jpegs(root, n_per_class: int = 6, side: int = 256):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.jpg", quality=90)
    return root


def test_image_folder_reads_one_picture_per_item_at_reduced_size(tmp_path) -> None:
    folder = ImageFolder(_jpegs(tmp_path / "pics"), size=16)
    assert len(folder) == 12 and folder.classes == ["cat", "dog"] and folder.targets[:6] == [0] * 6
    x, label = folder[7]
    assert x.shape == (3, 16, 16) and label == 1 and float(x.min()) >= 0 and float(x.max()) <= 1
    # The whole folder in memory equals the items one by one.
    arrays = load_image_folder(tmp_path / "pics", 16)
    assert np.allclose(arrays["x"][7], x.numpy())
    # Pickles as its list of paths.
    assert len(pickle.dumps(folder)) < 4000
    streamed = load_dataset(f"images:{tmp_path / 'pics'}", options=_options(stream=True, image_size=16))
    assert isinstance(streamed, StreamedDataset) and streamed.classes == ["cat", "dog"] and streamed.input_shape == (3, 16, 16)


def _options(**kw):
    from nasforge.data.datasets import SourceOptions

    return SourceOptions(**kw)


def test_search_on_a_streamed_dataset_and_on_the_same_data_in_memory(tmp_path, small) -> None:
    x, y = small
    runs = {}
    for stream in (False, True):
        study = nasforge.search(data=Pairs(x, y), stream=stream, trials=2, epochs=1, max_blocks=2, strategy="random",
                                out=str(tmp_path / f"run{stream}"), progress=False)
        runs[stream] = [(t.status, round(t.reward, 4)) for t in study.trials]
        assert study.store.get("dataset")["name"].startswith("python:Pairs")
    # The same trials, the same seeded batches: the same scores either way.
    assert runs[False] == runs[True] and all(status == "complete" for status, _ in runs[True])


def test_resume_needs_the_same_data_object_again(tmp_path, small) -> None:
    x, y = small
    out = str(tmp_path / "run")
    nasforge.search(data=(x, y), trials=1, epochs=1, max_blocks=2, out=out, progress=False)
    with pytest.raises(nasforge.ConfigError, match="pass it again as data="):
        nasforge.search(resume=True, out=out, trials=2)
    with pytest.raises(DataError, match="not the data this study started with"):
        nasforge.search(data=(x[:200], y[:200]), resume=True, out=out, trials=2)
    study = nasforge.search(data=(x, y), resume=True, out=out, trials=2)
    assert len(study.trials) == 2


@pytest.mark.parametrize("obj, message", [
    (lambda x, y: (x[:, 0, 0, 0], y), "sample axis and at least one feature axis"),
    (lambda x, y: (x, y[:-1]), "x has 300 samples but y has 299"),
    (lambda x, y: (x, np.where(np.arange(300) == 5, np.nan, y)), r"NaN or infinite \(first at sample 5\)"),
    (lambda x, y: (x, y.astype(float) + 0.5), None),  # not an error: non-whole numbers are a regression target
    (lambda x, y: (x, np.zeros(300)), "at least 2 classes"),
    (lambda x, y: (x, np.ones((300, 2, 2))), "1-D .* or 2-D"),
    (lambda x, y: x, "a single array has no targets"),
    (lambda x, y: {"train": (x, y), "bogus": 1}, "unknown keys"),
    (lambda x, y: {"train": (x, y), "val": Pairs(x, y)}, "every split as"),
    (lambda x, y: (x, y, x), "a tuple is"),
    (lambda x, y: 42, "cannot read data from a int"),
    (lambda x, y: Pairs(x, y, broken=7), r"item 7 raised ValueError: cannot decode record 7"),
    (lambda x, y: torch.utils.data.TensorDataset(torch.zeros(5, 3), torch.zeros(5)), "at least 10 samples"),
])
def test_bad_data_forms_are_named(small, obj, message) -> None:
    x, y = small
    if message is None:
        assert load_objects(obj(x, y)).task == "regression"
        return
    with pytest.raises(DataError, match=message):
        load_objects(obj(x, y))


def test_an_iterable_dataset_and_ragged_items_are_refused(small) -> None:
    x, y = small

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(zip(x, y, strict=True))

    with pytest.raises(DataError, match="IterableDataset cannot be split"):
        load_objects(Stream())

    class Ragged(Pairs):
        def __getitem__(self, i):
            return torch.zeros(8 if i != 3 else 9), 0

    with pytest.raises(DataError, match="item 3 has an input of shape"):
        load_objects(Ragged(x, y))


def test_an_item_that_breaks_while_streaming_fails_its_trial_with_the_message(tmp_path, small) -> None:
    x, y = small

    class BreaksLater(Pairs):
        """Reads fine while nasforge looks at it first (targets from the attribute, statistics from a
        sample), then item 7 raises when a trial reads it."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.targets = [int(v) for v in self.y]
            self.calls = 0

        def __getitem__(self, i):
            self.calls += 1
            if i == 7 and self.calls > 300:
                raise OSError("disk gone")
            return super().__getitem__(i)

    study = nasforge.search(data=BreaksLater(x, y), stream=True, trials=2, epochs=1, max_blocks=2, strategy="random",
                            out=str(tmp_path / "run"), progress=False)
    errors = [t.error for t in study.trials if t.status == "failed"]
    assert errors and all("item 7 raised OSError: disk gone" in e for e in errors)
    assert len(study.trials) == 2  # every trial recorded, the search went to its end


@pytest.mark.slow
def test_pool_workers_read_streamed_data_themselves_and_agree_with_serial(tmp_path, small) -> None:
    x, y = small
    runs = {}
    for executor in ("serial", "pool"):
        study = nasforge.search(data=Pairs(x, y), stream=True, trials=2, epochs=1, max_blocks=2, strategy="random",
                                executor=executor, **({"workers": 2} if executor == "pool" else {}),
                                out=str(tmp_path / executor), progress=False)
        runs[executor] = sorted((t.id, t.status, round(t.reward, 4)) for t in study.trials)
    assert runs["serial"] == runs["pool"]
