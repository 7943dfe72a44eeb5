"""Passage's tokenizer with a scikit-learn surface, writing ragged int32 storage.

Semantics (Passage, 2015): lowercase; split on whitespace; every ASCII punctuation character is a
token of its own; a token is kept when it occurs in at least ``min_df`` training documents (and is
among the ``max_features`` most frequent ones); id 0 is PAD, id 1 is UNK. With ``char_level`` each
character is a token.

Whitespace means ASCII whitespace (Passage split on spaces only); non-ASCII characters are word
characters.

Speed: word-level tokenizing never creates a Python object per token. Texts are lowercased and
UTF-8 encoded in chunks; numpy classifies every byte, finds token boundaries, and computes a 64-bit
polynomial hash of every token from prefix sums; ``searchsorted`` maps hashes to ids. Two different
tokens share a hash with probability ~1e-19 per pair, which we accept (it would merge two words).

Memory: ``fit`` and ``transform`` walk the texts in blocks of documents (``_BLOCK_CHARS``), so their
working set is one block's, whatever the corpus size: ``fit`` keeps one hash, count and word per token
type, and ``transform`` writes ids straight into their int32 array (4 bytes a token, plus 8 a document
for the offsets). On the 611k-post blog corpus (119M tokens) the peak over the texts themselves fell
from 9.2 GB to 0.86 GB (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import re
import string
from itertools import repeat
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_json
from .ragged import Ragged

PAD, UNK = 0, 1
_SEP = "\x00"
_PUNCT = re.escape(string.punctuation)
_SPACE = " \t\n\r\x0b\x0c"
_WORD_RE = re.compile(rf"[^{_SPACE}{_PUNCT}{_SEP}]+|[{_PUNCT}]|{_SEP}")

# byte classes for the vectorised path
_WORD, _SINGLE = 1, 2  # 0: whitespace, 1: word byte, 2: a punctuation byte (its own token), 3: separator
_BYTE_CLASS = np.ones(256, dtype=np.uint8)
_BYTE_CLASS[[ord(c) for c in _SPACE]] = 0
_BYTE_CLASS[[ord(c) for c in string.punctuation]] = _SINGLE
_BYTE_CLASS[0] = 3
_P = np.uint64(0x100000001B3)  # odd, so invertible modulo 2**64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))
_CHUNK_BYTES = 1 << 19  # numpy on ~1 MB arrays runs several times faster than on 100 MB ones
_BLOCK_CHARS = 1 << 24  # fit and transform hold one block of documents' hashes and spans at a time
_POWERS: dict[str, np.ndarray] = {}


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i modulo 2**64 for i < n (cached and grown as needed)."""
    if len(_POWERS.get("p", ())) < n:
        size = max(n, 2 * len(_POWERS.get("p", ())))
        for key, base in (("p", _P), ("inv", _P_INV)):
            out = np.full(size, base, dtype=np.uint64)
            out[0] = 1
            _POWERS[key] = np.cumprod(out, dtype=np.uint64)  # wraps modulo 2**64, as intended
    return _POWERS["p"][:n], _POWERS["inv"][:n]


class _Hashed:
    """Token hashes, token byte spans and per-document token counts for a list of texts."""

    def __init__(self, texts: list[str], lowercase: bool):
        hashes, lengths, self.spans = [], [], []
        for chunk in _chunks(texts):
            blob = _SEP.join(t.replace(_SEP, " ") for t in chunk) + _SEP
            raw = np.frombuffer((blob.lower() if lowercase else blob).encode("utf-8"), dtype=np.uint8)
            n = len(raw)
            pw, ipw = _powers(n)
            cls = _BYTE_CLASS[raw]
            word = cls == _WORD
            single = cls >= _SINGLE
            prev_word = np.concatenate([[False], word[:-1]])
            next_word = np.concatenate([word[1:], [False]])
            starts = np.flatnonzero((word & ~prev_word) | single)
            ends = np.flatnonzero((word & ~next_word) | single) + 1
            prefix = np.zeros(n + 1, dtype=np.uint64)
            np.cumsum(raw.astype(np.uint64) * pw, out=prefix[1:])
            h = (prefix[ends] - prefix[starts]) * ipw[starts]
            h = h * np.uint64(31) + (ends - starts).astype(np.uint64)  # mix in the length
            sep = cls[starts] == 3
            sep_pos = np.flatnonzero(sep)
            lengths.append(np.diff(np.concatenate([[-1], sep_pos])) - 1)
            keep = ~sep
            hashes.append(h[keep])
            self.spans.append((raw, starts[keep], ends[keep]))
        self.hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        self.lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)

    def token_text(self, flat_index: np.ndarray) -> list[str]:
        """Decode the tokens at the given positions of ``hashes`` (in the order given)."""
        order = np.argsort(flat_index, kind="stable")
        wanted = flat_index[order]
        decoded, base = [], 0
        bounds = np.cumsum([len(s) for _, s, _ in self.spans])
        for (raw, starts, ends), hi in zip(self.spans, bounds):
            sel = wanted[(wanted >= base) & (wanted < hi)] - base
            decoded += [raw[a:b].tobytes().decode("utf-8") for a, b in zip(starts[sel], ends[sel])]
            base = hi
        out = [""] * len(flat_index)
        for i, w in zip(order, decoded):
            out[i] = w
        return out


def _chunks(texts: list[str], size_limit: int = _CHUNK_BYTES):
    chunk, size = [], 0
    for t in texts:
        chunk.append(t)
        size += len(t) + 1
        if size >= size_limit:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _doc_freq(ids: np.ndarray, lengths: np.ndarray, n_types: int) -> np.ndarray:
    """In how many documents each of ``n_types`` token ids occurs (``ids`` flat, ``lengths`` per document)."""
    doc = np.repeat(np.arange(len(lengths)), lengths)
    pairs = np.sort(doc * n_types + ids)  # (document, token) pairs; sort + diff beats np.unique here
    first_in_doc = np.concatenate([[True], pairs[1:] != pairs[:-1]]) if len(pairs) else pairs.astype(bool)
    return np.bincount(pairs[first_in_doc] % n_types, minlength=n_types)


class Tokenizer:
    def __init__(self, min_df: int = 5, max_features: int | None = None, lowercase: bool = True,
                 char_level: bool = False):
        self.min_df = min_df
        self.max_features = max_features
        self.lowercase = lowercase
        self.char_level = char_level
        self.vocab_: dict[str, int] | None = None
        self.doc_freq_: np.ndarray | None = None  # aligned with ids

    # ----------------------------------------------------------------- splitting
    def _split(self, texts: list[str]) -> list[str]:
        """All tokens of all texts, with a separator token after each text."""
        if self.char_level:
            out: list[str] = []
            for t in texts:
                out.extend(t.lower() if self.lowercase else t)
                out.append(_SEP)
            return out
        blob = _SEP.join(t.replace(_SEP, " ") for t in texts) + _SEP
        if self.lowercase:
            blob = blob.lower()
        return _WORD_RE.findall(blob)

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text (for inspection; bulk work goes through ``transform``)."""
        return self._split([text])[:-1]

    # ----------------------------------------------------------------- fitting
    def fit(self, texts: list[str]) -> Tokenizer:
        texts = list(texts)
        if self.char_level:
            words, ids, lengths = self._fit_chars(texts)
            df = _doc_freq(ids, lengths, len(words))
        else:
            words, df = self._fit_words(texts)
        keep = np.flatnonzero(df >= self.min_df)
        # most frequent first; ties broken alphabetically so the vocabulary is deterministic
        order = np.lexsort((words[keep].astype(str), -df[keep]))
        keep = keep[order]
        if self.max_features is not None:
            keep = keep[: max(self.max_features - 2, 0)]
        self.vocab_ = {"<pad>": PAD, "<unk>": UNK}
        self.vocab_.update({w: i + 2 for i, w in enumerate(words[keep])})
        self.doc_freq_ = np.concatenate([[0, 0], df[keep]]).astype(np.int64)
        self._index_hashes()
        return self

    def _fit_words(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every token type's word and document frequency, a block of documents at a time: per block, its
        types' counts are merged into the running ones and only types not seen before are decoded."""
        hashes, df, words = np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, object)
        for block in _chunks(texts, _BLOCK_CHARS):
            hashed = _Hashed(block, self.lowercase)
            uniq, first, ids = np.unique(hashed.hashes, return_index=True, return_inverse=True)
            block_df = _doc_freq(ids.reshape(-1), hashed.lengths, len(uniq))
            pos = np.minimum(np.searchsorted(hashes, uniq), max(len(hashes) - 1, 0))
            seen = (hashes[pos] == uniq) if len(hashes) else np.zeros(len(uniq), bool)
            df[pos[seen]] += block_df[seen]  # uniq's hashes are distinct: no index repeats
            new = ~seen
            hashes = np.concatenate([hashes, uniq[new]])
            df = np.concatenate([df, block_df[new]])
            words = np.concatenate([words, np.array(hashed.token_text(first[new]), dtype=object)])
            order = np.argsort(hashes, kind="stable")
            hashes, df, words = hashes[order], df[order], words[order]
        return words, df

    def _fit_chars(self, texts):
        toks = self._split(texts)
        provisional: dict[str, int] = {_SEP: -1}
        ids = np.fromiter((provisional.setdefault(t, len(provisional) - 1) for t in toks), np.int64, len(toks))
        sep = ids == -1
        lengths = np.diff(np.concatenate([[-1], np.flatnonzero(sep)])) - 1
        return np.array(list(provisional)[1:], dtype=object), ids[~sep], lengths

    def _index_hashes(self):
        """Sorted hashes of the vocabulary words, for the vectorised transform."""
        if self.char_level:
            return
        words = sorted(self.vocab_, key=self.vocab_.get)[2:]
        h = _Hashed(words, lowercase=False).hashes if words else np.zeros(0, np.uint64)
        order = np.argsort(h)
        self._hash_sorted, self._hash_ids = h[order], (order + 2).astype(np.int32)

    def _check_fitted(self):
        if self.vocab_ is None:
            raise RuntimeError("Tokenizer is not fitted: call fit() first")

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return len(self.vocab_)

    # ----------------------------------------------------------------- transforming
    def transform(self, texts: list[str]) -> Ragged:
        self._check_fitted()
        texts = list(texts)
        if not self.char_level:
            # A token has at least one character, so the texts' length bounds the ids: the array is
            # reserved at that size (untouched pages take no memory), filled a block at a time and shrunk
            # in place, so no second copy of the ids ever exists.
            out = np.empty(max(sum(map(len, texts)), 1), np.int32)
            lengths, n = [], 0
            for block in _chunks(texts, _BLOCK_CHARS):
                hashed = _Hashed(block, self.lowercase)
                out[n:n + len(hashed.hashes)] = self._ids(hashed.hashes)
                n += len(hashed.hashes)
                lengths.append(hashed.lengths)
            out.resize(n, refcheck=False)
            return Ragged.from_lengths(out, np.concatenate(lengths) if lengths else np.zeros(0, np.int64))
        toks = self._split(texts)
        lookup = dict(self.vocab_)
        lookup[_SEP] = -1
        ids = np.fromiter(map(lookup.get, toks, repeat(UNK)), dtype=np.int32, count=len(toks))
        sep = ids == -1
        ends = np.flatnonzero(sep)
        lengths = np.diff(np.concatenate([[-1], ends])) - 1
        return Ragged.from_lengths(ids[~sep], lengths)

    def _ids(self, hashes: np.ndarray) -> np.ndarray:
        if len(self._hash_sorted) == 0:
            return np.full(len(hashes), UNK, np.int32)
        pos = np.minimum(np.searchsorted(self._hash_sorted, hashes), len(self._hash_sorted) - 1)
        return np.where(self._hash_sorted[pos] == hashes, self._hash_ids[pos], np.int32(UNK))

    def fit_transform(self, texts: list[str]) -> Ragged:
        return self.fit(texts).transform(texts)

    def inverse_transform(self, seqs: Ragged) -> list[list[str]]:
        self._check_fitted()
        words = np.array(sorted(self.vocab_, key=self.vocab_.get), dtype=object)
        return [list(words[seqs[i]]) for i in range(len(seqs))]

    # ----------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "min_df": self.min_df, "max_features": self.max_features, "lowercase": self.lowercase,
            "char_level": self.char_level,
            "vocab": sorted(self.vocab_, key=self.vocab_.get),
            "doc_freq": self.doc_freq_.tolist(),
        }

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        tok = cls(d["min_df"], d["max_features"], d["lowercase"], d["char_level"])
        tok.vocab_ = {w: i for i, w in enumerate(d["vocab"])}
        tok.doc_freq_ = np.asarray(d["doc_freq"], dtype=np.int64)
        tok._index_hashes()
        return tok
