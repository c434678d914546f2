"""Text: tokenizer and vocabulary, rt-polarity splits, the sequence space (every sampled and mutated
genome on a real batch, causality of language models), and the language-model evaluator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import shared_data
from nasforge.api import build_study
from nasforge.config import build_config
from nasforge.data import load_dataset
from nasforge.data.text import PAD, UNK, CharCorpus, Tokenizer, load_char_corpus, pad_batch, polarity_sentences, polarity_splits
from nasforge.errors import ConfigError, DataError, InvalidGenome
from nasforge.evaluate.language_model import LanguageModelEvaluator, windows
from nasforge.evaluate.trainer import TrainingOptions
from nasforge.space import SequenceSpace, SequenceSpaceOptions
from nasforge.space.sequence_net import NgramBag

TEXT = shared_data() / "text"
SHAKESPEARE = TEXT / "tinyshakespeare_input.txt"
needs_polarity = pytest.mark.skipif(not (TEXT / "rt-polarity.pos").is_file(), reason=f"rt-polarity not found in {TEXT} (set NASFORGE_DATA)")
needs_shakespeare = pytest.mark.skipif(not SHAKESPEARE.is_file(), reason=f"tinyshakespeare not found at {SHAKESPEARE}")


def test_tokenizer_round_trips_text() -> None:
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\tAll: Speak, speak!"
    chars = Tokenizer.fit([text], "char")
    assert chars.decode(chars.encode(text)) == text
    words = Tokenizer.fit(["the film's co-writer/director , sadly , isn't \" good \" ."])
    sentence = "the film's co-writer/director , sadly , isn't \" good \" ."
    assert words.decode(words.encode(sentence)) == sentence
    # Untokenized text comes back in its tokenized form; unseen words become <unk>.
    assert words.decode(words.encode("The film's GOOD, sadly.")) == "the film's good , sadly ."
    assert words.decode(words.encode("an unseen word")) == f"{UNK} {UNK} {UNK}"
    assert words.vocab[:2] == [PAD, UNK]
    assert Tokenizer.from_json(json.loads(json.dumps(words.to_json()))).encode(sentence) == words.encode(sentence)
    capped = Tokenizer.fit(["a a a b b c"], max_size=4)
    assert capped.vocab == [PAD, UNK, "a", "b"]
    assert pad_batch([[5, 6, 7], [8]], max_length=2).tolist() == [[5, 6], [8, 0]]


@needs_polarity
def test_polarity_tokenizer_round_trips_the_corpus_and_splits_are_fixed() -> None:
    texts, labels = polarity_sentences(TEXT)
    assert len(texts) == 10662 and labels.sum() == 5331
    idx = polarity_splits(len(texts), 0.1, 0.1, seed=0)
    assert len(idx["test"]) == 1066 and len(set(idx["test"]) | set(idx["train"]) | set(idx["val"])) == len(texts)
    assert np.array_equal(idx["test"], polarity_splits(len(texts), 0.1, 0.1, seed=0)["test"])
    tok = Tokenizer.fit(texts[i] for i in idx["train"])
    for i in idx["train"][:500]:
        assert tok.decode(tok.encode(texts[i])) == " ".join(Tokenizer.split(texts[i]))
    # The vocabulary comes from the training split only.
    unseen = {w for i in idx["test"] for w in Tokenizer.split(texts[i])} - {w for i in idx["train"] for w in Tokenizer.split(texts[i])}
    assert unseen and all(tok.encode(w) == [1] for w in list(unseen)[:20])


def _genomes(space: SequenceSpace, seed: int, n: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        g = space.sample(rng)
        for _ in range(2):
            yield g
            yield space.crossover(g, space.sample(rng), rng)
            g, _ = space.mutate(g, rng)


@needs_polarity
def test_every_classification_genome_runs_on_a_real_batch() -> None:
    data = load_dataset(f"rt-polarity:{TEXT}", test_fraction=0.1, val_fraction=0.1, options=None)
    assert data.x_train.dtype == torch.long and data.input_shape[0] <= 64
    space = SequenceSpace(len(data.tokenizer), 2, data.input_shape[0],
                          options=SequenceSpaceOptions(widths=(16, 32), rnn_widths=(16, 32), max_blocks=3, bag_dims=(8,)))
    batch = data.x_train[:4]
    kinds, ngrams = set(), set()
    torch.manual_seed(0)
    for g in _genomes(space, seed=0, n=12):
        assert space.from_json(json.loads(json.dumps(space.to_json(g)))) == g
        kinds |= {b.kind for b in g.blocks}
        ngrams.add(g.ngram)
        with torch.no_grad():
            out = space.build(g).eval()(batch)
        assert out.shape == (4, 2) and torch.isfinite(out).all()
    assert kinds == {"transformer", "rnn", "conv"} and {0, 2} <= ngrams


@needs_shakespeare
def test_every_language_model_genome_runs_and_is_causal() -> None:
    corpus = load_char_corpus(SHAKESPEARE)
    assert corpus.vocab_size == 67 and len(corpus.val) + len(corpus.test) == 1115394 - len(corpus.train)
    space = SequenceSpace(corpus.vocab_size, None, 32, "lm",
                          SequenceSpaceOptions(widths=(16, 32), rnn_widths=(16, 32), max_blocks=3, heads=(1, 2, 4)))
    x, _ = windows(corpus.val[:200], 32)
    torch.manual_seed(0)
    for g in _genomes(space, seed=1, n=10):
        assert g.ngram == 0 and not any(b.kind == "rnn" and b["bidirectional"] for b in g.blocks)
        model = space.build(g).eval()
        with torch.no_grad():
            out = model(x[:3])
            changed = x[:3].clone()
            changed[:, 20:] = (changed[:, 20:] + 7) % corpus.vocab_size
            out2 = model(changed)
        assert out.shape == (3, 32, corpus.vocab_size)
        # Position t never sees tokens after t.
        torch.testing.assert_close(out[:, :20], out2[:, :20], atol=1e-5, rtol=1e-4)
        assert not torch.allclose(out[:, 20:], out2[:, 20:])


def test_ngram_bag_ids_skip_padding_and_hash_above_the_vocabulary() -> None:
    bag = NgramBag(vocab_size=10, n=3, dim=4, buckets=100)
    ids = bag.ids(torch.tensor([[3, 4, 5, 0, 0]]))[0].tolist()
    unigrams, bigrams, trigrams = ids[:5], ids[5:9], ids[9:]
    assert unigrams == [3, 4, 5, 0, 0]
    assert all(10 <= b < 100 for b in bigrams[:2]) and bigrams[2:] == [0, 0]
    assert 10 <= trigrams[0] < 100 and trigrams[1:] == [0, 0]
    assert bag(torch.tensor([[3, 4, 5, 0, 0]])).shape == (1, 4)


def test_ngram_bag_starts_near_zero_and_drops_whole_ngrams_only_in_training() -> None:
    torch.manual_seed(0)
    bag = NgramBag(vocab_size=10, n=2, dim=8, buckets=100, drop=0.5)
    # fastText's start: rows within +-1/dim (most n-grams are rare; unit-normal rows would be noise).
    weight = bag.bag.weight.detach()
    assert float(weight.abs().max()) <= 1 / 8 and not weight[0].any()
    x = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 2]] * 4)
    bag.eval()
    torch.testing.assert_close(bag(x), bag(x))
    bag.train()
    outs = [bag(x) for _ in range(3)]
    assert not torch.allclose(outs[0], outs[1])  # a different subset of n-grams each time
    assert all(torch.isfinite(o).all() for o in outs)


def test_sequence_space_rejects_bad_genomes() -> None:
    space = SequenceSpace(50, 2, 16)
    g = space.sample(np.random.default_rng(0))
    data = space.to_json(g)
    with pytest.raises(InvalidGenome, match="width"):
        space.from_json({**data, "width": 7})
    with pytest.raises(InvalidGenome, match="fields"):
        space.from_json({**data, "extra": 1})
    lm = SequenceSpace(50, None, 16, "lm")
    with pytest.raises(InvalidGenome):
        lm.from_json({**lm.to_json(lm.sample(np.random.default_rng(0))), "ngram": 2})


def test_language_model_evaluator_learns_a_pattern() -> None:
    text = "abcabdabcabd" * 300
    tok = Tokenizer.fit(text, "char")
    stream = torch.tensor(tok.encode(text))
    corpus = CharCorpus("pattern", stream[:3000], stream[3000:3300], stream[3300:], tok)
    space = SequenceSpace(len(tok), None, 16, "lm", SequenceSpaceOptions(widths=(32,), kinds=("rnn",), max_blocks=1))
    evaluator = LanguageModelEvaluator(space, corpus, TrainingOptions(epochs=2, batch_size=16, lr=1e-2), seq_len=16, steps_per_epoch=40)
    result = evaluator.evaluate(space.sample(np.random.default_rng(0)), seed=0)
    assert result.status == "complete", result.error
    # Uniform over 6 tokens is ln 6 = 1.79 nats; the pattern leaves only 1 bit of choice per 6 characters.
    assert result.metrics["loss"] < 0.6 and result.reward == -result.metrics["loss"]
    assert len(result.curve) == 2 and result.curve[-1]["step"] == 80


@pytest.mark.slow
def test_language_model_trains_to_a_cpu_time_budget(tmp_path) -> None:
    text = "abcabdabcabd" * 300
    tok = Tokenizer.fit(text, "char")
    stream = torch.tensor(tok.encode(text))
    corpus = CharCorpus("pattern", stream[:3000], stream[3000:3300], stream[3300:], tok)
    space = SequenceSpace(len(tok), None, 16, "lm", SequenceSpaceOptions(widths=(16,), kinds=("conv",), max_blocks=1))
    options = TrainingOptions(epochs=1, batch_size=8, lr=1e-2, cpu_seconds=1.5)
    evaluator = LanguageModelEvaluator(space, corpus, options, seq_len=16, steps_per_epoch=10)
    result = evaluator.evaluate(space.sample(np.random.default_rng(0)), seed=0)
    assert result.status == "complete", result.error
    last = result.curve[-1]
    # Trained until the budget was spent (not the 10 steps of its one epoch), and not much past it.
    assert last["step"] > 10 and 1.5 <= last["cpu_seconds"] < 3.0
    assert [p["step"] for p in result.curve[:-1]] == [10 * (i + 1) for i in range(len(result.curve) - 1)]
    # A successive-halving rung of 2 "epochs" is two units of the budget; untimed (the final retrain), 2 epochs of steps.
    model = space.build(space.sample(np.random.default_rng(1)))
    assert 3.0 <= evaluator._train(model, 0, 2).curve[-1]["cpu_seconds"] < 4.5
    assert evaluator._train(model, 0, 2, timed=False).curve[-1]["step"] == 20
    # The final retrain on training + validation text: one stream, counted in steps.
    import nasforge.evaluate.language_model as lm_module

    seen = []
    real = lm_module.train_lm
    lm_module.train_lm = lambda model, stream, *a, **k: seen.append((len(stream), a[2], k)) or real(model, stream, *a, **k)
    try:
        evaluator.retrain(space.build(space.sample(np.random.default_rng(1))), 0, 1, with_validation=True)
    finally:
        lm_module.train_lm = real
    assert seen == [(len(corpus.train) + len(corpus.val), 10, {"cpu_seconds": None})]
    # Classifiers train for epochs: asking them for a time budget is a config error naming the field.
    with pytest.raises(ConfigError, match="training.cpu_seconds"):
        build_study(build_config({"training": {"cpu_seconds": 30}}, dataset="digits", out=str(tmp_path / "run")))


def test_config_rejects_a_space_that_cannot_read_the_data(tmp_path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text("to be or not to be, that is the question. " * 100)
    with pytest.raises(ConfigError, match="sequence"):
        build_study(build_config(dataset=f"charlm:{text}", out=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="layers or cell"):
        build_study(build_config(dataset="digits", space="sequence", out=str(tmp_path / "run2")))
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"rt-polarity:{tmp_path}")
    # Searched training hyper-parameters exist only in the layers space: never silently ignored.
    with pytest.raises(ConfigError, match="space.hparams"):
        build_study(build_config({"space": {"name": "sequence", "hparams": {"lr": [0.001, 0.01]}}},
                                 dataset=f"charlm:{text}", out=str(tmp_path / "run3")))


def test_language_model_search_end_to_end(tmp_path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text("to be or not to be, that is the question. " * 200)
    config = build_config({"space": {"name": "sequence", "channels": [16], "min_blocks": 1, "max_blocks": 1, "blocks": ["conv"]},
                           "dataset": {"name": f"charlm:{text}", "max_length": 24}},
                          trials=2, epochs=1, batch_size=8, reward="neg_loss", out=str(tmp_path / "run"), progress=False)
    study = build_study(config)
    assert study.space.options.rnn_widths == (64, 128, 256)  # unset: the space's defaults
    study.evaluator.steps_per_epoch = 20
    study.run()
    assert study.final is not None and study.final["test"]["loss"] < np.log(len(study.evaluator.data.tokenizer))
    assert study.best.metrics["bits_per_token"] > 0


def test_rnn_widths_and_layers_come_from_the_config(tmp_path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text("to be or not to be, that is the question. " * 80)
    config = build_config({"space": {"name": "sequence", "blocks": ["rnn"], "rnn_widths": [512], "rnn_layers": [1]},
                           "dataset": {"name": f"charlm:{text}"}}, out=str(tmp_path / "run"), progress=False)
    study = build_study(config)
    assert study.space.options.rnn_widths == (512,) and study.space.options.rnn_layers == (1,)
    genome = study.space.sample(np.random.default_rng(0))
    assert all(b["hidden"] == 512 and b["layers"] == 1 for b in genome.blocks)
    with pytest.raises(ConfigError, match="rnn_widths"):
        build_config({"space": {"name": "sequence", "rnn_widths": [0]}})


def test_ngram_bag_options_come_from_the_config(tmp_path) -> None:
    pos, neg = tmp_path / "rt-polarity.pos", tmp_path / "rt-polarity.neg"
    pos.write_text("a fine , warm film .\n" * 40, encoding="latin-1")
    neg.write_text("a dull , cold film .\n" * 40, encoding="latin-1")
    config = build_config({"space": {"name": "sequence", "blocks": ["conv"], "ngrams": [2], "bag_dims": [16]},
                           "dataset": {"name": f"rt-polarity:{tmp_path}"}}, out=str(tmp_path / "run"), progress=False)
    study = build_study(config)
    genome = study.space.sample(np.random.default_rng(0))
    assert (genome.ngram, genome.bag_dim) == (2, 16)
    with pytest.raises(ConfigError, match="ngrams"):
        build_config({"space": {"name": "sequence", "ngrams": [-1]}})


def test_successive_halving_over_cpu_time_budgets(tmp_path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text("to be or not to be, that is the question. " * 200)
    config = build_config({"space": {"name": "sequence", "channels": [16], "min_blocks": 1, "max_blocks": 1, "blocks": ["conv"]},
                           "dataset": {"name": f"charlm:{text}", "max_length": 24},
                           "training": {"cpu_seconds": 0.2, "cosine": False},
                           "fidelity": {"name": "halving", "min_epochs": 1, "eta": 2, "rungs": 2}},
                          strategy="random", trials=2, batch_size=8, reward="neg_loss", out=str(tmp_path / "run"), progress=False)
    study = build_study(config)
    study.evaluator.steps_per_epoch = 10**6  # one curve point per run: the end of its budget
    study.run()
    # Rung 0: 0.2 CPU-s each; the better of the two is promoted to 2 units: 0.2 CPU-s more from its own weights.
    trials = study.store.trials("complete")
    assert len(trials) == 2 and sorted(len(t.curve) for t in trials) == [1, 2]
    assert all(point["cpu_seconds"] >= 0.2 for t in trials for point in t.curve)


def test_a_corpus_too_short_for_one_held_out_window_is_refused_before_the_search(tmp_path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text("to be or not to be, that is the question. " * 50)  # 215 held-out characters: under 2 x 128
    with pytest.raises(DataError, match="not enough for one window of 128"):
        build_study(build_config({"space": {"name": "sequence"}, "dataset": {"name": f"charlm:{text}"}}, out=str(tmp_path / "run"),
                                 progress=False))
    assert not (tmp_path / "run" / "study.sqlite").exists()
