"""Intervals for every headline number the toolkit prints: n and a 95 % interval over
replicates (independent fire-mask seeds) or over models (training seeds).

Their one home (issue 25), at the bottom layer because ``nca.selfish`` prints intervals too
and nca may not import analysis; ``analysis.stats`` re-exports it for the reports.

* ``mean_ci``: mean and Student-t interval, ``mean +- t_{0.975, n-1} sd / sqrt(n)``;
  ``t_quantile`` is the t quantile every t interval here uses (steering's prediction band too);
* ``proportion_ci``: a success rate with the Wilson score interval (Wilson 1927; Brown, Cai
  & DasGupta 2001 recommend it over the normal approximation for small n); ``wilson`` is
  the interval of k successes in n;
* ``binomial_interval``: Clopper-Pearson (exact) interval of a rate k/n, for a test's
  rejection rate (Clopper & Pearson 1934);
* ``bootstrap_ci``: any statistic of replicates, percentile bootstrap (Efron & Tibshirani
  1993), for counts and medians that have no closed-form interval.

Every function returns a JSON-ready ``{"mean" | "value", "lo", "hi", "n"}`` dict; an interval
that cannot be computed (n < 2, all values missing) has ``lo``/``hi`` None and a ``reason``.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from scipy import special  # not scipy.stats: its import costs a report's start about 0.8 s

# The one home of the intervals (issue 25): t (mean_ci, t_quantile), Wilson (proportion_ci,
# wilson), Clopper-Pearson (binomial_interval), bootstrap. pca_report.mean_interval,
# analysis.development.positional.interval, nca.selfish.experiments.interval and
# proportion_interval, and steering's prediction band delegate here (in their own layouts).
# special.stdtrit(df, q) and special.ndtri(q) are what scipy.stats.t.ppf and norm.ppf evaluate
# (the same bits: checked for df 1..198 and q in 0.9, 0.95, 0.975, 0.995).

LEVEL = 0.95
BOOTSTRAP_DRAWS = 2000


@lru_cache(maxsize=1024)
def t_quantile(q: float, df: int) -> float:
    """The q quantile of Student's t with df degrees of freedom (scipy.stats.t.ppf's value)."""
    return float(special.stdtrit(df, q))


def mean_ci(values, level: float = LEVEL) -> dict:
    """Mean of the finite values and its t interval. values: [n] -> {mean, lo, hi, n, sd}."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0, "sd": None, "reason": "no finite value"}
    m = float(v.mean())
    if n < 2:
        return {"mean": m, "lo": None, "hi": None, "n": 1, "sd": None, "reason": "one value: no interval"}
    sd = float(v.std(ddof=1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return {"mean": m, "lo": m - half, "hi": m + half, "n": n, "sd": sd}


def mean_ci_axis(values, axis: int = -1, level: float = LEVEL) -> dict:
    """``mean_ci`` along one axis of an array: {mean, lo, hi: arrays (NaN where undefined), n}."""
    v = np.moveaxis(np.asarray(values, float), axis, -1)
    flat = v.reshape(-1, v.shape[-1])
    out = [mean_ci(r, level) for r in flat]
    pick = lambda k: np.array([np.nan if o[k] is None else o[k] for o in out]).reshape(v.shape[:-1])  # noqa: E731
    return {"mean": pick("mean"), "lo": pick("lo"), "hi": pick("hi"), "n": int(v.shape[-1])}


def mean_ci_band(values, axis: int = 0, level: float = LEVEL):
    """Mean and Student-t interval over ``axis`` of an array of curves, NaN ignored (a band for
    a figure; ``mean_ci`` for one number). -> (mean, lo, hi), each the shape without ``axis``."""
    v = np.asarray(values, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        n = np.isfinite(v).sum(axis)
        m = np.nanmean(v, axis)
        sd = np.nanstd(v, axis, ddof=1)
        half = np.where(n > 1, special.stdtrit(np.maximum(n - 1, 1), 0.5 + level / 2) * sd / np.sqrt(np.maximum(n, 1)), 0)
    return m, m - half, m + half


def proportion_ci(successes, level: float = LEVEL) -> dict:
    """Success rate of bools [n] with the Wilson score interval -> {mean, lo, hi, n}."""
    s = np.asarray(successes, bool).ravel()
    n = int(s.size)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0, "reason": "no replicate"}
    lo, hi = wilson(int(s.sum()), n, level)
    return {"mean": float(s.mean()), "lo": lo, "hi": hi, "n": n}


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval (lo, hi) of k successes in n > 0 trials."""
    p = k / n
    z = float(special.ndtri(0.5 + level / 2))
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_interval(k: int, n: int, level: float = LEVEL) -> list[float]:
    """Clopper-Pearson (exact) interval of a rate k/n -> [lo, hi] (a test's rejection rate)."""
    from scipy import stats  # here, not at the top: its import is slow

    a = 1 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return [lo, hi]


def bootstrap_ci(values, statistic, rng: np.random.Generator, draws: int = BOOTSTRAP_DRAWS,
                 level: float = LEVEL, axis: int = 0) -> dict:
    """Percentile bootstrap of ``statistic(values)`` resampling along ``axis`` (the replicates).

    values: [..., n, ...]; statistic: array -> float (may return NaN). -> {value, lo, hi, n}."""
    v = np.asarray(values, float)
    n = v.shape[axis]
    value = float(statistic(v))
    if n < 2:
        return {"value": value, "lo": None, "hi": None, "n": n, "reason": "one replicate: no interval"}
    idx = rng.integers(0, n, size=(draws, n))
    boot = np.array([statistic(np.take(v, i, axis=axis)) for i in idx], float)
    boot = boot[np.isfinite(boot)]
    if boot.size < draws // 2:
        return {"value": value, "lo": None, "hi": None, "n": n, "reason": "statistic undefined in most resamples"}
    a = (1 - level) / 2
    return {"value": value, "lo": float(np.quantile(boot, a)), "hi": float(np.quantile(boot, 1 - a)), "n": n}


def fmt_ci(c: dict | None, nd: int = 2) -> str:
    """"0.31 [0.25, 0.37] (n=5)"; "-" when there is no value."""
    if not c:
        return "-"
    v = c.get("mean", c.get("value"))
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if c.get("lo") is None:
        return f"{v:.{nd}f} (n={c['n']})"
    return f"{v:.{nd}f} [{c['lo']:.{nd}f}, {c['hi']:.{nd}f}] (n={c['n']})"
