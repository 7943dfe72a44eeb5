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
- hardening (issue #44): a ``train --force`` killed during its rerun (the finished run must stay whole), a YAML
  alias bomb, names that are paths, values listed twice, result.json of the wrong types, lease files with
  garbage, wrong types or a folder in their place, clocks that disagree between hosts, a holder suspended and
  taken over, sizes that cannot fit, an archive bomb, SIGTERM and Ctrl-C twice, inputs that never end (stdin,
  /dev/zero, a pipe), messages that named the wrong cause, a real disk filling during a checkpoint (root).

The last line is one JSON object: kills, kills_recovered, tables_identical, sigterm_exit_ok, enospc_sites,
enospc_clean, corrupt_cases, corrupt_detected, fuzz_cases, hardening_cases, hardening_ok, and tracebacks, hangs
(a child that outlived its timeout) and data_losses, which must all be 0; and details.
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


# ------------------------------------------------------------------------------------------ hardening (issue #44)

# run the rest of the command line with SIGINT at its default (Python then turns it into KeyboardInterrupt)
WITH_CTRL_C = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
HARD_CFG = {"experiment": {"name": "h", "seeds": [0]},
            "data": {"dataset": "synthetic", "synthetic": {"train_size": 300, "test_size": 100}, "sizes": [100]},
            "linear": {"min_df": [1], "C": [1.0]},
            "rnn": {"embed_dim": 8, "hidden_dim": 8, "batch_size": 32, "epochs": 2, "buckets": 2, "learning_rate": 0.01}}


class Hardening:
    """What an attack on runs, leases, configs and files broke (issue #44), each class a few cases: a forced
    rerun killed (data loss), hostile configs (an alias bomb, names that are paths, values listed twice), damaged
    results and leases, clocks that disagree, a disk that fills during a checkpoint, sizes that cannot fit,
    archive bombs, signals that arrive twice, inputs that never end, messages that name the wrong cause. Each
    case passes or is a problem; hangs (a child past its timeout), data losses and tracebacks are counted."""

    def hardening(self) -> None:
        cases = [self.h_force, self.h_configs, self.h_damaged_result, self.h_leases, self.h_clocks, self.h_sizes,
                 self.h_archive, self.h_signals_twice, self.h_endless, self.h_causes, self.h_full_disk]
        if not self.quick:
            cases.append(self.h_takeover)
        with self.in_process():
            for case in cases:
                case()
        print(f"hardening: {self.figures['hardening_ok']}/{self.figures['hardening_cases']} ok, "
              f"{self.figures['hangs']} hangs, {self.figures['data_losses']} data losses", file=sys.stderr, flush=True)

    # -------------------------------------------------------------- helpers
    def case(self, name: str, ok: bool, detail: str = "") -> bool:
        self.figures["hardening_cases"] += 1
        self.figures["hardening_ok"] += bool(ok)
        if not ok:
            self.note(f"hardening {name}: {detail}")
        print(f"hardening {name}: {'ok' if ok else 'NOT ok'}", file=sys.stderr, flush=True)
        return ok

    def h_config(self, name: str, **sections) -> Path:
        import yaml

        folder = self.out / f"hard-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        raw = json.loads(json.dumps(HARD_CFG))
        raw["experiment"]["output_dir"] = str(folder / "out")
        for key, values in sections.items():
            raw.setdefault(key, {}).update(values)
        path = folder / "c.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def clean(self, r, code: int, words: str = "") -> bool:
        """An in-process command that exited ``code`` with at most one ``Error:`` line holding ``words``;
        a traceback is counted."""
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            self.figures["tracebacks"] += 1
            return False
        lines = self.error_lines(r)
        return r.exit_code == code and (code == 0 or (len(lines) == 1 and lines[0].startswith("Error: ")
                                                      and words in lines[0]))

    def clean_err(self, rc, err: str, code: int, words: str = "") -> bool:
        """The same, of a child's exit and stderr."""
        if "Traceback" in err:
            self.figures["tracebacks"] += 1
            return False
        lines = [x for x in err.splitlines() if x.startswith(("Error", "Terminated", "Interrupted"))]
        return rc == code and (code == 0 or (len(lines) == 1 and words in lines[0]))

    @staticmethod
    def whole(exp_root: Path, model: str) -> dict | None:
        """The metrics of the one finished ``model`` run under ``exp_root``, its model file read back; None if
        there is none whole."""
        from rnnbench.runs import Run

        found = sorted(exp_root.glob(f"*/runs/{model}-*"))
        if len(found) != 1:
            return None
        try:
            result = Run(found[0]).require_done()
            blob = (found[0] / ("model.pkl" if model == "linear" else "params.npz")).read_bytes()
            return result.metrics if blob else None
        except Exception:  # noqa: BLE001
            return None

    # -------------------------------------------------------------- cases
    def h_force(self) -> None:
        """Data loss: train --force killed during its rerun must leave the finished run whole."""
        kills = [("linear", "write:result.json:1")] if self.quick else [
            ("linear", "write:model.pkl:1"), ("linear", "write:result.json:1"), ("linear", "write:DONE:1"),
            ("rnn", "save:1"), ("rnn", "write:params.npz:1"), ("rnn", None)]
        for kind, spec in kills:
            cfg = self.h_config(f"force-{kind}-{spec}")
            out = cfg.parent / "out"
            self.run(["train", str(cfg), "--model", kind])
            before = self.whole(out, kind)
            if spec is None:  # a random moment of the rerun
                p = self.popen(["train", str(cfg), "--model", kind, "--force"])
                try:
                    p.wait(timeout=self.rng.uniform(1.0, 6.0))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            else:
                self.run(["train", str(cfg), "--model", kind, "--force"], spec)
            lost = before is None or self.whole(out, kind) != before
            self.figures["data_losses"] += lost
            rc, err = self.run(["train", str(cfg), "--model", kind, "--force"])
            hidden = [p.name for p in out.glob("*/runs/.*")]
            self.case(f"force {kind} killed at {spec or 'random'}", not lost and rc == 0 and not hidden
                      and self.whole(out, kind) == before, f"lost {lost}, rerun {rc}, left {hidden}")

    def h_configs(self) -> None:
        """Hostile configs: an alias bomb, a self-referring alias, names that are paths, values twice."""
        folder = self.out / "hard-configs"
        folder.mkdir(exist_ok=True)
        bomb = folder / "bomb.yaml"
        lines = ["data:", "  where:", '    k0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        lines += [f"    k{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
        bomb.write_text("\n".join(lines) + "\n")
        rc, err = self.run(["config", "show", str(bomb)], timeout=60)
        self.case("yaml alias bomb", self.clean_err(rc, err, 2, "aliases"), f"exit {rc}: {err[-200:]}")
        cycle = folder / "cycle.yaml"
        cycle.write_text("smoke: &a {x: *a}\n")
        self.case("self-referring alias", self.clean(self.invoke(["config", "show", str(cycle)]), 2, "holds itself"))
        cfg = self.h_config("names")
        for name in ("../../x", "/tmp/rnnbench-abs", "a\nb"):
            path = folder / "name.yaml"
            path.write_text(json.dumps({"experiment": {"name": name, "output_dir": str(cfg.parent / "out")}}))
            r = self.invoke(["train", str(path)])
            self.case(f"experiment.name {name!r}", self.clean(r, 2, "experiment.name")
                      and not (cfg.parent.parent / "x").exists() and not Path(name).exists())
        r = self.invoke(["sweep", str(cfg), "--dry-run", "--set", "sweep={model: rnn, grid: {rnn.hidden_dim: [8, 8]}}"])
        self.case("a sweep value listed twice", self.clean(r, 2, "twice"))
        r = self.invoke(["config", "show", str(cfg), "--set", "experiment.seeds=[1, 1]"])
        self.case("a seed listed twice", self.clean(r, 2, "twice"))
        twice = folder / "twice.yaml"
        twice.write_text("rnn: {hidden_dim: 8}\nrnn: {epochs: 3}\n")
        self.case("a config key written twice", self.clean(self.invoke(["config", "show", str(twice)]), 2, "twice"))

    def h_damaged_result(self) -> None:
        """A result.json of the wrong types: status says damaged, compare redoes it; no traceback."""
        for label, damage in (("a metric that is text", {"metrics": {"accuracy": "x"}}), ("null metrics", {"metrics": None})):
            cfg = self.h_config(f"result-{len(label)}", experiment={"models": ["linear"]})
            self.invoke(["compare", str(cfg)])
            (run,) = (cfg.parent / "out").glob("h/runs/linear-*")
            good = json.loads((run / "result.json").read_text())
            (run / "result.json").write_text(json.dumps({**good, **damage}))
            status = self.invoke(["status", str(cfg.parent / "out" / "h")])
            again = self.invoke(["compare", str(cfg)])
            redone = json.loads((run / "result.json").read_text()).get("metrics") == good["metrics"]
            self.case(f"result.json with {label}", self.clean(status, 0) and "damaged" in status.output
                      and self.clean(again, 0) and redone, f"status {status.exit_code}, compare {again.exit_code}")

    def h_leases(self) -> None:
        """A lease file with garbage or wrong types counts by its mtime and compute.lease_timeout; a lease path
        that is a folder says so."""
        from rnnbench import lease
        from rnnbench.config import load_config
        from rnnbench.runs import run_path

        for label, text in (("garbage", "{garb"), ("wrong types", '{"host": 1, "pid": "x", "started": "y", "heartbeat": null}')):
            cfg = self.h_config(f"lease-{label[:5]}", compute={"lease_timeout": 5})
            path = lease.lease_path(run_path(load_config(cfg), "linear", 100, 0))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            held = self.invoke(["train", str(cfg)])
            status = self.invoke(["status", str(cfg)])
            os.utime(path, (time.time() - 10, time.time() - 10))
            taken = self.invoke(["train", str(cfg)])
            self.case(f"lease file with {label}", self.clean(held, 2, "unreadable lease file") and self.clean(status, 0)
                      and self.clean(taken, 0), f"{held.exit_code} {status.exit_code} {taken.exit_code}")
        cfg = self.h_config("lease-folder")
        path = lease.lease_path(run_path(load_config(cfg), "linear", 100, 0))
        path.mkdir(parents=True)
        self.case("lease path that is a folder", self.clean(self.invoke(["train", str(cfg)]), 2, "a folder where"))

    def h_clocks(self) -> None:
        """Clocks that disagree between hosts: a live holder whose clock is 10 min behind is not taken over; a dead
        one whose clock is a day ahead is."""
        from rnnbench import lease
        from rnnbench.config import load_config
        from rnnbench.runs import run_path

        now = time.time()
        for label, heartbeat, mtime, code in (("behind, alive", now - 600, now, 2), ("ahead, dead", now + 86400, now - 400, 0)):
            cfg = self.h_config(f"clock-{label[:5]}", compute={"lease_timeout": 60})
            path = lease.lease_path(run_path(load_config(cfg), "linear", 100, 0))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"host": "elsewhere", "pid": 7, "started": heartbeat, "heartbeat": heartbeat,
                                        "timeout": 60, "token": label}))
            os.utime(path, (mtime, mtime))
            r = self.invoke(["train", str(cfg)])
            self.case(f"clock {label}", self.clean(r, code, "claimed by elsewhere"), f"exit {r.exit_code}")

    def h_takeover(self) -> None:
        """A holder suspended past its lease's timeout and taken over stops at its next write, naming who holds
        the run; the one that took over ends with the uninterrupted result."""
        rnn = {"epochs": 30, "patience": 30, "checkpoint_every_s": 0}
        ref = self.h_config("takeover-ref", rnn=rnn)
        self.run(["train", str(ref), "--model", "rnn"])
        cfg = self.h_config("takeover", rnn=rnn, compute={"lease_timeout": 5})
        first = self.popen(["train", str(cfg), "--model", "rnn"])
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None and not any(
                '"train"' in f.read_text() for f in cfg.parent.glob("out/*/runs/*/metrics.jsonl")):
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)
        time.sleep(8)
        second = self.popen(["train", str(cfg), "--model", "rnn"])
        time.sleep(3)
        first.send_signal(signal.SIGCONT)
        _, err1 = first.communicate(timeout=600)
        _, err2 = second.communicate(timeout=600)
        same = self.whole(cfg.parent / "out", "rnn") == self.whole(ref.parent / "out", "rnn")
        self.case("a claim taken over from a suspended holder", self.clean_err(first.returncode, err1, 2, "taken over by")
                  and self.clean_err(second.returncode, err2, 0) and same,
                  f"first {first.returncode} {err1[-160:]!r}, second {second.returncode}, same result {same}")

    def h_sizes(self) -> None:
        """Sizes that cannot fit: refused before allocating, one line naming the key."""
        settings = ["rnn.hidden_dim=1000000"] if self.quick else ["rnn.hidden_dim=1000000", "rnn.batch_size=1000000000",
                                                                   "data.max_len=1000000000"]
        for setting in settings:
            cfg = self.h_config("sizes")
            t0 = time.perf_counter()
            rc, err = self.run(["train", str(cfg), "--model", "rnn", "--set", setting], timeout=120)
            key = setting.partition("=")[0]
            self.case(f"{setting}", self.clean_err(rc, err, 2, f"{key}: a run needs about"),
                      f"exit {rc} after {time.perf_counter() - t0:.0f} s: {err[-200:]!r}")

    def h_archive(self) -> None:
        """An archive whose members expand far beyond its size: refused before expanding."""
        import gzip
        import tarfile

        folder = self.out / "hard-archive"
        folder.mkdir(exist_ok=True)
        bomb, size = folder / "bomb.tar.gz", 80 << 20
        manifest = json.dumps({"format": "rnnbench-results/1", "experiment": "bomb"}).encode()
        with open(bomb, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
            info = tarfile.TarInfo("manifest.json")
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
            info = tarfile.TarInfo("runs/linear-n1-s0-a/metrics.jsonl")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
        r = self.invoke(["import", str(bomb), "--into", str(folder / "store")])
        self.case("archive bomb", self.clean(r, 2, "expands beyond") and not any((folder / "store").iterdir()))

    def h_signals_twice(self) -> None:
        """SIGTERM (and Ctrl-C) twice: one clean exit, and the same command resumes to the uninterrupted result."""
        rnn = {"epochs": 40, "patience": 40}
        ref = self.h_config("twice-ref", rnn=rnn)
        self.run(["train", str(ref), "--model", "rnn"])
        plan = [(signal.SIGTERM, 0.3, 143)] if self.quick else [(signal.SIGTERM, 0.0, 143), (signal.SIGTERM, 0.3, 143),
                                                                (signal.SIGINT, 0.3, 130)]
        for sig, gap, code in plan:
            cfg = self.h_config(f"twice-{sig.name}-{gap}", rnn=rnn)
            # Ctrl-C reaches the child as a terminal's would, also where this battery runs in the background (a
            # shell's background job starts with SIGINT ignored, and so would its children)
            p = subprocess.Popen([sys.executable, "-c", WITH_CTRL_C, "-m", "rnnbench.cli", "train", str(cfg), "--model",
                                  "rnn"], cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
            deadline = time.time() + 300
            while time.time() < deadline and p.poll() is None and not any(
                    '"train"' in f.read_text() for f in cfg.parent.glob("out/*/runs/*/metrics.jsonl")):
                time.sleep(0.05)
            p.send_signal(sig)
            time.sleep(gap)
            p.send_signal(sig)
            _, err = p.communicate(timeout=300)
            rc, _ = self.run(["train", str(cfg), "--model", "rnn"])
            same = self.whole(cfg.parent / "out", "rnn") == self.whole(ref.parent / "out", "rnn")
            self.case(f"{sig.name} twice ({gap} s apart)", self.clean_err(p.returncode, err, code) and rc == 0 and same,
                      f"exit {p.returncode}, resumed {rc}, same {same}: {err[-200:]!r}")

    def h_endless(self) -> None:
        """Inputs that never end: stdin streamed through predict, /dev/zero as a config or texts, a pipe as data."""
        cfg = self.h_config("endless")
        self.invoke(["train", str(cfg)])
        (run,) = (cfg.parent / "out").glob("h/runs/linear-*")
        cmd = (f"yes 'a good film' | {sys.executable} -m rnnbench.cli predict {run} --file - | head -n 3000 | wc -l; "
               "echo ${PIPESTATUS[1]}")
        try:
            p = subprocess.run(cmd, shell=True, executable="/bin/bash", capture_output=True, text=True, env=self.env,
                               timeout=300, cwd=ROOT)
            ok = p.stdout.split() == ["3000", "141"] and p.stderr == ""
        except subprocess.TimeoutExpired:
            self.figures["hangs"] += 1
            ok = False
        self.case("predict from stdin that never ends", ok)
        rc, err = self.run(["config", "show", "/dev/zero"], timeout=60)
        self.case("config /dev/zero", self.clean_err(rc, err, 2, "not a regular file"))
        rc, err = self.run(["predict", str(run), "--file", "/dev/zero"], timeout=120)
        self.case("predict --file /dev/zero", self.clean_err(rc, err, 2, "longer than"))
        fifo = cfg.parent / "fifo"
        os.mkfifo(fifo)
        rc, err = self.run(["data", "info", "jsonl", "--path", str(fifo), "--set", "data.text_columns=[text]", "--set",
                            "data.label_column=label"], timeout=60)
        self.case("a pipe as data.path", self.clean_err(rc, err, 2, "not a regular file"))

    def h_causes(self) -> None:
        """Messages that named the wrong cause: a file where a folder belongs, a folder where a file belongs."""
        cfg = self.h_config("causes")
        a_file = cfg.parent / "a-file"
        a_file.write_text("")
        for label, args, words in (("train --out a file", ["train", str(cfg), "--out", str(a_file)], "is a file, not"),
                                   ("predict a file", ["predict", str(a_file), "x"], "is a file, not a folder"),
                                   ("config a folder", ["config", "show", str(cfg.parent)], "a folder, not a config"),
                                   ("import a folder", ["import", str(cfg.parent)], "a folder, not an archive")):
            self.case(label, self.clean(self.invoke(args), 2, words))

    def h_full_disk(self) -> None:
        """A disk that fills during a checkpoint (a real tmpfs, as root): one Error line, then the run resumes."""
        mnt = self.out / "hard-tmpfs"
        mnt.mkdir(exist_ok=True)
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mnt)],
                                               capture_output=True).returncode != 0:
            print("hardening full disk: no tmpfs (needs root)", file=sys.stderr)
            return
        try:
            cfg = self.h_config("full-disk", rnn={"hidden_dim": 64, "embed_dim": 32})
            out = ["--set", f"experiment.output_dir={mnt / 'out'}"]
            self.run(["train", str(cfg), "--model", "linear", *out])
            rc, err = self.run(["train", str(cfg), "--model", "rnn", *out])
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            again, _ = self.run(["train", str(cfg), "--model", "rnn", *out])
            self.case("disk full during a checkpoint", self.clean_err(rc, err, 1, "No space left") and again == 0,
                      f"exit {rc} ({len(err.splitlines())} lines), rerun {again}")
        finally:
            subprocess.run(["umount", str(mnt)], capture_output=True)


class Battery(Hardening):
    def __init__(self, out: Path, quick: bool, seed: int):
        self.out, self.quick, self.rng = out, quick, random.Random(seed)
        self.env = {**os.environ, "RNNBENCH_DATA": str(out / "data-home"), "PYTHONPATH": str(ROOT),
                    "JAX_PLATFORMS": "cpu", "TQDM_DISABLE": "1"}
        self.figures: dict = {"kills": 0, "kills_recovered": 0, "tables_identical": True, "sigterm_cases": 0,
                              "sigterm_exit_ok": 0, "sigterm_max_exit_s": 0.0, "enospc_sites": 0, "enospc_clean": 0, "enospc_recoverable": 0,
                              "corrupt_cases": 0, "corrupt_detected": 0, "corrupt_harmless": 0, "corrupt_wrong": 0,
                              "fuzz_cases": 0, "tracebacks": 0, "places_cases": 0, "places_ok": 0, "orphans": 0,
                              "tables_compared": 0, "tmpfs": "not tried", "search_kills": 0, "search_same_choice": None,
                              "hardening_cases": 0, "hardening_ok": 0, "hangs": 0, "data_losses": 0}
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

    def run(self, args: list[str], spec: str | None = None, env: dict | None = None, timeout: float = 900,
            stdin: str | None = None) -> tuple[int, str]:
        """Run the CLI (or a child with a fault armed) to its end; one that outlives ``timeout`` is a hang:
        counted, killed, and its exit reported as None."""
        p = self.popen(args, spec, env)
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            self.figures["hangs"] += 1
            self.note(f"hang: {' '.join(args)[:120]} still ran after {timeout:.0f} s")
            return None, err
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
        return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".force", ".swap")) or "orbax-checkpoint-tmp" in p.name
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
            try:
                _, err = p.communicate(timeout=300)
            except subprocess.TimeoutExpired:  # a hang: counted, and the case fails
                p.kill()
                _, err = p.communicate()
                self.figures["hangs"] += 1
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
    ap.add_argument("--only", default=None,
                    help="comma-separated kinds: kills,sigterm,enospc,corrupt,fuzz,places,search,hardening")
    a = ap.parse_args()
    import tempfile

    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="rnnbench-faults-"))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    battery = Battery(out.resolve(), a.quick, a.seed)
    t0 = time.perf_counter()
    kinds = a.only.split(",") if a.only else ["fuzz", "places", "corrupt", "enospc", "sigterm", "kills", "search",
                                              "hardening"]
    for kind in kinds:
        print(f"== {kind}", file=sys.stderr, flush=True)
        getattr(battery, kind)()
    figures = {**battery.figures, "problems": len(battery.problems), "quick": a.quick,
               "seconds": round(time.perf_counter() - t0, 1)}
    if not a.out:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(figures), flush=True)
    bad = (figures["tracebacks"] or figures["hangs"] or figures["data_losses"] or battery.problems
           or figures["kills_recovered"] != figures["kills"] or not figures["tables_identical"]
           or figures["search_same_choice"] is False or figures["hardening_ok"] != figures["hardening_cases"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
