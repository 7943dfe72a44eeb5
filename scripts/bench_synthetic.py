"""How far a bag of bigrams stays below the synthetic corpus's ceiling.

TF-IDF(1,2) + logistic regression (C chosen on a validation split) trained on 10k and 100k
synthetic examples, scored on 10k test examples. The ceiling is the rule's accuracy, 1 - noise.
Target: gap at 100k >= 8 points.
"""

import argparse
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from rnnbench.data import generate  # noqa: E402


def linear_accuracy(train, val, test) -> float:
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    xtr = vec.fit_transform(train[0])
    best = max(((LogisticRegression(C=c, max_iter=2000).fit(xtr, train[1]), c) for c in (1.0, 10.0)),
               key=lambda mc: mc[0].score(vec.transform(val[0]), val[1]))
    return float(best[0].score(vec.transform(test[0]), test[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--large", type=int, default=100_000)
    args = ap.parse_args()
    texts, y = generate(args.large + 5000, seed=1, noise=args.noise)
    test = generate(10_000, seed=2, noise=args.noise)
    val = (texts[-5000:], y[-5000:])
    accs = {}
    for n in (10_000, args.large):
        accs[n] = linear_accuracy((texts[:n], y[:n]), val, test)
        print(f"TF-IDF(1,2)+LR at {n}: test accuracy {accs[n]:.4f}")
    ceiling = 1.0 - args.noise
    emit({"linear_acc_10k": round(accs[10_000], 4), "linear_acc_100k": round(accs[args.large], 4),
          "ceiling": ceiling, "gap_100k": round(ceiling - accs[args.large], 4)})


if __name__ == "__main__":
    main()
