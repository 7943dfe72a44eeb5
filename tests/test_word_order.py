"""Is it word order? The four kinds on two corpora that tell them apart.

On the synthetic corpus, whose labels follow word order (negation scope, "..., but ..." contrast), the
models that read order (the GRU, the Transformer) learn the rule, while fastText, which sees order only
inside bigrams, stays near the bag-of-bigrams baseline. On a corpus whose labels follow word counts alone
(more words of one set than of another, in any order), every kind matches the baseline: dense embeddings
alone are no advantage there, and reading order is none either."""

import numpy as np
import pytest

from rnnbench.config import Config
from rnnbench.data import Split, Task, generate
from rnnbench.models.base import model_class

BINARY = Task("sentiment", "binary", 2)
# configs/quickstart.yaml's settings
SETTINGS = {"tokenizer.min_df": 2, "linear.min_df": [1, 2], "linear.C": [1.0, 10.0],
            "rnn.embed_dim": 32, "rnn.hidden_dim": 64, "rnn.batch_size": 32, "rnn.learning_rate": 0.003,
            "rnn.epochs": 8, "fasttext.buckets": 20000, "fasttext.epochs": 8,
            "transformer.width": 64, "transformer.heads": 4, "transformer.ffn": 128, "transformer.dropout": 0.0,
            "transformer.batch_size": 16, "transformer.learning_rate": 0.001, "transformer.epochs": 6,
            "transformer.length_buckets": 4}


def _test_accuracy(kind: str, train: Split, val: Split, test: Split, **overrides) -> float:
    model = model_class(kind).from_config(Config().replace(**{**SETTINGS, **overrides}), BINARY, 0)
    model.fit(train, val, progress=False)
    return float(np.mean(np.argmax(model.predict_scores(test.texts), axis=1) == test.y))


def _splits(texts, y, n_train, n_val):
    return (Split(texts[:n_train], y[:n_train]), Split(texts[n_train:n_train + n_val], y[n_train:n_train + n_val]),
            Split(texts[n_train + n_val:], y[n_train + n_val:]))


A_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel".split()
B_WORDS = "india juliet kilo lima mike november oscar papa".split()
FILLER = ("the a of and to in is was it that this for on with as at by from or an be are its one two we you "
          "they there here some more most very much also just then than").split()


def count_corpus(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Texts of 30-60 words, each with some words of set A and a different number of words of set B amid
    filler words, in random order; the label: more of A than of B. Order carries nothing."""
    rng = np.random.default_rng(seed)
    texts, y = [], np.zeros(n, np.int64)
    for i in range(n):
        a, b = rng.poisson(3), rng.poisson(3)
        while a == b:
            a, b = rng.poisson(3), rng.poisson(3)
        words = list(rng.choice(A_WORDS, a)) + list(rng.choice(B_WORDS, b))
        words += list(rng.choice(FILLER, int(rng.integers(30, 61)) - len(words)))
        rng.shuffle(words)
        texts.append(" ".join(words))
        y[i] = int(a > b)
    return texts, y


@pytest.mark.slow
def test_on_word_order_labels_the_gru_and_the_transformer_learn_the_rule_fasttext_does_not():
    texts, y = generate(15000 + 1000 + 2000, seed=3)  # the quickstart's largest size
    train, val, test = _splits(texts, y, 15000, 1000)
    acc = {kind: _test_accuracy(kind, train, val, test) for kind in ("linear", "fasttext", "rnn", "transformer")}
    # the rule, learned: the GRU all but perfectly, the Transformer well past the baseline (seed 3's corpus
    # here: GRU 99.8%, Transformer 88.8%, linear 69.5%; the quickstart at 15,000, seeds 0 and 1: GRU 99.7%,
    # 99.9%; Transformer 85.9%, 81.3%; linear 69.8%, 70.0%)
    assert acc["rnn"] > 0.95 and acc["transformer"] > 0.77, acc
    # fastText learns what words and bigrams show, as the baseline does, and no more (seed 3's corpus: linear
    # 69.5%, fastText 63.5%; the quickstart's at 15,000: 69.9% and 68.2%)
    assert acc["linear"] < 0.75 and 0.6 < acc["fasttext"] < acc["linear"] + 0.03, acc
    assert acc["rnn"] - acc["fasttext"] > 0.2 and acc["transformer"] - acc["fasttext"] > 0.07, acc


@pytest.mark.slow
def test_on_word_count_labels_every_kind_matches_the_baseline():
    texts, y = count_corpus(3000 + 500 + 1500, seed=0)
    train, val, test = _splits(texts, y, 3000, 500)
    acc = {kind: _test_accuracy(kind, train, val, test) for kind in ("linear", "fasttext", "rnn", "transformer")}
    assert acc["linear"] > 0.85, acc
    for kind in ("fasttext", "rnn", "transformer"):
        assert abs(acc[kind] - acc["linear"]) < 0.05, acc
