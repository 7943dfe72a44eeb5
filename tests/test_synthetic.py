import numpy as np
import pytest

from rnnbench.data.synthetic import generate, rule_label, rule_score


@pytest.mark.parametrize("text, score", [
    ("the plot was good .", 1),
    ("the plot was bad .", -1),
    ("the plot was not really good .", -1),           # negation with a gap: a bigram cannot see it
    ("the plot was never particularly bad .", 1),
    ("it is not true that the plot was not good .", 1),  # double negation
    ("it is not true that the cast was good .", -1),
    ("the plot was very good .", 2),                  # intensifier doubles the weight
    ("the plot was not very good .", -2),
    ("the cast was awful , but the plot was good .", 1),  # contrast: the later clause dominates
    ("the cast was good , but the plot was awful .", -1),
    ("although the cast was good , the plot was awful .", -1),
    ("we saw it on a sunday with my sister .", 0),     # neutral sentences count for nothing
    ("the plot was good . the cast was extremely bad .", -1),
])
def test_rule_on_hand_written_examples(text, score):
    assert rule_score(text) == score
    if score:
        assert rule_label(text) == int(score > 0)


def test_deterministic_per_seed_and_labels_follow_rule():
    a, ya = generate(300, seed=5)
    b, yb = generate(300, seed=5)
    c, _ = generate(300, seed=6)
    assert a == b and np.array_equal(ya, yb) and a != c
    assert all(rule_label(t) == y for t, y in zip(a, ya))


def test_balanced_and_length():
    texts, y = generate(4000, seed=0, mean_tokens=80)
    assert 0.45 < y.mean() < 0.55
    lengths = np.array([len(t.split()) for t in texts])
    assert 70 < lengths.mean() < 100
    texts, _ = generate(500, seed=0, mean_tokens=200)
    assert np.mean([len(t.split()) for t in texts]) > 170


def test_noise_flips_that_fraction():
    texts, clean = generate(5000, seed=1)
    _, noisy = generate(5000, seed=1, noise=0.2)
    assert 0.17 < np.mean(clean != noisy) < 0.23


def test_regression_variant():
    texts, y = generate(500, seed=2, regression=True)
    assert y.dtype == np.float64 and np.all(np.abs(y) < 1)
    assert all(np.sign(v) == np.sign(rule_score(t)) for t, v in zip(texts, y))
