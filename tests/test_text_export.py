"""Exports of sequence-space (token) models: the example batch stays integer token ids, and the
TorchScript and ONNX forms of a found text classifier and of a found character language model
reproduce the PyTorch model on the study's own test inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import nasforge
from nasforge.evaluate.language_model import windows
from nasforge.export import ONNX_FILE, TORCHSCRIPT_FILE, _to_torchscript, check_export, export_trial, load, real_batch
from nasforge.space import SequenceSpace, SequenceSpaceOptions

WORDS = {1: ["good", "great", "fine", "superb", "moving", "warm", "clever"], 0: ["bad", "dull", "flat", "tedious", "weak", "cold", "stale"]}
FILLER = ["the", "film", "a", "story", "its", "cast", "this", "is", "and", "of", "with"]


def _write_polarity(folder: Path, per_class: int = 80) -> Path:
    """A small corpus in rt-polarity's layout (folder with rt-polarity.pos / .neg), one sentence a line."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for label, suffix in ((1, "pos"), (0, "neg")):
        lines = []
        for _ in range(per_class):
            words = list(rng.choice(FILLER, int(rng.integers(3, 12)))) + list(rng.choice(WORDS[label], 2))
            rng.shuffle(words)
            lines.append(" ".join(words) + " .")
        (folder / f"rt-polarity.{suffix}").write_text("\n".join(lines) + "\n")
    return folder


SPACE = {"name": "sequence", "channels": [16], "min_blocks": 3, "max_blocks": 3, "blocks": ["transformer", "rnn", "conv"]}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> nasforge.Study:
    root = tmp_path_factory.mktemp("text_export")
    data = _write_polarity(root / "polarity")
    return nasforge.search({"space": SPACE, "dataset": {"name": f"rt-polarity:{data}", "test_fraction": 0.2, "val_fraction": 0.2}},
                           trials=2, epochs=1, batch_size=16, seed=0, out=str(root / "run"), progress=False)


@pytest.fixture(scope="module")
def language_model(tmp_path_factory: pytest.TempPathFactory) -> nasforge.Study:
    root = tmp_path_factory.mktemp("lm_export")
    text = root / "corpus.txt"
    text.write_text("to be or not to be, that is the question. " * 200)
    config = nasforge.api.build_config({"space": SPACE, "dataset": {"name": f"charlm:{text}", "max_length": 24}}, trials=1,
                                       epochs=1, batch_size=8, reward="neg_loss", seed=0, out=str(root / "run"), progress=False)
    study = nasforge.build_study(config)
    study.evaluator.steps_per_epoch = 10
    return study.run()


def test_real_batch_of_a_text_study_is_its_token_ids(classifier: nasforge.Study, language_model: nasforge.Study) -> None:
    x = real_batch(classifier.run_dir)
    assert x.dtype == torch.long and torch.equal(x, classifier.evaluator.data.x_test[:64])
    corpus = language_model.evaluator.data
    x = real_batch(language_model.run_dir)
    assert x.dtype == torch.long and torch.equal(x, windows(corpus.test, 24)[0][:64])


def test_real_batch_without_the_data_is_random_token_ids(classifier: nasforge.Study, tmp_path: Path) -> None:
    folder = export_trial(classifier.run_dir, tmp_path / "pt")
    meta = json.loads((folder / "genome.json").read_text())
    run = tmp_path / "moved"
    run.mkdir()
    # A copy of the run whose data path no longer exists.
    from nasforge.store import Store

    space = {"name": meta["space"], "config": meta["space_config"]}
    config = {"dataset": {"name": f"rt-polarity:{tmp_path / 'gone'}"}}
    Store.create(run / "study.sqlite", {"config": config, "dataset": meta["dataset"], "space": space}).close()
    x = real_batch(run, meta, n=5)
    vocab, length = meta["space_config"]["vocab_size"], meta["space_config"]["max_length"]
    assert x.dtype == torch.long and x.shape == (5, length) and int(x.min()) >= 2 and int(x.max()) < vocab


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("which", ["classifier", "language_model"])
def test_torchscript_export_of_a_sequence_model_is_identical(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    study = request.getfixturevalue(which)
    folder = export_trial(study.run_dir, tmp_path / "ts", format="torchscript")
    batch = real_batch(study.run_dir)
    with torch.no_grad():
        expected = study.best_model()(batch)
        scripted = torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location="cpu")
        assert torch.equal(scripted(batch), expected)
        # Traced on 2 samples, any batch size works (one sample may take other kernels: equal to rounding).
        torch.testing.assert_close(scripted(batch[:1]), expected[:1], atol=1e-5, rtol=1e-5)
    assert check_export(folder, batch) == {"torchscript": 0.0}


@pytest.mark.slow
@pytest.mark.parametrize("which", ["classifier", "language_model"])
def test_onnx_export_of_a_sequence_model_matches_in_onnxruntime(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package, reason="the 'export' extra (onnx, onnxscript, onnxruntime) is not installed")
    study = request.getfixturevalue(which)
    folder = export_trial(study.run_dir, tmp_path / "onnx", format="onnx")
    assert (folder / ONNX_FILE).exists()
    batch = real_batch(study.run_dir)
    diffs = check_export(folder, batch)
    assert diffs["onnx"] < 1e-4, diffs
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = load(folder)(batch[:3])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: batch[:3].numpy()})[0])  # dynamic batch dimension
    assert float((got - want).abs().max()) < 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("task", ["classify", "lm"])
def test_every_block_kind_traces_to_torchscript(task: str, tmp_path: Path) -> None:
    options = SequenceSpaceOptions(min_blocks=1, max_blocks=3, widths=(16,), rnn_widths=(16,), heads=(2,), bag_dims=(8,))
    space = SequenceSpace(40, 2 if task == "classify" else None, 12, task, options)
    rng = np.random.default_rng(3)
    x = torch.randint(2, 40, (4, 12), generator=torch.Generator().manual_seed(0))
    if task == "classify":
        x[1, 5:] = 0  # a padded sentence
    kinds = set()
    for _ in range(6):
        genome = space.sample(rng)
        kinds |= {b.kind for b in genome.blocks}
        torch.manual_seed(0)
        model = space.build(genome).eval()
        _to_torchscript(model, x[:2], tmp_path / "m.pt")
        traced = torch.jit.load(str(tmp_path / "m.pt"))
        with torch.no_grad():
            torch.testing.assert_close(traced(x), model(x), atol=1e-5, rtol=1e-5)
    assert kinds == {"transformer", "rnn", "conv"}
