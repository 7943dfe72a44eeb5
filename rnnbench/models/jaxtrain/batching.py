"""Length-bucketed batches.

The model reads every batch ``chunk`` time steps at a time (training and evaluation alike), so the
compiled programs do not depend on text length, and bucket widths are multiples of the chunk. Bucket
boundaries are chosen once per run from the training lengths (texts truncated to ``max_len``) by
dynamic programming to minimise padding. Each epoch, every bucket's texts are shuffled and cut into
batches of ``batch_size`` (leftovers move up a bucket; a short last batch is filled with zero-weight
rows, so shapes never change), and the batches are shuffled; the order is a function of (seed,
epoch), so a resumed run sees the same batches. (Passage sorted by length within shuffled chunks;
fine fixed buckets give the same low padding.)

Evaluation needs no buckets: :func:`eval_batches` sorts texts by length, so each batch pads little.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...data import Ragged


def bucket_boundaries(lengths: np.ndarray, n_buckets: int, max_len: int, multiple: int = 1) -> np.ndarray:
    """At most ``n_buckets`` upper bucket lengths, each a multiple of ``multiple``, minimising the
    total padding of ``lengths`` (clipped to [1, max_len])."""
    lengths = -(-np.clip(lengths, 1, max_len) // multiple) * multiple
    values, counts = np.unique(lengths, return_counts=True)
    m = len(values)
    k = min(n_buckets, m)
    # cost[i, j]: padding when values[i..j] all pad to values[j]
    cum_c = np.concatenate([[0], np.cumsum(counts)])
    cum_cv = np.concatenate([[0], np.cumsum(counts * values)])
    i, j = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    cost = np.where(j >= i, values[j] * (cum_c[j + 1] - cum_c[i]) - (cum_cv[j + 1] - cum_cv[i]), np.inf)
    best = cost[0].copy()  # best[j]: one bucket covering values[0..j]
    choice = np.zeros((k, m), dtype=np.int64)
    for b in range(1, k):
        # new[j] = min_i best[i-1] + cost[i, j] over i >= 1
        total = np.concatenate([[np.inf], best[:-1]])[:, None] + cost
        choice[b] = np.argmin(total, axis=0)
        best = total[choice[b], np.arange(m)]
    bounds, j = [], m - 1
    for b in range(k - 1, -1, -1):
        bounds.append(values[j])
        if b == 0:
            break
        j = choice[b][j] - 1
    return np.array(sorted(set(bounds)), dtype=np.int64)


def eval_batches(seqs: Ragged, max_len: int, batch_size: int, chunk: int):
    """Yield ``(rows, tokens, lengths)`` for every text, shortest first, ``batch_size`` at a time.

    ``tokens`` is ``(batch_size, k * chunk)`` for the smallest ``k`` that holds the batch's longest
    text (truncated to ``max_len``); ``rows`` is -1 for the filler rows of the last batch.
    """
    lengths = np.clip(seqs.lengths, 0, max_len)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        n = len(idx)
        width = chunk * max(1, -(-int(lengths[idx].max()) // chunk))
        rows = np.full(batch_size, -1, np.int64)
        rows[:n] = idx
        tokens = np.zeros((batch_size, width), np.int32)
        lens = np.zeros(batch_size, np.int32)
        tokens[:n, :], lens[:n] = seqs.take(idx).to_padded(width)
        yield rows, tokens, np.minimum(lens, max_len)


@dataclass
class Batch:
    tokens: np.ndarray  # int32 (B, L)
    lengths: np.ndarray  # int32 (B,)
    y: np.ndarray  # (B,)
    weight: np.ndarray  # float32 (B,), 0 for filler rows
    index: np.ndarray  # int64 (B,), -1 for filler rows

    @property
    def real_tokens(self) -> int:
        return int(self.lengths[self.weight > 0].sum())


class Batcher:
    def __init__(self, seqs: Ragged, y: np.ndarray, batch_size: int, boundaries: np.ndarray, max_len: int):
        self.seqs, self.y, self.batch_size, self.max_len = seqs, y, batch_size, max_len
        self.boundaries = boundaries
        self.lengths = np.clip(seqs.lengths, 0, max_len)
        self.bucket = np.minimum(np.searchsorted(boundaries, np.maximum(self.lengths, 1)), len(boundaries) - 1)

    def batch(self, idx: np.ndarray, bucket: int) -> Batch:
        width = int(self.boundaries[bucket])
        n = len(idx)
        full = np.full(self.batch_size, -1, dtype=np.int64)
        full[:n] = idx
        tokens, lengths = self.seqs.take(idx).to_padded(width)
        out = np.zeros((self.batch_size, width), np.int32)
        out[:n] = tokens
        lens = np.zeros(self.batch_size, np.int32)
        lens[:n] = lengths
        y = np.zeros(self.batch_size, self.y.dtype)
        y[:n] = self.y[idx]
        w = np.zeros(self.batch_size, np.float32)
        w[:n] = 1.0
        return Batch(out, lens, y, w, full)

    def epoch(self, seed: int, epoch: int, shuffle: bool = True) -> list[tuple[int, np.ndarray]]:
        """(bucket, row indices) of every batch of one epoch, in order.

        A bucket's texts that do not fill a whole batch move up into the next (longer) bucket, so
        only the longest bucket can end in a short batch (filled with zero-weight rows).
        """
        rng = np.random.default_rng([seed, epoch, 7])
        plan, carry = [], np.zeros(0, np.int64)
        last = len(self.boundaries) - 1
        for b in range(len(self.boundaries)):
            idx = np.flatnonzero(self.bucket == b)
            if shuffle:
                rng.shuffle(idx)
            idx = np.concatenate([carry, idx])
            n_full = len(idx) // self.batch_size * self.batch_size
            end = len(idx) if b == last else n_full
            plan += [(b, idx[i:i + self.batch_size]) for i in range(0, end, self.batch_size)]
            carry = idx[end:]
        if shuffle:
            order = rng.permutation(len(plan))
            plan = [plan[i] for i in order]
        return plan

    def padding_stats(self, pad: Callable[[int], int] | None = None) -> tuple[int, int]:
        """(real tokens, processed tokens) of one epoch, filler rows included; ``pad``: the width a bucket's
        batches are padded to, given the bucket's, where the trainer pads further (per-batch programs)."""
        widths = [int(self.boundaries[b]) for b, _ in self.epoch(0, 0, shuffle=False)]
        processed = sum(self.batch_size * (pad(w) if pad else w) for w in widths)
        return int(self.lengths.sum()), processed
