"""Dissection of Growing NCAs: pure functions over rollout arrays.

* ``analysis.pca``: cell-state PCA (samples: alive cells; features: channels or activations),
  PC maps ``[steps, H, W, k]`` (NaN where dead).
* ``analysis.axes``: axis-orientation measures of a map over a body (direction of monotone
  increase, rank association, linear fit, radial association, body frame, classification).
  Angle convention: degrees, 0 = +x (right), counter-clockwise as the image is viewed.
* ``analysis.compare``: principal angles between PCAs (loadings or maps), rotations, emergence.
* ``analysis.dissect``: the above combined into JSON-ready results (what pca_report writes).
* ``analysis.rollouts``: growing the rollouts through ``nca.grow`` (the only part that runs
  the model); ``analysis.plots`` / ``analysis.report``: figures and the HTML page.

Dissection II (docs/dissection2.md): ``analysis.interventions`` (hook constructors: zero /
mean / resample ablation of channels or directions, activation patching, space-time
windows), ``analysis.knockouts`` (batched knockouts, epistasis, redundant pairs),
``analysis.repair`` (self-repair accounting), ``analysis.damage_assays`` (wound panel,
recovery), ``analysis.dynamics`` (measures per training checkpoint).

The reports all follow one contract (frozen ``Settings`` -> ``run(settings)`` -> a typed
``Result`` -> ``write(result, out)`` -> ``summary_lines(result)``; ``analysis.report.run_report``
is how a script calls one): ``analysis.pca_report``, ``analysis.knockout_report``,
``analysis.damage_report``, ``analysis.development_report``, ``analysis.dynamics_report``,
``analysis.selfish_report``; ``analysis.dissect_report`` is the PCA report plus its
animation (scripts/dissect.py). Each script is a thin shell around one.

See docs/pca.md and scripts/pca_report.py.
"""
