"""Pictures and reports of a trained bundle: the 2-D latent map, per-cluster contact sheets and
top-term charts, community cards (self-contained HTML), and logging them to W&B.

See :mod:`mmembed.report.pictures`. Plotting uses matplotlib's Agg canvas directly (never pyplot),
so importing or calling it changes no global backend state; UMAP is optional and imported lazily.
"""
