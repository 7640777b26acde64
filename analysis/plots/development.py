"""Figures of the development and training-dynamics reports (positional information,
steering, transplants, curves over training with 95 % bands). Pure: dicts/arrays in,
matplotlib ``Figure`` out (``analysis.plots.png_bytes`` turns one into PNG bytes)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from analysis.plots import ci_arrays
from analysis.stats import mean_ci_band
from analysis.development.positional import COORDS

COLOURS = {"ridge": "tab:blue", "knn": "tab:orange", "shuffled_ridge": "0.55", "shuffled_knn": "0.75"}


def fig_probes_over_development(pos: dict, metric: str = "r2") -> Figure:
    """Held-out R^2 (or bits) of each probe per coordinate vs development step, 95 % bands."""
    fig = Figure(figsize=(10, 3.2))
    steps = np.array(pos["steps"])
    for i, c in enumerate(COORDS):
        ax = fig.add_subplot(1, 3, i + 1)
        for probe, col in COLOURS.items():
            ents = [e.get(probe, {}).get(c, {}).get(metric) if "null_reason" not in e else None for e in pos["per_step"]]
            m, lo, hi = ci_arrays(ents)
            ax.plot(steps, m, "-", color=col, lw=1.6, label=probe.replace("_", " "))
            ax.fill_between(steps, lo, hi, color=col, alpha=0.2, lw=0)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{c}", fontsize=9)
        ax.set_xlabel("development step")
        if i == 0:
            ax.set_ylabel({"r2": "held-out R$^2$", "bits": "bits (decoding bound)", "rmse": "RMSE (px)"}[metric])
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_feature_bits(info: dict) -> Figure:
    """Bits per feature and per PC about each coordinate (mean and 95 % CI over held-out
    replicates), with the shuffled-position null."""
    fig = Figure(figsize=(10, 3.4))
    for k, (key, null, label) in enumerate((("feature_bits", "feature_shuffled_bits", info.get("features", "feature")),
                                            ("pc_bits", "pc_shuffled_bits", "PC"))):
        ax = fig.add_subplot(1, 2, k + 1)
        rows = info[key]
        x = np.arange(len(rows))
        w = 0.27
        for i, c in enumerate(COORDS):
            m, lo, hi = ci_arrays([r[c] for r in rows])
            ax.bar(x + (i - 1) * w, m, w, yerr=[m - lo, hi - m], capsize=1.5, label=c, alpha=0.85)
        nm, _, nhi = ci_arrays([r["along"] for r in info[null]])
        ax.plot(x, nhi, "k_", ms=8, label="null (shuffled), upper CI")
        ax.set_xticks(x)
        ax.set_xticklabels([str(j + (4 if label == "hidden" else 0)) if label != "PC" else f"PC{j + 1}" for j in x],
                           fontsize=7)
        ax.set_ylabel("bits")
        ax.set_title(f"positional information per {label} (step {info.get('step')})", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_placement(pl: dict) -> Figure:
    """Held-out-placement probes (issue 23): R^2 and bits of kNN and ridge per coordinate for
    the model's features and each fixed-random-field null (mean, 95 % CI over held-out
    placements), and the positional error sigma_x (median and quartiles over body points;
    log scale)."""
    from analysis.plots import ci_yerr

    codes = ["model"] + [k for k in pl if k.startswith("fixed_field")]
    fig = Figure(figsize=(12, 3.4))
    bars = [(probe, code) for probe in ("knn", "ridge") for code in codes]
    w = 0.8 / len(bars)
    x = np.arange(len(COORDS))
    for k, metric in enumerate(("r2", "bits")):
        ax = fig.add_subplot(1, 3, k + 1)
        for i, (probe, code) in enumerate(bars):
            v, err = ci_yerr([pl[code]["probes"][probe][c][metric] for c in COORDS])
            col = COLOURS[probe] if code == "model" else ("0.45" if probe == "knn" else "0.75")
            ax.bar(x + (i - (len(bars) - 1) / 2) * w, v, w, yerr=err, capsize=1.5, color=col,
                   hatch=None if code == "model" else "//", label=f"{probe}: {code.replace('_', ' ')}")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(x)
        ax.set_xticklabels(COORDS)
        ax.set_ylabel({"r2": "held-out R$^2$ (placement held out)", "bits": "bits (decoding bound)"}[metric])
        if metric == "r2":
            ax.set_ylim(max(-1.0, ax.get_ylim()[0]), 1.05)
            ax.legend(fontsize=6)
    ax = fig.add_subplot(1, 3, 3)
    for i, code in enumerate(codes):
        sx = [pl[code]["sigma_x"][c] for c in COORDS]
        v = np.array([np.nan if s["median"] is None else s["median"] for s in sx])
        err = np.array([[v[i] - s.get("q25", v[i]), s.get("q75", v[i]) - v[i]] for i, s in enumerate(sx)]).T
        ax.errorbar(x + (i - (len(codes) - 1) / 2) * 0.2, v, yerr=err, fmt="o" if code == "model" else "s",
                    color="tab:orange" if code == "model" else "0.5", capsize=2, label=code.replace("_", " "))
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(COORDS)
    ax.set_ylabel("positional error $\\sigma_x$ (px, median)")
    ax.set_title("replicate noise (Dubuis et al. 2013)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_steering(steer: dict, measures=("shift_along", "length", "loss")) -> Figure:
    """Effect of steering (read-out minus the unsteered one) vs dose per direction (mean +-
    95 % CI over replicates). Every direction is pushed with the same norm at a dose; the
    random directions are thin grey lines and their 95 % prediction band is shaded: a
    direction is specific only where it leaves the band."""
    fig = Figure(figsize=(11, 3.4))
    names = steer["direction_names"]
    special = [n for n in names if not n.startswith("random")]
    for k, meas in enumerate(measures):
        ax = fig.add_subplot(1, len(measures), k + 1)
        band = steer["random_band"][meas]
        d = np.asarray(steer["settings"]["doses"], float)
        lo = np.array([np.nan if v is None else v for v in band["lo"]], float)
        hi = np.array([np.nan if v is None else v for v in band["hi"]], float)
        ax.fill_between(d, lo, hi, color="0.85", lw=0, label="random: 95% prediction band")
        for n in names:
            if n.startswith("random"):
                m, _, _ = ci_arrays(steer["directions"][n]["effect"][meas])
                ax.plot(d, m, "-", color="0.6", lw=0.6, label="random directions" if n == "random1" else None)
        for j, n in enumerate(special):
            m, clo, chi = ci_arrays(steer["directions"][n]["effect"][meas])
            out = steer["directions"][n]["specificity"][meas]["outside"]
            line = ax.errorbar(d + 0.02 * np.ptp(d) * (j - (len(special) - 1) / 2), m, yerr=[m - clo, chi - m],
                               fmt="-o", ms=3, lw=1.2, capsize=2, label=n)
            hit = np.array([bool(o) for o in out])
            if hit.any():
                ax.plot(d[hit], m[hit], "o", ms=8, mfc="none", color=line[0].get_color())
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("dose (L2 norm of the total push per cell)")
        ax.set_title(f"change of {meas.replace('_', ' ')} (open circle: outside the band)", fontsize=9)
        if k == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_steering_gallery(steer: dict) -> Figure:
    """Final bodies (replicate 0) per direction (rows) and dose (columns)."""
    from nca.model import to_rgb

    imgs = np.asarray(steer["images"])  # [D, N, H, W, 4]
    D, N = imgs.shape[:2]
    fig = Figure(figsize=(1.3 * N, 1.3 * D))
    for i in range(D):
        for j in range(N):
            ax = fig.add_subplot(D, N, i * N + j + 1)
            ax.imshow(np.clip(np.asarray(to_rgb(imgs[i, j])), 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(steer["direction_names"][i], fontsize=7)
            if i == 0:
                ax.set_title(f"dose {steer['directions'][steer['direction_names'][0]]['doses'][j]:g}", fontsize=7)
    fig.tight_layout()
    return fig


def fig_transplant(tr: dict) -> Figure:
    """Identity index of the graft vs step (95 % band), and the intact / grafted bodies."""
    from nca.model import to_rgb

    fig = Figure(figsize=(10, 3.2))
    ax = fig.add_subplot(1, 3, 1)
    m, lo, hi = ci_arrays(tr["identity_index"])
    ax.plot(tr["steps"], m, "-o", ms=3, color="tab:purple")
    ax.fill_between(tr["steps"], lo, hi, color="tab:purple", alpha=0.2, lw=0)
    ax.axhline(1, color="k", lw=0.5, ls="--")
    ax.axhline(0, color="k", lw=0.5, ls="--")
    ax.set_xlabel("step")
    ax.set_ylabel("identity index (1 = donor's, 0 = host's)")
    ax.set_title("graft: whose position does it decode as?", fontsize=9)
    for k, (name, label) in enumerate((("intact", "intact"), ("grafted", "grafted"))):
        ax = fig.add_subplot(1, 3, 2 + k)
        pair = np.asarray(tr["images"][name])
        ax.imshow(np.clip(np.concatenate([np.asarray(to_rgb(pair[0])), np.asarray(to_rgb(pair[1]))], 1), 0, 1))
        if name == "grafted":
            from matplotlib.patches import Circle

            for (r, c), col in ((tr["donor_rc"], "tab:green"), (tr["host_rc"], "tab:red")):
                for off in (0, pair.shape[2]):  # (positions are the drawn image's, on the hex grid too)
                    ax.add_patch(Circle((c + off, r), tr["settings"]["radius"], fill=False, color=col, lw=1))
        ax.set_title(f"{label}: at the graft | {tr['settings']['after']} steps later", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along the last axis (NaN ignored; shorter at the ends)."""
    v = np.asarray(values, float)
    window = min(int(window), v.shape[-1])
    if window <= 1:
        return v
    ok = np.isfinite(v)
    k = np.ones(window)
    num = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), -1, np.where(ok, v, 0.0))
    den = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), -1, ok.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def fig_series(x, curves: np.ndarray, labels: list[str], title: str, ylabel: str, logx=True, logy=False,
               vlines=(), hline=None, smooth: int = 1) -> Figure:
    """curves [runs, series, len(x)] -> per series the mean over runs with a 95 % t band
    and thin per-run lines; vlines: [(x, label)]. With logy the mean and band are taken
    of log10 (a geometric mean; the band stays positive); smooth: centred moving average
    over this many points (of log10 with logy) before the statistics."""
    curves = np.asarray(curves, float)
    if logy:
        with np.errstate(divide="ignore", invalid="ignore"):
            curves = np.log10(np.where(curves > 0, curves, np.nan))
    curves = moving_average(curves, smooth)
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    for s, lab in enumerate(labels):
        col = f"C{s}"
        m, lo, hi = mean_ci_band(curves[:, s], 0)
        rows = curves[:, s]
        if logy:
            m, lo, hi, rows = 10 ** m, 10 ** lo, 10 ** hi, 10 ** rows
        ax.plot(x, m, "-", color=col, lw=1.8, label=lab)
        if len(curves) > 1:
            ax.fill_between(x, lo, hi, color=col, alpha=0.18, lw=0)
            for row in rows:
                ax.plot(x, row, "-", color=col, lw=0.5, alpha=0.5)
    for xv, lab in vlines:
        ax.axvline(xv, color="k", lw=0.8, alpha=0.5, ls="--")
    if hline is not None:
        ax.axhline(hline, color="k", lw=0.5)
    if logx:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)  # steps are >= 0: no negative half of the symlog axis
    if logy:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
