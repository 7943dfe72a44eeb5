"""Intervals over test groups and seeds, validation worth its name on grouped data, per-group scores."""

import json

import numpy as np
import pytest

from rnnbench.config import load_config
from rnnbench.data import Task
from rnnbench.data.subsets import effective_groups, subset_indices
from rnnbench.intervals import Preds, compare_intervals

BINARY = Task("t", "binary", 2)


def simulate(rng, n_groups=150, per_group=20, grouped=True):
    """Two models' correctness on texts of authors whose difficulty, and whose advantage for model A, vary by
    author: most of the variance of the difference lies between groups (a shared draw per text makes the two
    models fail on the same texts). Returns {model: {0: Preds}} and the difference's true value."""
    p_b = rng.uniform(0.3, 0.8, n_groups)
    delta = rng.normal(0.05, 0.1, n_groups)
    p_a = np.clip(p_b + delta, 0, 1)
    groups = np.repeat(np.arange(n_groups), per_group)
    u = rng.random(len(groups))
    right_a, right_b = (u < p_a[groups]).astype(int), (u < p_b[groups]).astype(int)
    y = np.ones(len(groups), int)
    g = groups if grouped else np.full(len(groups), -1)
    runs = {m: {0: Preds(y, g, pred=right, proba=right.astype(np.float16))} for m, right in
            (("a", right_a), ("b", right_b))}
    return runs, right_a - right_b, groups


def true_difference():
    rng = np.random.default_rng(12345)
    p_b = rng.uniform(0.3, 0.8, 2_000_000)
    return float(np.mean(np.clip(p_b + rng.normal(0.05, 0.1, len(p_b)), 0, 1) - p_b))


def design_effect(d: np.ndarray, groups: np.ndarray) -> float:
    """1 + (m − 1)·ρ, ρ the one-way ANOVA intraclass correlation of ``d`` within groups of m."""
    m = np.bincount(groups)[0]
    means = np.bincount(groups, weights=d) / m
    msb = m * np.var(means, ddof=1)
    msw = np.sum((d - means[groups]) ** 2) / (len(d) - len(means))
    rho = (msb - msw) / (msb + (m - 1) * msw)
    return 1 + (m - 1) * rho


def test_the_group_interval_is_wider_by_the_design_effect():
    rng = np.random.default_rng(0)
    runs, d, groups = simulate(rng)
    by_group = compare_intervals(runs, "accuracy", "b", n_boot=2000)
    flat = {m: {0: Preds(p[0].y, np.full(len(p[0].y), -1), p[0].pred, p[0].proba)} for m, p in runs.items()}
    by_text = compare_intervals(flat, "accuracy", "b", n_boot=2000)
    assert by_group["grouped"] and not by_text["grouped"] and by_group["units"] == 150 and by_text["units"] == 3000
    width = lambda iv: iv[1] - iv[0]  # noqa: E731
    ratio = width(by_group["diff"]["a"]) / width(by_text["diff"]["a"])
    deff = design_effect(d.astype(float), groups)
    assert deff > 2  # the groups carry most of the difference's variance
    assert ratio == pytest.approx(np.sqrt(deff), rel=0.2)


def test_the_group_interval_covers_the_true_difference():
    truth = true_difference()
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(200):
        runs, _, _ = simulate(rng)
        lo, hi = compare_intervals(runs, "accuracy", "b", n_boot=400, seed=int(rng.integers(1 << 30)))["diff"]["a"]
        covered.append(lo <= truth <= hi)
    assert np.mean(covered) >= 0.9


def test_resampled_metrics_match_the_metrics_of_the_whole_test_set():
    """With no resampling noise (every resample the full set: one unit), the bootstrap reproduces each
    metric exactly as evaluate computes it: the per-group sums are right."""
    from rnnbench.intervals import _from_totals, _stats, _weighted_auc
    from rnnbench.metrics import decide, evaluate

    rng = np.random.default_rng(3)
    for k in (2, 3):
        y = rng.integers(0, k, 500)
        scores = rng.dirichlet(np.ones(k), 500)
        scores[np.arange(500), y] += 0.3
        scores /= scores.sum(1, keepdims=True)
        pred = decide(scores, None)
        p = Preds(y, np.full(500, -1), pred, (scores[:, 1] if k == 2 else scores).astype(np.float64))
        want = evaluate(Task("t", "binary" if k == 2 else "multiclass", k), y, scores)
        for metric in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss"):
            got = _from_totals(metric, _stats(metric, p).sum(0, keepdims=True))[0]
            assert got == pytest.approx(want[metric], rel=1e-9), (k, metric)
        if k == 2:
            assert _weighted_auc(scores[:, 1], y, np.ones((1, 500)))[0] == pytest.approx(want["roc_auc"])
    value = rng.normal(0, 1, 300)
    yv = value + rng.normal(0, 0.5, 300)
    want = evaluate(Task("t", "regression", 0), yv, value)
    pv = Preds(yv, np.full(300, -1), value=value)
    for metric in ("rmse", "mae", "r2"):
        assert _from_totals(metric, _stats(metric, pv).sum(0, keepdims=True))[0] == pytest.approx(want[metric])


def test_validation_by_groups_with_a_cap_per_group_is_worth_many_more_authors():
    """A skewed author distribution (a few prolific authors): validation by rows is worth a few dozen
    authors; 400 groups capped at 5 rows each are worth hundreds; the subsets stay nested and disjoint."""
    rng = np.random.default_rng(0)
    sizes = np.minimum(rng.pareto(0.8, 3000).astype(int) + 1, 3000)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    y = rng.integers(0, 2, len(groups))
    _, val_rows, _ = subset_indices(y, False, 0, None, 0.1, 5000, groups)
    small, val, pool = subset_indices(y, False, 0, 1000, 0.1, 5000, groups, val_groups=400, val_max_per_group=5)
    big, val2, _ = subset_indices(y, False, 0, 5000, 0.1, 5000, groups, val_groups=400, val_max_per_group=5)
    assert effective_groups(groups[val_rows]) < 60 < 200 < effective_groups(groups[val])
    assert len(np.unique(groups[val])) == 400 and np.bincount(groups[val]).max() <= 5
    assert np.array_equal(val, val2) and set(small) <= set(big)  # nested, the same validation for every size
    assert not set(groups[big]) & set(groups[val])  # no author on both sides, capped rows included
    assert pool == len(groups) - np.isin(groups, groups[val]).sum()


def test_grouped_validation_options_leave_other_data_sets_and_keys_alone(tmp_path):
    from rnnbench.errors import RnnbenchError
    from rnnbench.experiment import load_corpus, subsets_for
    from rnnbench.runs import run_path

    cfg = load_config(None, [f"experiment.output_dir={tmp_path}"])
    assert run_path(cfg, "rnn", 100, 0) == run_path(cfg.replace(**{"data.val_groups": None}), "rnn", 100, 0)
    assert run_path(cfg, "rnn", 100, 0) != run_path(cfg.replace(**{"data.val_groups": 50}), "rnn", 100, 0)
    small = cfg.replace(**{"data.synthetic.train_size": 300, "data.synthetic.test_size": 100, "data.val_groups": 5})
    with pytest.raises(RnnbenchError, match="data.val_groups: synthetic has no groups"):
        subsets_for(small, load_corpus(small), 100, 0)


@pytest.mark.slow
def test_a_grouped_compare_shows_intervals_ties_and_whole_author_scores(tmp_path):
    """A grouped csv (authors): the table brackets each mean and difference with a bootstrap over authors and
    seeds, calls a difference whose interval holds 0 a tie, and with experiment.group_scores scores each
    author from the mean of their texts; runs keep their test predictions."""
    import yaml
    from click.testing import CliRunner

    from rnnbench.cli import main
    from rnnbench.data import generate

    texts, y = generate(2400, seed=3, mean_tokens=30)
    rng = np.random.default_rng(0)
    authors = np.asarray(y) * 120 + rng.integers(0, 120, len(texts))  # an author's texts share a label
    lines = ["author,text,label"] + [f"a{a},\"{t}\",{label}" for a, t, label in zip(authors, texts, y)]
    data = tmp_path / "posts.csv"
    data.write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "experiment": {"name": "g", "seeds": [0, 1], "output_dir": str(tmp_path / "runs"), "models": ["linear"],
                       "group_scores": True},
        "data": {"dataset": "csv", "path": str(data), "text_columns": ["text"], "label_column": "label",
                 "group_column": "author", "sizes": [300, 1000], "val_groups": 40, "val_max_per_group": 3},
        "linear": {"min_df": [1], "C": [1.0]}}))
    r = CliRunner().invoke(main, ["compare", str(cfg)])
    assert r.exit_code == 0, r.output
    exp = tmp_path / "runs" / "g"
    table = [row for row in __import__("csv").DictReader(open(exp / "crossover.csv"))]
    main_rows = [t for t in table if t["metric"] == "accuracy"]
    assert all(float(t["low"]) <= float(t["mean"]) <= float(t["high"]) for t in main_rows)
    assert {t["metric"] for t in table} == {"accuracy", "group_accuracy"}
    md = (exp / "crossover.md").read_text()
    assert "bootstrap over test groups (authors" in md and "Each test group (author) scored as a whole" in md
    run = next((exp / "runs").iterdir())
    saved = np.load(run / "predictions.npz")
    result = json.loads((run / "result.json").read_text())
    assert set(saved.files) == {"y", "pred", "proba", "groups"} and len(saved["y"]) == result["n_test"]
    assert 0 < result["group_metrics"]["groups"] < result["n_test"]
