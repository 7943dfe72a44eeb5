import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.compare import Curve
from rnnbench.forecast import FAMILIES, fit_curve, forecast, forecast_model, seed_resamples
from rnnbench.runs import Run, RunResult

SIZES = np.array([1_000, 2_000, 4_000, 8_000, 16_000, 32_000], float)
LIN, RNN = (0.3, 0.2, 0.08), (3.4, 0.3, 0.02)  # error curves a·n^-b + c that cross near 200k examples


def power(n, a, b, c):
    return a * np.asarray(n, float) ** -b + c


def noisy(err, n_seeds, sd, rng):
    """Per-seed error curves (sizes × seeds) around ``err``."""
    return np.asarray(err)[:, None] + rng.normal(0, sd, (len(err), n_seeds))


def test_fit_recovers_exact_parameters_without_noise():
    for family, (a, b, c) in (("power", (2.0, 0.4, 0.08)), ("exp", (0.4, 1e-4, 0.05))):
        fam = FAMILIES[family]
        err = power(SIZES, a, b, c) if family == "power" else a * np.exp(-b * SIZES) + c
        fit = fit_curve(fam, SIZES, err, np.full(len(SIZES), 1e-3))
        assert fit.ok
        assert fit.public() == pytest.approx((a, b, c), rel=1e-3)
        assert fit.err(SIZES) == pytest.approx(err, abs=1e-7)


@pytest.mark.parametrize("truth", [(2.0, 0.4, 0.08), (0.9, 0.25, 0.0), (5.0, 0.6, 0.15)])
def test_fit_recovers_known_parameters_from_noisy_curves(truth):
    rng = np.random.default_rng(7)
    a, b, c = truth
    est = []
    for _ in range(20):
        acc = 1 - noisy(power(SIZES, *truth), 5, 0.002, rng)
        out = forecast_model(SIZES, acc, True, FAMILIES["power"], seed_resamples(5, 0), SIZES, 0.95)
        assert out["trustworthy"], out["verdict"]
        est.append([out["params"][p]["value"] for p in "abc"])
    a_hat, b_hat, c_hat = np.median(est, 0)
    assert b_hat == pytest.approx(b, abs=0.08)
    assert c_hat == pytest.approx(c, abs=0.015)
    assert math.log(a_hat) == pytest.approx(math.log(a), abs=0.5)
    # the curve itself is pinned down much more tightly than its parameters
    out_err = 1 - np.array(out["curve"]["score"])
    assert out_err == pytest.approx(power(SIZES, *truth), abs=0.006)


def test_interval_covers_the_truth_at_about_its_nominal_rate():
    """Simulated seeds around a known curve: the 90% interval of the forecast at twice the largest size
    contains the true error in about 90% of the simulations."""
    rng = np.random.default_rng(1)
    sizes = SIZES[:5]
    truth = (0.5, 0.35, 0.05)
    target = np.array([2 * sizes[-1]])
    hits = []
    for s in range(120):
        acc = 1 - noisy(power(sizes, *truth), 6, 0.006, rng)
        out = forecast_model(sizes, acc, True, FAMILIES["power"], seed_resamples(6, 100, s), target, 0.9)
        if out["trustworthy"]:
            c = out["curve"]
            hits.append(c["low"][0] <= 1 - power(target, *truth)[0] <= c["high"][0])
    assert len(hits) >= 110
    assert 0.8 <= np.mean(hits) <= 0.97, np.mean(hits)


def _one(err_rows, higher=True):
    return forecast_model(SIZES[:len(err_rows)], 1 - np.asarray(err_rows) if higher else np.asarray(err_rows),
                          higher, FAMILIES["power"], seed_resamples(3, 50), SIZES, 0.95)


@pytest.mark.parametrize("errs, why", [
    ([[0.20, 0.201, 0.199]] * 5, "flat curve"),
    ([[0.20, 0.21, 0.20], [0.18, 0.18, 0.19], [0.16, 0.17, 0.16], [0.22, 0.23, 0.22]], "rises from 4,000 to 8,000"),
    ([[0.3, 0.3, 0.3], [0.2, 0.2, 0.2]], "too few sizes: 2"),
    # the quickstart RNN's shape: chance, chance, then a sudden drop: no power law fits it
    ([[0.50, 0.50, 0.51], [0.49, 0.48, 0.48], [0.07, 0.08, 0.07], [0.005, 0.006, 0.004]], "wrong curve shape"),
])
def test_untrustworthy_curves_get_a_verdict_not_numbers(errs, why):
    out = _one(errs)
    assert not out["trustworthy"] and why in out["verdict"], out["verdict"]
    assert "params" not in out and "predictions" not in out


def test_a_curve_that_rises_with_data_is_not_trustworthy_for_rmse_too():
    rmse = [[0.80, 0.81, 0.80], [0.85, 0.86, 0.85], [0.90, 0.91, 0.90]]
    out = _one(rmse, higher=False)
    assert not out["trustworthy"] and "rises" in out["verdict"]


def _pair(lin, rnn, n_seeds=4, sd=0.002, seed=0, higher=True):
    rng = np.random.default_rng(seed)
    le, re = noisy(power(SIZES, *lin), n_seeds, sd, rng), noisy(power(SIZES, *rnn), n_seeds, sd, rng)
    scores = {"linear": 1 - le, "rnn": 1 - re} if higher else {"linear": le, "rnn": re}
    return Curve(SIZES, scores)


def test_forecast_crossover_beyond_the_sizes_run():
    lin, rnn = LIN, RNN
    grid = np.geomspace(1e3, 1e7, 20001)
    true = grid[np.argmax(power(grid, *rnn) < power(grid, *lin))]
    assert SIZES[-1] < true < 100 * SIZES[-1]
    for higher in (True, False):  # accuracy (1 − error) or an error metric such as RMSE
        fc = forecast(_pair(lin, rnn, higher=higher), "accuracy" if higher else "rmse", higher, n_boot=200)
        c = fc["crossover"]["rnn"]
        assert c["status"] == "crossover" and c["size"] == pytest.approx(true, rel=0.25)
        assert c["low"] <= c["size"] <= c["high"]
        preds = fc["models"]["rnn"]["predictions"]
        assert [p["size"] for p in preds] == [64_000, 320_000, 3_200_000]
        for p in preds:
            assert p["low"] <= p["score"] <= p["high"]
            want = 1 - power(p["size"], *rnn) if higher else power(p["size"], *rnn)
            assert p["score"] == pytest.approx(want, abs=0.01)


def test_no_crossover_within_100x():
    fc = forecast(_pair(LIN, (0.6, 0.2, 0.09)), "accuracy", True, n_boot=100)
    assert fc["crossover"]["rnn"]["status"] == "none within the horizon" and fc["crossover"]["rnn"]["size"] is None
    assert fc["crossover"]["rnn"]["horizon"] == 3_200_000


def test_one_seed_gives_numbers_without_intervals():
    fc = forecast(_pair(LIN, RNN, n_seeds=1), "accuracy", True)
    m = fc["models"]["linear"]
    assert m["trustworthy"] and all(p["low"] is None for p in m["predictions"])
    assert fc["n_boot"] == 0


# ------------------------------------------------------------------------------------ files and CLI


def fake_experiment(folder, sizes, seeds=(0, 1, 2), lin=LIN, rnn=RNN, only=None):
    """Finished runs written straight into a run store (no training): results on known curves."""
    rng = np.random.default_rng(0)
    for n in sizes:
        for s in seeds:
            for model, truth in (("linear", lin), ("rnn", rnn)):
                if only and model != only:
                    continue
                acc = float(1 - power(n, *truth) + rng.normal(0, 0.002))
                run = Run(folder / "runs" / f"{model}-n{n}-s{s}-0123456789")
                run.path.mkdir(parents=True)
                run.finish(RunResult(model=model, size=n, seed=s, dataset="synthetic",
                                     task={"name": "sentiment", "kind": "binary", "n_classes": 2},
                                     metrics={"accuracy": acc}, timings={"fit": 1.0}, device="cpu"))
    return folder


def forecast_cli(*args):
    return CliRunner().invoke(main, ["forecast", *map(str, args)])


def test_forecast_command_writes_the_forecast(tmp_path):
    exp = fake_experiment(tmp_path / "exp", [1_000, 2_000, 4_000, 8_000])
    r = forecast_cli(exp)
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == str(exp)
    fc = json.loads((exp / "forecast.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert fc["models"]["linear"]["trustworthy"] and fc["models"]["rnn"]["trustworthy"]
    assert fc["crossover"]["rnn"]["status"] == "crossover" and fc["baseline"] == "linear"
    md = (exp / "forecast.md").read_text()
    assert "| 16,000 (2×) |" in md and "would overtake" in md
    assert (exp / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the report shows it
    from rnnbench.report import build

    out = build([exp], tmp_path / "report.html")
    assert "would overtake" in out["markdown"].read_text()


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "no such directory"),
    (lambda p: p, "no runs/ folder"),
    (lambda p: (p / "runs").mkdir() or p, "holds no finished runs"),
    (lambda p: fake_experiment(p, [1_000, 2_000]), "needs finished runs at 3 or more sizes, found 2 (1,000, 2,000)"),
])
def test_forecast_command_bad_input(tmp_path, setup, message):
    r = forecast_cli(setup(tmp_path))
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "forecast.json").exists()


def test_forecast_unknown_family_is_one_line(tmp_path):
    r = forecast_cli(fake_experiment(tmp_path, [1_000, 2_000, 4_000]), "--family", "cubic")
    assert r.exit_code == 2 and "forecast family 'cubic' is unknown" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_compare_outputs_carry_the_forecast(tmp_path):
    """compare's tables (write_outputs, fed finished rows as compare reads them) write forecast.json and
    forecast.md, and put the forecast beside the measured crossover."""
    from rnnbench.compare import write_outputs
    from rnnbench.config import load_config
    from rnnbench.data import Task

    sizes = [1_000, 2_000, 4_000, 8_000]
    cfg = load_config(None, [f"data.sizes={sizes}", "experiment.seeds=[0, 1, 2]", f"experiment.output_dir={tmp_path}"])
    rng = np.random.default_rng(0)
    rows = [{"size": n, "seed": s, "model": m, "status": "ok", "reason": "", "train_seconds": 1.0,
             "predict_seconds": 0.1, "device": "cpu", "run_dir": "",
             "accuracy": float(1 - power(n, *truth) + rng.normal(0, 0.002))}
            for n in sizes for s in (0, 1, 2) for m, truth in (("linear", LIN), ("rnn", RNN))]
    out = write_outputs(cfg, Task("sentiment", "binary", 2), rows)
    folder = out["dir"]
    fc = json.loads((folder / "forecast.json").read_text())
    cross = json.loads((folder / "crossover.json").read_text())
    cross = cross["models"]["rnn"]
    assert cross["crossover_size"] is None  # not within the sizes run
    assert cross["forecast"]["status"] == "crossover"
    assert cross["forecast"]["size"] == pytest.approx(fc["crossover"]["rnn"]["size"])
    assert fc["measured_crossover"]["rnn"]["crossover_size"] is None
    md = out["markdown"]
    assert "**rnn vs linear:** no crossover within the sizes run:" in md and "**Forecast crossover, rnn vs linear**" in md
    assert "| 16,000 (2×) |" in md
    assert (folder / "forecast.md").exists()


def test_compare_with_two_sizes_says_why_there_is_no_forecast(tmp_path):
    from rnnbench.compare import write_outputs
    from rnnbench.config import load_config
    from rnnbench.data import Task

    cfg = load_config(None, ["data.sizes=[100, 300]", f"experiment.output_dir={tmp_path}"])
    rows = [{"size": n, "seed": 0, "model": m, "status": "ok", "reason": "", "train_seconds": 1.0,
             "predict_seconds": 0.1, "device": "cpu", "run_dir": "", "accuracy": acc}
            for n, m, acc in ((100, "linear", 0.7), (100, "rnn", 0.6), (300, "linear", 0.75), (300, "rnn", 0.7))]
    md = write_outputs(cfg, Task("sentiment", "binary", 2), rows)["markdown"]
    assert "none given, the fit is not trustworthy" in md and "too few sizes: 2" in md
    assert "(forecast)" not in md  # no table of numbers when neither model has a forecast


@pytest.mark.slow
def test_compare_smoke_experiment_writes_forecast_files(tmp_path):
    from tests.test_compare import compare, compare_config

    cfg = compare_config(tmp_path, data={"sizes": [100, 200, 300]}, experiment={"seeds": [0, 1]})
    r = compare(cfg)
    assert r.exit_code == 0, r.output
    out = tmp_path / "runs" / "t"
    fc = json.loads((out / "forecast.json").read_text())
    assert set(fc["models"]) == {"linear", "rnn"} and fc["sizes"] == [100, 200, 300]
    assert "Forecast crossover" in (out / "crossover.md").read_text()
    assert (out / "forecast.md").read_text().startswith("# t: forecast")
    again = forecast_cli(out)  # the forecast command reads the same finished runs
    assert again.exit_code == 0, again.output
    assert json.loads((out / "forecast.json").read_text())["models"].keys() == fc["models"].keys()
