"""The fault battery: what rnnbench survives, with figures (docs/reliability.md).

    python scripts/faults.py            # the full battery (about 15 minutes on a 2-core CPU)
    python scripts/faults.py --quick    # a few of each kind (CI: about 2 minutes)

Kinds of fault, each counted:

- kills: SIGKILL at chosen writes (half of a checkpoint, a result, the tokenizer, the linear model's
  pickle, DONE, a table...) and at random moments, across a smoke ``compare`` (both models) and a smoke
  ``sweep``, rerunning after each; at the end the tables must equal an uninterrupted run's, no temp file
  may be left, and after every kill every run with ``DONE`` must load whole.
- SIGTERM: exit 143 within seconds, then the same command resumes to the same tables.
- ENOSPC: a full disk at every write site in turn (the write is cut half-way, then fails), and on a real
  tmpfs where one can be mounted: one ``Error:`` line, exit 1, no half-written file trusted later, and the
  same command then finishes with the uninterrupted run's tables.
- corrupt state: each file of a checkpoint truncated or garbled, a DONE beside a missing or garbled
  result.json, a torn metrics line, damaged model files in ``predict``.
- hostile input: hypothesis-generated ``--set`` values, config files and csv/tsv/jsonl files through the
  CLI (in-process): exit 0, or exit 2 with one ``Error:`` line; never a traceback.
- places: a read-only output folder, a data home and a compile cache that cannot be created.
- search: a compare whose GRU is tuned (TPE, a pruner), SIGKILLed at random moments and resumed each time: it
  must end with the uninterrupted search's chosen trials and tables.

The last line is one JSON object: kills, kills_recovered, tables_identical, sigterm_exit_ok, enospc_sites,
enospc_clean, corrupt_cases, corrupt_detected, fuzz_cases, tracebacks (must be 0), and details.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

COMPARE = ["compare", "configs/quickstart.yaml", "--smoke"]
SWEEP = ["sweep", "configs/fig1-gating.yaml", "--smoke"]
TINY = ["--set", "data.synthetic.train_size=600", "--set", "data.synthetic.test_size=200", "--set", "data.val_max=100",
        "--set", "rnn.epochs=2"]  # the quickstart's smoke sizes
SMALL = [*TINY, "--set", "data.sizes=[100]", "--set", "experiment.seeds=[0]"]  # one size, one seed
COMPARE_SMALL = ["compare", "configs/quickstart.yaml", *SMALL]  # two runs: linear and GRU
VOLATILE = {"train_seconds", "predict_seconds", "search_seconds", "run_dir", "time"}  # columns that differ between two runs
TABLES = ("crossover.csv", "curves.csv", "sweep.csv")
# files a command may fail to write and go on without: caches, and the diagnostic log of run claims
CACHES = ("digests.json", "registered.json", "log.jsonl")


# ------------------------------------------------------------------------------------------ child mode


def child(spec: str, args: list[str]) -> None:
    """Run the CLI with a fault armed: ``write:NAME:N`` SIGKILLs this process half-way through the N-th
    write of a file named NAME; ``save:N`` right after the N-th checkpoint save has begun."""
    kind, _, rest = spec.partition(":")
    if kind == "write":
        from rnnbench import fileio

        name, n = rest.rsplit(":", 1)
        real, seen = fileio._write_all, [0]

        def write(fd, data, path):
            if Path(path).name == name:
                seen[0] += 1
                if seen[0] == int(n):
                    os.write(fd, data[: len(data) // 2])
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(fd, data, path)

        fileio._write_all = write
    elif kind == "save":
        import orbax.checkpoint as ocp

        real_save, seen = ocp.CheckpointManager.save, [0]

        def save(self, step, *a, **k):
            seen[0] += 1
            out = real_save(self, step, *a, **k)
            if seen[0] == int(rest):
                time.sleep(0.02)  # orbax is writing in its threads
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        ocp.CheckpointManager.save = save
    from rnnbench.cli import main

    main(args, prog_name="rnnbench")


# ------------------------------------------------------------------------------------------ helpers


class Battery:
    def __init__(self, out: Path, quick: bool, seed: int):
        self.out, self.quick, self.rng = out, quick, random.Random(seed)
        self.env = {**os.environ, "RNNBENCH_DATA": str(out / "data-home"), "PYTHONPATH": str(ROOT),
                    "JAX_PLATFORMS": "cpu", "TQDM_DISABLE": "1"}
        self.figures: dict = {"kills": 0, "kills_recovered": 0, "tables_identical": True, "sigterm_cases": 0,
                              "sigterm_exit_ok": 0, "sigterm_max_exit_s": 0.0, "enospc_sites": 0, "enospc_clean": 0, "enospc_recoverable": 0,
                              "corrupt_cases": 0, "corrupt_detected": 0, "corrupt_harmless": 0, "corrupt_wrong": 0,
                              "fuzz_cases": 0, "tracebacks": 0, "places_cases": 0, "places_ok": 0, "orphans": 0,
                              "tables_compared": 0, "tmpfs": "not tried", "search_kills": 0, "search_same_choice": None}
        self.problems: list[str] = []
        self.references: dict[str, tuple] = {}

    def note(self, problem: str) -> None:
        self.problems.append(problem)
        print(f"  PROBLEM: {problem}", file=sys.stderr, flush=True)

    # -------------------------------------------------------------- processes
    def popen(self, args: list[str], spec: str | None = None, env: dict | None = None) -> subprocess.Popen:
        cmd = [sys.executable, __file__, "--child", spec, "--", *args] if spec else \
            [sys.executable, "-m", "rnnbench.cli", *args]
        return subprocess.Popen(cmd, cwd=ROOT, env=env or self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)

    def reference(self, args: list[str], folder: Path) -> tuple[int, str]:
        """An uninterrupted run of ``args`` into ``folder``, made once per command."""
        key = json.dumps(args)
        if key not in self.references:
            self.references[key] = (folder, *self.run(args + self.out_args(folder)))
        first, rc, err = self.references[key]
        if first != folder:
            shutil.copytree(first, folder, symlinks=True)
        return rc, err

    def run(self, args: list[str], spec: str | None = None, env: dict | None = None) -> tuple[int, str]:
        p = self.popen(args, spec, env)
        _, err = p.communicate(timeout=900)
        return p.returncode, err

    @staticmethod
    def out_args(folder: Path) -> list[str]:
        return ["--set", f"experiment.output_dir={folder}"]

    # -------------------------------------------------------------- checks
    @staticmethod
    def tables(exp: Path) -> dict:
        out = {}
        for name in TABLES:
            f = exp / name
            if f.exists():
                rows = list(csv.DictReader(io.StringIO(f.read_text())))
                out[name] = [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]
        return out

    @staticmethod
    def experiments(root: Path) -> list[Path]:
        return sorted(p.parent for p in root.glob("*/runs"))

    @staticmethod
    def broken_done_runs(root: Path) -> list[str]:
        """Runs with DONE whose files do not all load."""
        import numpy as np

        from rnnbench.runs import Run

        bad = []
        for done in root.rglob("runs/*/DONE"):
            run = Run(done.parent)
            try:
                result = run.result()
                if result.ok and result.model == "linear":
                    pickle.loads((run.path / "model.pkl").read_bytes())
                elif result.ok:
                    with np.load(run.path / "params.npz") as z:
                        [z[k] for k in z.files]
                    json.loads((run.path / "model.json").read_text())
                    json.loads((run.path / "tokenizer.json").read_text())
            except Exception as e:  # noqa: BLE001
                bad.append(f"{run.path.name}: {type(e).__name__}: {e}")
        return bad

    @staticmethod
    def orphans(root: Path) -> list[Path]:
        return [p for p in root.rglob("*") if p.name.endswith(".tmp") or "orbax-checkpoint-tmp" in p.name
                or ".trash-" in p.name]

    def same_tables(self, got: Path, ref: Path, what: str) -> bool:
        """The tables of ``got`` and ``ref`` agree, timings aside (on the columns both have: a table written
        by an rnnbench with another column compares on the others)."""
        self.figures["tables_compared"] += 1
        a, b = self.tables(got), self.tables(ref)
        for name in set(a) & set(b):
            common = set(a[name][0] if a[name] else {}) & set(b[name][0] if b[name] else {})
            a[name], b[name] = ([{k: v for k, v in r.items() if k in common} for r in t] for t in (a[name], b[name]))
        if not b or a != b:
            self.figures["tables_identical"] = False
            self.note(f"{what}: tables differ from the uninterrupted run's ({sorted(a)} vs {sorted(b)})")
            return False
        return True

    # -------------------------------------------------------------- kills
    def kills(self) -> None:
        targets = [("compare", COMPARE_SMALL)] if self.quick else [("compare", COMPARE), ("sweep", SWEEP)]
        for name, args in targets:
            ref = self.out / f"kill-{name}-ref"
            t0 = time.perf_counter()
            rc, err = self.reference(args, ref)
            duration = time.perf_counter() - t0
            if rc != 0:
                self.note(f"{name}: the uninterrupted run failed: {err.strip().splitlines()[-1:]}")
                continue
            rounds = self.kill_rounds(name)
            for k, specs in enumerate(rounds):
                self.kill_round(f"{name}-{k}", args, specs, duration, self.experiments(ref))

    def search(self) -> None:
        """A tuned GRU's search killed at random moments: resumed, it chooses what an uninterrupted one does."""
        space = "search={rnn: {space: {rnn.learning_rate: [0.0003, 0.001, 0.003, 0.01]}, sampler: tpe, trials: 4, pruner: halving}}"
        args = [*COMPARE_SMALL, "--set", space]
        ref = self.out / "search-ref"
        t0 = time.perf_counter()
        rc, err = self.reference(args, ref)
        duration = time.perf_counter() - t0
        if rc != 0:
            self.note(f"search: the uninterrupted run failed: {err.strip().splitlines()[-1:]}")
            return
        folder = self.out / "search-killed"
        for _ in range(2 if self.quick else 5):
            p = self.popen(args + self.out_args(folder))
            try:
                p.wait(timeout=self.rng.uniform(2.0, max(3.0, 0.8 * duration)))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                self.figures["search_kills"] += 1
        rc, err = self.run(args + self.out_args(folder))
        if rc != 0:
            self.note(f"search: the resumed run failed ({rc}): {err.strip().splitlines()[-1:]}")
        chosen = [{p.name: json.loads(p.read_text())["chosen"] for p in sorted((f / "quickstart" / "search").glob("*.json"))}
                  for f in (folder, ref)]
        same = bool(chosen[0]) and chosen[0] == chosen[1]
        self.figures["search_same_choice"] = same
        if not same:
            self.note(f"search: the resumed search chose {chosen[0]}, the uninterrupted one {chosen[1]}")
        self.same_tables(folder / "quickstart", ref / "quickstart", "search kills")

    def kill_rounds(self, name: str) -> list[list[str | None]]:
        """The kills of each round on a fresh folder (None: at a random moment)."""
        if self.quick:
            return [["write:model.pkl:1", "save:1", "write:result.json:1"]]
        if name == "compare":
            return [["save:1", "write:model.pkl:1", "write:tokenizer.json:1", "write:result.json:2", None, None],
                    ["write:params.npz:1", "write:DONE:3", "save:2", "write:metrics.jsonl:25", None,
                     "write:curves.csv:1", "write:crossover.md:1"],
                    [None, None, None, "write:model.json:1"]]
        return [["save:1", "write:tokenizer.json:1", None, "write:result.json:1", None, "write:sweep.csv:1"],
                [None, "write:params.npz:1", None]]

    def kill_round(self, label: str, args: list[str], specs: list, duration: float, refs: list[Path]) -> None:
        folder = self.out / f"kill-{label}"
        delivered, consistent = 0, True
        for spec in specs:
            if spec is None:  # a random moment of the remaining work
                p = self.popen(args + self.out_args(folder))
                try:
                    p.wait(timeout=self.rng.uniform(1.5, max(2.0, 0.6 * duration)))
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                rc = p.returncode
            else:
                rc, _ = self.run(args + self.out_args(folder), spec)
            if rc == -signal.SIGKILL:
                delivered += 1
                broken = self.broken_done_runs(folder)
                if broken:
                    consistent = False
                    self.note(f"kill {label} ({spec or 'random'}): DONE runs that do not load: {broken[:2]}")
        rc, err = self.run(args + self.out_args(folder))
        ok = rc == 0
        if not ok:
            self.note(f"kill {label}: the rerun failed ({rc}): {err.strip().splitlines()[-1:]}")
        for ref in refs:
            ok &= self.same_tables(folder / ref.name, ref, f"kill {label}")
        left = self.orphans(folder)
        if left:
            self.figures["orphans"] += len(left)
            self.note(f"kill {label}: temp files left: {[str(p.relative_to(folder)) for p in left[:3]]}")
        self.figures["kills"] += delivered
        if ok and consistent and not left:
            self.figures["kills_recovered"] += delivered
        print(f"kills {label}: {delivered} delivered, {'recovered' if ok and consistent and not left else 'NOT'}",
              file=sys.stderr, flush=True)

    # -------------------------------------------------------------- SIGTERM
    def sigterm(self) -> None:
        cases = [("rnn-train", ["train", "configs/quickstart.yaml", "--model", "rnn", "--size", "300",
                                "--set", "data.synthetic.train_size=600", "--set", "data.synthetic.test_size=200",
                                "--set", "data.val_max=100", "--set", "rnn.epochs=3"], '"train"'),
                 ("linear-compare", COMPARE + ["--models", "linear"], None),
                 ("sweep", SWEEP, '"train"')]
        if self.quick:  # the GRU's training within a compare; its reference is the kills'
            cases = [("compare", COMPARE_SMALL, '"train"')]
        for name, args, wait_for in cases:
            ref, folder = self.out / f"term-{name}-ref", self.out / f"term-{name}"
            if self.reference(args, ref)[0] != 0:
                self.note(f"sigterm {name}: the uninterrupted run failed")
                continue
            p = self.popen(args + self.out_args(folder))
            deadline = time.time() + 300
            while time.time() < deadline and p.poll() is None:  # until it works (the handler is installed)
                started = list(folder.glob("*/runs/*/metrics.jsonl"))
                if started and (wait_for is None or any(wait_for in f.read_text() for f in started)):
                    break
                time.sleep(0.05)
            time.sleep(self.rng.uniform(0.0, 1.0))
            sent = time.perf_counter()
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=300)
            took = time.perf_counter() - sent
            if p.returncode == 0:
                print(f"sigterm {name}: finished before the signal", file=sys.stderr)
                continue
            self.figures["sigterm_cases"] += 1
            self.figures["sigterm_max_exit_s"] = round(max(self.figures["sigterm_max_exit_s"], took), 2)
            ok = p.returncode == 143 and took < 60 and "Traceback" not in err and not self.broken_done_runs(folder)
            if not ok:
                self.note(f"sigterm {name}: exit {p.returncode} after {took:.1f} s: {err.strip().splitlines()[-2:]}")
            rc, err = self.run(args + self.out_args(folder))
            ok &= rc == 0
            compare = self.same_results if args[0] == "train" else self.same_tables  # train writes no tables
            for exp in self.experiments(ref):
                ok &= compare(folder / exp.name, exp, f"sigterm {name}")
            ok &= not self.orphans(folder)
            self.figures["sigterm_exit_ok"] += bool(ok)
            print(f"sigterm {name}: exit {p.returncode} in {took:.2f} s, {'resumed' if ok else 'NOT ok'}",
                  file=sys.stderr, flush=True)

    def same_results(self, got: Path, ref: Path, what: str) -> bool:
        def metrics(exp):
            return sorted(json.dumps(json.loads(f.read_text())["metrics"], sort_keys=True)
                          for f in exp.glob("runs/*/result.json"))

        self.figures["tables_compared"] += 1
        if metrics(got) != metrics(ref) or not metrics(ref):
            self.figures["tables_identical"] = False
            self.note(f"{what}: results differ from the uninterrupted run's")
            return False
        return True

    # -------------------------------------------------------------- in-process CLI
    @contextlib.contextmanager
    def in_process(self):
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @staticmethod
    def invoke(args: list[str]):
        from click.testing import CliRunner

        from rnnbench.cli import main

        old = os.getcwd()
        os.chdir(ROOT)
        try:
            return CliRunner().invoke(main, args)
        finally:
            os.chdir(old)

    @staticmethod
    def error_lines(r) -> list[str]:
        return [x for x in r.stderr.splitlines() if x.startswith(("Error", "Traceback", "Terminated"))]

    # -------------------------------------------------------------- ENOSPC
    def enospc(self) -> None:
        import orbax.checkpoint as ocp

        from rnnbench import fileio

        args = COMPARE_SMALL
        with self.in_process():
            ref = self.out / "enospc-ref"
            sites: list[str] = []
            real_write, real_save = fileio._write_all, ocp.CheckpointManager.save

            def record(fd, data, path):
                if Path(path).name not in sites:
                    sites.append(Path(path).name)
                return real_write(fd, data, path)

            def record_save(self_, step, *a, **k):
                if "checkpoint" not in sites:
                    sites.append("checkpoint")
                return real_save(self_, step, *a, **k)

            fileio._write_all, ocp.CheckpointManager.save = record, record_save
            try:
                r = self.invoke(args + self.out_args(ref))
            finally:
                fileio._write_all, ocp.CheckpointManager.save = real_write, real_save
            if r.exit_code != 0:
                self.note(f"enospc: the reference run failed: exit {r.exit_code} {r.exception!r} {r.output[-300:]}")
                return
            if self.quick:
                sites = [s for s in sites if s in ("checkpoint", "model.pkl")]
            for site in sites:
                self.enospc_site(site, args, ref)
        if not self.quick:
            self.tmpfs(args, ref)

    def enospc_site(self, site: str, args: list[str], ref: Path) -> None:
        import orbax.checkpoint as ocp

        from rnnbench import fileio

        folder = self.out / f"enospc-{site}"
        real_write, real_save, hit = fileio._write_all, ocp.CheckpointManager.save, []

        def write(fd, data, path):
            if Path(path).name == site and not hit:
                hit.append(path)
                os.write(fd, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return real_write(fd, data, path)

        def save(self_, step, *a, **k):
            if site == "checkpoint" and not hit:
                hit.append(step)
                (Path(self_.directory) / f"{step}.orbax-checkpoint-tmp-0").mkdir(parents=True)
                raise ValueError("RESOURCE_EXHAUSTED: writing a checkpoint file: No space left on device")
            return real_save(self_, step, *a, **k)

        fileio._write_all, ocp.CheckpointManager.save = write, save
        try:
            r = self.invoke(args + self.out_args(folder))
        finally:
            fileio._write_all, ocp.CheckpointManager.save = real_write, real_save
        self.figures["enospc_sites"] += 1
        errors = self.error_lines(r)
        failed_cleanly = r.exit_code == 1 and len(errors) == 1 and "No space left" in errors[0]
        tolerated = r.exit_code == 0 and not errors and site in CACHES  # a cache the run can do without
        ok = bool(hit) and (failed_cleanly or tolerated) and (r.exception is None or isinstance(r.exception, SystemExit))
        broken = self.broken_done_runs(folder)
        again = self.invoke(args + self.out_args(folder))
        recoverable = bool(hit) and not broken and again.exit_code == 0
        for exp in self.experiments(ref):
            recoverable &= self.same_tables(folder / exp.name, exp, f"enospc {site}")
        left = self.orphans(folder)
        recoverable &= not left
        ok &= recoverable
        self.figures["enospc_recoverable"] += bool(recoverable)
        if not ok:
            self.note(f"enospc {site}: exit {r.exit_code} {errors[:1] or r.exception!r}, rerun {again.exit_code}, "
                      f"broken {broken[:1]}, temp files {len(left)}")
        self.figures["enospc_clean"] += bool(ok)
        print(f"enospc {site}: {'clean' if ok else 'NOT clean'} ({errors[0][:90] if errors else 'exit 0'})",
              file=sys.stderr, flush=True)

    def tmpfs(self, args: list[str], ref: Path) -> None:
        mnt = self.out / "tmpfs"
        mnt.mkdir(exist_ok=True)
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)],
                                               capture_output=True).returncode != 0:
            self.figures["tmpfs"] = "unavailable (needs root and mount)"
            return
        try:
            rc, err = self.run(args + self.out_args(mnt / "out"))
            lines = [x for x in err.splitlines() if x.startswith(("Error", "Traceback"))]
            ok = rc == 1 and len(lines) == 1 and "No space left" in lines[0] and not self.broken_done_runs(mnt)
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            rc2, _ = self.run(args + self.out_args(mnt / "out"))
            ok &= rc2 == 0 and not self.orphans(mnt)
            for exp in self.experiments(ref):
                ok &= self.same_tables(mnt / "out" / exp.name, exp, "tmpfs")
            self.figures["tmpfs"] = "clean" if ok else f"NOT clean (exit {rc}: {lines[:1]})"
            self.figures["enospc_sites"] += 1
            self.figures["enospc_clean"] += bool(ok)
            self.figures["enospc_recoverable"] += rc2 == 0 and not self.orphans(mnt)
        finally:
            subprocess.run(["umount", str(mnt)], capture_output=True)

    # -------------------------------------------------------------- corrupt state
    def corrupt(self) -> None:
        args = ["train", "configs/quickstart.yaml", "--model", "rnn", *SMALL]
        with self.in_process():
            pristine = self.out / "corrupt-ref"
            r = self.invoke(args + self.out_args(pristine))
            if r.exit_code != 0:
                self.note(f"corrupt: the reference run failed: exit {r.exit_code} {r.exception!r} {r.output[-300:]}")
                return
            (run,) = pristine.glob("*/runs/rnn-*")
            expected = json.loads((run / "result.json").read_text())["metrics"]
            files = sorted(p for p in (run / "checkpoints").rglob("*") if p.is_file())
            cases = [(f"checkpoint {f.relative_to(run / 'checkpoints')} {how}", f.relative_to(run), how)
                     for f in files for how in ("truncated", "garbled")]
            cases += [("DONE, result.json missing", Path("result.json"), "deleted"),
                      ("DONE, result.json garbled", Path("result.json"), "garbled"),
                      ("metrics.jsonl torn last line", Path("metrics.jsonl"), "torn")]
            if self.quick:  # the largest data file garbled, a DONE without its result
                big = max(files, key=lambda f: f.stat().st_size).relative_to(run)
                cases = [(f"checkpoint {big.name} garbled", big, "garbled"), cases[-3]]
            for k, (name, rel, how) in enumerate(cases):
                folder = self.out / f"corrupt-{k}"
                shutil.copytree(pristine, folder)
                (copy,) = folder.glob("*/runs/rnn-*")
                if rel.parts[0] == "checkpoints" or how == "torn":
                    (copy / "DONE").unlink()  # killed after its last checkpoint
                self.damage(copy / rel, how)
                r = self.invoke(args + self.out_args(folder))
                got = json.loads((copy / "result.json").read_text())["metrics"] if (copy / "DONE").exists() else None
                warned = "cannot be read back" in r.stderr or "has DONE but" in r.stderr
                self.count_corrupt(name, r.exit_code == 0 and got == expected, warned)
            self.predict_cases()

    @staticmethod
    def damage(path: Path, how: str) -> None:
        if how == "deleted":
            path.unlink()
            return
        blob = bytearray(path.read_bytes())
        if how == "truncated":
            blob = blob[: len(blob) // 2]
        elif how == "garbled":
            at = len(blob) // 2
            blob[at:at + 8] = bytes(b ^ 0x5A for b in blob[at:at + 8])
        elif how == "torn":
            blob += b'{"event": "train", "step": 99'
        path.write_bytes(bytes(blob))

    def count_corrupt(self, name: str, right: bool, detected: bool) -> None:
        self.figures["corrupt_cases"] += 1
        if right and detected:
            self.figures["corrupt_detected"] += 1
        elif right:
            self.figures["corrupt_harmless"] += 1  # the damaged part was not needed (or is skipped by design)
        else:
            self.figures["corrupt_wrong"] += 1
            self.note(f"corrupt {name}: wrong outcome")
        print(f"corrupt {name}: {'detected' if right and detected else 'harmless' if right else 'WRONG'}",
              file=sys.stderr, flush=True)

    def predict_cases(self) -> None:
        lin = self.out / "corrupt-linear"
        self.invoke(["train", "configs/quickstart.yaml", "--model", "linear", *SMALL] + self.out_args(lin))
        runs = {"linear": next(lin.glob("*/runs/linear-*")), "rnn": next((self.out / "corrupt-ref").glob("*/runs/rnn-*"))}
        victims = [("linear", "model.pkl"), ("rnn", "params.npz"), ("rnn", "model.json"), ("rnn", "tokenizer.json")]
        for kind, victim in victims[:2] if self.quick else victims:
            folder = self.out / f"corrupt-predict-{victim}"
            shutil.copytree(runs[kind], folder)
            self.damage(folder / victim, "truncated")
            r = self.invoke(["predict", str(folder), "a good film"])
            lines = self.error_lines(r)
            ok = r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error:")
            self.count_corrupt(f"predict with {victim} truncated", ok, ok)

    # -------------------------------------------------------------- fuzz
    def fuzz(self) -> None:
        import yaml
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        n = 25 if self.quick else 300
        keys = ["experiment.name", "experiment.seeds", "experiment.output_dir", "data.dataset", "data.sizes",
                "data.max_len", "data.val_fraction", "data.path", "data.synthetic.train_size", "tokenizer.min_df",
                "linear.C", "linear.ngram_range", "rnn.cell", "rnn.hidden_dim", "rnn.learning_rate", "rnn.clip_norm",
                "rnn.checkpoint_every_s", "sweep.grid", "sweep.zip", "sweep", "plot", "smoke", "compute.threads",
                "nope.nothing", "rnn", "data.synthetic", "data.label_map", "data.delimiter"]
        scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
                            st.floats(), st.text(max_size=40),
                            st.sampled_from(["gru", "1e400", "-.inf", ".nan", "~", "[1, 2", "{a: 1}", "&a [*a]", "\x00",
                                             "!!python/object:os.system", "é🙂", "0x10", "1_000", "a\u2028b", "x" * 5000]))
        values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                               st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                              max_leaves=16)
        opts = settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        sweep_cfg = ROOT / "configs" / "fig1-gating.yaml"
        scratch = self.out / "fuzz"
        scratch.mkdir(exist_ok=True)

        def check(what: str, r) -> None:
            self.figures["fuzz_cases"] += 1
            lines = self.error_lines(r)
            clean = (r.exception is None or isinstance(r.exception, SystemExit)) and (
                r.exit_code == 0 or (r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: ")))
            if not clean:
                self.figures["tracebacks"] += 1
                self.note(f"fuzz {what}: exit {r.exit_code}, {r.exception!r}, {r.stderr[-200:]!r}")

        @opts
        @given(st.lists(st.tuples(st.sampled_from(keys), values), max_size=4))
        def fuzz_set(pairs):
            args = []
            for key, value in pairs:
                text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
                args += ["--set", f"{key}={text}"]
            check(f"config show {args}", self.invoke(["config", "show", str(sweep_cfg), *args]))
            check(f"sweep --dry-run {args}", self.invoke(["sweep", str(sweep_cfg), "--dry-run", "--set",
                                                          f"experiment.output_dir={scratch / 'out'}", *args]))

        @opts
        @given(st.one_of(st.dictionaries(st.sampled_from(["experiment", "data", "rnn", "linear", "sweep", "plot",
                                                          "smoke", "compute", "tokenizer", "x"]), values, max_size=5),
                         values, st.text(max_size=300), st.binary(max_size=300)))
        def fuzz_config(doc):
            path = scratch / "c.yaml"
            if isinstance(doc, bytes):
                path.write_bytes(doc)
            elif isinstance(doc, str):
                path.write_bytes(doc.encode("utf-8", "surrogatepass"))
            else:
                path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
            check(f"config file {doc!r:.100}", self.invoke(["config", "show", str(path)]))

        cells = st.one_of(st.text(max_size=30), st.sampled_from(["", "\x00", "0", "1", "nan", '"', 'a,"b', "\t", "é",
                                                                 "\r\n", "\ufeff", "x" * 70000]))

        @opts
        @given(fmt=st.sampled_from(["csv", "tsv", "jsonl"]), rows=st.lists(st.tuples(cells, cells), max_size=15),
               raw=st.one_of(st.none(), st.binary(max_size=400)), huge=st.booleans(), latin=st.booleans())
        def fuzz_data(fmt, rows, raw, huge, latin):
            path = scratch / f"d.{fmt}"
            sep = "," if fmt == "csv" else "\t"
            if raw is not None:
                blob = raw
            elif fmt == "jsonl":
                blob = "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows).encode("utf-8", "surrogatepass")
            else:
                body = "".join(f"{t}{sep}{y}\n" for t, y in rows) + ("x" * 1_000_000 + f"{sep}1\n" if huge else "")
                blob = f"text{sep}label\n{body}".encode("utf-8", "surrogatepass")
            if latin:
                blob += f"caf\xe9{sep}1\n".encode("latin-1")
            path.write_bytes(blob)
            check(f"{fmt} file {blob[:80]!r}", self.invoke(["data", "info", fmt, "--path", str(path), "--set",
                                                           "data.text_columns=[text]", "--set",
                                                           "data.label_column=label"]))

        with self.in_process():
            for fuzzer in (fuzz_set, fuzz_config, fuzz_data):
                fuzzer()
        print(f"fuzz: {self.figures['fuzz_cases']} cases, {self.figures['tracebacks']} tracebacks", file=sys.stderr)

    # -------------------------------------------------------------- places
    def places(self) -> None:
        args = COMPARE_SMALL
        blocker = self.out / "a-file"
        blocker.write_text("")
        env = {k: v for k, v in self.env.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        cases = [("data home uncreatable", {**env, "RNNBENCH_DATA": str(blocker / "home")}, "compile cache folder"),
                 ("compile cache unwritable", {**env, "JAX_COMPILATION_CACHE_DIR": str(blocker / "jax")},
                  "compilation cache")]
        if self.quick:  # (tests/test_faults.py trains with an uncreatable data home)
            cases = []
        for name, case_env, warning in cases:
            rc, err = self.run(args + self.out_args(self.out / f"place-{len(name)}"), env=case_env)
            ok = rc == 0 and "Traceback" not in err and err.count(warning) <= 1
            self.place(name, ok, f"exit {rc}, {err.count(warning)} warnings")
        rc, err = self.run(args + self.out_args(blocker / "out"))
        lines = [x for x in err.splitlines() if x.startswith(("Error", "Traceback"))]
        self.place("output folder uncreatable", rc in (1, 2) and len(lines) == 1, f"exit {rc}, {lines[:1]}")
        ro = self.out / "read-only"
        ro.mkdir(exist_ok=True)
        if os.geteuid() != 0:
            ro.chmod(0o555)
        elif subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                            capture_output=True).returncode != 0:
            return  # root, and no read-only mount: cannot make a folder root cannot write
        try:
            rc, err = self.run(args + self.out_args(ro))
            lines = [x for x in err.splitlines() if x.startswith(("Error", "Traceback"))]
            self.place("output folder read-only", rc in (1, 2) and len(lines) == 1 and lines[0].startswith("Error:"),
                       f"exit {rc}, {lines[:1]}")
        finally:
            if os.geteuid() == 0:
                subprocess.run(["umount", str(ro)], capture_output=True)
            else:
                ro.chmod(0o755)

    def place(self, name: str, ok: bool, detail: str) -> None:
        self.figures["places_cases"] += 1
        self.figures["places_ok"] += bool(ok)
        if not ok:
            self.note(f"{name}: {detail}")
        print(f"place {name}: {'ok' if ok else 'NOT ok'} ({detail})", file=sys.stderr, flush=True)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[sys.argv.index("--") + 1:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few of each kind (CI)")
    ap.add_argument("--out", default=None, help="scratch folder (default: a new temp folder, removed after)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
    ap.add_argument("--only", default=None, help="comma-separated kinds: kills,sigterm,enospc,corrupt,fuzz,places,search")
    a = ap.parse_args()
    import tempfile

    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="rnnbench-faults-"))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    battery = Battery(out.resolve(), a.quick, a.seed)
    t0 = time.perf_counter()
    kinds = a.only.split(",") if a.only else ["fuzz", "places", "corrupt", "enospc", "sigterm", "kills", "search"]
    for kind in kinds:
        print(f"== {kind}", file=sys.stderr, flush=True)
        getattr(battery, kind)()
    figures = {**battery.figures, "problems": len(battery.problems), "quick": a.quick,
               "seconds": round(time.perf_counter() - t0, 1)}
    if not a.out:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(figures), flush=True)
    bad = (figures["tracebacks"] or battery.problems or figures["kills_recovered"] != figures["kills"]
           or not figures["tables_identical"] or figures["search_same_choice"] is False)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
