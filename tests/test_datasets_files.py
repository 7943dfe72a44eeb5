"""Loaders on small files written by the tests: formats, bad input, reports."""

import bz2
import dataclasses
import gzip
import io
import json
import lzma
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from rnnbench.config import DataConfig, SyntheticConfig
from rnnbench.data import REGISTRY, Corpus, LoadReport, Split, Task, load, make_subsets, stratified_order
from rnnbench.data.loaders import load_amazon
from rnnbench.errors import RnnbenchError


def make_imdb_tar(path, n=6, truncate=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split in ("train", "test"):
            for pol, stars in (("pos", 9), ("neg", 2)):
                for i in range(n):
                    data = f"{pol} review {i} of {split}<br />second line".encode()
                    if i == 0 and pol == "neg":
                        data = b"caf\xe9 latin-1 bytes, bad"  # not UTF-8
                    info = tarfile.TarInfo(f"aclImdb/{split}/{pol}/{i}_{stars}.txt")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2] if truncate else data)
    return path


def test_imdb_tar_counts_non_utf8(tmp_path):
    c = load("imdb", str(make_imdb_tar(tmp_path / "a.tar.gz")), "sentiment")
    assert (len(c.train), len(c.test)) == (12, 12)
    assert c.report.non_utf8 == 2 and "non-UTF-8" in c.report.summary()
    assert any("\ufffd" in t for t in c.train.texts)
    assert all("<br" not in t for t in c.train.texts)


def test_registry_data_sets_name_their_classes(tmp_path):
    """Class i of a task has a name (data info, result.json and predict show it): the registry's own."""
    assert load("imdb", str(make_imdb_tar(tmp_path / "a.tar.gz")), "sentiment").task.class_names == ["neg", "pos"]
    assert load("amazon-polarity", str(make_zhang_tar(tmp_path))).task.class_names == ["neg", "pos"]
    assert load("zhang-csv", str(make_zhang_tar(tmp_path))).task.class_names == ["1", "2"]  # its raw labels
    assert load("imdb", str(tmp_path / "a.tar.gz"), "stars").task.class_names == []  # regression: none
    assert load("synthetic", synthetic=SyntheticConfig(train_size=50, test_size=20)).task.class_names == ["0", "1"]


def test_truncated_archive_is_a_clear_error(tmp_path):
    with pytest.raises(RnnbenchError, match="corrupt or truncated archive"):
        load("imdb", str(make_imdb_tar(tmp_path / "t.tar.gz", n=200, truncate=True)), "sentiment")


def test_missing_path(tmp_path):
    with pytest.raises(RnnbenchError, match="data path does not exist"):
        load("imdb", str(tmp_path / "nope.tar.gz"))
    with pytest.raises(RnnbenchError, match="no local copy of 'imdb'"):
        load("imdb")


def test_unknown_dataset_and_task():
    with pytest.raises(RnnbenchError, match="unknown data set 'nope'"):
        load("nope")
    with pytest.raises(RnnbenchError, match="has no task 'stars'"):
        load("synthetic", task="stars")


def test_generic_csv_columns_and_labels(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("id,title,body,label\n" + "".join(
        f"{i},t{i},body {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40)) + "40,,,pos\n")
    c = load("csv", str(p), text_columns=["title", "body"], label_column="label", task_kind="binary")
    assert len(c.train) + len(c.test) == 40 and c.report.dropped == {"empty text": 1}
    assert c.train.texts[0].startswith("t") and " . body" in c.train.texts[0]
    with pytest.raises(RnnbenchError, match="no column 'stars'"):
        load("csv", str(p), text_columns=["body"], label_column="stars")


def test_generic_regression_unparsable_label_dropped(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text("text\tscore\n" + "".join(f"text {i}\t{i / 10}\n" for i in range(30)) + "oops\tn/a\n")
    c = load("tsv", str(p), text_columns=["text"], label_column="score", task_kind="regression")
    assert c.report.dropped == {"unparsable label": 1} and c.task.kind == "regression"


def test_generic_jsonl_with_test_file(tmp_path):
    for name, n in (("tr.jsonl", 30), ("te.jsonl", 10)):
        (tmp_path / name).write_text("".join(json.dumps({"t": f"x{i}", "y": i % 3}) + "\n" for i in range(n)))
    c = load("jsonl", str(tmp_path / "tr.jsonl"), text_columns=["t"], label_column="y",
             task_kind="multiclass", test_path=str(tmp_path / "te.jsonl"))
    assert (len(c.train), len(c.test), c.task.n_classes) == (30, 10, 3)


def test_empty_after_filtering(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label\n,1\n  ,0\n")
    with pytest.raises(RnnbenchError, match="empty after filtering"):
        load("csv", str(p), text_columns=["text"], label_column="label")


def make_zhang_tar(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split, n in (("train", 20), ("test", 6)):
            data = "".join(f'"{1 + i % 2}","title {i}","text\\nline {i}"\n' for i in range(n)) + '"x","bad",""\n'
            info = tarfile.TarInfo(f"amazon_review_polarity_csv/{split}.csv")
            info.size = len(data.encode())
            tar.addfile(info, io.BytesIO(data.encode()))
    (tmp_path / "z.tgz").write_bytes(buf.getvalue())
    return tmp_path / "z.tgz"


def test_zhang_tarball(tmp_path):
    c = load("amazon-polarity", str(make_zhang_tar(tmp_path)))
    assert (len(c.train), len(c.test)) == (20, 6) and c.task.kind == "binary"
    assert c.report.dropped == {"unparsable label": 2}
    assert "\\n" not in c.train.texts[0] and c.train.texts[0] == "title 0 . text line 0"


def test_amazon_json_gz_loose_json(tmp_path):
    rows = [{"reviewText": f"review {i}", "summary": "s", "helpful": [i % 4, 2], "overall": 4.0} for i in range(20)]
    lines = [json.dumps(r) for r in rows] + ["{'reviewText': 'py literal', 'summary': '', 'helpful': [1, 1], 'overall': 5.0}"]
    p = tmp_path / "reviews_x.json.gz"
    with gzip.open(p, "wt") as f:
        f.write("\n".join(lines) + "\n")
    c = load("amazon-helpfulness", str(p), "helpfulness")
    assert len(c.train) + len(c.test) == 16  # i % 4 == 3 gives x > y: dropped as unparsable
    assert c.report.dropped == {"unparsable helpful votes": 5}


@pytest.mark.parametrize("suffix, opener", [(".xz", lzma.open), (".bz2", bz2.open)])
def test_xz_and_bz2_are_read_as_gz_is(tmp_path, suffix, opener):
    rows = [{"reviewText": f"review {i}", "summary": "s", "helpful": [1, 2], "overall": 4.0} for i in range(20)]
    with opener(tmp_path / f"reviews_x.json{suffix}", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    c = load("amazon-helpfulness", str(tmp_path), "rating")  # a folder: the compressed file is found
    assert len(c.train) + len(c.test) == 20
    zhang = tmp_path / "zhang"
    zhang.mkdir()
    for split, n in (("train", 20), ("test", 6)):
        with opener(zhang / f"{split}.csv{suffix}", "wt") as f:
            f.write("".join(f'"{1 + i % 2}","title {i}","text {i}"\n' for i in range(n)))
    c = load("zhang-csv", str(zhang))
    assert (len(c.train), len(c.test)) == (20, 6)
    assert len(load("zhang-csv", str(zhang / f"train.csv{suffix}")).train) == 16  # a lone file: a holdout
    whole = (zhang / f"train.csv{suffix}").read_bytes()
    (zhang / f"train.csv{suffix}").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(RnnbenchError, match=f"corrupt or truncated file .*train.csv{suffix}"):
        load("zhang-csv", str(zhang))


def test_zhang_tarball_is_closed_after_loading(tmp_path, monkeypatch):
    opened, real_open = [], tarfile.open

    def recording_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(tarfile, "open", recording_open)
    load("amazon-polarity", str(make_zhang_tar(tmp_path)))
    assert opened and all(tar.closed for tar in opened)


def test_a_misspelt_option_is_a_type_error(tmp_path):
    p = tmp_path / "reviews.csv"
    p.write_text("reviewText,summary,helpful,overall\n" + "".join(f"text {i},s,\"[1, 2]\",4\n" for i in range(20)))
    assert len(load_amazon(p, "rating", min_votes=1, test_fraction=0.2).train) == 16
    with pytest.raises(TypeError, match="min_vote"):
        load_amazon(p, "rating", min_vote=1, test_fraction=0.2)
    with pytest.raises(TypeError, match="min_vote"):
        load("amazon-helpfulness", str(p), "rating", min_vote=1)
    # the options a config passes that this loader does not take are ignored; those it takes are used
    options = {k: v for k, v in dataclasses.asdict(DataConfig()).items() if k in ("text_columns", "test_path")}
    c = load("amazon-helpfulness", str(p), "rating", test_fraction=0.5, **options)
    assert (len(c.train), len(c.test)) == (10, 10)


def test_every_loader_option_is_a_data_config_key():
    keys = {f.name for f in dataclasses.fields(DataConfig)}
    assert {o for info in REGISTRY.values() for o in info.options} <= keys
    assert REGISTRY["amazon-helpfulness"].options == ("min_votes", "test_fraction")
    assert REGISTRY["yelp-full"].options == ("test_fraction",)  # the data set's name is bound, not an option
    assert not REGISTRY["synthetic"].needs_path and REGISTRY["imdb"].needs_path


def test_importing_the_registry_imports_no_download_and_changes_no_global_state():
    code = ("import csv, sys; limit = csv.field_size_limit(); import rnnbench.data.registry; "
            "print('rnnbench.data.download' in sys.modules, csv.field_size_limit() == limit)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def _toy_corpus(y, kind="binary"):
    split = Split([str(i) for i in range(len(y))], np.asarray(y))
    return Corpus("toy", Task("t", kind, 2), split, split, LoadReport())


def test_subsets_size_too_large_names_both_numbers():
    corpus = _toy_corpus([0, 1] * 50)
    with pytest.raises(RnnbenchError, match=r"size 95 is larger than the 90 examples available"):
        make_subsets(corpus, seed=0, size=95, val_fraction=0.1, val_max=100)


def test_stratified_order_prefixes_keep_proportions():
    y = np.array([0] * 300 + [1] * 100)
    order = stratified_order(y, np.random.default_rng(0))
    assert sorted(order) == list(range(400))
    for n in (8, 40, 100, 333):
        assert abs(y[order[:n]].sum() - n / 4) <= 1
