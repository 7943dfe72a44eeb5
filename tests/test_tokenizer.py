import numpy as np
import pytest

from rnnbench.data.ragged import Ragged
from rnnbench.data.tokenizer import PAD, UNK, Tokenizer


def test_passage_splitting_rules():
    tok = Tokenizer(min_df=1)
    assert tok.tokenize("Hello, World!  It's\tfine...") == ["hello", ",", "world", "!", "it", "'", "s", "fine", ".", ".", "."]
    assert Tokenizer(lowercase=False).tokenize("Big cat") == ["Big", "cat"]


def test_min_df_max_features_pad_unk():
    texts = ["a b c", "a b", "a d", "a"]
    tok = Tokenizer(min_df=2).fit(texts)
    assert tok.vocab_["<pad>"] == PAD and tok.vocab_["<unk>"] == UNK
    assert set(tok.vocab_) == {"<pad>", "<unk>", "a", "b"}  # c and d occur in one document only
    assert tok.vocab_["a"] == 2  # most frequent first
    assert list(tok.transform(["a c b"])[0]) == [2, UNK, 3]
    tok = Tokenizer(min_df=1, max_features=3).fit(texts)
    assert set(tok.vocab_) == {"<pad>", "<unk>", "a"}


def test_document_frequency_counts_documents_not_occurrences():
    tok = Tokenizer(min_df=2).fit(["x x x x", "y", "y"])
    assert "x" not in tok.vocab_ and "y" in tok.vocab_


def test_transform_gives_ragged_int32_and_inverse():
    tok = Tokenizer(min_df=1).fit(["the cat sat", "", "on the mat !"])
    r = tok.transform(["the cat", "", "mat ! dog"])
    assert isinstance(r, Ragged) and r.tokens.dtype == np.int32 and r.offsets.dtype == np.int64
    assert list(r.lengths) == [2, 0, 3]
    assert tok.inverse_transform(r) == [["the", "cat"], [], ["mat", "!", "<unk>"]]


def test_char_level():
    tok = Tokenizer(min_df=1, char_level=True).fit(["ab a"])
    assert tok.tokenize("Ab") == ["a", "b"]
    assert tok.inverse_transform(tok.transform(["ba"])) == [["b", "a"]]


def test_save_load_roundtrip(tmp_path):
    texts = ["one two three", "two three", "three"]
    tok = Tokenizer(min_df=1).fit(texts)
    tok.save(tmp_path / "tok.json")
    back = Tokenizer.load(tmp_path / "tok.json")
    assert back.vocab_ == tok.vocab_
    np.testing.assert_array_equal(back.transform(texts).tokens, tok.transform(texts).tokens)


def test_nul_bytes_in_text_do_not_split_documents():
    tok = Tokenizer(min_df=1).fit(["a\x00b", "c"])
    assert len(tok.transform(["a\x00b", "c"])) == 2


def test_ragged_take_and_padding():
    r = Ragged.from_sequences([[1, 2, 3], [4], [], [5, 6]])
    t = r.take(np.array([3, 0]))
    assert [list(t[i]) for i in range(len(t))] == [[5, 6], [1, 2, 3]]
    dense, lengths = r.to_padded(2)
    assert dense.tolist() == [[1, 2], [4, 0], [0, 0], [5, 6]] and lengths.tolist() == [2, 1, 0, 2]


def test_vectorised_path_matches_the_regex_definition():
    """transform() hashes bytes; tokenize() is the readable regex definition. They must agree."""
    texts = ["Ünïcödé WORDS…and\u00a0nbsp", "tab\tsep\nnew_line  x", "", "!!!?", "e-mail: a@b.com 3.5/10",
             "émigré café", "x" * 300 + " long", "mixed CASE Case case"] * 3
    tok = Tokenizer(min_df=1).fit(texts)
    ragged = tok.transform(texts)
    for i, text in enumerate(texts):
        assert [tok.vocab_[w] for w in tok.tokenize(text)] == list(ragged[i])
    # every distinct token got its own id: the hash did not merge any two words
    distinct = {w for t in texts for w in tok.tokenize(t)}
    assert len(tok.vocab_) == len(distinct) + 2


def test_many_chunks(monkeypatch):
    import rnnbench.data.tokenizer as T

    monkeypatch.setattr(T, "_CHUNK_BYTES", 16)
    texts = [f"doc {i} says hello{i % 7} ." for i in range(200)]
    tok = Tokenizer(min_df=1).fit(texts)
    assert tok.doc_freq_[tok.vocab_["doc"]] == 200
    assert tok.inverse_transform(tok.transform(texts[5:6])) == [["doc", "5", "says", "hello5", "."]]


@pytest.mark.parametrize("keep", ["first", "last"])
def test_ragged_truncate_keeps_the_first_or_last_tokens(keep):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 99, n).tolist() for n in rng.integers(0, 12, 40)]
    cut = Ragged.from_sequences(seqs).truncate(5, keep)
    assert cut.tokens.dtype == np.int32 and len(cut) == len(seqs)
    assert [list(cut[i]) for i in range(len(cut))] == [s[:5] if keep == "first" else s[-5:] for s in seqs]
    with pytest.raises(ValueError, match="keep"):
        Ragged.from_sequences(seqs).truncate(5, "middle")


@pytest.mark.parametrize("block_chars", [1, 37, 500])
def test_fitting_and_transforming_in_blocks_of_documents_changes_nothing(monkeypatch, block_chars):
    """fit and transform walk the texts a block of documents at a time (bounded memory on 600k texts):
    any block size gives the vocabulary, document frequencies and ids of one pass over everything."""
    from rnnbench.data import tokenizer as tok_mod

    rng = np.random.default_rng(0)
    words = ["the", "film", "Good", "bad", "café", "naïve", "x", "!", "...", "it's", "don't", "ok"]
    texts = [" ".join(rng.choice(words, rng.integers(0, 30))) for _ in range(300)] + ["", "  ", "solo"]
    whole = Tokenizer(min_df=2, max_features=9)
    whole_ids = whole.fit(texts).transform(texts)
    monkeypatch.setattr(tok_mod, "_BLOCK_CHARS", block_chars)
    blocks = Tokenizer(min_df=2, max_features=9)
    block_ids = blocks.fit(texts).transform(texts)
    assert blocks.vocab_ == whole.vocab_
    np.testing.assert_array_equal(blocks.doc_freq_, whole.doc_freq_)
    np.testing.assert_array_equal(block_ids.tokens, whole_ids.tokens)
    np.testing.assert_array_equal(block_ids.offsets, whole_ids.offsets)
    assert block_ids.tokens.dtype == np.int32 and block_ids.tokens.base is None  # its own, shrunk array
