import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from rnnbench.config import load_config
from rnnbench.data import Split, Task, Tokenizer, generate
from rnnbench.errors import RnnbenchError
from rnnbench.models.linear.model import LinearBaseline, grid_points
from rnnbench.models.linear.ngrams import NgramCounter
from rnnbench.models.linear.spec import LinearConfig

BINARY = Task("sentiment", "binary", 2)


@pytest.fixture(scope="module")
def data():
    texts, y = generate(1500, seed=3)
    return Split(texts[:1000], y[:1000]), Split(texts[1000:1300], y[1000:1300]), Split(texts[1300:], y[1300:])


def test_column_filtering_equals_refitting_the_vectorizer(data):
    """One vectorised count matrix filtered per min_df gives TfidfVectorizer(min_df=m)'s features."""
    train, val, test = data
    cfg = LinearConfig(min_df=[3], C=[4.0])
    ours = LinearBaseline(cfg, BINARY, n_jobs=1).fit(train, val)
    ref = TfidfVectorizer(ngram_range=(1, 2), min_df=3, sublinear_tf=True, tokenizer=Tokenizer().tokenize,
                          token_pattern=None, lowercase=False).fit(train.texts)
    a, b = ours.features(test.texts).toarray(), ref.transform(test.texts).toarray()
    assert a.shape == b.shape
    # the same values in every row (column order differs: ours is by n-gram key, sklearn's alphabetical)
    np.testing.assert_allclose(np.sort(a, axis=1), np.sort(b, axis=1), atol=1e-12)
    lr = LogisticRegression(C=4.0, max_iter=1000).fit(ref.transform(train.texts), train.y)
    np.testing.assert_allclose(ours.predict_scores(test.texts), lr.predict_proba(b), atol=1e-4)


def test_ngram_counts_match_countvectorizer():
    texts = ["the cat sat on the mat .", "the cat !", "a dog , the cat"]
    counter = NgramCounter((1, 3))
    ours = counter.fit_transform(texts).toarray()
    ref = CountVectorizer(ngram_range=(1, 3), tokenizer=Tokenizer().tokenize, token_pattern=None,
                          lowercase=False).fit(texts)
    theirs = ref.transform(texts).toarray()
    np.testing.assert_array_equal(np.sort(ours, axis=1), np.sort(theirs, axis=1))
    unseen = ["the cat zebra sat", "zebra"]
    np.testing.assert_array_equal(np.sort(counter.transform(unseen).toarray(), axis=1),
                                  np.sort(ref.transform(unseen).toarray(), axis=1))


def test_grid_choice_uses_validation_only(data):
    train, val, _ = data
    model = LinearBaseline(LinearConfig(min_df=[1, 2], C=[0.01, 10.0]), BINARY).fit(train, val)
    assert len(model.grid_) == 4
    best = max(g["validation"]["accuracy"] for g in model.grid_)
    assert model.validation_["accuracy"] == best
    assert model.chosen_ in [g["params"] for g in model.grid_ if g["validation"]["accuracy"] == best]


def test_ridge_for_regression():
    texts, y = generate(3400, seed=4, regression=True)
    task = Task("score", "regression")
    model = LinearBaseline(LinearConfig(min_df=[1], alpha=[1.0, 10.0]), task).fit(
        Split(texts[:3000], y[:3000]), Split(texts[3000:], y[3000:]))
    assert set(model.chosen_) == {"min_df", "alpha"}
    pred = model.predict_scores(texts[3000:])
    assert pred.shape == (400,)
    # order carries most of the signal here, so a bag of n-grams does only a little better than the mean
    assert np.mean((pred - y[3000:]) ** 2) < np.mean((y[:3000].mean() - y[3000:]) ** 2)
    assert np.corrcoef(pred, y[3000:])[0, 1] > 0.1


def test_multiclass():
    texts, y = generate(900, seed=5)
    y3 = (y + (np.arange(900) % 3 == 0)).astype(int)  # three classes
    model = LinearBaseline(LinearConfig(min_df=[1], C=[1.0]), Task("t", "multiclass", 3)).fit(
        Split(texts[:700], y3[:700]), Split(texts[700:], y3[700:]))
    assert model.predict_scores(texts[:5]).shape == (5, 3)


def test_empty_grid_and_wrong_types():
    with pytest.raises(RnnbenchError, match="grid is empty"):
        grid_points(LinearConfig(min_df=[], C=[1.0]), BINARY)
    with pytest.raises(RnnbenchError, match=r"linear\.C\[0\]: expected float"):
        load_config(None, ["linear.C=[high]"])
    with pytest.raises(RnnbenchError, match=r"linear\.min_df\[0\]: expected int"):
        load_config(None, ["linear.min_df=[0.5]"])


def test_save_load_roundtrip(tmp_path, data):
    train, val, test = data
    model = LinearBaseline(LinearConfig(min_df=[1], C=[1.0]), BINARY).fit(train, val)
    model.save(tmp_path)
    back = LinearBaseline.load(tmp_path)
    np.testing.assert_array_equal(back.predict_scores(test.texts), model.predict_scores(test.texts))


def test_each_grid_point_is_logged_and_shown_as_it_finishes(data, tmp_path, monkeypatch, capsys, stderr_log):
    """A long grid tells where it is: the run's log gets `grid_start` and then each point as it finishes
    (so `rnnbench status` reads "grid k/n" of a running fit), and stderr one line per point."""
    import json

    import rnnbench.models.linear.model
    from rnnbench.runs import Run
    from rnnbench.status import progress_of, progress_text

    train, val, _ = data
    run = Run(tmp_path / "linear-n1000-s0-x")
    run.path.mkdir()
    seen = []
    log = run.log

    def spy(row):  # what `rnnbench status` would read at each moment
        log(row)
        seen.append(progress_text(progress_of(run.path)))

    monkeypatch.setattr(run, "log", spy)
    monkeypatch.setattr(rnnbench.models.linear.model, "GRID_QUIET_S", 0.0)
    model = LinearBaseline(LinearConfig(min_df=[1, 2], C=[0.5, 4.0]), BINARY, n_jobs=1).fit(train, val, run=run)
    rows = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in rows] == ["grid_start"] + ["grid_point"] * 4 and rows[0]["points"] == 4
    assert seen == ["grid 0/4", "grid 1/4", "grid 2/4", "grid 3/4", "grid 4/4"]
    by_point = {(r["min_df"], r["C"]): r["val_accuracy"] for r in rows[1:]}
    assert by_point == {(g["params"]["min_df"], g["params"]["C"]): g["validation"]["accuracy"] for g in model.grid_}
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip().startswith("linear grid")]
    assert [x.split(":")[0].strip() for x in err] == [f"linear grid {k}/4" for k in range(1, 5)]
    assert all("validation accuracy 0." in x for x in err)


def test_a_model_saved_before_the_kinds_moved_still_loads(tmp_path, monkeypatch):
    """model.pkl files written when the n-gram counter lived in rnnbench.ngrams and the options in
    rnnbench.config load, and predict, as they did."""
    import pickle
    import sys
    import types

    from rnnbench.config import load_config
    from rnnbench.data import Split, Task, generate
    from rnnbench.models.linear import model as linear_model
    from rnnbench.models.linear.ngrams import NgramCounter
    from rnnbench.models.linear.spec import LinearConfig

    texts, y = generate(200, seed=1, mean_tokens=20)
    cfg = load_config(None, ["linear.min_df=[1]", "linear.C=[1.0]"])
    model = linear_model.LinearBaseline.from_config(cfg, Task("t", "binary", 2)).fit(
        Split(texts[:150], y[:150]), Split(texts[150:], y[150:]), progress=False)
    old = {"rnnbench.ngrams": NgramCounter, "rnnbench.config": LinearConfig}
    for name, cls in old.items():  # pickled under the old modules' names, as an earlier rnnbench did
        fake = types.ModuleType(name)
        setattr(fake, cls.__name__, cls)
        monkeypatch.setitem(sys.modules, name, fake)
        monkeypatch.setattr(cls, "__module__", name)
    state = {k: getattr(model, k) for k in ("cfg", "task", "counter_", "columns_", "tfidf_", "model_", "chosen_")}
    blob = pickle.dumps(state)
    monkeypatch.undo()
    assert b"rnnbench.ngrams" in blob and b"rnnbench.models.linear.ngrams" not in blob
    (tmp_path / "model.pkl").write_bytes(blob)
    loaded = linear_model.LinearBaseline.load(tmp_path)
    assert (loaded.predict_scores(texts[150:]) == model.predict_scores(texts[150:])).all()
