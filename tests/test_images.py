"""Images: a folder of class sub-folders read with Pillow, and the layer-graph and NB201 cell spaces
built, run and trained on real pictures (scikit-learn's digits, also written out as PNG / JPEG)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from nasforge.api import build_study
from nasforge.config import build_config
from nasforge.data import load_dataset
from nasforge.data.images import load_image_folder
from nasforge.errors import DataError
from nasforge.space import CellSpace, LayerGraphSpace, LayerSpaceOptions


def _digit_folder(root, per_class: int = 30, color: bool = False):
    """Real digit images as files: even classes PNG, odd classes JPEG, upscaled to 16x16."""
    d = load_digits()
    for label in range(10):
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True)
        for i, image in enumerate(d.images[d.target == label][:per_class]):
            pixels = (image * 255 / 16).astype(np.uint8)
            pic = Image.fromarray(pixels, "L").resize((16, 16), Image.Resampling.NEAREST)
            if color:
                pic = Image.merge("RGB", (pic, pic, Image.new("L", pic.size, 40 * (label % 3))))
            pic.save(folder / (f"{i}.png" if label % 2 == 0 else f"{i}.jpg"), quality=95)
    return root


def test_image_folder_loads_grey_and_colour(tmp_path) -> None:
    grey = load_image_folder(_digit_folder(tmp_path / "grey", per_class=5), size=12)
    assert grey["x"].shape == (50, 1, 12, 12) and grey["x"].min() >= 0 and grey["x"].max() <= 1
    assert sorted(set(grey["y"].tolist())) == [f"digit_{i}" for i in range(10)]
    colour = load_image_folder(_digit_folder(tmp_path / "colour", per_class=5, color=True), size=8)
    assert colour["x"].shape == (50, 3, 8, 8)
    data = load_dataset(str(tmp_path / "grey"), val_fraction=0.2, test_fraction=0.2)
    assert data.input_shape == (1, 32, 32) and data.num_classes == 10 and data.classes[0] == "digit_0"
    assert load_dataset(f"images:{tmp_path / 'colour'}").input_shape == (3, 32, 32)


def test_image_folder_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_image_folder(tmp_path / "empty")
    bad = tmp_path / "bad" / "cat"
    bad.mkdir(parents=True)
    (bad / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        load_image_folder(tmp_path / "bad")


@pytest.mark.parametrize("source", ["digits", "folder"])
def test_every_image_genome_runs_on_a_real_batch(tmp_path, source: str) -> None:
    name = "digits" if source == "digits" else str(_digit_folder(tmp_path / "pics", per_class=3, color=True))
    data = load_dataset(name, options=None)
    batch = data.x_train[:4]
    torch.manual_seed(0)
    spaces = [LayerGraphSpace(data.input_shape, 10, LayerSpaceOptions(channels=(8, 16, 32))), CellSpace(data.input_shape, 10, channels=8)]
    for space in spaces:
        rng = np.random.default_rng(0)
        for _ in range(8):
            g = space.sample(rng)
            for genome in (g, space.mutate(g, rng)[0], space.crossover(g, space.sample(rng), rng)):
                with torch.no_grad():
                    out = space.build(genome).eval()(batch)
                assert out.shape == (4, 10) and torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("space", ["layers", "cell"])
def test_search_trains_for_real_on_an_image_folder(tmp_path, space: str) -> None:
    folder = _digit_folder(tmp_path / "pics", per_class=40)
    config = build_config({"dataset": {"name": str(folder), "image_size": 16}, "space": {"name": space}},
                          trials=2, epochs=4, batch_size=32, strategy="random", out=str(tmp_path / "run"), progress=False)
    study = build_study(config)
    study.run()
    # 10 classes: chance is 0.1; a trained network is far above it on held-out pictures.
    assert study.final is not None and study.final["test"]["accuracy"] > 0.3
    assert study.store.get("space")["name"] == space
