"""Ranking new photos for a target community.

For each candidate photo ``x`` and target community ``c``:

1. **soft assignment** ``q(x)``: the photo's distribution over the K content clusters;
2. **fit** (:mod:`mmembed.ranking.divergence`): a smoothed divergence between the community
   profile ``p_c`` and ``q(x)``, by default ``KL(p_c || q(x))``; lower is better;
3. **score** (:mod:`mmembed.ranking.score`): fit and predicted engagement, each standardised over
   the candidate set, blended with one weight ``alpha``::

       score = (1 - alpha) * (-z(fit)) + alpha * z(engagement)     (higher is better)

   so ``alpha = 0`` is pure fit and ``alpha = 1`` pure engagement.

Import from the modules (``from mmembed.ranking.score import score``); the package does not
re-export, so ``mmembed.ranking.score`` stays the module. Everything here is plain numpy on
arrays: no model, no config, no I/O.
"""

