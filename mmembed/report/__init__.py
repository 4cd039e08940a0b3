"""Pictures and pages of a trained bundle and of a ranking result.

One module per concept:

* :mod:`.pictures` — every picture of a bundle, as writers for :meth:`mmembed.bundle.Bundle.save`;
* :mod:`.files` — a ranking as ``ranking.csv`` and ``ranking.json``;
* :mod:`.maps` — the 2-D latent map; :mod:`.sheets` — per-cluster contact sheets and term charts;
* :mod:`.cards` — the community cards (HTML page and PNG);
* :mod:`.html` — the ranking report (``report.html``);
* :mod:`.wandb` — logging the pictures to a W&B run;
* shared: :mod:`.colors` (cluster colours and names), :mod:`.thumbnails` (safe decoding,
  ``data:`` URIs), :mod:`.formatting` (numbers as shown), :mod:`.figures` (matplotlib on its own
  Agg canvas, never pyplot), :mod:`.templating` (the Jinja2 environment of ``templates/``).

UMAP is optional and imported lazily.
"""
