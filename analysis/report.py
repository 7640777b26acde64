"""The self-contained HTML page of a PCA report (figures embedded as base64 PNG).

Pure: builds a string from the report dict and the rendered figures; the script writes it.
"""

from __future__ import annotations

import base64
import html
import json
import math

import numpy as np

CONVENTIONS = {
    "angles": "degrees; 0 = +x (right in the image), counter-clockwise as the image is viewed "
              "(90 = up); a cell at array (row, col) sits at image-view (u, v) = (col, -row)",
    "direction_deg": "the direction in which the component's (signed) score increases, [0, 360)",
    "body_axis_deg": "the body's long axis (alpha-weighted second moments), an axis in [0, 180)",
    "angle_to_body_axis_deg": "acute angle between direction and long axis, [0, 90]",
    "sign": "each PC is signed so that its largest-magnitude loading is positive",
    "step": "step t = the state after t CA steps from the seed",
    "alive": "a cell is a sample when its alpha > the model's alive threshold (0.1)",
}


def json_safe(x):
    """A copy of nested dicts/lists with NumPy scalars as Python numbers and NaN/inf as None
    (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if hasattr(x, "tolist"):  # NumPy array or scalar
        return json_safe(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def components_table(components: list[dict]) -> str:
    cols = [("PC", lambda c: c["index"] + 1), ("var. share", lambda c: _fmt(c["explained_variance_ratio"], 3)),
            ("kind", lambda c: c["kind"] + (" (round body)" if c.get("axis_ambiguous") else "")),
            ("direction", lambda c: _fmt(c["direction_deg"], 1)),
            ("\u03c1 (directional)", lambda c: _fmt(c["association"])),
            ("\u00b1 spread", lambda c: _fmt(c["direction_spread_deg"], 0)),
            ("linear angle", lambda c: _fmt(c["linear_deg"], 1)), ("linear R\u00b2", lambda c: _fmt(c["linear_r2"])),
            ("monotone R\u00b2", lambda c: _fmt(c["monotone_r2"])), ("profile", lambda c: _fmt(c["profile"])),
            ("\u03c1 radial", lambda c: f"{c['radial_association']:+.2f}"),
            ("angle to body axis", lambda c: _fmt(c["angle_to_body_axis_deg"], 1))]
    head = "".join(f"<th>{_esc(n)}</th>" for n, _ in cols)
    rows = "".join("<tr>" + "".join(f"<td>{_esc(f(c))}</td>" for _, f in cols) + "</tr>" for c in components)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5;padding:1px 4px}
.cap{color:#555;font-size:14px}dt{font-weight:600}
"""


def build_html(report: dict, figures: list[tuple[str, str, bytes]]) -> str:
    """report: the report.json dict; figures: (title, caption, png bytes) in page order."""
    r = report
    last = r["steps"][-1]
    th = r["thresholds"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>PCA report: {_esc(r['model'])}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>PCA of cell states: {_esc(r['model'])}</h1>",
             f"<p><code>{_esc(r['command'])}</code><br>grid {r['grid']}&times;{r['grid']}, rollout "
             f"{r['rollout_steps']} steps, seed {r['seed']}, {r['seeds']} rollout(s) pooled; features: "
             f"<b>{_esc(r['features'])}</b> ({r['n_features']}), {'standardised' if r['standardize'] else 'not standardised'}; "
             f"PCA {_esc(r['pca']['pooling'])} at steps {r['pca']['fit_steps']} ({r['pca']['n_samples']} cells). "
             f"Ran in {r['timing_s']:.0f} s.</p>",
             f"<h2>Components at step {last['step']}</h2>"
             f"<p>{last['n_alive']} alive cells; body long axis {last['body_axis_deg']:.1f}&deg;, "
             f"elongation {last['body_elongation']:.2f}.</p>",
             components_table(last["components"]),
             "<h3>How components are classified</h3><dl>"
             f"<dt>axial</dt><dd>directional rank association &rho; (Spearman between score and position "
             f"projected on the found direction &theta;: the coarse Spearman maximum, refined by monotone R&sup2;) "
             f"&ge; {th['min_association']} and &ge; |&rho; radial|; "
             f"<b>along-axis</b> if its direction is within {th['along_max_deg']}&deg; of the body's long axis, "
             f"else <b>across-axis</b>. With body elongation &lt; {th['min_elongation']} the long axis is "
             f"ill-defined and the label is marked \"round body\".</dd>"
             f"<dt>radial</dt><dd>|&rho; radial| (Spearman with distance from the alpha-weighted centroid) "
             f"&ge; {th['min_association']} and &gt; &rho;; negative: high in the core.</dd>"
             f"<dt>none</dt><dd>neither reaches {th['min_association']}.</dd>"
             "<dt>profile</dt><dd>axial only: <i>split</i> when a two-level step along the direction explains "
             "more variance than a straight line (a two-sided compartment), else <i>ramp</i>. Monotone R&sup2;: "
             "variance explained by the best monotone function of the projected position.</dd>"
             "<dt>&plusmn; spread</dt><dd>the largest angle from the found direction to any direction whose &rho; is "
             "within 0.05 of the best: how precisely the direction is determined (a clear gradient: ~15-30&deg;; "
             "large: another direction orders the cells about as well).</dd></dl>",
             "<h3>Conventions</h3><ul>" + "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>"
                                                  for k, v in CONVENTIONS.items()) + "</ul>"]
    for title, caption, png in figures:
        parts.append(f"<h2>{_esc(title)}</h2><p class='cap'>{caption}</p>{_img(png, title)}")
    if r.get("rotation"):
        rot = r["rotation"]
        head = "".join(f"<th>&theta;={a:.0f}&deg;</th>" for a in rot["angles_deg"])
        rows = ["<tr><td>body axis (mod 180)</td>" + "".join(f"<td>{b:+.1f}</td>" for b in rot["body_axis_rotation_deg"]) + "</tr>"]
        for c in rot["components"]:
            note = "" if c["kind"] in ("along-axis", "across-axis") else "; direction not a body axis"
            rows.append(f"<tr><td>PC{c['index'] + 1} ({_esc(c['kind'])}{note})</td>"
                        + "".join(f"<td>{m:+.1f}</td>" for m in c["measured_rotation_deg"]) + "</tr>")
        parts.append(f"<h3>Measured rotations (deg)</h3><table><tr><th></th>{head}</tr>{''.join(rows)}</table>")
    if r.get("emergence"):
        em = r["emergence"]
        dmg = em.get("damage")
        head = "<th>PC</th><th>kind at end of growth</th><th>emerges at step</th>"
        if dmg:
            head += "<th>right after damage</th><th>after regrowth</th><th>persists</th><th>direction change</th>"
        rows = []
        for c in em["summary"]:
            row = (f"<td>{c['index'] + 1}</td><td>{_esc(c['kind_at_end_of_growth'])}</td>"
                   f"<td>{_fmt(c['emerges_at_step'])}</td>")
            if dmg:
                row += (f"<td>{_esc(c['kind_right_after_damage'])}</td><td>{_esc(c['kind_after_regrowth'])}</td>"
                        f"<td>{'yes' if c['persists'] else 'no'}</td><td>{_fmt(c['direction_change_deg'], 1)}</td>")
            rows.append(f"<tr>{row}</tr>")
        parts.append("<h3>Emergence and persistence</h3><p class='cap'>emerges at step: the first measured step "
                     "from which the component keeps its end-of-growth kind.</p>"
                     f"<table><tr>{head}</tr>{''.join(rows)}</table>")
    if r.get("comparison"):
        rows = "".join(f"<tr><td>{_esc(c['label'])}</td><td>{', '.join(f'{a:.0f}' for a in c['map_angles_deg'])}</td>"
                       f"<td>{', '.join(f'{a:.0f}' for a in c['loading_angles_deg'])}"
                       f"{'' if c['loading_angles_meaningful'] else ' (different models)'}</td></tr>"
                       for c in r["comparison"])
        parts.append("<h3>Principal angles to the reference (deg)</h3><table><tr><th>compared with</th>"
                     f"<th>PC maps</th><th>loadings</th></tr>{rows}</table>")
    parts.append("<h2>Every number</h2><p>All measures, per step, are in <code>report.json</code> "
                 "(keys documented in docs/pca.md).</p><details><summary>report.json (first 4000 characters)"
                 f"</summary><pre>{_esc(json.dumps(r, indent=1)[:4000])}</pre></details></body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- generic pages
# The dissection II reports (knockouts, damage, dynamics) share this page layout.


def spread(values) -> dict:
    """Across models/seeds: ``{"mean", "sd", "values"}`` (sd 0 for one value; NaN ignored)."""
    v = np.asarray(values, float)
    ok = v[np.isfinite(v)]
    return {"mean": float(ok.mean()) if ok.size else None, "sd": float(ok.std()) if ok.size else None,
            "values": v.tolist()}


def fmt_spread(s: dict, nd: int = 2) -> str:
    """"0.31 ± 0.05 (n=4)" (or just the value for one model)."""
    if s["mean"] is None:
        return "-"
    n = sum(v is not None and math.isfinite(v) for v in s["values"])
    return f"{s['mean']:.{nd}f}" + (f" \u00b1 {s['sd']:.{nd}f} (n={n})" if n > 1 else "")


def table(head: list[str], rows: list[list]) -> str:
    """A plain HTML table; cells are escaped, floats get 3 significant decimals."""
    def cell(v):
        return _esc(f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else v))

    h = "".join(f"<th>{_esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def build_page(title: str, intro_html: str, sections: list[tuple[str, str, bytes | None]], report: dict,
               docs: str = "docs/dissection2.md") -> str:
    """A self-contained page: title, intro (HTML), sections (title, caption HTML, PNG bytes
    or None), and the report JSON (first 4000 characters) at the end."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>", intro_html]
    for t, caption, png in sections:
        parts.append(f"<h2>{_esc(t)}</h2><div class='cap'>{caption}</div>" + (_img(png, t) if png else ""))
    parts.append(f"<h2>Every number</h2><p>All numbers are in <code>report.json</code> (keys documented in {docs})."
                 "</p><details><summary>report.json (first 4000 characters)</summary>"
                 f"<pre>{_esc(json.dumps(report, indent=1)[:4000])}</pre></details></body></html>")
    return "\n".join(parts)


def conventions_html(conventions: dict) -> str:
    return "".join(f"<p class='cap'><b>{_esc(k)}</b>: {_esc(v)}</p>" for k, v in conventions.items())


def report_files(title: str, intro_html: str, out: dict, pngs: list[tuple[str, str, str, bytes]]) -> dict[str, bytes]:
    """Everything a dissection II report writes: ``{name.png: ..., "report.json": ...,
    "index.html": ...}`` (the script writes each atomically). out: the report dict (made
    JSON-safe here; ``figures`` is set); pngs: (name, title, caption, PNG bytes)."""
    out["figures"] = [f"{n}.png" for n, *_ in pngs]
    safe = json_safe(out)
    files = {f"{n}.png": png for n, _, _, png in pngs}
    files["report.json"] = json.dumps(safe, indent=1, allow_nan=False).encode()
    page = build_page(title, intro_html + conventions_html(out.get("conventions", {})),
                      [(t, cap, png) for _, t, cap, png in pngs], safe)
    files["index.html"] = page.encode()
    return files


esc = _esc  # public name for scripts building pages
