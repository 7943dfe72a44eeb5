"""Tokenizer speed on IMDB train, as a ratio against scikit-learn's CountVectorizer analyzer.

Both sides get the same 25k texts; ours does the full job (split, lowercase, look up ids, write
ragged int32 storage), the reference only splits (``CountVectorizer().build_analyzer()``).
Best of 3 runs each, interleaved. Target: ratio >= 1.0.
"""

import argparse
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import emit, shared_file  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer  # noqa: E402

from rnnbench.data import Tokenizer, load  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    texts = load("imdb", str(shared_file("aclImdb_v1.tar.gz")), "sentiment").train.texts
    tok = Tokenizer(min_df=5).fit(texts)
    analyzer = CountVectorizer().build_analyzer()
    ours, ref = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ragged = tok.transform(texts)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        n_ref = sum(len(analyzer(x)) for x in texts)
        ref.append(time.perf_counter() - t)
    print(f"docs {len(texts)}, rnnbench tokens {len(ragged.tokens)}, CountVectorizer tokens {n_ref}")
    print(f"rnnbench transform: {min(ours):.3f} s   CountVectorizer analyzer: {min(ref):.3f} s")
    t = time.perf_counter()
    Tokenizer(min_df=5).fit(texts)
    print(f"rnnbench fit: {time.perf_counter() - t:.3f} s")
    emit({"docs": len(texts), "seconds": round(min(ours), 4), "ratio_vs_countvectorizer": round(min(ref) / min(ours), 3)})


if __name__ == "__main__":
    main()
