"""The sequence space's starting weights: a classifier's word and position rows start near zero
(fastText's U(-1/d, 1/d)), as the n-gram bag's do; a language model keeps PyTorch's defaults."""

from __future__ import annotations

import torch

from nasforge.space import SequenceSpace, SequenceSpaceOptions


def _genome(space: SequenceSpace, kind: str, width: int, ngram: int = 0):
    block = {"transformer": {"kind": "transformer", "heads": 2, "ff": 2, "dropout": 0.0, "norm": "pre"},
             "conv": {"kind": "conv", "kernel": 3, "dilation": 1, "act": "relu", "dropout": 0.0}}[kind]
    data = {"width": width, "dropout": 0.0, "pool": "max", "ngram": ngram, "bag_dim": space.options.bag_dims[0], "blocks": [block]}
    if space.task == "lm":
        data.update(pool="mean", ngram=0)
    return space.from_json(data)


def test_classifier_word_and_position_rows_start_near_zero() -> None:
    space = SequenceSpace(100, 2, 16, options=SequenceSpaceOptions(widths=(16, 32), bag_dims=(8,)))
    torch.manual_seed(0)
    for width in (16, 32):
        model = space.build(_genome(space, "transformer", width, ngram=2))
        for table in (model.embed.weight, model.position.weight):
            assert float(table.abs().max()) <= 1.0 / width
            assert float(table.abs().max()) > 0.5 / width  # near zero, not zero
        assert not model.embed.weight[0].any()  # padding row
        model.eval()
        out = model(torch.tensor([[3, 4, 5, 0], [0, 0, 0, 0]]))
        assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_classifier_learns_keywords_from_the_small_start() -> None:
    # Label = whether token 2 occurs; 30 noise tokens. The small start must not stop learning.
    g = torch.Generator().manual_seed(0)
    x = torch.randint(3, 33, (512, 12), generator=g)
    y = (torch.rand(512, generator=g) < 0.5).long()
    x[y == 1, 5] = 2
    space = SequenceSpace(33, 2, 12, options=SequenceSpaceOptions(widths=(16,)))
    torch.manual_seed(0)
    model = space.build(_genome(space, "conv", 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    assert accuracy > 0.95


def test_language_model_embeddings_keep_the_default_start() -> None:
    space = SequenceSpace(50, None, 16, "lm", SequenceSpaceOptions(widths=(32,)))
    torch.manual_seed(0)
    model = space.build(_genome(space, "conv", 32))
    assert float(model.embed.weight.std()) > 0.5  # nn.Embedding's N(0, 1)
