"""Tokens one training epoch of the RNN processes, padding included: per-chunk against per-batch programs.

Loads ``--config``'s data (default ``configs/imdb.yaml``, IMDB from the shared data folder), its training
subset at ``--size`` (default the config's largest), seed 0; reads it as the RNN does (its tokenizer,
``data.max_len``), cuts it into the trainer's length buckets and counts one epoch's tokens three ways:
the real tokens (the reference), the tokens processed in chunks (``compute.train_programs: per-chunk``:
a batch padded to its bucket's width, a multiple of ``rnn.chunk``) and in per-batch programs (the
bucket's width padded further to its length class, ``train.length_class``), with the length classes
reached: the programs an epoch compiles. A property of the data and the trainer's padding, not a
timing; the RNN trainer's design doc quotes it. ``--set key=value`` overrides the config, e.g.
``--config configs/blog-gender.yaml --set data.max_len=512 --size 100000`` (the corpus registered).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit, shared_file  # noqa: E402

from rnnbench.config import load_config  # noqa: E402
from rnnbench.experiment import default_size, load_corpus, subsets_for  # noqa: E402
from rnnbench.models.rnn.model_api import RNNClassifier  # noqa: E402
from rnnbench.models.rnn.train import length_class  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "imdb.yaml")
    ap.add_argument("--size", type=int, help="training examples (default: the config's largest size)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    overrides = list(args.overrides)
    if args.config.name == "imdb.yaml" and not any(o.startswith("data.path=") for o in overrides):
        overrides.insert(0, f"data.path={shared_file('aclImdb_v1.tar.gz')}")
    cfg = load_config(args.config, overrides)
    size = args.size or default_size(cfg)
    cfg = cfg.for_size(size)  # the config's at_size settings for that size (a batch, a chunk)
    corpus = load_corpus(cfg)
    train = subsets_for(cfg, corpus, size, 0).train
    rnn, max_len = cfg.rnn, cfg.data.max_len
    model = RNNClassifier(cfg, corpus.task, 0)
    batcher = model.batcher(train)  # the trainer's own tokenizer, buckets and batches
    boundaries = model.boundaries_
    real, chunked = batcher.padding_stats()
    _, per_batch = batcher.padding_stats(lambda w: length_class(w, rnn.chunk))
    classes = sorted({length_class(int(w), rnn.chunk) for w in boundaries})
    print(f"{cfg.experiment.name} at {len(train.y):,} examples, max_len {max_len}, chunk {rnn.chunk}, "
          f"batch {rnn.batch_size}: {real:,} real tokens an epoch; per-chunk processes {chunked:,} "
          f"({real / chunked:.1%} real, {len(boundaries)} buckets), per-batch {per_batch:,} "
          f"({real / per_batch:.1%} real, {len(classes)} length classes): {per_batch / chunked - 1:+.1%}")
    emit({"config": cfg.experiment.name, "size": len(train.y), "max_len": max_len, "chunk": rnn.chunk,
          "batch": rnn.batch_size, "real_tokens": real, "per_chunk_tokens": chunked, "per_batch_tokens": per_batch,
          "per_chunk_real_fraction": round(real / chunked, 4), "per_batch_real_fraction": round(real / per_batch, 4),
          "per_batch_vs_per_chunk": round(per_batch / chunked, 4), "buckets": len(boundaries),
          "length_classes": len(classes)})


if __name__ == "__main__":
    main()
