"""The synthetic source: the embedded default dataset, generated with *planted truth*.

mmembed must be runnable and testable without scraping anyone, and its claims (clusters match
topics, communities match accounts, predicted engagement tracks real engagement) must be
checkable against a known answer. This generator plants that answer:

* **Topics** (rockclimbing, nightlife, foodporn, cosmetics, countryhomes, fashiontravel, ...)
  each have a visual style (palette, shape vocabulary, texture, composition) and a text
  vocabulary (words, hashtags, brand handles). Styles overlap on purpose (palette jitter,
  exposure/saturation changes, and with probability ``overlap`` an element borrowed from another
  topic) so that a model has something to learn and mean colour alone does not solve it.
* **Visible details**: each photo also has two or three details drawn at random per post that
  vary within its topic (``ATTRIBUTES``): the colour of the main subject from a small named
  palette (the climber's shirt, the drink, the plate, the polish, the front door, the dress),
  and e.g. the light (day, golden hour, night), how many items there are (one plate or
  several), a prop (lasers, flowers, a picket fence, a sailboat). They are drawn into the pixels
  and the caption names each one with probability ``DETAIL_RATE`` ("Red door, golden hour.
  Cottage garden today!"), like real captions that describe their photo but skip things;
  an extreme exposure or saturation surfaces as "moody" or "vivid colours" with probability
  ``MOOD_RATE``. So image-caption retrieval can go beyond the topic. The details are recorded
  per post in ``truth.json`` (``post_attributes``, and ``post_caption_details`` for what the
  caption mentions) and per shoot photo in ``shoot_truth.json``; engagement ignores them.
* **Accounts** have a Dirichlet(``dirichlet_alpha``) topic mixture and log-normal followers; a
  post's topic is drawn from its account's mixture.
* **Engagement** is planted in the pixels: each post has three latent qualities in [0, 1]
  (exposure, saturation, centring of the subject) that are rendered into the image and multiply
  the like rate through ``f = exp(sum_i w_i (q_i - 1/2))`` (20x between the worst and the best
  possible photo, about 5x between the 5th and 95th percentile)::

      likes = followers * base_rate * f * fit * LogNormal(0, noise_sigma)
      fit   = 1/2 + mixture[account][topic]       (the audience's affinity for the topic)

  ``Post.true_engagement`` is the noise-free rate ``base_rate * f * fit``.

Everything is deterministic from ``seed``: the same parameters (and library versions) give the
same posts and the same image bytes. Images are written once into ``<cache_dir>/<fingerprint>/``
where the fingerprint hashes every parameter; the folder is built under a temporary name and
renamed into place, so a later load either finds a complete dataset or rebuilds it. The same
folder holds a held-out ``shoot/`` of caption-less photos (the default input of ``rank.py``),
with their ground truth in ``shoot_truth.json`` next to it, not inside it.

The package has one module per part: :mod:`~mmembed.data.sources.synthetic.topics` (topics,
caption vocabulary), :mod:`~mmembed.data.sources.synthetic.details` (visible details and the
phrases that name them), :mod:`~mmembed.data.sources.synthetic.engagement` (the
qualities' multiplier), :mod:`~mmembed.data.sources.synthetic.pen` and
:mod:`~mmembed.data.sources.synthetic.scenes` (drawing primitives and the six scene styles),
:mod:`~mmembed.data.sources.synthetic.render` (one photo) and
:mod:`~mmembed.data.sources.synthetic.source` (:class:`SyntheticSource`: generation, cache,
loading). Configs and bundles name ``mmembed.data.sources.synthetic.SyntheticSource``, and so
does its ``__module__``.
"""

from mmembed.data.sources.synthetic.details import (
    ATTRIBUTES,
    DETAIL_RATE,
    MOOD_PHRASES,
    MOOD_RATE,
    NAMED_COLOURS,
    Attribute,
    describe,
    draw_attributes,
)
from mmembed.data.sources.synthetic.engagement import COMMENT_RATE, QUALITY_WEIGHTS, quality_factor
from mmembed.data.sources.synthetic.render import MAX_OFF_CENTRE, render_photo
from mmembed.data.sources.synthetic.scenes import STYLES
from mmembed.data.sources.synthetic.source import GENERATOR_VERSION, START_DATE, SyntheticSource
from mmembed.data.sources.synthetic.topics import Topic, make_topics

__all__ = [
    "ATTRIBUTES",
    "COMMENT_RATE",
    "DETAIL_RATE",
    "GENERATOR_VERSION",
    "MAX_OFF_CENTRE",
    "MOOD_PHRASES",
    "MOOD_RATE",
    "NAMED_COLOURS",
    "QUALITY_WEIGHTS",
    "START_DATE",
    "STYLES",
    "Attribute",
    "SyntheticSource",
    "Topic",
    "describe",
    "draw_attributes",
    "make_topics",
    "quality_factor",
    "render_photo",
]
