"""Word n-gram counts over Passage tokens, vectorised and in document chunks (no Python object per
n-gram, and never all n-gram occurrences of a large corpus at once).

Each n-gram of token ids ``(t1, ..., tn)`` gets an int64 key ``offset_n + t1 V^(n-1) + ... + tn``.
The feature vocabulary ``keys_`` is the set of keys that occur in at least ``min_df`` fitting texts,
most frequent first (ties by key): column ``j`` is ``keys_[j]``, in ``df_[j]`` texts. (Measured: with the
frequent columns together, sparse products over the counts run ~1.5x faster than in key order, ~2x
faster than in a random one.) Equivalent to scikit-learn's ``CountVectorizer(tokenizer=
Tokenizer().tokenize, ngram_range=..., min_df=...)`` up to column order.

Fitting streams the texts in chunks of ``chunk_docs`` documents, three times over, holding at most one
chunk's n-gram occurrences:

1. the word vocabulary: a tokenizer per chunk, their document frequencies summed. Words rarer than
   ``min_df`` become UNK (an n-gram is never more frequent than its rarest word); n-grams with UNK are
   dropped. Same ids as ``Tokenizer(min_df).fit(texts)``.
2. per chunk, the chunk's sorted distinct keys with their document frequencies, and its count matrix
   over those local columns (int32 columns); the runs of (key, df) are merged as they come (sorted
   merges of similar-sized runs, so each key is merged O(log chunks) times);
3. the keys with ``df >= min_df`` are kept, and each chunk's local columns map into one
   preallocated CSR matrix of ``dtype`` values and int32 indices (sorted in each row).

The result is identical for every chunk size (tested).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .data import PAD, UNK, Ragged, Tokenizer
from .errors import RnnbenchError

CHUNK_DOCS = 20_000


class NgramCounter:
    def __init__(self, ngram_range: tuple[int, int] = (1, 2), lowercase: bool = True, min_df: int = 1,
                 chunk_docs: int = CHUNK_DOCS, dtype=np.float32):
        lo, hi = ngram_range
        if not 1 <= lo <= hi:
            raise RnnbenchError(f"linear.ngram_range must be 1 <= lo <= hi, got {list(ngram_range)}")
        if min_df < 1 or chunk_docs < 1:
            raise RnnbenchError(f"NgramCounter: min_df and chunk_docs must be >= 1, got {min_df}, {chunk_docs}")
        self.ngram_range = (lo, hi)
        self.lowercase = lowercase
        self.min_df = min_df
        self.chunk_docs = chunk_docs
        self.dtype = np.dtype(dtype)
        self.tokenizer_: Tokenizer | None = None
        self.keys_: np.ndarray | None = None  # int64: the n-gram of each column
        self.df_: np.ndarray | None = None  # int64: document frequency of each column in the fitting texts
        self.lookup_: tuple[np.ndarray, np.ndarray] | None = None  # keys_ sorted, and the column of each
        self.n_docs_: int = 0

    # ------------------------------------------------------------------ pieces
    def _chunks(self, texts):
        for start in range(0, len(texts), self.chunk_docs):
            yield texts[start:start + self.chunk_docs]

    def _fit_words(self, texts) -> Tokenizer:
        """``Tokenizer(min_df=self.min_df).fit(texts)``, one chunk of texts at a time."""
        total: dict[str, int] = {}
        for chunk in self._chunks(texts):
            tok = Tokenizer(min_df=1, lowercase=self.lowercase).fit(chunk)
            words = sorted(tok.vocab_, key=tok.vocab_.get)[2:]
            for word, df in zip(words, tok.doc_freq_[2:].tolist()):
                total[word] = total.get(word, 0) + df
        # the tokenizer's order: most frequent first, ties alphabetical
        kept = sorted(((-df, w) for w, df in total.items() if df >= self.min_df))
        tok = Tokenizer(min_df=self.min_df, lowercase=self.lowercase)
        tok.vocab_ = {"<pad>": PAD, "<unk>": UNK}
        tok.vocab_.update({w: i + 2 for i, (_, w) in enumerate(kept)})
        tok.doc_freq_ = np.array([0, 0] + [-d for d, _ in kept], dtype=np.int64)
        tok._index_hashes()  # private: the tokenizer has no public constructor from counts (yet)
        return tok

    def _keys(self, ragged: Ragged) -> tuple[np.ndarray, np.ndarray]:
        """(document index, key) of every n-gram occurrence without UNK, grouped by n."""
        v = np.int64(self.tokenizer_.vocab_size)
        lo, hi = self.ngram_range
        if float(v) ** hi * hi >= 2**62:
            raise RnnbenchError(f"linear.ngram_range {list(self.ngram_range)} is too long for a vocabulary of {v}")
        tokens = ragged.tokens.astype(np.int64)
        lengths = ragged.lengths
        doc = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        remaining = np.repeat(ragged.offsets[1:], lengths) - np.arange(len(tokens))  # tokens left in doc
        unk_before = np.concatenate([[0], np.cumsum(tokens == UNK)])  # UNKs among the first i tokens
        docs, keys, offset = [], [], np.int64(0)
        for n in range(1, hi + 1):
            if n >= lo:
                starts = np.flatnonzero(remaining >= n)
                starts = starts[unk_before[starts + n] == unk_before[starts]]
                key = tokens[starts].copy()
                for k in range(1, n):
                    key = key * v + tokens[starts + k]
                docs.append(doc[starts])
                keys.append(key + offset)
            offset += v**n
        return np.concatenate(docs), np.concatenate(keys)

    @staticmethod
    def _rows(docs, cols, n_cols: int, n_docs: int):
        """CSR parts (indptr, indices, counts) of the (doc, col) occurrences: rows and columns sorted."""
        n_cols = max(n_cols, 1)
        pair = docs * np.int64(n_cols) + cols
        pair.sort()
        first = np.flatnonzero(np.concatenate([[True], pair[1:] != pair[:-1]])) if len(pair) else pair
        counts = np.diff(np.append(first, len(pair)))
        pair = pair[first]
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(pair // n_cols, minlength=n_docs), out=indptr[1:])
        return indptr, (pair % n_cols).astype(np.int32), counts

    def _distinct(self, docs, keys, n_docs: int):
        """A chunk's sorted distinct keys, and its CSR parts (indptr, indices, int32 counts) over them."""
        if len(keys) == 0 or int(keys.max()) >= np.iinfo(np.int64).max // n_docs:
            ukeys, cols = np.unique(keys, return_inverse=True)  # (key, doc) does not fit one int64
            indptr, cols, counts = self._rows(docs, cols.astype(np.int64), len(ukeys), n_docs)
            return ukeys, (indptr, cols, counts.astype(np.int32))
        packed = keys * np.int64(n_docs) + docs  # one sort of (key, doc) pairs: the fastest way measured
        packed.sort()
        first = np.flatnonzero(np.concatenate([[True], packed[1:] != packed[:-1]]))
        counts = np.diff(np.append(first, len(packed))).astype(np.int32)
        packed = packed[first]
        keys = packed // n_docs
        docs = (packed - keys * n_docs).astype(np.int32)
        del packed, first
        new_key = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        ukeys = keys[new_key]
        by_col = sp.csc_matrix((counts, docs, np.append(new_key, len(keys))), shape=(n_docs, len(ukeys)))
        by_row = by_col.tocsr()  # scipy's O(nnz) transpose: rows in order, columns sorted in each row
        return ukeys, (by_row.indptr.astype(np.int64), by_row.indices.astype(np.int32, copy=False), by_row.data)

    def _csr(self, parts, n_cols: int) -> sp.csr_matrix:
        """One CSR matrix from per-chunk (indptr, indices, counts), rows in chunk order."""
        nnz = sum(len(p[1]) for p in parts)
        index = np.int32 if max(nnz, n_cols) < 2**31 else np.int64
        indptr = np.zeros(sum(len(p[0]) - 1 for p in parts) + 1, dtype=index)
        indices = np.empty(nnz, dtype=index)
        data = np.empty(nnz, dtype=self.dtype)
        row = at = 0
        for ptr, idx, cnt in parts:
            indptr[row + 1:row + len(ptr)] = ptr[1:] + at
            indices[at:at + len(idx)] = idx
            data[at:at + len(idx)] = cnt
            row, at = row + len(ptr) - 1, at + len(idx)
        return sp.csr_matrix((data, indices, indptr), shape=(row, n_cols), copy=False)

    # ------------------------------------------------------------------ API
    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        """Fit the vocabulary on ``texts``; their count matrix (``dtype`` values, int32 indices)."""
        if not len(texts):
            raise RnnbenchError("NgramCounter: no texts to fit")
        self.tokenizer_ = self._fit_words(texts)
        runs: list[tuple[np.ndarray, np.ndarray]] = []  # sorted (keys, df), sizes decreasing
        chunks = []  # per chunk: its distinct keys, and its counts over them
        for chunk in self._chunks(texts):
            ukeys, parts = self._distinct(*self._keys(self.tokenizer_.transform(chunk)), len(chunk))
            chunks.append((ukeys, parts))
            runs.append((ukeys, np.bincount(parts[1], minlength=len(ukeys))))
            while len(runs) > 1 and len(runs[-2][0]) <= 2 * len(runs[-1][0]):
                runs.append(_merge(runs.pop(), runs.pop()))
        while len(runs) > 1:
            runs.append(_merge(runs.pop(), runs.pop()))
        keys, df = runs[0]
        kept = np.flatnonzero(df >= self.min_df)
        keys, df = keys[kept], df[kept].astype(np.int64)
        del runs, kept
        order = np.lexsort((keys, -df))  # most frequent first
        self.keys_, self.df_, self.n_docs_ = keys[order], df[order], len(texts)
        self.lookup_ = (keys, np.argsort(order).astype(np.int32))  # sorted keys, and their columns
        del keys, df, order
        parts = []
        for i, (ukeys, (indptr, cols, counts)) in enumerate(chunks):
            chunks[i] = None  # free each chunk as soon as it is mapped
            new, seen = self._lookup(ukeys)
            new = np.where(seen, new, -1)[cols]
            keep = new >= 0
            rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[keep]
            ptr = np.zeros(len(indptr), dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=len(indptr) - 1), out=ptr[1:])
            m = sp.csr_matrix((counts[keep], new[keep], ptr), shape=(len(indptr) - 1, len(self.keys_)))
            m.sort_indices()
            parts.append((m.indptr, m.indices, m.data))
        return self._csr(parts, len(self.keys_))

    def fit(self, texts: list[str]) -> NgramCounter:
        self.fit_transform(texts)
        return self

    def _lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Column of each key, and whether it is a column at all."""
        sorted_keys, cols = self.lookup_
        if len(sorted_keys) == 0:
            return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
        pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        return cols[pos].astype(np.int64), sorted_keys[pos] == keys

    def get_feature_names_out(self) -> np.ndarray:
        """The n-gram of each column, its words joined by spaces (as scikit-learn's vectorizers)."""
        if self.keys_ is None:
            raise RuntimeError("NgramCounter is not fitted: call fit_transform() first")
        v = self.tokenizer_.vocab_size
        words = np.array(sorted(self.tokenizer_.vocab_, key=self.tokenizer_.vocab_.get), dtype=object)
        starts = np.cumsum([0] + [v**n for n in range(1, self.ngram_range[1] + 1)])  # first key of each n
        names = np.empty(len(self.keys_), dtype=object)
        for n in range(1, self.ngram_range[1] + 1):
            sel = np.flatnonzero((self.keys_ >= starts[n - 1]) & (self.keys_ < starts[n]))
            rest, parts = self.keys_[sel] - starts[n - 1], []
            for _ in range(n):
                parts.insert(0, words[rest % v])
                rest = rest // v
            names[sel] = [" ".join(p) for p in zip(*parts)]
        return names

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        if self.keys_ is None:
            raise RuntimeError("NgramCounter is not fitted: call fit_transform() first")
        parts = []
        for chunk in self._chunks(texts):
            docs, keys = self._keys(self.tokenizer_.transform(chunk))
            cols, seen = self._lookup(keys)
            parts.append(self._rows(docs[seen], cols[seen], len(self.keys_), len(chunk)))
        return self._csr(parts, len(self.keys_))


def _merge(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs of distinct (key, df) as one, dfs of equal keys summed."""
    keys = np.concatenate([a[0], b[0]])
    if len(keys) == 0:
        return a
    order = np.argsort(keys, kind="stable")  # timsort: a linear merge of the two sorted runs
    keys = keys[order]
    df = np.concatenate([a[1], b[1]])[order]
    del order
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[first], np.add.reduceat(df, first)
