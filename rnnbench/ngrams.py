"""Word n-gram counts over Passage tokens, vectorised (no Python object per n-gram).

Each n-gram of token ids ``(t1, ..., tn)`` gets an int64 key ``offset_n + t1 V^(n-1) + ... + tn``.
The feature vocabulary is the sorted set of keys seen in the fitting texts; counting is a sparse
COO → CSR conversion; unseen text maps through ``searchsorted``. Equivalent to scikit-learn's
``CountVectorizer(tokenizer=Tokenizer().tokenize, ngram_range=...)`` up to column order.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .errors import RnnbenchError
from .ragged import Ragged
from .tokenizer import Tokenizer


class NgramCounter:
    def __init__(self, ngram_range: tuple[int, int] = (1, 2), lowercase: bool = True):
        lo, hi = ngram_range
        if not 1 <= lo <= hi:
            raise RnnbenchError(f"linear.ngram_range must be 1 <= lo <= hi, got {list(ngram_range)}")
        self.ngram_range = (lo, hi)
        self.tokenizer = Tokenizer(min_df=1, lowercase=lowercase)
        self.keys_: np.ndarray | None = None

    def _keys(self, ragged: Ragged) -> tuple[np.ndarray, np.ndarray]:
        """(document index, key) of every n-gram occurrence."""
        v = np.int64(self.tokenizer.vocab_size)
        lo, hi = self.ngram_range
        if float(v) ** hi * hi >= 2**62:
            raise RnnbenchError(f"linear.ngram_range {list(self.ngram_range)} is too long for a vocabulary of {v}")
        tokens = ragged.tokens.astype(np.int64)
        lengths = ragged.lengths
        doc = np.repeat(np.arange(len(lengths)), lengths)
        remaining = np.repeat(ragged.offsets[1:], lengths) - np.arange(len(tokens))  # tokens left in doc
        docs, keys, offset = [], [], np.int64(0)
        for n in range(1, hi + 1):
            if n >= lo:
                starts = np.flatnonzero(remaining >= n)
                key = tokens[starts].copy()
                for k in range(1, n):
                    key = key * v + tokens[starts + k]
                docs.append(doc[starts])
                keys.append(key + offset)
            offset += v**n
        return np.concatenate(docs), np.concatenate(keys)

    def _matrix(self, docs, cols, n_docs) -> sp.csr_matrix:
        data = np.ones(len(cols), dtype=np.float64)
        m = sp.coo_matrix((data, (docs, cols)), shape=(n_docs, len(self.keys_))).tocsr()
        m.sum_duplicates()
        return m

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        ragged = self.tokenizer.fit_transform(texts)
        docs, keys = self._keys(ragged)
        self.keys_, cols = np.unique(keys, return_inverse=True)
        return self._matrix(docs, cols, len(ragged))

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        ragged = self.tokenizer.transform(texts)
        docs, keys = self._keys(ragged)
        cols = np.minimum(np.searchsorted(self.keys_, keys), len(self.keys_) - 1)
        seen = self.keys_[cols] == keys  # n-grams with unseen words (UNK) are never in keys_
        return self._matrix(docs[seen], cols[seen], len(ragged))
