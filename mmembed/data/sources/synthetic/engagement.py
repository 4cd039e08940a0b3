"""The planted engagement model: three latent photo qualities multiply the like rate.

Each post has an exposure, a saturation and a centring of its subject in [0, 1], rendered into
its pixels (:func:`~mmembed.data.sources.synthetic.render.render_photo`), and

    f = exp(sum_i w_i (q_i - 1/2))        (w = QUALITY_WEIGHTS)

multiplies its like rate (see the package docstring for the whole model).
"""

from __future__ import annotations

import numpy as np

#: Weight of each latent quality in ``log f``. The spread of ``log f`` (std 0.5; 20x between the
#: extreme photos) against the noise (sigma 0.3) is what makes engagement learnable from pixels.
QUALITY_WEIGHTS = {"exposure": 1.2, "saturation": 1.0, "centring": 0.8}
#: Comments are about this fraction of likes.
COMMENT_RATE = 0.03


def quality_factor(qualities: np.ndarray) -> np.ndarray:
    """``f`` for an (n, 3) array of (exposure, saturation, centring): the planted multiplier."""
    weights = np.array(list(QUALITY_WEIGHTS.values()))
    return np.exp(((np.asarray(qualities) - 0.5) * weights).sum(axis=-1))
