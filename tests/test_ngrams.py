"""The chunked n-gram counter: the same matrix for every chunk size, min_df as a column filter, and
scikit-learn's CountVectorizer's counts."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from rnnbench.data import Tokenizer
from rnnbench.errors import RnnbenchError
from rnnbench.models.linear.ngrams import NgramCounter


def random_texts(n: int, seed: int, vocab: int = 60) -> list[str]:
    """Texts of random words (Zipf-like frequencies, so min_df prunes some), punctuation, empty texts."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)] + [",", ".", "!"])
    p = 1.0 / np.arange(1, len(words) + 1)
    lengths = rng.integers(0, 25, n)
    lengths[rng.random(n) < 0.05] = 0
    return [" ".join(rng.choice(words, size=k, p=p / p.sum())) for k in lengths]


def as_dict(counter: NgramCounter, m: sp.csr_matrix) -> list[dict]:
    return [dict(zip(counter.keys_[m.indices[a:b]].tolist(), m.data[a:b].tolist()))
            for a, b in zip(m.indptr[:-1], m.indptr[1:])]


@pytest.mark.parametrize("ngram_range,min_df", [((1, 2), 1), ((1, 2), 2), ((1, 3), 3), ((2, 2), 1)])
def test_chunked_equals_one_shot(ngram_range, min_df):
    texts = random_texts(300, seed=min_df)
    new = random_texts(40, seed=99, vocab=80)  # unseen words too
    one_shot = NgramCounter(ngram_range, min_df=min_df, chunk_docs=len(texts))
    x = one_shot.fit_transform(texts)
    y = one_shot.transform(new)
    assert x.nnz > 0 and y.nnz > 0
    for chunk in (1, 7):
        counter = NgramCounter(ngram_range, min_df=min_df, chunk_docs=chunk)
        xc = counter.fit_transform(texts)
        np.testing.assert_array_equal(counter.keys_, one_shot.keys_)
        np.testing.assert_array_equal(counter.df_, one_shot.df_)
        for a, b in ((xc, x), (counter.transform(new), y)):
            assert a.has_sorted_indices and b.has_sorted_indices
            for attr in ("indptr", "indices", "data"):
                np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))


def test_dtypes_and_document_frequencies():
    texts = random_texts(200, seed=1)
    counter = NgramCounter((1, 2), min_df=2, chunk_docs=13)
    x = counter.fit_transform(texts)
    assert x.dtype == np.float32 and x.indices.dtype == np.int32 and x.indptr.dtype == np.int32
    assert counter.transform(texts[:5]).dtype == np.float32
    np.testing.assert_array_equal(counter.df_, np.bincount(x.indices, minlength=x.shape[1]))
    assert counter.df_.min() >= 2 and counter.n_docs_ == 200
    assert NgramCounter(dtype=np.float64).fit_transform(texts).dtype == np.float64


@pytest.mark.parametrize("min_df", [2, 3, 10])
def test_min_df_is_a_column_filter_of_the_full_matrix(min_df):
    texts = random_texts(250, seed=5)
    full = NgramCounter((1, 2), min_df=1, chunk_docs=31)
    x = full.fit_transform(texts)
    pruned = NgramCounter((1, 2), min_df=min_df, chunk_docs=31)
    xp = pruned.fit_transform(texts)
    cols = np.flatnonzero(full.df_ >= min_df)
    assert 0 < len(cols) < x.shape[1]
    # the same n-grams in the same order (words rarer than min_df are UNK there, n-grams with UNK dropped)
    np.testing.assert_array_equal(pruned.get_feature_names_out(), full.get_feature_names_out()[cols])
    assert (xp != x[:, cols]).nnz == 0
    new = random_texts(30, seed=7, vocab=90)
    assert (pruned.transform(new) != full.transform(new)[:, cols]).nnz == 0


def test_word_vocabulary_equals_the_one_shot_tokenizer():
    texts = random_texts(300, seed=2) + ["Hello, World!", "hello  world", ""]
    for min_df in (1, 3):
        counter = NgramCounter((1, 2), min_df=min_df, chunk_docs=7).fit(texts)
        ref = Tokenizer(min_df=min_df).fit(texts)
        assert counter.tokenizer_.vocab_ == ref.vocab_
        np.testing.assert_array_equal(counter.tokenizer_.doc_freq_, ref.doc_freq_)


def test_counts_match_countvectorizer():
    texts = random_texts(120, seed=3) + ["the cat sat on the mat .", "The cat !", "a dog , the cat"]
    tok = Tokenizer().tokenize
    for min_df in (1, 2):
        counter = NgramCounter((1, 3), min_df=min_df, chunk_docs=11)
        ref = CountVectorizer(ngram_range=(1, 3), tokenizer=tok, token_pattern=None, lowercase=False,
                              min_df=min_df).fit(texts)
        ours = counter.fit_transform(texts)
        names = counter.get_feature_names_out()
        assert sorted(names) == list(ref.get_feature_names_out())
        order = np.argsort(names)  # ours is by n-gram key, scikit-learn's alphabetical
        np.testing.assert_array_equal(ours.toarray()[:, order], ref.transform(texts).toarray())
        unseen = ["the cat zebra sat", "zebra", "w1 w2 zebra w1 w2"]
        np.testing.assert_array_equal(counter.transform(unseen).toarray()[:, order], ref.transform(unseen).toarray())


def test_nothing_left_and_bad_arguments():
    counter = NgramCounter((1, 1), min_df=5)
    x = counter.fit_transform(["a b", "c d"])
    assert x.shape == (2, 0)
    assert counter.transform(["a b c"]).shape == (1, 0)
    with pytest.raises(RnnbenchError, match="no texts"):
        NgramCounter().fit_transform([])
    with pytest.raises(RnnbenchError, match="ngram_range"):
        NgramCounter((2, 1))
    with pytest.raises(RnnbenchError, match="chunk_docs"):
        NgramCounter(chunk_docs=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        NgramCounter().transform(["a"])


def test_columns_most_frequent_first():
    texts = random_texts(300, seed=8)
    counter = NgramCounter((1, 2), min_df=2, chunk_docs=50)
    x = counter.fit_transform(texts)
    df, keys = counter.df_, counter.keys_
    assert np.all(np.diff(df) <= 0)
    ties = np.diff(df) == 0
    assert np.all(np.diff(keys)[ties] > 0)  # ties by key
    assert sorted(keys.tolist()) == sorted(set(keys.tolist()))
    # every column's key maps back to it
    cols, seen = counter._lookup(keys)
    assert seen.all() and np.array_equal(cols, np.arange(len(keys)))
    assert x.has_sorted_indices


def test_pairs_without_packing_equal_the_packed_ones():
    rng = np.random.default_rng(4)
    docs = np.sort(rng.integers(0, 50, 2000))
    keys = rng.integers(0, 40, 2000)
    packed = NgramCounter._pairs(docs, keys, 50)
    big = NgramCounter._pairs(docs, keys + 2**62, 50)  # (key, doc) would overflow one int64
    np.testing.assert_array_equal(big[0] - 2**62, packed[0])
    for a, b in zip(big[1:], packed[1:]):
        np.testing.assert_array_equal(a, b)
    assert packed[2].sum() == 2000 and len(set(zip(packed[0].tolist(), packed[1].tolist()))) == len(packed[0])
    assert [len(a) for a in NgramCounter._pairs(docs[:0], keys[:0], 50)] == [0, 0, 0]


def test_fit_transform_equals_transform_of_the_same_texts():
    texts = random_texts(200, seed=6)
    counter = NgramCounter((1, 2), min_df=2, chunk_docs=9)
    x = counter.fit_transform(texts)
    y = counter.transform(texts)
    assert y.dtype == x.dtype and y.indices.dtype == np.int32
    assert (x != y).nnz == 0
    assert counter.transform([]).shape == (0, x.shape[1])
