"""Forecast learning curves and the crossover: where each model kind's curve is heading, and when (if ever)
each overtakes the baseline (``experiment.baseline``, by default the linear model) beyond the sizes run.

Each model's test error (1 − accuracy for classification, RMSE for regression) against training size
is fitted with a power law with a floor, ``err = a·n^(−b) + c`` (Hestness et al. 2017; Mohr & van Rijn
2022 survey the alternatives, which are here too: ``--family``), by weighted least squares in a stable
form: ``err = A·(n / n0)^(−b) + c`` with ``n0`` the geometric mean of the sizes, ``A ≥ 0``,
``0 ≤ b ≤ 3`` and ``0 ≤ c ≤`` the lowest observed error. For each ``b`` the best ``A`` and ``c`` are
exact (a box-constrained two-parameter linear problem), so only ``b`` is searched: on a grid, then by
scipy's bracketing minimiser, for every bootstrap resample at once (variable projection). The
alternatives that are not linear in two of their parameters use scipy's ``least_squares``. The weights
are the inverse squared standard errors of the per-size means over seeds. Intervals come from refitting over bootstrap resamples of the seeds, the same
resample for every model (runs are paired by seed, as in the crossover's bootstrap in :mod:`rnnbench.curves`).

A curve that cannot carry a forecast gets a verdict instead of numbers: fewer than 3 sizes, an error
that rises or stays flat across the sizes run, a fit that fails or ends at a bound that means the shape
is wrong (floor at the lowest observed error, exponent at its cap), a fit far outside the seed noise, or
a fitted curve that rises beyond the sizes run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from . import models
from .curves import Curve, bootstrap_crossover, challengers, crossover_size, curves, rows_from_experiment
from .errors import RnnbenchError
from .fileio import atomic_write_json, atomic_write_text
from .metrics import higher_is_better, primary
from .outputs import markdown_table

HORIZONS = (2, 10, 100)  # forecasts at these multiples of the largest size run
MIN_SIZES = 3
DEFAULT_FAMILY = "power"
N_BOOT = 400
B_MAX = 3.0  # cap on the power law's exponent: learning curves run 0.05–1; a fit at the cap is a wrong shape
GRID_POINTS = 60  # points of the forecast curve written to forecast.json (and drawn)
CROSS_GRID = 400  # points of the grid the forecast crossover is searched on


# ------------------------------------------------------------------------------------ curve families


@dataclass(frozen=True)
class Family:
    """One learning-curve shape for the error. ``f(theta, u)`` with ``u = log(n / n0)``; ``public`` turns
    ``theta`` into the parameters of ``formula`` in plain sizes."""

    name: str
    title: str
    formula: str
    params: tuple[str, ...]
    f: Callable
    bounds: Callable  # (lowest observed error) -> (lo, hi)
    public: Callable  # (theta, n0) -> tuple of the formula's parameters
    at_bound: Callable  # (theta, lo, hi) -> verdict or None
    shape: Callable | None = None  # (b, u) -> x where err = A·x + c: fitted by variable projection
    jac: Callable | None = None  # otherwise: the Jacobian and starts for scipy's least_squares
    starts: Callable | None = None  # (u, y, w, lo, hi) -> list of theta


def _pow_f(t, u):
    return np.exp(t[0] - t[1] * u) + t[2]


def _floor_bound_verdict(t, lo, hi, cap_name: str) -> str | None:
    if t[1] >= hi[1] * 0.999:
        return f"the fitted {cap_name} sits at its cap: the error falls too steeply for this curve shape"
    if hi[2] > 1e-9 and t[2] >= hi[2] * 0.99:
        return "the fitted floor reaches the lowest observed error: the curve has flattened, so no further gain can be forecast"
    return None


def _exp_f(t, u):
    return np.exp(t[0] - t[1] * np.exp(u)) + t[2]


def _logpow_f(t, u):
    return np.exp(t[0]) / (1 + np.exp(t[2] * (u - t[1])))


def _logpow_jac(t, u):
    s = np.exp(t[2] * (u - t[1]))
    f = np.exp(t[0]) / (1 + s)
    d = -f * s / (1 + s)  # df/d(t2·(u − t1))
    return np.stack([f, -t[2] * d, (u - t[1]) * d], 1)


def _logpow_starts(u, y, w, lo, hi):
    return [np.array([math.log(max(y.max(), 1e-12) * 1.2), m, 1.0]) for m in (u.min(), 0.0, u.max())]


def _vap_f(t, u):
    return np.exp(t[0] + t[1] * np.exp(-u) + t[2] * u)


def _vap_jac(t, u):
    f = _vap_f(t, u)
    return np.stack([f, np.exp(-u) * f, u * f], 1)


def _vap_starts(u, y, w, lo, hi):
    X = np.stack([np.ones_like(u), np.exp(-u), u], 1) * np.sqrt(w)[:, None]
    p = np.linalg.lstsq(X, np.log(np.maximum(y, 1e-12)) * np.sqrt(w), rcond=None)[0]
    return [p, np.array([p[0], 0.0, p[2]])]


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("power", "power law with floor", "err = a·n^(−b) + c", ("a", "b", "c"), _pow_f,
           lambda ymin: ([-50.0, 0.0, 0.0], [50.0, B_MAX, max(ymin, 1e-9)]),
           lambda t, n0: (np.exp(t[0]) * n0 ** t[1], t[1], t[2]),
           lambda t, lo, hi: _floor_bound_verdict(t, lo, hi, "exponent b"), shape=lambda b, u: np.exp(-b * u)),
    Family("exp", "exponential with floor", "err = a·exp(−b·n) + c", ("a", "b", "c"), _exp_f,
           lambda ymin: ([-50.0, 0.0, 0.0], [50.0, 50.0, max(ymin, 1e-9)]),
           lambda t, n0: (np.exp(t[0]), t[1] / n0, t[2]),
           lambda t, lo, hi: _floor_bound_verdict(t, lo, hi, "rate b"), shape=lambda b, u: np.exp(-b * np.exp(u))),
    Family("logpower", "log-power", "err = a / (1 + (n / e^b)^c)", ("a", "b", "c"), _logpow_f,
           lambda ymin: ([-50.0, -30.0, 0.0], [50.0, 30.0, 10.0]),
           lambda t, n0: (np.exp(t[0]), t[1] + math.log(n0), t[2]),
           lambda t, lo, hi: None, jac=_logpow_jac, starts=_logpow_starts),
    Family("vapor", "vapor pressure", "err = exp(a + b/n + c·ln n)", ("a", "b", "c"), _vap_f,
           lambda ymin: ([-50.0, -50.0, -5.0], [50.0, 50.0, 5.0]),
           lambda t, n0: (t[0] - t[2] * math.log(n0), t[1] * n0, t[2]),
           lambda t, lo, hi: None, jac=_vap_jac, starts=_vap_starts),
)}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise RnnbenchError(f"forecast family '{name}' is unknown (choose from: {', '.join(FAMILIES)})")
    return FAMILIES[name]


# ------------------------------------------------------------------------------------ fitting


@dataclass
class Fit:
    family: Family
    n0: float
    theta: np.ndarray | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.theta is not None

    def err(self, n) -> np.ndarray:
        return self.family.f(self.theta, np.log(np.asarray(n, float) / self.n0))

    def public(self) -> tuple[float, ...]:
        return tuple(float(x) for x in self.family.public(self.theta, self.n0))


def _ac(x, y, w, cmax):
    """The best ``A ≥ 0`` and ``0 ≤ c ≤ cmax`` of ``y ≈ A·x + c`` in weighted least squares, in closed form
    (the interior solution, else the best on the box's edges), for every leading index at once; with the
    weighted sum of squares. ``x``: (..., S); ``y``, ``w``, ``cmax`` broadcast against it."""
    sw, sx, sy = w.sum(-1), (w * x).sum(-1), (w * y).sum(-1)
    sxx, sxy, syy = (w * x * x).sum(-1), (w * x * y).sum(-1), (w * y * y).sum(-1)
    cmax = np.broadcast_to(cmax, sw.shape)

    def sse(a, c):
        return sxx * a * a + 2 * a * c * sx + c * c * sw - 2 * a * sxy - 2 * c * sy + syy

    with np.errstate(all="ignore"):
        det = sxx * sw - sx * sx
        a_int, c_int = (sw * sxy - sx * sy) / det, (sxx * sy - sx * sxy) / det
        a0 = np.maximum(0.0, sxy / sxx)
        a1 = np.maximum(0.0, (sxy - cmax * sx) / sxx)
        c2 = np.clip(sy / sw, 0.0, cmax)
    cands = [(np.nan_to_num(a0), np.zeros_like(a0)), (np.nan_to_num(a1), cmax), (np.zeros_like(c2), c2)]
    inside = (det > 1e-12 * sxx * sw) & (a_int >= 0) & (c_int >= 0) & (c_int <= cmax)
    best_a, best_c = np.where(inside, a_int, np.nan), np.where(inside, c_int, np.nan)
    best = np.where(inside, sse(best_a, best_c), np.inf)
    for a, c in cands:
        v = sse(a, c)
        take = v < best
        best_a, best_c, best = np.where(take, a, best_a), np.where(take, c, best_c), np.where(take, v, best)
    return best_a, best_c, np.maximum(best, 0.0)


def _fit_projected(fam: Family, u: np.ndarray, Y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Variable projection for ``err = A·shape(b, u) + c``: for each ``b`` the best ``A`` and ``c`` are
    exact (:func:`_ac`), which leaves a one-dimensional profile over ``b``, searched on a grid and then
    refined by scipy's bracketing minimiser, every row of ``Y`` (one curve each; NaN = size missing) at
    once. Returns theta rows ``(log A, b, c)``; NaN rows where fewer than 3 sizes remain."""
    from scipy.optimize.elementwise import find_minimum

    w = np.where(np.isnan(Y), 0.0, 1.0 / sigma**2)
    y = np.nan_to_num(Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cmax = np.maximum(np.nanmin(Y, 1), 0.0)
    b_max = fam.bounds(0.0)[1][1]
    grid = np.linspace(0.0, b_max, 61)
    x = fam.shape(grid[None, :, None], u[None, None, :])  # (1, G, S)
    prof = _ac(x, y[:, None, :], w[:, None, :], cmax[:, None])[2]  # (R, G)
    g = np.clip(np.argmin(prof, 1), 1, len(grid) - 2)
    rows = np.arange(len(Y))

    def f(b, r):
        r = r.astype(int)
        return _ac(fam.shape(b[:, None], u[None, :]), y[r], w[r], cmax[r])[2]

    with np.errstate(all="ignore"):
        res = find_minimum(f, (grid[g - 1], grid[g], grid[g + 1]), args=(rows.astype(float),),
                           tolerances={"xatol": 1e-7})
    b = np.where(res.success, res.x, grid[np.argmin(prof, 1)])
    ends = np.argmin(prof, 1)  # a profile lowest at an end of the grid: b at its bound
    at_end = (ends == 0) | (ends == len(grid) - 1)
    b = np.where(at_end & (prof[rows, ends] <= f(b, rows.astype(float))), grid[ends], b)
    a, c, _ = _ac(fam.shape(b[:, None], u[None, :]), y, w, cmax)
    theta = np.stack([np.log(np.maximum(a, 1e-300)), b, c], 1)
    theta[(w > 0).sum(1) < MIN_SIZES] = np.nan
    return theta


def fit_many(fam: Family, sizes, Y, sigma, n0: float, start=None) -> np.ndarray:
    """Fit every row of ``Y`` (curves over ``sizes``; NaN = size missing). Theta rows, NaN where failed.
    ``start``: a theta to try first (a bootstrap refit starts from the point fit) where the family is
    fitted by ``least_squares``."""
    sizes, Y, sigma = np.asarray(sizes, float), np.atleast_2d(np.asarray(Y, float)), np.asarray(sigma, float)
    u = np.log(sizes / n0)
    if fam.shape is not None:
        return _fit_projected(fam, u, Y, sigma)
    out = np.full((len(Y), len(fam.params)), np.nan)
    for i, row in enumerate(Y):
        keep = ~np.isnan(row)
        if keep.sum() >= MIN_SIZES:
            t = _least_squares(fam, u[keep], row[keep], sigma[keep], start)
            if t is not None:
                out[i] = t
    return out


def _least_squares(fam: Family, u, err, sigma, start=None) -> np.ndarray | None:
    """scipy's ``least_squares`` (trust region, bounded) from ``start`` if it converges, else from each
    of the family's starts; the best."""
    lo, hi = (np.asarray(b, float) for b in fam.bounds(float(err.min())))
    span = hi - lo

    def resid(t):
        return (fam.f(t, u) - err) / sigma

    def jac(t):
        return fam.jac(t, u) / sigma[:, None]

    best = None
    starts = fam.starts(u, err, 1 / sigma**2, lo, hi)
    for k, s in enumerate([start, *starts] if start is not None else starts):
        if k == 1 and start is not None and best is not None:
            break
        s = np.clip(np.nan_to_num(np.asarray(s, float)), lo + 1e-9 * span, hi - 1e-9 * span)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                r = least_squares(resid, s, jac=jac, bounds=(lo, hi), method="trf")
            except (ValueError, np.linalg.LinAlgError):
                continue
        if r.status > 0 and np.all(np.isfinite(r.x)) and np.isfinite(r.cost) and (best is None or r.cost < best.cost):
            best = r
    return None if best is None else best.x


def fit_curve(fam: Family, sizes, err, sigma, n0: float | None = None) -> Fit:
    """Weighted least-squares fit of one error curve (the mean over seeds per size)."""
    sizes = np.asarray(sizes, float)
    n0 = float(np.exp(np.mean(np.log(sizes)))) if n0 is None else n0
    theta = fit_many(fam, sizes, err, sigma, n0)[0]
    if not np.all(np.isfinite(theta)):
        return Fit(fam, n0, None, "the fit failed (no finite solution from any start)")
    return Fit(fam, n0, theta)


def curve_stats(err: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per size (rows) over seeds (columns, NaN for a missing run): mean, standard error, runs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(err, 1)
        count = np.sum(~np.isnan(err), 1)
        sd = np.where(count > 1, np.nanstd(err, 1, ddof=1) if err.shape[1] > 1 else 0.0, 0.0)
    return mean, np.nan_to_num(sd / np.sqrt(np.maximum(count, 1))), count


def weights_sigma(mean: np.ndarray, se: np.ndarray) -> np.ndarray:
    """The fit's per-size standard deviations: each mean's standard error, with a floor (half the median
    standard error, and 0.1% of the median error) so that a size whose seeds agree by chance does not
    take all the weight; with one seed, equal weights."""
    floor = max(0.5 * float(np.median(se)), 1e-3 * float(np.median(np.abs(mean))), 1e-12)
    return np.sqrt(se**2 + floor**2)


def curve_verdict(sizes: np.ndarray, mean: np.ndarray, se: np.ndarray) -> str | None:
    """Why the measured curve cannot carry a forecast, or None. A rise (or no fall) counts only beyond
    twice its standard error, plus 0.1% (rise) or 1% (fall) of the error itself."""
    if len(sizes) < MIN_SIZES:
        return f"too few sizes: {len(sizes)} with finished runs (a forecast needs {MIN_SIZES})"
    scale = float(np.median(np.abs(mean)))
    for i in range(len(sizes) - 1):
        tol = 2 * math.hypot(se[i], se[i + 1]) + 1e-3 * scale
        if mean[i + 1] - mean[i] > tol:
            return (f"the error rises from {sizes[i]:,.0f} to {sizes[i + 1]:,.0f} examples "
                    "(a non-monotone curve)")
    if mean[0] - mean[-1] <= 2 * math.hypot(se[0], se[-1]) + 1e-2 * abs(mean[0]):
        return (f"a flat curve: the error falls by only {mean[0] - mean[-1]:.4g} from {sizes[0]:,.0f} "
                f"to {sizes[-1]:,.0f} examples, within the seed noise")
    return None


def fit_verdict(fit: Fit, sizes, mean, se, n_seeds: int, horizon: float) -> str | None:
    """Why a fit cannot carry a forecast, or None."""
    if not fit.ok:
        return fit.message
    lo, hi = fit.family.bounds(float(np.min(mean)))
    v = fit.family.at_bound(fit.theta, lo, hi)
    if v:
        return v
    rms = float(np.sqrt(np.mean((fit.err(sizes) - mean) ** 2)))
    noise = float(np.sqrt(np.mean(se**2))) if n_seeds > 1 else 0.0
    if rms > 3 * noise and rms > max(2e-3, 0.02 * float(np.median(np.abs(mean)))):
        return (f"the {fit.family.title} misses the measured points by {rms:.4g} (rms), "
                "beyond the seed noise: a wrong curve shape")
    ahead = fit.err(np.geomspace(sizes[-1], horizon, 20))
    if not np.all(np.isfinite(ahead)) or ahead.max() > ahead[0] + 2 * se[-1] + 1e-3 * abs(mean[-1]) + 1e-12:
        return "the fitted curve rises beyond the sizes run"
    return None


# ------------------------------------------------------------------------------------ the forecast


def seed_resamples(n_seeds: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples of the seed columns, one row each: the same for every model (paired)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n_seeds, n_seeds) for _ in range(n_boot)]) if n_boot else np.zeros((0, n_seeds), int)


def expanded_tail(level: float, n_seeds: int) -> float:
    """The tail probability whose percentiles make the bootstrap's ``level`` interval over ``n_seeds``
    seeds: Hesterberg's expanded percentile interval (2015), ``Φ(√(k/(k−1))·t_{k−1}((1 − level)/2))``,
    which undoes the plain percentile interval's narrowness with few seeds (the bootstrap sees a spread
    ``(k−1)/k`` too small, and a normal tail where Student's t with ``k−1`` degrees of freedom belongs)."""
    from scipy.stats import norm, t

    alpha = (1 - level) / 2
    if n_seeds < 2:
        return alpha
    return float(norm.cdf(math.sqrt(n_seeds / (n_seeds - 1)) * t.ppf(alpha, n_seeds - 1)))


def _interval(values: np.ndarray, level: float, n_seeds: int) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)] if values.ndim == 1 else values
    if len(values) == 0:
        return None, None
    tail = expanded_tail(level, n_seeds)
    q = np.quantile(values, [tail, 1 - tail], axis=0)
    return q[0], q[1]


def _score(err, higher: bool):
    return 1 - err if higher else err


def forecast_model(sizes: np.ndarray, scores: np.ndarray, higher: bool, fam: Family, picks: np.ndarray,
                   grid: np.ndarray, level: float) -> dict:
    """One model's forecast: a verdict, or parameters, predictions and the forecast curve, each with
    an interval over the seed resamples ``picks``. ``_boot_err`` (not for JSON): each resample's error
    on ``grid``, NaN where its refit failed."""
    err_all = 1 - scores if higher else scores
    have = ~np.all(np.isnan(err_all), 1)
    xs, err = sizes[have], err_all[have]
    n_seeds = int(np.sum(~np.all(np.isnan(err), 0))) if len(err) else 0
    out = {"trustworthy": False, "verdict": None, "sizes": [int(n) for n in xs], "n_seeds": n_seeds}
    mean, se, _ = curve_stats(err) if len(err) else (np.array([]), np.array([]), np.array([]))
    horizon = float(sizes.max()) * max(HORIZONS)
    verdict = curve_verdict(xs, mean, se)
    if verdict is None:
        sigma = weights_sigma(mean, se)
        fit = fit_curve(fam, xs, mean, sigma)
        verdict = fit_verdict(fit, xs, mean, se, n_seeds, horizon)
    if verdict is not None:
        out["verdict"] = verdict
        return out
    targets = np.array([float(sizes.max()) * h for h in HORIZONS])
    at = np.log(np.concatenate([grid, targets]) / fit.n0)
    boot_theta, boot_err = np.zeros((0, len(fam.params))), np.zeros((0, len(at)))
    if n_seeds > 1 and len(picks):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(err[:, picks], 2).T  # (resamples, sizes): each resample's per-size means
        theta = fit_many(fam, xs, means, sigma, fit.n0, fit.theta)
        theta = theta[np.all(np.isfinite(theta), 1)]
        boot_theta = np.stack(fam.public(theta.T, fit.n0), 1)
        boot_err = fam.f(theta.T[:, :, None], at[None, :])
        boot_err = np.vstack([boot_err, np.full((len(picks) - len(theta), len(at)), np.nan)])
    ok = ~np.isnan(boot_err[:, 0])
    lo_t, hi_t = _interval(boot_theta, level, n_seeds) if len(boot_theta) else (None, None)
    lo_e, hi_e = _interval(boot_err[ok], level, n_seeds) if ok.any() else (None, None)
    point_err = fit.family.f(fit.theta, at)

    def bounds_of(k):  # score interval at column k (a lower error is a higher score)
        if lo_e is None:
            return None, None
        a, b = _score(lo_e[k], higher), _score(hi_e[k], higher)
        return float(min(a, b)), float(max(a, b))

    out.update(trustworthy=True, family=fam.name, rms_residual=float(np.sqrt(np.mean((fit.err(xs) - mean) ** 2))),
               bootstrap_ok_fraction=float(ok.mean()) if len(ok) else None)
    out["params"] = {p: {"value": v, "low": None if lo_t is None else float(lo_t[i]),
                         "high": None if hi_t is None else float(hi_t[i])} for i, (p, v) in enumerate(zip(fam.params, fit.public()))}
    out["predictions"] = []
    for j, (h, n) in enumerate(zip(HORIZONS, targets)):
        low, high = bounds_of(len(grid) + j)
        out["predictions"].append({"factor": h, "size": int(round(n)), "score": float(_score(point_err[len(grid) + j], higher)),
                                   "low": low, "high": high})
    band = [bounds_of(k) for k in range(len(grid))]
    out["curve"] = {"sizes": [float(n) for n in grid], "score": [float(_score(e, higher)) for e in point_err[:len(grid)]],
                    "low": [b[0] for b in band], "high": [b[1] for b in band]}
    out["_fit"] = fit
    out["_boot_fits"] = boot_err[:, :len(grid)]
    return out


def _crossover_value(grid: np.ndarray, adv: np.ndarray) -> float:
    """The crossover on the grid; +inf when the model is not ahead for good by its end, 0 when it is
    ahead throughout."""
    if adv[-1] <= 0:
        return math.inf
    if np.all(adv > 0):
        return 0.0
    return float(crossover_size(grid, adv))


def forecast(curve: Curve, metric: str, higher: bool, baseline: str = "linear", family_name: str = DEFAULT_FAMILY,
             n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0, measured: dict | None = None,
             pool: int | None = None) -> dict:
    """The forecast of every model kind on the curve and of each one's crossover with ``baseline``, as
    written to ``forecast.json``. ``measured``: each kind's measured crossover (:func:`bootstrap_crossover`);
    ``pool``: the training examples the data offers (horizons beyond it are marked so)."""
    fam = family(family_name)
    sizes = np.asarray(curve.sizes, float)
    n_seeds = curve.n_seeds
    picks = seed_resamples(n_seeds, n_boot, seed)
    horizon = float(sizes.max()) * max(HORIZONS) if len(sizes) else float("nan")
    cross_grid = np.geomspace(sizes.min(), horizon, CROSS_GRID) if len(sizes) else np.array([])
    models = {}
    for m, scores in curve.scores.items():
        if np.all(np.isnan(scores)):
            models[m] = {"trustworthy": False, "verdict": "no finished runs", "sizes": [], "n_seeds": 0}
            continue
        models[m] = forecast_model(sizes, scores, higher, fam, picks, cross_grid, level)
    cross = {m: _forecast_crossover(models, baseline, m, cross_grid, horizon, level) for m in challengers(curve, baseline)}
    for mf in models.values():  # the plotted curve: every 7th point of the crossover grid, and its end
        if "curve" in mf:
            pick = np.unique(np.r_[np.linspace(0, len(cross_grid) - 1, GRID_POINTS).round().astype(int)])
            mf["curve"] = {k: [v[i] for i in pick] for k, v in mf["curve"].items()}
        mf.pop("_fit", None)
        mf.pop("_boot_fits", None)
    error = "1 − " + metric if higher else metric
    return {"family": fam.name, "title": fam.title, "formula": fam.formula, "metric": metric, "error": error,
            "higher_better": higher, "level": level, "n_boot": n_boot if n_seeds > 1 else 0, "n_seeds": n_seeds,
            "sizes": [int(n) for n in sizes], "pool": pool,
            "horizons": [{"factor": h, "size": int(round(sizes.max() * h)),
                          "beyond_data": bool(pool is not None and sizes.max() * h > pool)}
                         for h in HORIZONS] if len(sizes) else [],
            "baseline": baseline, "models": models, "crossover": cross, "measured_crossover": measured or {}}


def _forecast_crossover(models: dict, baseline: str, model: str, grid: np.ndarray, horizon: float, level: float) -> dict:
    out = {"status": "not trustworthy", "size": None, "low": None, "high": None,
           "horizon": int(round(horizon)) if math.isfinite(horizon) else None, "reason": None,
           "bootstrap_fraction_with_crossover": None}
    bad = [f"{m}: {models[m]['verdict']}" for m in (baseline, model) if not models[m]["trustworthy"]]
    if bad:
        out["reason"] = "; ".join(bad)
        return out
    base, other = models[baseline], models[model]
    adv = base["_fit"].err(grid) - other["_fit"].err(grid)  # error, so one sign for either metric direction
    value = _crossover_value(grid, adv)
    out["status"] = ("none within the horizon" if value == math.inf else
                     "ahead throughout" if value == 0 else "crossover")
    out["size"] = value if 0 < value < math.inf else None
    lb, rb = base["_boot_fits"], other["_boot_fits"]
    if len(lb) and len(rb):
        both = ~np.isnan(lb[:, 0]) & ~np.isnan(rb[:, 0])
        found = np.array([_crossover_value(grid, a) for a in (lb[both] - rb[both])])
        if len(found):
            out["bootstrap_fraction_with_crossover"] = float(np.mean((found > 0) & (found < math.inf)))
            q = np.quantile(found, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
            # low None: below the smallest size run (the RNN ahead throughout); high None: beyond the horizon
            out["low"] = float(q[0]) if 0 < q[0] < math.inf else None
            out["high"] = float(q[1]) if 0 < q[1] < math.inf else None
            out["low_below_sizes"] = bool(q[0] == 0)
            out["high_beyond_horizon"] = bool(q[1] == math.inf)
    return out


# ------------------------------------------------------------------------------------ text


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if abs(x) < 1e-9:
        return "0"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:.{digits}g}"


def _iv(value, low, high, digits: int = 4, fmt=None) -> str:
    fmt = fmt or (lambda v: _num(v, digits))
    return fmt(value) + ("" if low is None or high is None else f" ({fmt(low)} – {fmt(high)})")


def crossover_line(fc: dict, model: str) -> str:
    """One sentence on ``model``'s forecast crossover with the baseline (for crossover.md and forecast.md)."""
    c, level, baseline = fc["crossover"][model], int(round(100 * fc["level"])), fc["baseline"]
    head = f"**Forecast crossover, {model} vs {baseline}** ({fc['title']} fitted to the sizes run)"
    horizon = f"{c['horizon']:,}" if c.get("horizon") else "—"
    if c["status"] == "not trustworthy":
        return f"{head}: none given, the fit is not trustworthy ({c['reason']})."
    if c["status"] == "ahead throughout":
        return f"{head}: the fitted curves put {model} ahead at every size from {fc['sizes'][0]:,}."
    interval = ""
    if c.get("bootstrap_fraction_with_crossover") is not None:
        low = "below the sizes run" if c.get("low_below_sizes") else f"{c['low']:,.0f}" if c["low"] else "—"
        high = f"beyond {horizon}" if c.get("high_beyond_horizon") else f"{c['high']:,.0f}" if c["high"] else "—"
        interval = (f" ({level}% interval over seed resamples: {low} – {high}; "
                    f"{100 * c['bootstrap_fraction_with_crossover']:.0f}% of resamples cross within {horizon})")
    if c["status"] == "none within the horizon":
        return f"{head}: none within 100× the largest size ({horizon} examples){interval}."
    return f"{head}: {model} would overtake {baseline} at about **{c['size']:,.0f}** examples{interval}."


def predictions_table(fc: dict) -> list[str]:
    """Predicted scores at the horizons, one row each, models side by side."""
    rows, kinds = [], list(fc["models"])
    for j, h in enumerate(fc["horizons"]):
        cells = []
        for m in kinds:
            mf = fc["models"][m]
            if mf.get("trustworthy"):
                p = mf["predictions"][j]
                cells.append(_iv(p["score"], p["low"], p["high"], fmt=lambda v: f"{v:.4f}"))
            else:
                cells.append("not trustworthy")
        rows.append((f"{h['size']:,} ({h['factor']}×){' †' if h.get('beyond_data') else ''}", *cells))
    out = markdown_table(["size", *(f"{m} (forecast)" for m in kinds)], rows, "r" + "r" * len(kinds))
    if any(h.get("beyond_data") for h in fc["horizons"]):
        out += ["", f"† more training examples than this data set has ({fc['pool']:,}): what the curve would do with "
                "more data of the same kind, not a size you can run here."]
    return out


def forecast_markdown(fc: dict, name: str) -> str:
    level = int(round(100 * fc["level"]))
    lines = [f"# {name}: forecast ({fc['title']}, {fc['formula']})", ""]
    spread = (f"intervals: {level}% over {fc['n_boot']} bootstrap resamples of the {fc['n_seeds']} seeds, the "
              "same resample for every model" if fc["n_boot"] else "one seed: no intervals")
    lines += [f"Fitted by weighted least squares to the test error ({fc['error']}) at "
              f"{len(fc['sizes'])} size(s); {spread}.", ""]
    prm = list(FAMILIES[fc["family"]].params)
    rows = []
    for m, mf in fc["models"].items():
        if mf["trustworthy"]:
            rows.append((m, *(_iv(mf["params"][p]["value"], mf["params"][p]["low"], mf["params"][p]["high"]) for p in prm),
                         len(mf["sizes"])))
        else:
            rows.append((m, f"not trustworthy: {mf['verdict']}", *([""] * (len(prm) - 1)), len(mf["sizes"])))
    lines += markdown_table(["model", *prm, "sizes fitted"], rows, "l" + "r" * (len(prm) + 1))
    lines += ["", f"Predicted test {fc['metric']}:", "", *predictions_table(fc), ""]
    lines += [crossover_line(fc, m) for m in fc["crossover"]]
    for model, m in fc.get("measured_crossover", {}).items():
        measured = (f"about {m['crossover_size']:,.0f} examples" if m.get("crossover_size") else "none within the sizes run")
        lines += ["", f"**Measured crossover, {model} vs {fc['baseline']}:** {measured}."]
    lines += ["", "A forecast extends the fitted curve beyond the data: its interval covers the seed-to-seed "
              "spread, not a wrong curve shape. Check it by holding out the largest size (docs/forecast.md)."]
    return "\n".join(lines) + "\n"


def json_ready(fc: dict) -> dict:
    """``fc`` with infinities and NaNs as None (strict JSON)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x
    return clean(fc)


def write_forecast(out_dir: Path, fc: dict, name: str, suffix: str = "") -> str:
    md = forecast_markdown(fc, name)
    atomic_write_json(out_dir / f"forecast{suffix}.json", json_ready(fc))
    atomic_write_text(out_dir / f"forecast{suffix}.md", md)
    return md


# ------------------------------------------------------------------------------------ from a folder


def run_forecast(folder: Path, family_name: str = DEFAULT_FAMILY, n_boot: int = N_BOOT, metric: str | None = None) -> dict:
    """``rnnbench forecast``: forecast.json, forecast.md and the learning-curve plot (with the forecast)
    from an experiment folder's finished runs, on the experiment's metric (as ``compare`` decides on it),
    or on ``metric``: then into ``forecast-<metric>.*`` and ``learning_curve-<metric>.png``, leaving the
    experiment's own files as ``compare`` wrote them."""
    from .data import Task

    family(family_name)
    rows, task_info, notes, settings = _experiment_rows(folder)
    task = Task(task_info.get("name") or "", task_info.get("kind") or "binary", task_info.get("n_classes") or 0)
    experiment = settings.get("experiment") or {}
    own = experiment.get("metric") or primary(task)[0]
    metric = metric or own
    higher = higher_is_better(task, metric, "--metric")
    baseline = experiment.get("baseline") or "linear"
    ok = [r for r in rows if r["status"] == "ok"]
    sizes = sorted({r["size"] for r in ok})
    if len(sizes) < MIN_SIZES:
        shown = ", ".join(f"{n:,}" for n in sizes) or "none"
        raise RnnbenchError(f"{folder}: a forecast needs finished runs at {MIN_SIZES} or more sizes, found "
                            f"{len(sizes)} ({shown}): add sizes to data.sizes and run `rnnbench compare CONFIG`")
    seeds = sorted({r["seed"] for r in ok})
    curve = curves(ok, metric, sizes, seeds, [m for m in models.names() if any(r["model"] == m for r in ok)])
    measured = ({m: bootstrap_crossover(curve, m, baseline, higher) for m in challengers(curve, baseline)}
                if curve.has(baseline) else {})
    pools = [r["pool_size"] for r in ok if r.get("pool_size")]
    fc = forecast(curve, metric, higher, baseline, family_name, n_boot=n_boot, measured=measured,
                  pool=max(pools) if pools else None)
    folder = Path(folder)
    suffix = "" if metric == own else f"-{metric}"
    md = write_forecast(folder, fc, folder.name, suffix)
    from .plots import learning_curve_plot

    learning_curve_plot(folder / f"learning_curve{suffix}.png", curve, metric, folder.name,
                        crossovers={m: c["crossover_size"] for m, c in measured.items()}, forecast=fc)
    return {"dir": folder, "forecast": fc, "markdown": md, "notes": notes, "suffix": suffix}


def _experiment_rows(folder: Path) -> tuple[list[dict], dict, list[str], dict]:
    """The finished runs of an experiment folder, the task, notes, and the config the runs were made with
    (the newest run's: its ``experiment.metric`` and ``experiment.baseline``)."""
    from .runs import Run

    rows, task, notes = rows_from_experiment(folder)
    newest = max(rows, key=lambda r: Run(Path(r["run_dir"])).finished_ns())
    return rows, task, notes, Run(Path(newest["run_dir"])).settings()
