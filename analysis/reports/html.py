"""The one report writer: self-contained HTML pages (figures embedded as base64 PNG), the
JSON-safe report dict, and the shared pieces (style, escaping, number formats, spreads).

Pure: builds strings and bytes from the report dict and the rendered figures; the script
writes them (atomically). The PCA report's own page is ``analysis.plots.pca.build_html``.
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


def json_safe(x, digits: int | None = None):
    """A copy of nested dicts/lists with NumPy scalars as Python numbers and NaN/inf as None
    (strict JSON); digits: round every float to that many decimals (the selfish report: 7).
    The one JSON cleaner of the reports."""
    if isinstance(x, dict):
        return {str(k): json_safe(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v, digits) for v in x]
    if hasattr(x, "tolist"):  # NumPy array or scalar
        return json_safe(x.tolist(), digits)
    if isinstance(x, float):
        if not math.isfinite(x):
            return None
        return x if digits is None else round(x, digits)
    return x


def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5;padding:1px 4px}
.cap{color:#555;font-size:14px}dt{font-weight:600}
"""


def spread(values) -> dict:
    """Across models/seeds: ``{"mean", "sd", "values"}`` (sd 0 for one value; NaN ignored)."""
    v = np.asarray(values, float)
    ok = v[np.isfinite(v)]
    return {"mean": float(ok.mean()) if ok.size else None, "sd": float(ok.std()) if ok.size else None,
            "values": v.tolist()}


def spread_ci(values) -> dict:
    """``spread`` with ``ci``: the mean and 95 % t-interval over the models (``stats.mean_ci``)."""
    from analysis.stats import mean_ci

    s = spread(values)
    s["ci"] = mean_ci(s["values"])
    return s


def table(head: list[str], rows: list[list]) -> str:
    """A plain HTML table; cells are escaped, floats get 3 significant decimals."""
    def cell(v):
        return _esc(f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else v))

    h = "".join(f"<th>{_esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def page_head(title: str) -> str:
    """A page's start: <head> with its title and the shared style, then <body>."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>")


def page_end(report: dict, docs: str, what: str = "All numbers are") -> str:
    """A page's end: where every number is (report.json, its keys documented in ``docs``),
    the report JSON's first 4000 characters folded, then </body>."""
    return (f"<h2>Every number</h2><p>{what} in <code>report.json</code> (keys documented in {docs})."
            "</p><details><summary>report.json (first 4000 characters)</summary>"
            f"<pre>{_esc(json.dumps(report, indent=1)[:4000])}</pre></details></body></html>")


def build_page(title: str, intro_html: str, sections: list[tuple[str, str, bytes | None]], report: dict,
               docs: str = "docs/interventions.md") -> str:
    """A self-contained page: title, intro (HTML), sections (title, caption HTML, PNG bytes
    or None), and the report JSON (first 4000 characters) at the end."""
    parts = [page_head(title) + f"<h1>{_esc(title)}</h1>", intro_html]
    for t, caption, png in sections:
        parts.append(f"<h2>{_esc(t)}</h2><div class='cap'>{caption}</div>" + (_img(png, t) if png else ""))
    parts.append(page_end(report, docs))
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


def wrote_line(out, result) -> str:
    """The line a report script prints last. result: a report's ``run`` result, typed
    (``.report`` with "timing_s", ``.figures``) or a dict ({"report": ..., "figures": ...})."""
    rep, figures = (result["report"], result["figures"]) if isinstance(result, dict) else (result.report,
                                                                                          result.figures)
    return f"wrote {out}/index.html, report.json and {len(figures)} figures in {rep['timing_s']:.0f} s"


def run_report(report_module, settings, args, command: str, **run_kw) -> int:
    """The one contract every report command follows, as a script calls it: claim
    ``args.out`` for ``command`` (another report, or files not ours: refused in one line),
    ``report_module.run_with_progress(settings, args.quiet, **run_kw)`` -> a result,
    ``report_module.write(result, args.out)``, then the results on stdout
    (``report_module.summary_lines(result)`` and the files written; progress goes to
    stderr). -> the exit code, 0."""
    from nca.cli import claim_report_dir

    with claim_report_dir(args.out, command, args):
        result = report_module.run_with_progress(settings, args.quiet, **run_kw)
        report_module.write(result, args.out)
    for line in report_module.summary_lines(result):
        print(line)
    print(wrote_line(args.out, result))
    return 0


esc = _esc  # public name for scripts building pages
