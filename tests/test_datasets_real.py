"""Loaders on the real files publishers ship (../shared/data)."""

import numpy as np
import pytest

from rnnbench.data import load, subset_indices

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def imdb(shared):
    return load("imdb", str(shared / "aclImdb_v1.tar.gz"), "sentiment")


def test_imdb_from_tarball(imdb):
    assert (len(imdb.train), len(imdb.test)) == (25000, 25000)
    assert np.bincount(imdb.train.y).tolist() == [12500, 12500]
    assert np.bincount(imdb.test.y).tolist() == [12500, 12500]
    assert not any("<br" in t for t in imdb.train.texts[:2000])
    assert imdb.report.read == {"train": 25000, "test": 25000} and not imdb.report.dropped


@pytest.mark.slow
def test_imdb_stars_from_file_names(shared):
    c = load("imdb", str(shared / "aclImdb_v1.tar.gz"), "stars")
    assert c.task.kind == "regression"
    assert set(np.unique(c.train.y)) == {1, 2, 3, 4, 7, 8, 9, 10}


@pytest.mark.slow
def test_imdb_from_extracted_folder_matches_tarball(shared, tmp_path, imdb):
    import tarfile

    with tarfile.open(shared / "aclImdb_v1.tar.gz") as tar:
        members = [m for m in tar.getmembers() if "/train/pos/" in m.name][:50] + \
                  [m for m in tar.getmembers() if "/test/neg/" in m.name][:50]
        tar.extractall(tmp_path, members=members, filter="data")
    c = load("imdb", str(tmp_path), "sentiment")
    assert (len(c.train), len(c.test)) == (50, 50)
    assert set(c.train.texts) <= set(imdb.train.texts)


def test_sst2(shared):
    c = load("sst2", str(shared / "sst2"), "sentiment")
    assert (len(c.train), len(c.test)) == (67349, 1821)
    assert np.bincount(c.test.y).tolist() == [912, 909]
    assert not c.report.dropped


def test_rt_polarity_seeded_split(shared):
    a = load("rt-polarity", str(shared / "rt-polarity"), "sentiment")
    b = load("rt-polarity", str(shared / "rt-polarity"), "sentiment")
    assert len(a.train) + len(a.test) == 10662
    assert a.test.texts == b.test.texts  # deterministic: the same test set every time
    assert 0.45 < a.test.y.mean() < 0.55


def test_amazon_helpfulness_and_rating(shared):
    path = str(shared / "amazon-musical-instruments-5core" / "Musical_instruments_reviews.csv")
    c = load("amazon-helpfulness", path, "helpfulness")
    assert len(c.train) + len(c.test) == 3465 - 7  # 3,465 voted reviews, 7 of all rows have no text
    assert c.report.dropped["empty text"] == 7
    assert c.report.dropped["fewer than 1 helpfulness vote(s)"] > 6000
    assert c.task.kind == "regression" and 0 <= c.train.y.min() and c.train.y.max() <= 1
    r = load("amazon-helpfulness", path, "rating")
    assert len(r.train) + len(r.test) == 10261 - 7
    assert set(np.unique(r.train.y)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    five = load("amazon-helpfulness", path, "helpfulness", min_votes=5)
    assert len(five.train) < len(c.train)


def test_clothing_reviews(shared):
    folder = str(shared / "womens-clothing-reviews")
    c = load("clothing-reviews", folder, "rating")
    assert c.report.dropped == {"empty text": 845}
    assert len(c.train) + len(c.test) == 23486 - 845
    b = load("clothing-reviews", folder, "recommended")
    assert b.task.kind == "binary" and set(np.unique(b.train.y)) == {0, 1}


def test_nested_stratified_subsets_on_imdb(imdb):
    def rows(seed, size):
        return subset_indices(imdb.train.y, False, seed, size, val_fraction=0.1, val_max=2500)

    (small, small_val, pool), (large, large_val, _) = rows(3, 1000), rows(3, 10000)
    assert pool == 25000 - 2500
    assert set(small) <= set(large)
    assert np.array_equal(small_val, large_val)
    assert not set(large_val) & set(large)
    assert abs(imdb.train.y[small].mean() - 0.5) <= 0.001
    assert set(rows(4, 1000)[0]) != set(small)


def test_rt_polarity_from_the_publishers_tarball(shared, tmp_path):
    import tarfile

    tar_path = tmp_path / "rt-polaritydata.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for suffix in ("pos", "neg"):
            tar.add(shared / "rt-polarity" / f"rt-polarity.{suffix}", arcname=f"rt-polaritydata/rt-polarity.{suffix}")
    a = load("rt-polarity", str(tar_path), "sentiment")
    b = load("rt-polarity", str(shared / "rt-polarity"), "sentiment")
    assert a.train.texts == b.train.texts and a.test.texts == b.test.texts
