"""Planted training-loss curves for validating ``analysis.development.dynamics.detect_transitions``.

Smooth families (no transition: any detection is a false one) and planted sharp steps
(a detection must find them, with the planted location inside the reported interval),
with the noise of a real quick-preset run's training loss. Everything is a pure function
of a ``numpy.random.Generator``; tests and ``bench/transitions.py`` draw from here.

Noise (``QUICK_NOISE``): the residuals of log10(loss) around a running median (51 steps)
of the four ``--preset quick --experiment regenerating --target lizard`` seeds trained
for issue 23 (/work/runs/q_regenerating/seed_{0..3}, 1500 steps; ``noise_profile``
measures them): robust sd (1.4826 MAD) 0.056-0.064 decades in steps 100-499, 0.079-0.103
in the first 100 steps, 0.068-0.086 in 500-999 and 0.10-0.12 after the learning-rate
decay at 1000 (a lower loss, a larger relative scatter; the model's 0.06 is the mid-run
level, and 0.1 throughout was checked too: docs/validation/transitions.md); lag-1
autocorrelation -0.04 to 0.25, mostly under 0.1 (consecutive losses are nearly
independent); heavy tails (kurtosis 2.5-60: batches with freshly damaged or reseeded
samples), modelled as Student-t innovations with ``df`` degrees of freedom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nca.errors import NCAError

SPAN_10_90 = 2 * np.log(9.0)  # a logistic of scale s rises from 10 % to 90 % over 4.39 s


@dataclass(frozen=True)
class NoiseModel:
    """Multiplicative noise of a training-loss curve, in log10 units: e_t = sd(t) u_t with
    u an AR(1) of lag-1 coefficient ``ar`` whose innovations are Student-t (``df``; None:
    Gaussian), scaled to unit robust sd; sd(t) = sd * (1 + early * exp(-t / early_steps))."""

    sd: float = 0.06
    ar: float = 0.05
    df: float | None = 5.0
    early: float = 0.5
    early_steps: float = 50.0


# measured on the quick-preset runs (see the module docstring and docs/validation/transitions.md)
QUICK_NOISE = NoiseModel()


def noise(t: np.ndarray, model: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """log10 noise [n] at training steps t [n] (ascending)."""
    n = len(t)
    if model.df is None:
        z = rng.normal(0, 1, n)
    else:
        z = rng.standard_t(model.df, n)
        z = z / _t_mad(model.df)
    e = np.empty(n)
    acc = 0.0
    scale = np.sqrt(1 - model.ar ** 2)  # stationary sd of the AR(1) = the innovations' sd
    for i in range(n):
        acc = model.ar * acc + scale * z[i]
        e[i] = acc
    return model.sd * (1 + model.early * np.exp(-np.asarray(t, float) / model.early_steps)) * e


def _t_mad(df: float) -> float:
    """1.4826 x the median absolute value of a Student-t(df): its robust sd."""
    from scipy.stats import t as student

    return 1.4826 * float(student.ppf(0.75, df))


def logistic(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# ----------------------------------------------------------------------------- families
# Each draws a clean loss curve [n] over steps t [n] (1..N); parameters uniform in ranges
# that span what quick-preset runs show (loss from ~0.05 at the start to 0.001-0.005).

def exponential(t, rng):
    """A exp(-t / tau): a straight line in log-loss vs step."""
    tau = rng.uniform(250, 700)
    return rng.uniform(0.03, 0.1) * np.exp(-t / tau)


def exponential_to_floor(t, rng):
    """floor + A exp(-t / tau): the audit's failing family (a bend, then flat)."""
    return rng.uniform(0.001, 0.005) + rng.uniform(0.02, 0.1) * np.exp(-t / rng.uniform(50, 400))


def power_law(t, rng):
    """A t^-alpha: a straight line in log-log."""
    return rng.uniform(0.03, 0.1) * t ** -rng.uniform(0.3, 1.0)


def power_law_to_floor(t, rng):
    """floor + A t^-alpha."""
    return rng.uniform(0.0005, 0.003) + rng.uniform(0.03, 0.1) * t ** -rng.uniform(0.4, 1.2)


def gradual_decline(t, rng, span=300.0):
    """A power law with a logistic decline (in log-loss) of 0.2-0.7 decades whose 10-90 %
    span is ``span`` steps, centred uniformly in [span, N - span]: a change, not a sharp one."""
    c = rng.uniform(span, t[-1] - span)
    h = rng.uniform(0.2, 0.7)
    base = rng.uniform(0.03, 0.1) * t ** -rng.uniform(0.2, 0.6)
    return base * 10 ** (-h * logistic((t - c) / (span / SPAN_10_90)))


SMOOTH = {"exponential": exponential, "exponential_to_floor": exponential_to_floor, "power_law": power_law,
          "power_law_to_floor": power_law_to_floor, "gradual_decline_300": gradual_decline}


def sharp_step(t, rng, size=(0.15, 0.7), relative_span=(0.005, 0.05), where=(100.0, 1300.0)):
    """A smooth background (power law, or power law to a floor) with a planted drop of
    ``size`` decades (uniform) centred at a step c uniform in ``where``, whose 10-90 % span
    is ``relative_span`` x c steps (log-uniform; at least one step): sharp by
    ``TransitionSettings.sharp_span`` (0.1) with a margin of 2 or more.
    -> (curve [n], planted: {"step", "drop_log10", "span_steps"})."""
    c = rng.uniform(*where)
    h = rng.uniform(*size)
    sp = max(1.0, c * float(np.exp(rng.uniform(np.log(relative_span[0]), np.log(relative_span[1])))))
    base = power_law(t, rng) if rng.uniform() < 0.5 else power_law_to_floor(t, rng)
    return base * 10 ** (-h * logistic((t - c) / (sp / SPAN_10_90))), {"step": c, "drop_log10": h, "span_steps": sp}


def draw(family: str, t: np.ndarray, rng: np.random.Generator, model: NoiseModel = QUICK_NOISE) -> np.ndarray:
    """One noisy curve [n] of a smooth family."""
    if family not in SMOOTH:
        raise NCAError(f"family must be one of {', '.join(SMOOTH)}, got {family!r}")
    return SMOOTH[family](t, rng) * 10 ** noise(t, model, rng)


def noise_profile(steps, loss, window: int = 51, bins=((1, 100), (100, 500), (500, 1000), (1000, None))) -> dict:
    """The noise of a real loss curve: residuals of log10(loss) around a running median of
    ``window`` steps (an edge-preserving smoother: a sharp step stays out of the residuals),
    per range of steps: robust sd (1.4826 MAD), sd, lag-1 autocorrelation, kurtosis.
    steps, loss: [n] -> {"bins": [{"from", "to", "n", "robust_sd", "sd", "lag1", "kurtosis"}]}."""
    from scipy.ndimage import median_filter

    s = np.asarray(steps, float)
    y = np.log10(np.asarray(loss, float))
    r = y - median_filter(y, size=window, mode="nearest")
    out = []
    for a, b in bins:
        m = (s >= a) & (s < (b if b is not None else np.inf))
        e = r[m]
        if e.size < 10:
            continue
        c = e - e.mean()
        out.append({"from": a, "to": b, "n": int(e.size),
                    "robust_sd": float(1.4826 * np.median(np.abs(e - np.median(e)))), "sd": float(e.std()),
                    "lag1": float(np.corrcoef(e[:-1], e[1:])[0, 1]),
                    "kurtosis": float((c ** 4).mean() / c.var() ** 2)})
    return {"window": window, "bins": out}
