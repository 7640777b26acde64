"""Dissection of Growing NCAs: pure functions over rollout arrays.

* ``analysis.representation.pca``: cell-state PCA (samples: alive cells; features: channels or activations),
  PC maps ``[steps, H, W, k]`` (NaN where dead).
* ``analysis.representation.axes``: axis-orientation measures of a map over a body (direction of monotone
  increase, rank association, linear fit, radial association, body frame, classification).
  Angle convention: degrees, 0 = +x (right), counter-clockwise as the image is viewed.
* ``analysis.representation.compare``: principal angles between PCAs (loadings or maps), rotations, emergence.
* ``analysis.representation.dissect``: the above combined into JSON-ready results (what pca_report writes).
* ``analysis.rollouts``: growing the rollouts through ``nca.grow`` (the only part that runs
  the model); ``analysis.plots`` / ``analysis.reports.html``: figures and the HTML page.

Dissection II (docs/interventions.md): ``analysis.causal.interventions`` (hook constructors: zero /
mean / resample ablation of channels or directions, activation patching, space-time
windows), ``analysis.causal.knockouts`` (batched knockouts, epistasis, redundant pairs),
``analysis.causal.repair`` (self-repair accounting), ``analysis.development.damage_assays`` (wound panel,
recovery), ``analysis.development.dynamics`` (measures per training checkpoint).

The reports all follow one contract (frozen ``Settings`` -> ``run(settings)`` -> a typed
``Result`` -> ``write(result, out)`` -> ``summary_lines(result)``; ``analysis.reports.html.run_report``
is how a script calls one): ``analysis.reports.pca``, ``analysis.reports.knockouts``,
``analysis.reports.damage``, ``analysis.reports.development``, ``analysis.reports.dynamics``,
``analysis.reports.selfish``; ``analysis.reports.dissect`` is the PCA report plus its
animation (scripts/dissect.py). Each script is a thin shell around one.

See docs/pca.md and scripts/pca_report.py.
"""
