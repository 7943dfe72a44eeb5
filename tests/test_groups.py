"""Group-disjoint splits (data.group_column, the Blog Authorship Corpus's blog_id), compressed files, and the
blog-authorship loader as shipped."""

import bz2
import csv
import hashlib
import io
import json
import lzma

import numpy as np
import pytest
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.data import REGISTRY, Corpus, LoadReport, Split, Task, load, make_subsets, subset_indices
from rnnbench.data.corpus import holdout
from rnnbench.data.download import register_local
from rnnbench.data.groups import whole_groups
from rnnbench.data.registry import registered_path
from rnnbench.errors import RnnbenchError

BLOG_HEADER = ["blog_id", "gender", "age", "age_group", "industry", "sign", "date", "text"]
AGES = {"13-17": 15, "23-27": 25, "33-48": 40}


def _digest(a) -> str:
    return hashlib.sha256(np.asarray(a, np.int64).tobytes()).hexdigest()[:16]


def _grouped(n_groups=60, seed=0, classes=2):
    """Rows of ``n_groups`` groups of 1 to 40 rows each, a label per group (like a blogger's profile)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 41, n_groups)
    groups = np.repeat(np.arange(n_groups) * 7 + 3, sizes)  # codes need not be 0..G-1
    y = np.repeat(rng.integers(0, classes, n_groups), sizes)
    return y, groups


# ------------------------------------------------------------------------ without groups: unchanged


def _golden_ys():
    r = np.random.default_rng(7)
    return {"binary": (r.integers(0, 2, 1000), False), "imbalanced": ((r.random(1000) < 0.2).astype(np.int64), False),
            "multiclass": (r.integers(0, 5, 777), False), "regression": (r.random(500), True)}


# computed by the code before groups existed (72 subsets and 3 holdouts): runs and results depend on them
GOLDEN = {"binary": "115bac741ca9484c", "imbalanced": "c47c505f44729d4e", "multiclass": "cb9621a1fb2a6c3e",
          "regression": "ce575d58fdd61fd7", "holdout": "c21ec45b4e7a67f1"}


def _combined(cases: dict) -> str:
    return hashlib.sha256(json.dumps([[k, cases[k]] for k in sorted(cases)]).encode()).hexdigest()[:16]


def test_without_groups_the_subsets_and_holdout_are_those_of_before():
    for name, (y, regression) in _golden_ys().items():
        cases = {}
        for seed in (0, 1, 42):
            for size in (10, 100, None):
                for vf, vm in ((0.1, 5000), (0.2, 30)):
                    tr, va, pool = subset_indices(y, regression, seed, size, vf, vm)
                    cases[f"{name}/{seed}/{size}/{vf}/{vm}"] = [_digest(tr), _digest(va), pool]
        assert _combined(cases) == GOLDEN[name], name
    cases = {}
    for frac in (0.1, 0.2, 0.5):
        train, test = holdout([str(i) for i in range(1003)], np.arange(1003), frac)
        assert train.groups is None and test.groups is None
        cases[f"holdout/{frac}"] = [_digest(train.y), _digest(test.y)]
    assert _combined(cases) == GOLDEN["holdout"]


# ------------------------------------------------------------------------ group-disjoint subsets


def test_no_group_in_validation_and_training():
    y, groups = _grouped()
    for seed in range(5):
        train, val, pool = subset_indices(y, False, seed, None, val_fraction=0.2, val_max=10000, groups=groups)
        assert not set(groups[train]) & set(groups[val])
        assert sorted(np.concatenate([train, val])) == list(range(len(y)))  # every row, once
        assert pool == len(train) == len(y) - len(val)


def test_validation_is_whole_groups_near_the_target():
    y, groups = _grouped()
    sizes = np.bincount(groups)
    for seed in range(20):
        _, val, _ = subset_indices(y, False, seed, None, val_fraction=0.2, val_max=10000, groups=groups)
        val_groups = np.unique(groups[val])
        assert len(val) == sizes[val_groups].sum()  # whole groups
        target = round(0.2 * len(y))
        assert abs(len(val) - target) <= sizes.max() / 2  # off by at most half the last group's size


def test_whole_groups_overshoot_rule():
    groups = np.repeat([10, 20, 30, 40], [3, 10, 2, 5])  # 20 rows
    for seed in range(30):
        rng = np.random.default_rng(seed)
        order = np.random.default_rng(seed).permutation(4)  # the order whole_groups draws
        taken = whole_groups(groups, 6, rng)
        sizes = np.array([3, 10, 2, 5])[order]
        cum = np.cumsum(sizes)
        k = int(np.searchsorted(cum, 6))
        before = cum[k - 1] if k else 0
        expected = cum[k] if (k == 0 or cum[k] - 6 <= 6 - before) else before
        assert taken.sum() == expected
        assert 0 < len(np.unique(groups[taken])) < 4  # at least one group taken, one left
    assert whole_groups(np.array([5, 5, 5]), 2, np.random.default_rng(0)).all()  # one group: taken whole
    assert whole_groups(np.array([1, 2]), 100, np.random.default_rng(0)).sum() == 1  # one is left


def test_training_subsets_are_nested_and_stratified_with_groups():
    y, groups = _grouped(n_groups=200, seed=1)
    runs = {n: subset_indices(y, False, 3, n, val_fraction=0.1, val_max=10000, groups=groups)
            for n in (10, 50, 200, 1000)}
    (_, val, _), *_ = runs.values()
    rest = np.setdiff1d(np.arange(len(y)), val)
    share = y[rest].mean()  # the class-1 share of the rows left for training
    previous = np.array([], np.int64)
    for n, (train, v, _) in runs.items():
        assert np.array_equal(v, val)  # validation does not depend on the training size
        assert len(train) == n and set(previous) <= set(train)  # nested
        assert abs(y[train].sum() - n * share) <= 1  # within one example per class
        previous = train


def test_same_seed_same_subsets_other_seed_other_subsets():
    y, groups = _grouped()
    a = subset_indices(y, False, 5, 100, 0.2, 10000, groups)
    b = subset_indices(y, False, 5, 100, 0.2, 10000, groups)
    c = subset_indices(y, False, 6, 100, 0.2, 10000, groups)
    assert all(np.array_equal(x, z) for x, z in zip(a[:2], b[:2]))
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


def test_regression_with_groups():
    _, groups = _grouped()
    y = np.linspace(0, 1, len(groups))
    train, val, _ = subset_indices(y, True, 0, 100, 0.1, 10000, groups)
    assert len(train) == 100 and not set(groups[train]) & set(groups[val])


def test_make_subsets_carries_the_groups():
    y, groups = _grouped()
    split = Split([f"t{i}" for i in range(len(y))], y, groups)
    corpus = Corpus("toy", Task("t", "binary", 2), split, split.take(np.arange(5)), LoadReport())
    sub = make_subsets(corpus, seed=0, size=50, val_fraction=0.1, val_max=1000)
    assert np.array_equal(sub.train.groups, groups[[int(t[1:]) for t in sub.train.texts]])
    assert not set(sub.train.groups) & set(sub.val.groups)


def test_training_size_larger_than_the_group_disjoint_pool_names_both_numbers():
    y, groups = _grouped()
    _, val, pool = subset_indices(y, False, 0, None, 0.2, 10000, groups)
    with pytest.raises(RnnbenchError) as e:
        subset_indices(y, False, 0, pool + 1, 0.2, 10000, groups)
    assert str(e.value) == (f"requested training size {pool + 1} is larger than the {pool} examples available "
                            f"({len(y)} in the training pool minus {len(val)} for validation, whole groups)")
    with pytest.raises(RnnbenchError, match=r"only 0 example\(s\) left for training .* too few groups"):
        subset_indices(np.array([0, 1, 0, 1]), False, 0, None, 0.2, 100, np.zeros(4, np.int64))


def test_group_holdout_is_group_disjoint():
    y, groups = _grouped()
    texts = [str(i) for i in range(len(y))]
    train, test = holdout(texts, y, 0.2, groups=groups)
    assert not set(train.groups) & set(test.groups)
    assert len(train) + len(test) == len(y)
    assert abs(len(test) - 0.2 * len(y)) <= np.bincount(groups).max() / 2
    again, _ = holdout(texts, y, 0.2, groups=groups)
    assert again.texts == train.texts  # the same every time (not per experiment seed)


# ------------------------------------------------------------------------ the generic loader


def _write_tsv(path, rows, header=("author", "text", "label")):
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode()
    opener = {".xz": lzma.compress, ".bz2": bz2.compress}.get(path.suffix, lambda b: b)
    path.write_bytes(opener(data))
    return path


def _author_rows(n_authors=40, per=(1, 12), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n_authors):
        label = "pos" if a % 3 else "neg"
        rows += [(f"author{a}", f"post {j} by author {a} word{a}", label) for j in range(rng.integers(*per))]
    return rows


TSV = {"text_columns": ["text"], "label_column": "label", "group_column": "author"}


@pytest.mark.parametrize("suffix", ["", ".xz", ".bz2"])
def test_generic_tsv_with_group_column(tmp_path, suffix):
    rows = _author_rows()
    rows += [("author99", "", "pos"), ("", "no author", "pos")]  # dropped: empty text, empty group value
    rows += [("author98", " ", "pos"), ("author98", "", "neg")]  # author98 has no row left: that is fine
    path = _write_tsv(tmp_path / f"f.tsv{suffix}", rows)
    c = load("tsv", str(path), **TSV, task_kind="binary")
    assert c.report.dropped == {"empty text": 3, "empty author": 1}
    assert len(c.train) + len(c.test) == len(rows) - 4
    assert not set(c.train.groups) & set(c.test.groups)  # the holdout is group-disjoint
    authors = {t.rsplit(" ", 1)[-1] for t in c.test.texts}
    assert not authors & {t.rsplit(" ", 1)[-1] for t in c.train.texts}
    sub = make_subsets(c, seed=0, size=20, val_fraction=0.2, val_max=1000)
    assert not set(sub.train.groups) & set(sub.val.groups)
    assert any("grouped by author" in n for n in c.report.notes)


def test_generic_groups_stay_aligned_with_their_rows(tmp_path):
    rows = [(f"a{i % 13}", f"text of a{i % 13}", str(i) if i % 5 else "n/a") for i in range(200)]
    c = load("tsv", str(_write_tsv(tmp_path / "f.tsv", rows)), **TSV, task_kind="regression")
    assert c.report.dropped == {"unparsable label": 40}
    for split in (c.train, c.test):
        authors = [t.rsplit(" ", 1)[-1] for t in split.texts]
        assert len(set(zip(split.groups.tolist(), authors))) == len(set(authors)) == len(np.unique(split.groups))
    assert not set(c.train.groups) & set(c.test.groups)


def test_generic_with_a_test_file_notes_shared_groups(tmp_path):
    train = _write_tsv(tmp_path / "train.tsv", _author_rows())
    test = _write_tsv(tmp_path / "test.tsv", [("author1", "a post", "pos"), ("new", "another", "neg")])
    c = load("tsv", str(train), **TSV, test_path=str(test))
    assert len(c.test) == 2 and len(np.unique(c.test.groups)) == 2
    assert any("1 author group(s) have rows in both" in n for n in c.report.notes)


def test_group_column_that_does_not_exist(tmp_path):
    path = _write_tsv(tmp_path / "f.tsv", _author_rows())
    with pytest.raises(RnnbenchError, match=r"no column 'writer' \(columns: author, text, label\)"):
        load("tsv", str(path), **{**TSV, "group_column": "writer"})
    jsonl = tmp_path / "f.jsonl"
    jsonl.write_text(json.dumps({"text": "a", "label": 1, "author": "x"}) + "\n")
    with pytest.raises(RnnbenchError, match=r"no field 'writer' in row 1 \(fields: text, label, author\)"):
        load("jsonl", str(jsonl), **{**TSV, "group_column": "writer"})


def test_jsonl_group_column(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2, "author": i // 5}) + "\n" for i in range(100)))
    c = load("jsonl", str(p), **TSV)
    assert not set(c.train.groups) & set(c.test.groups)
    assert {int(t[1:]) // 5 for t in c.train.texts}.isdisjoint({int(t[1:]) // 5 for t in c.test.texts})


def test_cli_bad_group_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    path = _write_tsv(tmp_path / "f.tsv", _author_rows())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"experiment: {{output_dir: {tmp_path / 'runs'}}}\n"
                   f"data: {{dataset: tsv, path: {path}, text_columns: [text], label_column: label}}\n")
    for args, messages in (
        (["--set", "data.group_column=writer"], ["no column 'writer' (columns: author, text, label)"]),
        (["--set", "data.group_column=author", "--size", "100000"],
         ["requested training size 100000 is larger than the", "for validation, whole groups)"]),
    ):
        r = CliRunner().invoke(main, ["train", str(cfg), *args])
        assert r.exit_code == 2, r.output
        assert all(m in r.output for m in messages), r.output
        assert len(r.output.strip().splitlines()) == 1
        assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------ compressed files


@pytest.mark.parametrize("suffix, compress", [(".xz", lzma.compress), (".bz2", bz2.compress)])
def test_a_truncated_compressed_file_is_a_one_line_error(tmp_path, suffix, compress):
    whole = compress(("author\ttext\tlabel\n" + "a\tsome text here\tpos\n" * 5000).encode())
    path = tmp_path / f"cut.tsv{suffix}"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(RnnbenchError) as e:
        load("tsv", str(path), **TSV)
    assert str(e.value).startswith(f"corrupt or truncated file {path}") and "\n" not in str(e.value)


def test_a_truncated_blog_file_from_the_cli(tmp_path):
    folder = _blog_copy(tmp_path)
    train = folder / "train.tsv.xz"
    train.write_bytes(train.read_bytes()[:200])
    r = CliRunner().invoke(main, ["data", "info", "blog-authorship", "--path", str(folder)])
    assert r.exit_code == 2 and f"corrupt or truncated file {train}" in r.output
    assert len(r.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------ blog-authorship


def _blog_rows(n_bloggers=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(n_bloggers):
        gender = ("female", "male")[b % 2]
        group = ("13-17", "23-27", "33-48")[b % 3]
        for j in range(int(rng.integers(1, 15))):
            rows.append([str(1000 + b), gender, str(AGES[group]), group, "Arts", "Leo", "1,May,2004",
                         f'post {j} of blogger {b}, with "quotes"\tand a tab'])
    return rows


def _blog_copy(tmp_path, train_rows=None, test_rows=None, name="blogs"):
    folder = tmp_path / name
    folder.mkdir()
    _write_tsv(folder / "train.tsv.xz", _blog_rows() if train_rows is None else train_rows, BLOG_HEADER)
    _write_tsv(folder / "test.tsv.xz", _blog_rows(6, seed=1) if test_rows is None else test_rows, BLOG_HEADER)
    return folder


def test_blog_loader_tasks_classes_and_groups(tmp_path):
    folder = _blog_copy(tmp_path, test_rows=[[str(5000 + i), "male", "40", "33-48", "x", "y", "z", f"t{i}"]
                                             for i in range(5)])
    rows = _blog_rows()
    c = load("blog-authorship", str(folder), "gender")
    assert c.task == Task("gender", "binary", 2)
    assert len(c.train) == len(rows) and len(c.test) == 5
    assert c.train.y.tolist() == [int(r[1] == "male") for r in rows]
    assert c.test.y.tolist() == [1] * 5  # males only: still class 1 of 2, the fixed order
    assert "gender classes (a fixed order): 0: female, 1: male" in c.report.notes
    assert c.train.texts[0].endswith('with "quotes"\tand a tab')  # csv quoting, as shipped
    assert len(np.unique(c.train.groups)) == 30 and not set(c.train.groups) & set(c.test.groups)
    a = load("blog-authorship", str(folder), "age")
    assert a.task == Task("age", "multiclass", 3)
    assert a.train.y.tolist() == [("13-17", "23-27", "33-48").index(r[3]) for r in rows]
    assert "age classes (a fixed order): 0: 13-17, 1: 23-27, 2: 33-48" in a.report.notes
    sub = make_subsets(c, seed=0, size=50, val_fraction=0.2, val_max=1000)
    assert not set(sub.train.groups) & set(sub.val.groups)


def test_blog_loader_drops_and_counts_bad_rows(tmp_path):
    rows = _blog_rows()
    bad = [["1", "male", "15", "13-17", "x", "y", "z", "  "],  # empty text
           ["2", "unknown", "20", "18-22", "x", "y", "z", "no label"],  # neither gender nor age group
           ["3", "female", "15", "13-17", "x", "y", "z"],  # a field short
           ["", "female", "15", "13-17", "x", "y", "z", "no blogger"]]
    folder = _blog_copy(tmp_path, train_rows=rows + bad)
    c = load("blog-authorship", str(folder), "age")
    assert c.report.dropped == {"empty text": 1, "unparsable label (age_group)": 1, "malformed row": 1,
                                "no blog_id": 1}
    assert c.report.read["train"] == len(rows) + 4 and len(c.train) == len(rows)
    assert "dropped" in c.report.summary()


def test_blog_shared_bloggers_are_noted(tmp_path):
    folder = _blog_copy(tmp_path, test_rows=_blog_rows(3))  # bloggers 1000-1002 are in train too
    c = load("blog-authorship", str(folder), "gender")
    assert any(n.startswith("3 blogger(s) have posts in both train and test") for n in c.report.notes)


def test_blog_missing_files_and_columns(tmp_path):
    folder = _blog_copy(tmp_path)
    (folder / "test.tsv.xz").unlink()
    with pytest.raises(RnnbenchError, match="no test.tsv.xz in"):
        load("blog-authorship", str(folder))
    with pytest.raises(RnnbenchError, match="no test file .*test.tsv.xz beside train.tsv.xz"):
        load("blog-authorship", str(folder / "train.tsv.xz"))
    other = tmp_path / "other"
    other.mkdir()
    _write_tsv(other / "train.tsv", [["1", "male", "a"]], ["blog_id", "gender", "post"])
    _write_tsv(other / "test.tsv", [["1", "male", "a"]], ["blog_id", "gender", "post"])
    with pytest.raises(RnnbenchError, match=r"no column 'text' \(columns: blog_id, gender, post\)"):
        load("blog-authorship", str(other))


def test_blog_from_registers_a_folder_or_the_train_file_checking_pinned_checksums(tmp_path, monkeypatch):
    folder = _blog_copy(tmp_path)
    r = CliRunner().invoke(main, ["data", "download", "blog-authorship", "--from", str(folder)])
    assert r.exit_code == 2 and "checksum mismatch for" in r.output and "nothing registered" in r.output
    assert len(r.output.strip().splitlines()) == 1 and (folder / "train.tsv.xz").exists()  # the user's: kept
    assert registered_path("blog-authorship") is None
    pinned = {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in ("train.tsv.xz", "test.tsv.xz")}
    info = REGISTRY["blog-authorship"]
    monkeypatch.setitem(REGISTRY, "blog-authorship", info.__class__(**{**info.__dict__, "sha256": pinned}))
    r = CliRunner().invoke(main, ["data", "download", "blog-authorship", "--from", str(folder)])
    assert r.exit_code == 0, r.output
    assert len(load("blog-authorship").train) == len(_blog_rows())  # found via the registration
    path, corpus = register_local("blog-authorship", folder / "train.tsv.xz")  # the train file, test beside it
    assert path == (folder / "train.tsv.xz").resolve() and len(corpus.test) == len(_blog_rows(6, seed=1))


def test_blog_group_column_option(tmp_path):
    folder = _blog_copy(tmp_path)
    assert len(load("blog-authorship", str(folder), group_column="blog_id").train) == len(_blog_rows())
    with pytest.raises(RnnbenchError, match="'blog-authorship' always groups rows by blog_id"):
        load("blog-authorship", str(folder), group_column="industry")


# ------------------------------------------------------------------------ the real corpus


def _head_xz(src, dest, n_rows):
    """The header and first ``n_rows`` rows of the xz TSV ``src``, written to ``dest`` (csv quoting kept)."""
    with lzma.open(src, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        rows = [row for _, row in zip(range(n_rows + 1), reader)]
    _write_tsv(dest, rows[1:], rows[0])


@pytest.mark.shared_data
def test_real_blog_corpus_head(shared, tmp_path):
    folder = tmp_path / "blogs"
    folder.mkdir()
    for name, n in (("train", 3000), ("test", 1000)):
        _head_xz(shared / "blog-authorship" / f"{name}.tsv.xz", folder / f"{name}.tsv.xz", n)
    c = load("blog-authorship", str(folder), "age")
    assert (len(c.train), len(c.test)) == (3000, 1000) and not c.report.dropped
    assert c.report.read == {"train": 3000, "test": 1000}
    assert set(np.unique(c.train.y)) <= {0, 1, 2} and 0 < c.train.y.mean() < 2
    assert not set(c.train.groups) & set(c.test.groups)  # split by author
    assert all(len(t) <= 2000 for t in c.train.texts)  # posts were cut to 2,000 characters
    sub = make_subsets(c, seed=0, size=1000, val_fraction=0.1, val_max=5000)
    assert not set(sub.train.groups) & set(sub.val.groups)


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_blog_corpus_registered_counts(shared):
    """One full load (~1 min): the pinned checksums and the published counts."""
    path, c = register_local("blog-authorship", shared / "blog-authorship")
    assert registered_path("blog-authorship") == path
    assert (len(c.train), len(c.test)) == (611615, 66555) and not c.report.dropped
    assert np.bincount(c.train.y).tolist() == [300232, 311383]  # female, male
    assert (len(np.unique(c.train.groups)), len(np.unique(c.test.groups))) == (17453, 1867)
    assert not set(c.train.groups) & set(c.test.groups)
    train, val, pool = subset_indices(c.train.y, False, 0, 10000, 0.1, 5000, c.train.groups)
    assert not set(c.train.groups[train]) & set(c.train.groups[val]) and pool == len(c.train) - len(val)
