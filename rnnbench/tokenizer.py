"""Passage's tokenizer with a scikit-learn surface, writing ragged int32 storage.

Semantics (Passage, 2015): lowercase; split on whitespace; every ASCII punctuation character is a
token of its own; a token is kept when it occurs in at least ``min_df`` training documents (and is
among the ``max_features`` most frequent ones); id 0 is PAD, id 1 is UNK. With ``char_level`` each
character is a token.

Speed: the whole corpus is lowercased and split by one regular expression in one call, with a NUL
separator between documents, then mapped to ids with one dict lookup per token.
"""

from __future__ import annotations

import json
import re
import string
from itertools import repeat
from pathlib import Path

import numpy as np

from .fileio import atomic_write_json
from .ragged import Ragged

PAD, UNK = 0, 1
_SEP = "\x00"
_PUNCT = re.escape(string.punctuation)
_WORD_RE = re.compile(rf"[^\s{_PUNCT}{_SEP}]+|[{_PUNCT}]|{_SEP}")
_CHAR_RE = re.compile(r"[^\n]|\n", re.DOTALL)


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
        toks = self._split(list(texts))
        provisional: dict[str, int] = {_SEP: -1}
        ids = np.fromiter(
            (provisional.setdefault(t, len(provisional) - 1) for t in toks), dtype=np.int64, count=len(toks)
        )
        sep = ids == -1
        doc = np.cumsum(sep) - sep  # document index of each token
        real = ~sep
        n_types = len(provisional) - 1
        pairs = np.unique(doc[real] * n_types + ids[real])
        df = np.bincount(pairs % n_types, minlength=n_types)
        words = np.array(list(provisional)[1:], dtype=object)
        keep = np.flatnonzero(df >= self.min_df)
        # most frequent first; ties broken alphabetically so the vocabulary is deterministic
        order = np.lexsort((words[keep].astype(str), -df[keep]))
        keep = keep[order]
        if self.max_features is not None:
            keep = keep[: max(self.max_features - 2, 0)]
        self.vocab_ = {"<pad>": PAD, "<unk>": UNK}
        self.vocab_.update({w: i + 2 for i, w in enumerate(words[keep])})
        self.doc_freq_ = np.concatenate([[0, 0], df[keep]]).astype(np.int64)
        return self

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
        toks = self._split(list(texts))
        lookup = dict(self.vocab_)
        lookup[_SEP] = -1
        ids = np.fromiter(map(lookup.get, toks, repeat(UNK)), dtype=np.int32, count=len(toks))
        sep = ids == -1
        ends = np.flatnonzero(sep)
        lengths = np.diff(np.concatenate([[-1], ends])) - 1
        return Ragged.from_lengths(ids[~sep], lengths)

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
        return tok
