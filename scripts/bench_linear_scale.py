"""The TF-IDF baseline at scale: Blog Authorship Corpus, task gender, grid min_df {2, 5} x C {0.3, 1, 3}.

Validation: the train.tsv.xz posts of the bloggers with sha256(blog_id) mod 100 < 2 (about 4,600 posts
of 190 bloggers; disjoint from training by blog_id, as the corpus' README asks); training: a seeded
random sample of ``--docs`` of the other posts, and then all of them (``--full-docs``); test:
test.tsv.xz.

Each side runs in its own process (this script with ``--worker``), on the same pickled split; the
parent samples the summed RSS of the worker's process tree (scikit-learn's GridSearchCV runs its
grid in worker processes) every 50 ms and takes the larger of that and the worker's own VmHWM.

Reference at ``--docs``: ``GridSearchCV(Pipeline([TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
tokenizer=<Passage tokens>), LogisticRegression()]), cv=PredefinedSplit(...), refit=False)`` on both
cores, then the chosen pipeline fit on the training posts (as rnnbench does: validation only picks
hyper-parameters). Targets: same parameters, same test accuracy (to 0.1 point), rnnbench >= 3x faster
at <= 0.5x the peak memory; and the full training set (~600k posts) in <= 8 GB and <= 15 minutes.
``seconds`` are the fit (grid and choice), without reading the data or predicting the test set.
"""

import argparse
import csv
import hashlib
import json
import lzma
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from _common import emit, shared_file  # noqa: E402

GRID = {"min_df": [2, 5], "C": [0.3, 1.0, 3.0]}
VAL_PERCENT = 2  # bloggers with sha256(blog_id) mod 100 below this are the validation split


def read_blogs(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, gender labels: 1 male / 0 female, blog ids) of one of the corpus' xz TSV files.
    The one place that reads the corpus: swap for ``rnnbench.data.load(...)`` once it has a loader."""
    csv.field_size_limit(1 << 30)
    texts, male, blogs = [], [], []
    with lzma.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows)
        i_blog, i_gender, i_text = header.index("blog_id"), header.index("gender"), header.index("text")
        for row in rows:
            texts.append(row[i_text])
            male.append(row[i_gender] == "male")
            blogs.append(row[i_blog])
    return texts, np.array(male, dtype=np.int64), blogs


def is_validation(blog: str) -> bool:
    return int(hashlib.sha256(blog.encode()).hexdigest(), 16) % 100 < VAL_PERCENT


# ---------------------------------------------------------------------------------------------- workers
def vm_hwm_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def run_ours(train, val, test, jobs: int) -> dict:
    from rnnbench.data import Split, Task
    from rnnbench.models.linear.model import LinearBaseline
    from rnnbench.models.linear.spec import LinearConfig

    cfg = LinearConfig(min_df=GRID["min_df"], C=GRID["C"])
    t = time.perf_counter()
    model = LinearBaseline(cfg, Task("gender", "binary", 2), n_jobs=jobs).fit(Split(*train), Split(*val))
    seconds = time.perf_counter() - t
    acc = float(np.mean(model.predict_scores(test[0]).argmax(1) == test[1]))
    return {"seconds": seconds, "chosen": model.chosen_, "test_accuracy": acc,
            "timings": {k: round(v, 1) for k, v in model.timings_.items()},
            "grid": [{**g["params"], "val_accuracy": round(g["validation"]["accuracy"], 4)} for g in model.grid_]}


def run_sklearn(train, val, test, jobs: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.pipeline import Pipeline

    from rnnbench.data import Tokenizer
    from rnnbench.models.linear.spec import LinearConfig

    cfg = LinearConfig()
    t = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=tuple(cfg.ngram_range), sublinear_tf=cfg.sublinear_tf,
                                 tokenizer=Tokenizer().tokenize, token_pattern=None, lowercase=False)
    pipe = Pipeline([("tfidf", vectorizer), ("lr", LogisticRegression(max_iter=cfg.max_iter))])
    fold = np.r_[np.full(len(train[0]), -1), np.zeros(len(val[0]), int)]
    search = GridSearchCV(pipe, {"tfidf__min_df": GRID["min_df"], "lr__C": GRID["C"]}, cv=PredefinedSplit(fold),
                          refit=False, n_jobs=jobs, scoring="accuracy")
    search.fit(train[0] + val[0], np.concatenate([train[1], val[1]]))
    best = search.best_params_
    pipe.set_params(**best).fit(*train)
    seconds = time.perf_counter() - t
    res = search.cv_results_
    grid = [{"min_df": p["tfidf__min_df"], "C": p["lr__C"], "val_accuracy": round(float(s), 4)}
            for p, s in zip(res["params"], res["mean_test_score"])]
    return {"seconds": seconds, "chosen": {"min_df": best["tfidf__min_df"], "C": best["lr__C"]},
            "test_accuracy": float(pipe.score(*test)), "grid": grid}


def worker(side: str, data: Path, jobs: int) -> None:
    with open(data, "rb") as f:
        train, val, test = pickle.load(f)
    out = (run_ours if side == "ours" else run_sklearn)(train, val, test, jobs)
    print(json.dumps({**out, "vm_hwm_gb": vm_hwm_gb()}), flush=True)


# ---------------------------------------------------------------------------------------------- parent
def measure(side: str, data: Path, jobs: int) -> dict:
    """Run one side in its own process; its result with ``peak_rss_gb``: the process tree's memory, sampled,
    each shared page counted once (proportional set size: the baseline's grid workers map the parent's
    matrices; scikit-learn's workers copy theirs)."""
    cmd = [sys.executable, __file__, "--worker", side, "--data", str(data), "--jobs", str(jobs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_full_info().pss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.2)
    out = proc.stdout.read().strip().splitlines()
    if proc.returncode or not out:
        sys.exit(f"{side} worker failed (exit {proc.returncode})")
    result = json.loads(out[-1])
    result["peak_rss_gb"] = max(peak / 1e9, result["vm_hwm_gb"])
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000, help="training posts of the comparison with scikit-learn")
    ap.add_argument("--skip-full", action="store_true", help="no run on the full training set")
    ap.add_argument("--full-docs", type=int, default=None, help="training posts of the full run (default: all)")
    ap.add_argument("--skip-sklearn", action="store_true", help="no scikit-learn reference (its figures are null)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--worker", choices=["ours", "sklearn"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.data, args.jobs)

    t = time.perf_counter()
    texts, y, blogs = read_blogs(shared_file("blog-authorship", "train.tsv.xz"))
    test_texts, test_y, _ = read_blogs(shared_file("blog-authorship", "test.tsv.xz"))
    val_mask = np.array([is_validation(b) for b in blogs])
    val_i, train_i = np.flatnonzero(val_mask), np.flatnonzero(~val_mask)
    order = np.random.default_rng(0).permutation(train_i)
    val_blogs = len({blogs[i] for i in val_i})
    del blogs

    def split(index):
        index = np.sort(index)
        return [texts[i] for i in index], y[index]

    val, test = split(val_i), (test_texts, test_y)
    print(f"Blog Authorship (gender): {len(train_i):,} training posts, {len(val_i):,} validation "
          f"(their {val_blogs:,} bloggers only there), {len(test_y):,} test; read in {time.perf_counter() - t:.0f} s; "
          f"grid min_df={GRID['min_df']} x C={GRID['C']}", flush=True)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench_linear_scale.") as tmp:
        small = Path(tmp) / "small.pkl"
        with open(small, "wb") as f:
            pickle.dump((split(order[:args.docs]), val, test), f, protocol=pickle.HIGHEST_PROTOCOL)
        docs = min(args.docs, len(order))
        ours = measure("ours", small, args.jobs)
        print(f"rnnbench {docs:,}: {ours['seconds']:.1f} s, {ours['peak_rss_gb']:.2f} GB, chosen {ours['chosen']}, "
              f"test accuracy {ours['test_accuracy']:.4f}; grid {ours['grid']}; {ours['timings']}", flush=True)
        ref = None
        if not args.skip_sklearn:
            ref = measure("sklearn", small, args.jobs)
            print(f"GridSearchCV {docs:,}: {ref['seconds']:.1f} s, {ref['peak_rss_gb']:.2f} GB, chosen {ref['chosen']}, "
                  f"test accuracy {ref['test_accuracy']:.4f}; grid {ref['grid']}", flush=True)
        small.unlink()
        figures.update({
            "docs": docs, "seconds": round(ours["seconds"], 1), "peak_rss_gb": round(ours["peak_rss_gb"], 2),
            "test_accuracy": round(ours["test_accuracy"], 4),
            "sklearn_seconds": ref and round(ref["seconds"], 1),
            "sklearn_peak_rss_gb": ref and round(ref["peak_rss_gb"], 2),
            "sklearn_test_accuracy": ref and round(ref["test_accuracy"], 4),
            "speedup_vs_sklearn": ref and round(ref["seconds"] / ours["seconds"], 2),
            "memory_ratio_vs_sklearn": ref and round(ours["peak_rss_gb"] / ref["peak_rss_gb"], 3),
            "same_params": ref and ref["chosen"] == ours["chosen"],
        })
        if not args.skip_full:
            full = Path(tmp) / "full.pkl"
            with open(full, "wb") as f:
                pickle.dump((split(order[:args.full_docs]), val, test), f, protocol=pickle.HIGHEST_PROTOCOL)
            del texts, test_texts, val, test
            res = measure("ours", full, args.jobs)
            n = len(order) if args.full_docs is None else min(args.full_docs, len(order))
            print(f"rnnbench {n:,}: {res['seconds']:.1f} s, {res['peak_rss_gb']:.2f} GB, chosen {res['chosen']}, "
                  f"test accuracy {res['test_accuracy']:.4f}; grid {res['grid']}; {res['timings']}", flush=True)
            figures.update({"full_docs": n, "full_seconds": round(res["seconds"], 1),
                            "full_peak_rss_gb": round(res["peak_rss_gb"], 2),
                            "full_test_accuracy": round(res["test_accuracy"], 4), "full_chosen": res["chosen"]})
    emit(figures)


if __name__ == "__main__":
    main()
