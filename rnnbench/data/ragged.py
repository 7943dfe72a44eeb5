"""Ragged int32 sequences: one flat token array plus offsets (never Python lists of lists)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ragged:
    """``tokens[offsets[i]:offsets[i+1]]`` is sequence ``i``."""

    tokens: np.ndarray  # int32 [total]
    offsets: np.ndarray  # int64 [n + 1], offsets[0] == 0

    def __post_init__(self):
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0:
            raise ValueError("offsets must be a 1-D array starting at 0")
        if self.offsets[-1] != len(self.tokens):
            raise ValueError("offsets[-1] must equal len(tokens)")

    @classmethod
    def from_lengths(cls, tokens: np.ndarray, lengths: np.ndarray) -> Ragged:
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.asarray(tokens, dtype=np.int32), offsets)

    @classmethod
    def from_sequences(cls, seqs) -> Ragged:
        seqs = [np.asarray(s, dtype=np.int32) for s in seqs]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        tokens = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
        return cls.from_lengths(tokens, lengths)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, index: np.ndarray) -> Ragged:
        """The sequences at ``index``, in that order, as a new Ragged (vectorised gather)."""
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        return self._slices(starts, self.offsets[index + 1] - starts)

    def truncate(self, max_len: int, keep: str = "first") -> Ragged:
        """Every sequence cut to its first (``keep="first"``) or last ``max_len`` tokens."""
        if keep not in ("first", "last"):
            raise ValueError(f"keep must be 'first' or 'last', got {keep!r}")
        lengths = self.lengths
        if lengths.size == 0 or lengths.max() <= max_len:
            return self
        kept = np.minimum(lengths, max_len)
        return self._slices(self.offsets[:-1] + (lengths - kept if keep == "last" else 0), kept)

    def _slices(self, starts: np.ndarray, lengths: np.ndarray) -> Ragged:
        """A new Ragged of the token runs ``tokens[starts[i] : starts[i] + lengths[i]]`` (one gather)."""
        out_offsets = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_offsets[1:])
        # position of every output token in the source array
        src = np.repeat(starts - out_offsets[:-1], lengths) + np.arange(out_offsets[-1])
        return Ragged(self.tokens[src], out_offsets)

    def to_padded(self, max_len: int, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A dense [n, max_len] int32 matrix (first ``max_len`` tokens kept) and the kept lengths."""
        lengths = np.minimum(self.lengths, max_len)
        out = np.full((len(self), max_len), pad, dtype=np.int32)
        rows = np.repeat(np.arange(len(self)), lengths)
        cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[rows, cols] = self.tokens[np.repeat(self.offsets[:-1], lengths) + cols]
        return out, lengths
