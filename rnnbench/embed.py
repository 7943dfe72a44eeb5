"""``rnnbench embed``: what the RNN's word embeddings learned.

A t-SNE map of the embeddings of the N most frequent tokens, each point coloured by the average
label (or target) of the training texts the token occurs in, and a table of nearest neighbours
(cosine similarity in embedding space) for probe words.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .errors import RnnbenchError
from .fileio import atomic_write_text
from .runs import Run, RunResult

MAP, TABLE, NEIGHBOURS = "embeddings.png", "embeddings.csv", "neighbours.md"  # beside the run's files
DEFAULT_PROBES = ("useless", "disappointed", "returned", "fantastic", "pleased", "months", "minutes",
                  "extremely", "totally", "movie", "book", "!", ".", ",")


def load_rnn_run(run_dir: Path):
    from .experiment import load_model

    result = Run(run_dir).require_done()
    if result.model != "rnn":
        raise RnnbenchError(f"{run_dir} is a {result.model} run: embed needs an RNN run")
    return load_model(run_dir), result


def token_label_means(model, run_dir: Path, result: RunResult) -> np.ndarray:
    """Average label (target) of the training texts each token id occurs in (NaN if none)."""
    from .experiment import load_corpus, subsets_for

    cfg = Run(run_dir).config()
    train = subsets_for(cfg, load_corpus(cfg), result.size, result.seed).train
    seqs = model.tokenizer_.transform(train.texts)
    vocab = model.tokenizer_.vocab_size
    doc = np.repeat(np.arange(len(seqs)), seqs.lengths)
    pairs = np.unique(doc.astype(np.int64) * vocab + seqs.tokens)  # each token once per text
    tok, d = pairs % vocab, pairs // vocab
    y = train.y.astype(float)
    sums = np.bincount(tok, weights=y[d], minlength=vocab)
    counts = np.bincount(tok, minlength=vocab)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def run_embed(run_dir: Path, top: int = 1000, probes: tuple[str, ...] = (), seed: int = 0) -> dict:
    run_dir = Path(run_dir)
    model, result = load_rnn_run(run_dir)
    run = Run(run_dir)
    tok = model.tokenizer_
    available = tok.vocab_size - 2
    if top < 10:
        raise RnnbenchError(f"--top must be at least 10, got {top}")
    if available < top:
        raise RnnbenchError(f"the run's vocabulary has {available} tokens, fewer than --top {top}")
    words = sorted(tok.vocab_, key=tok.vocab_.get)
    emb = np.asarray(model.params_["embed"]["embedding"][...], dtype=np.float64)
    ids = np.argsort(-tok.doc_freq_[2:], kind="stable")[:top] + 2  # most frequent, skipping PAD/UNK
    means = token_label_means(model, run_dir, result)

    from sklearn.manifold import TSNE

    xy = TSNE(n_components=2, perplexity=min(30.0, (top - 1) / 3), init="pca", random_state=seed).fit_transform(emb[ids])

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["token", "frequency", "average_label", "x", "y"])
    for i, (x, y) in zip(ids, xy):
        w.writerow([words[i], int(tok.doc_freq_[i]), f"{means[i]:.4f}", f"{x:.3f}", f"{y:.3f}"])
    atomic_write_text(run.artifact(TABLE), buf.getvalue())

    probes = tuple(probes) or DEFAULT_PROBES
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    lines = [f"# Nearest neighbours in the embedding space of {run_dir.name}", "",
             "Cosine similarity; neighbours among all tokens of the run's vocabulary.", "",
             "| probe | nearest neighbours (cosine) |", "|---|---|"]
    found = []
    for p in probes:
        i = tok.vocab_.get(p.lower() if tok.lowercase else p)
        if i is None or i < 2:
            lines.append(f"| `{p}` | not in the vocabulary |")
            continue
        sims = unit[2:] @ unit[i]
        order = [j + 2 for j in np.argsort(-sims) if j + 2 != i][:8]
        found.append(p)
        lines.append(f"| `{p}` | " + ", ".join(f"{words[j]} ({sims[j - 2]:.2f})" for j in order) + " |")
    atomic_write_text(run.artifact(NEIGHBOURS), "\n".join(lines) + "\n")
    _plot(run.artifact(MAP), xy, means[ids], [words[i] for i in ids], set(found), result)
    return {"dir": run_dir, "n": top, "probes_found": found}


def _plot(path: Path, xy, colour, labels, probes, result: RunResult) -> None:
    from .plots import figure, save

    fig = figure((9, 8))
    ax = fig.subplots()
    colour = np.nan_to_num(colour, nan=np.nanmean(colour))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap="coolwarm_r", s=9, alpha=0.8)
    fig.colorbar(sc, ax=ax, shrink=0.7, label="average label of the texts containing the token")
    # a readable sample: the probes, and the most frequent tokens that are not too close to a label
    shown: list[np.ndarray] = []
    span = np.ptp(xy, axis=0).max() or 1.0
    order = sorted(range(len(labels)), key=lambda i: (labels[i] not in probes, i))
    for i in order:
        if len(shown) >= 70:
            break
        if shown and np.min(np.linalg.norm(np.array(shown) - xy[i], axis=1)) < 0.035 * span:
            continue
        shown.append(xy[i])
        ax.annotate(labels[i], xy[i], fontsize=7 if labels[i] not in probes else 9,
                    weight="bold" if labels[i] in probes else "normal")
    ax.set_title(f"t-SNE of the {len(labels)} most frequent tokens' embeddings "
                 f"({result.dataset}/{result.task.get('name')}, {result.size} training texts)")
    ax.set_xticks([])
    ax.set_yticks([])
    save(fig, path)
