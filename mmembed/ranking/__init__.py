"""Ranking new photos for a target community.

For each candidate photo ``x`` and target community ``c``:

1. **soft assignment** ``q(x)``: the photo's distribution over the K content clusters;
2. **fit** (:mod:`mmembed.ranking.divergence`): a smoothed divergence between the community
   profile ``p_c`` and ``q(x)``, by default ``KL(p_c || q(x))``; lower is better;
3. **score** (:mod:`mmembed.ranking.score`): fit and predicted engagement, each standardised over
   the candidate set, blended with one weight ``alpha``::

       score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)     (higher is better)

   so ``alpha = 0`` is pure fit and ``alpha = 1`` pure engagement; unless it is given,
   ``alpha`` is the bundle's choice on its validation posts (:mod:`mmembed.ranking.blend`).

The modules: :mod:`.ranker` (the :class:`~mmembed.ranking.ranker.Ranker`, which loads a bundle
and returns a :class:`~mmembed.ranking.result.RankingResult`), :mod:`.settings` (``rank.*``),
:mod:`.result`, and the maths, plain numpy with no model, config or I/O: :mod:`.divergence`,
:mod:`.score`, :mod:`.blend`, :mod:`.suggest`. Import from the modules; the package does not
re-export.
"""

