"""The linear baseline's large-scale path (chunked counts, one vocabulary for the smallest min_df, tf-idf in
place, the larger min_dfs' matrices derived from it one at a time) gives scikit-learn's TfidfVectorizer +
LogisticRegression."""

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

import rnnbench.models.linear.model
import rnnbench.models.linear.ngrams
from rnnbench.data import Split, Task, Tokenizer, generate
from rnnbench.models.linear.model import LinearBaseline
from rnnbench.models.linear.ngrams import NgramCounter
from rnnbench.models.linear.shared_csr import SharedCSR, open_shared
from rnnbench.models.linear.spec import LinearConfig

BINARY = Task("sentiment", "binary", 2)


@pytest.fixture(scope="module")
def data():
    texts, y = generate(1600, seed=11)
    return Split(texts[:1000], y[:1000]), Split(texts[1000:1300], y[1000:1300]), Split(texts[1300:], y[1300:])


def reference(train, min_df: int, C: float):
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, tokenizer=Tokenizer().tokenize,
                          token_pattern=None, lowercase=False).fit(train.texts)
    return vec, LogisticRegression(C=C, max_iter=1000).fit(vec.transform(train.texts), train.y)


def shared_segments() -> set[str]:
    """The segments in /dev/shm (another fit on this machine, or one killed earlier, may add some: tests
    check the names their own fits made)."""
    shm = Path("/dev/shm")
    return {p.name for p in [*shm.glob("psm_*"), *shm.glob("rnnbench-*")]} if shm.is_dir() else set()


def segment_names(handle) -> list[str]:
    return [part[0] for part in handle[1].values()]


@pytest.mark.parametrize("where", ["here", "workers"])
def test_every_grid_point_and_the_chosen_model_are_scikit_learns(data, monkeypatch, where):
    """In this process (small grids) or in worker processes that map the matrices from shared memory
    (large ones): the same models as scikit-learn's, and no shared-memory segment left behind."""
    train, val, test = data
    monkeypatch.setattr(rnnbench.models.linear.ngrams, "CHUNK_DOCS", 64)  # several chunks even on this small corpus
    shared = []

    class Spy(rnnbench.models.linear.model.SharedCSR):
        def __init__(self, x):
            super().__init__(x)
            shared.append(self.handle)

    monkeypatch.setattr(rnnbench.models.linear.model, "SharedCSR", Spy)
    pools, here = [], []

    class Pool(rnnbench.models.linear.model.ProcessPoolExecutor):
        def __init__(self, max_workers, **kw):
            pools.append(max_workers)
            super().__init__(max_workers, **kw)

    fit_point = LinearBaseline._fit_point

    def spy(self, params, *args):  # in this process only (workers import their own)
        here.append(threading.current_thread().name)
        return fit_point(self, params, *args)

    monkeypatch.setattr(rnnbench.models.linear.model, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(LinearBaseline, "_fit_point", spy)
    if where == "workers":
        monkeypatch.setattr(rnnbench.models.linear.model, "PROCESS_MIN_NNZ", 0)
    model = LinearBaseline(LinearConfig(min_df=[2, 4], C=[0.5, 4.0]), BINARY, n_jobs=2).fit(train, val)
    if where == "workers":  # two at once: one in a thread here, one in a worker process
        assert pools == [1] and 1 <= len(here) < 4 and set(here) == {"rnnbench-grid-point"}
    else:
        assert pools == [] and len(here) == 4
    assert model.counter_.chunk_docs == 64
    assert len(model.grid_) == 4
    for point in model.grid_:
        vec, lr = reference(train, point["params"]["min_df"], point["params"]["C"])
        probs = lr.predict_proba(vec.transform(val.texts))
        assert point["validation"]["accuracy"] == float(np.mean(probs.argmax(1) == val.y)), point
        assert point["validation"]["log_loss"] == pytest.approx(log_loss(val.y, probs), abs=1e-6), point
    vec, lr = reference(train, model.chosen_["min_df"], model.chosen_["C"])
    np.testing.assert_allclose(model.predict_scores(test.texts), lr.predict_proba(vec.transform(test.texts)),
                               atol=1e-6, rtol=0)
    assert model.model_.coef_.shape[1] == len(vec.vocabulary_)
    assert not {n for h in shared for n in segment_names(h)} & shared_segments()
    assert len(shared) == (2 if where == "workers" else 0)  # one training matrix per min_df, shared


@pytest.mark.parametrize("min_dfs", [[1, 3], [2, 3, 5]])
def test_features_of_every_min_df_and_their_dtypes(data, monkeypatch, min_dfs):
    """The larger min_dfs' features are column copies taken before the smallest's turn tf-idf in place:
    each grid point gets exactly TfidfVectorizer(min_df=m)'s features (float64 values, int32 indices)."""
    train, val, _ = data
    seen = {}
    fit_point = LinearBaseline._fit_point

    def spy(self, params, x_tr, x_va, y_tr, y_va):
        seen[params["min_df"]] = (x_tr, x_va)
        return fit_point(self, params, x_tr, x_va, y_tr, y_va)

    monkeypatch.setattr(LinearBaseline, "_fit_point", spy)
    model = LinearBaseline(LinearConfig(min_df=min_dfs, C=[1.0]), BINARY, n_jobs=1).fit(train, val)
    assert sorted(seen) == min_dfs
    for m, (x_tr, x_va) in seen.items():
        vec, _ = reference(train, m, 1.0)
        for ours, texts in ((x_tr, train.texts), (x_va, val.texts)):
            theirs = vec.transform(texts).toarray()
            assert ours.format == "csr" and ours.shape == theirs.shape
            assert ours.dtype == np.float64 and ours.indices.dtype == np.int32
            # same values in every row (column order differs: ours by n-gram key, sklearn's alphabetical)
            np.testing.assert_allclose(np.sort(ours.toarray(), axis=1), np.sort(theirs, axis=1), atol=1e-12)
    counter = model.counter_
    assert counter.min_df == min(min_dfs)  # one vocabulary, for the smallest min_df
    assert counter.tokenizer_.vocab_ == Tokenizer(min_df=min(min_dfs)).fit(train.texts).vocab_


@pytest.mark.parametrize("norm", ["l2", "l1", None])
def test_narrowed_columns_are_the_tfidf_of_those_columns(data, norm):
    """A larger min_df's matrix, derived from the smaller one's tf-idf (columns kept, rows normalised
    again), is the tf-idf scikit-learn computes from those columns' counts: same idf bit for bit, values
    within a few ulp."""
    counts = NgramCounter((1, 2), dtype=np.float64).fit_transform(data[0].texts)
    tfidf = TfidfTransformer(sublinear_tf=True, norm=norm).fit(counts)
    cols = np.flatnonzero(np.bincount(counts.indices, minlength=counts.shape[1]) >= 3)
    assert 0 < len(cols) < counts.shape[1]
    theirs_tfidf = TfidfTransformer(sublinear_tf=True, norm=norm).fit(counts[:, cols])
    ours_tfidf = rnnbench.models.linear.model.tfidf_of_columns(tfidf, cols)
    np.testing.assert_array_equal(ours_tfidf.idf_, theirs_tfidf.idf_)
    theirs = theirs_tfidf.transform(counts[:, cols])
    ours = rnnbench.models.linear.model.narrow_columns(rnnbench.models.linear.model.tfidf_in_place(tfidf, counts.copy()), cols, norm)
    assert ours.indices.dtype == np.int32
    for attr in ("indptr", "indices"):
        np.testing.assert_array_equal(getattr(ours, attr), getattr(theirs, attr))
    np.testing.assert_array_max_ulp(ours.data, theirs.data, maxulp=16)  # 7 measured
    np.testing.assert_array_equal(ours_tfidf.transform(counts[:, cols]).data, theirs.data)  # prediction: exact
    # a chain (min_df 1 -> 3 -> 5, as the grid derives each from the previous): the error does not grow much
    cols5 = np.flatnonzero(np.bincount(counts.indices, minlength=counts.shape[1]) >= 5)
    chained = rnnbench.models.linear.model.narrow_columns(ours, np.searchsorted(cols, cols5), norm)
    direct = TfidfTransformer(sublinear_tf=True, norm=norm).fit(counts[:, cols5]).transform(counts[:, cols5])
    np.testing.assert_array_max_ulp(chained.data, direct.data, maxulp=32)  # 17 measured (l1)


@pytest.mark.parametrize("C,expected", [
    # two points per min_df, two workers: one min_df at a time, the first one's matrix gone before the
    # second one's points start
    ([0.5, 4.0], ["make 2", "point 2", "point 2", "make 4", "drop 2", "point 4", "point 4", "drop 4"]),
    # one point per min_df: all at once (one at a time would leave a worker idle)
    ([1.0], ["make 2", "make 4", "point", "point", "drop 2", "drop 4"]),
])
def test_the_grid_holds_one_min_dfs_matrix_at_a_time(data, monkeypatch, C, expected):
    train, val, _ = data
    events, made = [], {}

    class Spy(SharedCSR):
        def __init__(self, x):
            super().__init__(x)
            made[id(self)] = x.shape[1]
            events.append(f"make {x.shape[1]}")

        def close(self):
            if self._segments:
                events.append(f"drop {made[id(self)]}")
            super().close()

    class Log:
        def log(self, row):
            if row["event"] == "grid_point":
                events.append(f"point {row['min_df']}")

    monkeypatch.setattr(rnnbench.models.linear.model, "SharedCSR", Spy)
    monkeypatch.setattr(rnnbench.models.linear.model, "PROCESS_MIN_NNZ", 0)
    model = LinearBaseline(LinearConfig(min_df=[2, 4], C=C), BINARY, n_jobs=2).fit(train, val, run=Log())
    widths = {2: model.counter_.df_.size, 4: int((model.counter_.df_ >= 4).sum())}
    names = {f"make {w}": f"make {m}" for m, w in widths.items()} | {f"drop {w}": f"drop {m}" for m, w in widths.items()}
    seen = [names.get(e, e) for e in events]
    if len(C) == 1:  # both points run together: which finishes first is not fixed
        seen = [e.split()[0] if e.startswith("point") else e for e in seen]
    assert seen == expected


def test_a_worker_unmaps_the_matrix_when_its_point_is_done():
    """Pages the parent has removed stay in memory while any process maps them: a worker maps a matrix
    for one point and lets go of it after."""
    import os

    import scipy.sparse as sp

    def mapped() -> int:
        return sum("rnnbench-" in line for line in Path(f"/proc/{os.getpid()}/maps").read_text().splitlines())

    x = sp.random(200, 50, density=0.1, format="csr", random_state=0)
    expected = x.toarray()
    with SharedCSR(x) as shared:
        before = mapped()  # the parent's own mappings
        with open_shared(shared.handle) as y:
            np.testing.assert_array_equal(y.toarray(), expected)
            assert mapped() == before + 3
            del y
        assert mapped() == before


def test_a_matrix_still_read_here_outlives_the_removal_of_its_segments():
    """Closing the shared copy while this process still reads the matrix (the grid's thread, when the
    grid ends on an error) removes the segments' names but leaves the pages readable until the matrix
    goes: no read of unmapped memory (which killed the process with SIGSEGV)."""
    import scipy.sparse as sp

    x = sp.random(300, 40, density=0.2, format="csr", random_state=1)
    expected = x.toarray()
    shared = SharedCSR(x)
    names = {part[0] for part in shared.handle[1].values()}
    shared.close()
    assert not names & shared_segments()  # removed from /dev/shm
    np.testing.assert_array_equal(x.toarray(), expected)  # and still readable here
    del x
    rnnbench.models.linear.shared_csr._close_lingering()
    assert not rnnbench.models.linear.shared_csr._LINGERING


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.slow  # an end-to-end run: in CI's full suite, not the edit loop
def test_a_grid_that_fails_while_its_thread_fits_ends_cleanly():
    """A worker that dies (the OOM killer, say) while the thread of the fitting process is mid-fit: the
    grid ends with the error, in a live process, and leaves no segment behind."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FAILING_GRID], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    *_, made, left, last = out.stdout.strip().splitlines()
    assert last == "BrokenProcessPool", out.stdout
    assert int(made.split()[1]) >= 3 and left == "left:", out.stdout  # checked before its resource tracker cleans up


FAILING_GRID = """
import os, signal, time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
import rnnbench.models.linear.model as L
from rnnbench.models.linear.spec import LinearConfig
from rnnbench.data import Split, Task, generate

L.PROCESS_MIN_NNZ = 0
fit_point = L.LinearBaseline._fit_point

def kill_workers():  # once the pool has started its worker
    for _ in range(600):
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == os.getpid() and \\
                        "spawn_main" in (stat.parent / "cmdline").read_text(errors="replace"):
                    os.kill(int(stat.parent.name), signal.SIGKILL)
                    return
            except (OSError, ValueError):
                pass
        time.sleep(0.05)

def slow(self, params, x_tr, *args):  # the thread here: kills the worker, then reads its matrix on
    kill_workers()
    out = fit_point(self, params, x_tr, *args)
    time.sleep(3)
    return out, float(x_tr.data.sum())

L.LinearBaseline._fit_point = slow
names = []

class Recorded(L.SharedCSR):
    def __init__(self, x):
        super().__init__(x)
        names.extend(part[0] for part in self.handle[1].values())

L.SharedCSR = Recorded
texts, y = generate(800, seed=3)
try:
    L.LinearBaseline(LinearConfig(min_df=[1, 2], C=[1.0, 10.0]), Task("s", "binary", 2), n_jobs=2).fit(
        Split(texts[:600], y[:600]), Split(texts[600:], y[600:]))
except BrokenProcessPool:
    time.sleep(5)  # the thread reads its matrix meanwhile
    print("made", len(names))
    print(" ".join(["left:", *(n for n in names if Path("/dev/shm", n).exists())]))
    print("BrokenProcessPool")
"""


@pytest.mark.parametrize("sublinear_tf,norm", [(True, "l2"), (False, "l2"), (True, None), (True, "l1")])
def test_tfidf_in_place_is_the_transformers_transform(data, monkeypatch, sublinear_tf, norm):
    monkeypatch.setattr(rnnbench.models.linear.model, "TFIDF_BLOCK", 7)  # many blocks
    counts = NgramCounter((1, 2), dtype=np.float64).fit_transform(data[0].texts)
    tfidf = TfidfTransformer(sublinear_tf=sublinear_tf, norm=norm).fit(counts)
    expected = tfidf.transform(counts.copy())
    data_array = counts.data
    out = rnnbench.models.linear.model.tfidf_in_place(tfidf, counts)
    assert out.data is data_array  # in place
    for attr in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(out, attr), getattr(expected, attr))  # bit for bit


GRID_IN_WORKERS = """
import sys, numpy as np
import rnnbench.models.linear.model as L
from rnnbench.models.linear.spec import LinearConfig
from rnnbench.data import Split, Task, generate
L.PROCESS_MIN_NNZ = 0
texts, y = generate(4000, seed=3)
model = L.LinearBaseline(LinearConfig(min_df=[1, 2], C=[0.1, 1.0, 10.0, 100.0], max_iter=100000), Task("s", "binary", 2),
                         n_jobs=3)  # one fit in a thread here, two in worker processes
model.fit(Split(texts[:3500], y[:3500]), Split(texts[3500:], y[3500:]))
"""


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_killed_fit_leaves_no_grid_worker_behind(tmp_path):
    """SIGKILL the process fitting the grid while its workers run: the workers go with it (they were
    left running, orphaned, holding their share of the matrices)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", GRID_IN_WORKERS])
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
        workers = {p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")}
        time.sleep(0.2)
    assert len(workers) >= 2, "the grid never started its workers"
    time.sleep(1.0)  # past their initializer
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and
                                              "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3]
                                              for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()
             and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3]]
    assert not alive, f"grid workers outlived their parent: {alive}"


HOLD_A_MATRIX = """
import sys, time, numpy as np, scipy.sparse as sp
from rnnbench.models.linear.shared_csr import SharedCSR
held = SharedCSR(sp.random(200, 50, density=0.1, format="csr", random_state=0))
print(" ".join(part[0] for part in held.handle[1].values()), flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="POSIX shared memory in /dev/shm (Linux)")
def test_segments_of_a_killed_process_group_are_removed_by_the_next_fit(capfd, stderr_log):
    """Kill a process holding shared matrices together with its resource tracker (as the end of a session
    or a container does): its segments stay in /dev/shm, in memory, until the next SharedCSR removes
    them; the segments of a process still running are left alone."""
    import os
    import signal
    import subprocess
    import sys

    import scipy.sparse as sp

    from rnnbench.models.linear.shared_csr import SharedCSR

    def holder():
        proc = subprocess.Popen([sys.executable, "-c", HOLD_A_MATRIX], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        return proc, proc.stdout.readline().split()

    dead, dead_names = holder()
    alive, alive_names = holder()
    try:
        assert len(dead_names) == 3 and all(n.startswith(f"rnnbench-{dead.pid}-") for n in dead_names)
        os.killpg(dead.pid, signal.SIGKILL)  # the holder and its resource tracker
        dead.wait()
        assert {*dead_names, *alive_names} <= shared_segments()  # nobody removed them
        old = time.time() - 120  # older than a segment whose owner may not have locked it yet
        for name in (*dead_names, *alive_names):
            os.utime(Path("/dev/shm", name), (old, old))
        with SharedCSR(sp.random(10, 5, density=0.5, format="csr", random_state=1)):
            left = shared_segments()
        assert not left & set(dead_names)
        assert set(alive_names) <= left
        owners = re.search(r"left by interrupted fits \(process ([\d, ]+)\)", capfd.readouterr().err)
        assert owners and str(dead.pid) in owners.group(1).split(", ")  # (others' leftovers may go too)
    finally:
        for proc in (dead, alive):
            if proc.poll() is None:
                proc.kill()  # the holder alone: its resource tracker removes its segments
                proc.wait()
        for name in (*dead_names, *alive_names):
            Path("/dev/shm", name).unlink(missing_ok=True)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="POSIX shared memory in /dev/shm (Linux)")
def test_a_segment_whose_owner_lives_in_another_pid_namespace_is_kept(tmp_path, monkeypatch):
    """Containers on one host can share /dev/shm but not their pids: a segment whose pid names no process
    here is kept while its owner holds its lock, and while it is new (its owner may not have locked it
    yet); once neither holds, it is removed."""
    import fcntl

    import rnnbench.models.linear.shared_csr as shared_csr

    monkeypatch.setattr(shared_csr, "SHM_DIR", tmp_path)  # a folder of its own: other fits sweep /dev/shm
    no_such_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    path = tmp_path / f"rnnbench-{no_such_pid}-0123456789ab"
    path.write_bytes(bytes(4096))
    assert shared_csr.remove_stale_segments() == 0 and path.exists()  # new: kept
    old = time.time() - 120
    os.utime(path, (old, old))
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # as SharedCSR's owner holds it (another descriptor: a lock apart)
    try:
        assert shared_csr.remove_stale_segments() == 0 and path.exists()  # locked: kept
    finally:
        os.close(fd)
    assert shared_csr.remove_stale_segments() == 4096 and not path.exists()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="POSIX shared memory in /dev/shm (Linux)")
def test_a_shared_matrix_holds_its_segments_locks_until_closed():
    import fcntl

    import scipy.sparse as sp

    def locked(name):
        fd = os.open(Path("/dev/shm", name), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    shared = SharedCSR(sp.random(20, 5, density=0.5, format="csr", random_state=2))
    try:
        names, fds = segment_names(shared.handle), list(shared._locks)
        assert len(names) == 3 and all(locked(n) for n in names)
    finally:
        shared.close()
    assert not any(Path("/dev/shm", n).exists() for n in names)
    for fd in fds:  # the lock descriptors are closed
        with pytest.raises(OSError):
            os.fstat(fd)


def test_without_file_locks_a_shared_matrix_still_works_and_nothing_is_swept(monkeypatch, tmp_path):
    """Where fcntl is missing (Windows), segments are neither locked nor swept."""
    import scipy.sparse as sp

    import rnnbench.models.linear.shared_csr as shared_csr

    monkeypatch.setattr(shared_csr, "fcntl", None)
    stale = tmp_path / "rnnbench-1-0123456789ab"
    stale.write_bytes(bytes(16))
    monkeypatch.setattr(shared_csr, "SHM_DIR", tmp_path)
    assert shared_csr.remove_stale_segments() == 0 and stale.exists()
    x = sp.random(20, 5, density=0.5, format="csr", random_state=3)
    expected = x.toarray()
    with SharedCSR(x) as shared:
        assert shared._locks == [-1, -1, -1]
        with open_shared(shared.handle) as y:
            got = y.toarray()
            del y  # the mapping closes when the block ends
    np.testing.assert_array_equal(got, expected)
