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
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mmembed.data.post import Corpus, Post, make_post, parse_hashtags, parse_mentions

log = logging.getLogger(__name__)

#: Bump whenever the generated data changes for the same parameters; it is part of the cache
#: fingerprint, so stale caches are never reused.
GENERATOR_VERSION = "3"

#: Weight of each latent quality in ``log f``. The spread of ``log f`` (std 0.5; 20x between the
#: extreme photos) against the noise (sigma 0.3) is what makes engagement learnable from pixels.
QUALITY_WEIGHTS = {"exposure": 1.2, "saturation": 1.0, "centring": 0.8}
#: Comments are about this fraction of likes.
COMMENT_RATE = 0.03
#: How far (in image widths) the subject moves off centre when centring quality is 0.
MAX_OFF_CENTRE = 0.3
#: Timestamps are spread over one year from this date.
START_DATE = datetime(2024, 1, 1, tzinfo=UTC)

# Independent random streams, so that e.g. the shoot does not change when num_posts does.
_ACCOUNTS, _POSTS, _POST_IMAGES, _SHOOT, _SHOOT_IMAGES = range(5)

# ----------------------------------------------------------------------------------------------
# Text vocabularies
# ----------------------------------------------------------------------------------------------

GENERIC_WORDS = (
    "love", "style", "happy", "today", "weekend", "vibes", "life", "best", "good", "beautiful",
    "amazing", "time", "new", "perfect", "moment", "friends", "sunday", "mood", "feeling", "day",
)
GENERIC_HASHTAGS = (
    "instagood", "photooftheday", "love", "picoftheday", "instadaily", "happy", "beautiful",
)
#: Caption sentence templates: ``{t}`` takes a topic word, ``{g}`` a generic word.
TEMPLATES = (
    "{t} {t} {g}",
    "{g} {t} {t} today",
    "{t} and {t}, {g} {g}",
    "another {t} {g} with the {t}",
    "{t} {t} this {g}",
    "nothing beats {t} {t}",
    "{g} {g} {t}",
    "so much {g} for this {t} {t}",
)

#: name -> (account name stem, words, hashtags, brand handles). Brands are fictional.
TOPIC_TEXT: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "rockclimbing": (
        "crag",
        ("crag", "route", "send", "boulder", "chalk", "summit", "rope", "belay", "granite",
         "ridge", "project", "crux", "holds", "harness", "approach", "trail", "alpine", "wall",
         "beta", "pitch"),
        ("climbing", "rockclimbing", "bouldering", "climbinglife", "crag", "sendit", "outdoors",
         "mountains", "climber", "adventure", "chalkup", "sportclimbing", "tradclimbing"),
        ("cragworks", "granitegrip", "summit_supply"),
    ),
    "nightlife": (
        "nightowls",
        ("night", "party", "club", "dj", "dance", "cocktails", "lights", "music", "bass", "crowd",
         "bar", "neon", "drinks", "rooftop", "set", "beats", "dancefloor", "late", "city",
         "glitter"),
        ("nightlife", "party", "clubbing", "nightout", "dj", "cocktails", "weekendvibes",
         "dancefloor", "techno", "bar", "nightclub", "livemusic", "neon"),
        ("neonroom_club", "bassline_events", "midnight_mixers"),
    ),
    "foodporn": (
        "platefuls",
        ("plate", "brunch", "dinner", "pasta", "sauce", "fresh", "delicious", "recipe", "chef",
         "homemade", "flavour", "crispy", "dessert", "spicy", "taste", "kitchen", "bowl",
         "garlic", "roasted", "cheese"),
        ("foodporn", "foodie", "yummy", "delicious", "instafood", "foodphotography", "homemade",
         "brunch", "dinner", "foodstagram", "tasty", "chef", "eeeeeats"),
        ("ovenhouse_kitchen", "freshfork_market", "saucery_co"),
    ),
    "cosmetics": (
        "glowkit",
        ("lipstick", "glow", "skin", "serum", "shade", "palette", "blush", "lashes", "gloss",
         "routine", "matte", "foundation", "swatch", "beauty", "pink", "nude", "shimmer",
         "cream", "skincare", "look"),
        ("makeup", "beauty", "skincare", "cosmetics", "lipstick", "makeuplover", "glow",
         "beautyblogger", "nails", "mua", "crueltyfree", "selfcare", "swatches"),
        ("velvetglow_beauty", "rosepetal_cosmetics", "lumiskin_lab"),
    ),
    "countryhomes": (
        "cottage",
        ("cottage", "farmhouse", "garden", "barn", "porch", "meadow", "rustic", "fireplace",
         "village", "orchard", "fields", "hedge", "kitchen", "home", "roses", "fence", "chimney",
         "countryside", "cosy", "lane"),
        ("countryhome", "cottage", "farmhouse", "countryliving", "homedecor", "interiordesign",
         "garden", "cottagecore", "rustic", "farmlife", "homesweethome", "countryside", "barn"),
        ("oakbarn_interiors", "meadowlane_homes", "hearthstone_living"),
    ),
    "fashiontravel": (
        "wanderstyle",
        ("outfit", "travel", "beach", "dress", "look", "sunset", "coast", "style", "linen",
         "trip", "vacation", "hat", "stripes", "city", "getaway", "summer", "sandals", "island",
         "streets", "wardrobe"),
        ("fashion", "travel", "ootd", "style", "wanderlust", "travelgram", "fashionblogger",
         "outfit", "beachlife", "summer", "streetstyle", "vacation", "outfitoftheday"),
        ("coastline_atelier", "wanderthread", "sundress_studio"),
    ),
}
BASE_TOPICS = tuple(TOPIC_TEXT)
#: Account name suffixes, by account index.
ACCOUNT_SUFFIXES = ("daily", "club", "diaries", "hq", "collective", "studio", "life", "co")
#: Channel permutations that recolour the base styles for topics beyond the six named ones.
_VARIANT_PERMS = ((1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0), (1, 0, 2))


@dataclass(frozen=True)
class Topic:
    """One planted topic: its name, text vocabulary and the visual style it is drawn in.

    Topics past the six named ones are variants: a base style recoloured by a channel
    permutation, with suffixed hashtags and brands so that their text stays distinguishable.
    """

    name: str
    style: str
    perm: tuple[int, int, int]
    stem: str
    words: tuple[str, ...]
    hashtags: tuple[str, ...]
    brands: tuple[str, ...]


def make_topics(num_topics: int) -> list[Topic]:
    """The first ``num_topics`` topics: the six named ones, then recoloured variants."""
    topics = []
    for k in range(num_topics):
        base = BASE_TOPICS[k % len(BASE_TOPICS)]
        stem, words, tags, brands = TOPIC_TEXT[base]
        variant = k // len(BASE_TOPICS)
        if variant == 0:
            topics.append(Topic(base, base, (0, 1, 2), stem, words, tags, brands))
            continue
        suffix = str(variant + 1)
        topics.append(Topic(
            name=base + suffix, style=base,
            perm=_VARIANT_PERMS[(variant - 1) % len(_VARIANT_PERMS)],
            stem=stem + suffix, words=words,
            hashtags=tuple(t + suffix for t in tags), brands=tuple(b + suffix for b in brands),
        ))
    return topics


# ----------------------------------------------------------------------------------------------
# Visible details: what a caption says about its own photo
# ----------------------------------------------------------------------------------------------

Colour = tuple[int, int, int]

#: The named colours of the colour details. Their RGB values are absolute: variant topics
#: recolour their style but a "red" door is red in every topic.
NAMED_COLOURS: dict[str, Colour] = {
    "red": (215, 35, 45), "blue": (40, 90, 215), "green": (45, 160, 70),
    "yellow": (245, 205, 45), "pink": (245, 130, 185),
}
#: Probability that a caption mentions a detail that has a phrase (real captions skip some).
DETAIL_RATE = 0.7
#: Probability that an extreme exposure or saturation surfaces in words ("moody", "vivid").
MOOD_RATE = 0.3
#: Phrases for extreme qualities: (quality, applies when the value is below/above, phrases).
MOOD_PHRASES: tuple[tuple[str, str, float, tuple[str, ...]], ...] = (
    ("exposure", "below", 0.3, ("moody", "dark and moody", "low light")),
    ("exposure", "above", 0.75, ("bright and airy", "light and bright", "so much light")),
    ("saturation", "below", 0.25, ("muted tones", "faded film look", "soft muted colours")),
    ("saturation", "above", 0.8, ("vivid colours", "colour pop", "so vibrant")),
)


@dataclass(frozen=True)
class Attribute:
    """One visible detail of a topic's photos that varies from photo to photo.

    ``values`` are drawn uniformly per photo and rendered into its pixels; ``phrases`` maps a
    value to the ways a caption says it. A value without phrases (a prop that is absent) is
    never mentioned: captions name what is in a photo, not what is missing.
    """

    name: str
    values: tuple[str, ...]
    phrases: dict[str, tuple[str, ...]]


def _colour_detail(*templates: str) -> Attribute:
    """The colour detail of a topic: one named colour, said with ``{c}`` templates."""
    return Attribute("colour", tuple(NAMED_COLOURS),
                     {c: tuple(t.format(c=c) for t in templates) for c in NAMED_COLOURS})


def _prop(name: str, *phrases: str) -> Attribute:
    """A prop that is present ("yes") or absent ("no") and mentioned only when present."""
    return Attribute(name, ("no", "yes"), {"yes": phrases})


#: Per base style: the details drawn per photo. Every style has a ``colour`` detail (the main
#: subject's colour) and two others: the light (sky), a count of items, or a prop.
ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    "rockclimbing": (
        _colour_detail("{c} shirt", "{c} top", "in {c}"),
        Attribute("light", ("day", "golden hour"), {
            "day": ("blue sky", "bluebird day", "clear skies"),
            "golden hour": ("golden hour", "sunset session", "evening light")}),
        Attribute("rope", ("roped", "bouldering"), {
            "roped": ("on the rope", "roped up", "lead climbing"),
            "bouldering": ("no rope", "crash pad", "ropeless")}),
    ),
    "nightlife": (
        _colour_detail("{c} cocktail vibes", "something {c} in the glass",
                       "{c} is the colour tonight"),
        Attribute("count", ("one", "several"), {
            "one": ("one drink", "just the one", "a single glass"),
            "several": ("a round for the table", "drinks for everyone", "a round of cocktails")}),
        _prop("lasers", "lasers", "laser show", "lasers on the dancefloor"),
    ),
    "foodporn": (
        _colour_detail("{c} plate", "on a {c} plate", "{c} ceramics"),
        Attribute("count", ("one", "several"), {
            "one": ("dinner for one", "just one plate", "solo plate"),
            "several": ("sharing plates", "a table full of plates", "small plates to share")}),
        Attribute("table", ("wood", "marble"), {
            "wood": ("wooden table", "rustic wood table", "dark wood"),
            "marble": ("marble table", "white marble", "on marble")}),
    ),
    "cosmetics": (
        _colour_detail("{c} polish", "{c} nail polish", "{c} bottles"),
        Attribute("count", ("one", "several"), {
            "one": ("one bottle", "a single bottle", "just this one"),
            "several": ("the whole lineup", "lineup of bottles", "the collection")}),
        _prop("flowers", "with flowers", "fresh flowers", "florals"),
    ),
    "countryhomes": (
        _colour_detail("{c} door", "the {c} front door", "{c} front door"),
        Attribute("light", ("day", "golden hour", "night"), {
            "day": ("sunny day", "blue skies", "sunny morning"),
            "golden hour": ("golden hour", "evening glow", "sunset light"),
            "night": ("by night", "moonlight", "under the moon")}),
        _prop("fence", "picket fence", "white picket fence", "by the fence"),
    ),
    "fashiontravel": (
        _colour_detail("{c} dress", "in a {c} dress", "{c} sundress"),
        Attribute("light", ("day", "sunset"), {
            "day": ("midday sun", "blue sky", "sunny afternoon"),
            "sunset": ("sunset glow", "golden hour", "sunset by the sea")}),
        _prop("boat", "sailboat", "boats on the water", "sailing boat"),
    ),
}


def draw_attributes(topic: Topic, rng: np.random.Generator) -> dict[str, str]:
    """One photo's visible details: a uniformly drawn value for each of its style's details."""
    return {a.name: a.values[int(rng.integers(len(a.values)))] for a in ATTRIBUTES[topic.style]}


def describe(topic: Topic, attributes: dict[str, str], qualities, rng: np.random.Generator,
             detail_rate: float = DETAIL_RATE, mood_rate: float = MOOD_RATE
             ) -> tuple[list[str], list[str]]:
    """Phrases a caption uses for its photo, and the names of what they mention.

    Each detail with a phrase is mentioned with probability ``detail_rate``; an extreme
    exposure or saturation with probability ``mood_rate``. The order is shuffled. The random
    draws happen whatever the rates, so the rates change captions and nothing else.
    """
    phrases, mentioned = [], []
    for attr in ATTRIBUTES[topic.style]:
        ways = attr.phrases.get(attributes[attr.name], ())
        if ways and rng.random() < detail_rate:
            phrases.append(ways[int(rng.integers(len(ways)))])
            mentioned.append(attr.name)
    values = dict(zip(QUALITY_WEIGHTS, qualities))
    for quality, side, threshold, ways in MOOD_PHRASES:
        value = values[quality]
        if (value < threshold if side == "below" else value > threshold) \
                and rng.random() < mood_rate:
            phrases.append(ways[int(rng.integers(len(ways)))])
            mentioned.append(quality)
    order = rng.permutation(len(phrases)) if len(phrases) > 1 else range(len(phrases))
    return [phrases[k] for k in order], [mentioned[k] for k in order]


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------

Palette = dict[str, list[Colour]]
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@lru_cache(maxsize=32)
def _grid(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1] as (rows, columns) arrays, cached per size."""
    t = ((np.arange(width, dtype=np.float32) + 0.5) / width)
    return t[:, None], t[None, :]


def _blotches(rng: np.random.Generator, width: int, amp: float, rows: int, cols: int,
              mono: bool = False):
    """Smooth noise: a rows x cols grid of random values, bilinearly stretched to the image.

    ``mono`` varies brightness only (stone, haze) instead of colour (mottled surfaces).

    Pillow's resize does the stretch: it is fast for tiny inputs and works in fixed point on
    8-bit data (tiny BLAS products were slower, and their rounding can depend on BLAS
    threading, which would break byte-identical images).
    """
    noise = rng.standard_normal((rows, cols, 1 if mono else 3))
    small = np.clip(np.broadcast_to(noise, (rows, cols, 3)) * amp + 128, 0, 255).astype(np.uint8)
    big = Image.fromarray(small, "RGB").resize((width, width), Image.Resampling.BILINEAR)
    return np.asarray(big, dtype=np.float32) - 128


def _gradient(width: int, stops: list[tuple[float, Colour]]) -> np.ndarray:
    """A vertical colour gradient through ``(position, colour)`` stops, as one float column."""
    pos = np.array([p for p, _ in stops], dtype=np.float32)
    cols = np.array([c for _, c in stops], dtype=np.float32)
    rows, _ = _grid(width)
    column = np.stack([np.interp(rows[:, 0], pos, cols[:, k]) for k in range(3)], axis=-1)
    return column[:, None, :].astype(np.float32)  # (width, 1, 3): broadcasts over columns


class _Pen:
    """ImageDraw in unit coordinates (0..1 of the image width), so styles ignore resolution."""

    def __init__(self, img: Image.Image, rng: np.random.Generator,
                 subject: tuple[float, float] = (0.5, 0.5)):
        self.draw = ImageDraw.Draw(img)
        self.w = img.width
        self.rng = rng
        self.subject = subject  # where the subject will stand, so details can stay clear of it

    def pick(self, colours: list[Colour]) -> Colour:
        return colours[int(self.rng.integers(len(colours)))]

    def u(self, *lo_hi: float) -> float:
        return float(self.rng.uniform(*lo_hi))

    def polygon(self, pts, fill, outline=None):
        self.draw.polygon([(x * self.w, y * self.w) for x, y in pts], fill=fill, outline=outline)

    def ellipse(self, cx, cy, rx, ry, fill=None, outline=None, width=0.0):
        box = ((cx - rx) * self.w, (cy - ry) * self.w, (cx + rx) * self.w, (cy + ry) * self.w)
        self.draw.ellipse(box, fill=fill, outline=outline, width=max(1, round(width * self.w)))

    def rect(self, x0, y0, x1, y1, fill, radius=0.0):
        box = (x0 * self.w, y0 * self.w, x1 * self.w, y1 * self.w)
        self.draw.rounded_rectangle(box, radius=radius * self.w, fill=fill)

    def line(self, pts, fill, width):
        self.draw.line([(x * self.w, y * self.w) for x, y in pts], fill=fill,
                       width=max(1, round(width * self.w)), joint="curve")


def _jagged(rng, x0, x1, base, low, high, step=(0.06, 0.14)):
    """Points of a jagged ridge from x0 to x1 whose peaks lie between base-high and base-low."""
    pts, x = [], x0
    while x < x1:
        pts.append((x, base - float(rng.uniform(low, high))))
        x += float(rng.uniform(*step))
    pts.append((x1, base - float(rng.uniform(low, high))))
    return pts


# Each style: palette, background(rng, W, pal, attrs) -> (float image, horizon),
# decor(pen, pal, h, attrs), subject(pen, pal, cx, cy, scale, h, attrs), and the grain amplitude
# of the final image. ``attrs`` are the photo's visible details (see ATTRIBUTES); ``pal["named"]``
# holds the one colour of its colour detail. A decor borrowed from another topic gets
# ``attrs=None`` and draws only its generic elements, never a detail that a caption could name.


def _mix(colour, other, t: float) -> Colour:
    """``colour`` moved a fraction ``t`` of the way toward ``other``."""
    return tuple(int(a + t * (b - a)) for a, b in zip(colour, other))


def _dim(colour, factor: float) -> Colour:
    return tuple(int(c * factor) for c in colour)


def _rock_background(rng, w, pal, attrs):
    h = float(rng.uniform(0.3, 0.5))
    golden = attrs["light"] == "golden hour"
    sky = pal["golden"] if golden else pal["sky"]
    rock = [_mix(c, pal["golden"][0], 0.3) for c in pal["rock"]] if golden else pal["rock"]
    arr = _gradient(w, [(0, sky[0]), (h, sky[1]), (h + 0.004, rock[0]), (1, rock[1])])
    arr = arr + _blotches(rng, w, 24, 5, 5, mono=True) + _blotches(rng, w, 10, 18, 18)
    return arr, h


def _rock_decor(pen, pal, h, attrs):
    for depth in range(2):
        shade = _dim(pen.pick(pal["rock"]), 0.75 + 0.15 * depth)
        ridge = _jagged(pen.rng, -0.05, 1.05, h + 0.08 * depth, 0.02, 0.22)
        pen.polygon(ridge + [(1.05, 1.05), (-0.05, 1.05)], fill=shade)


def _rock_subject(pen, pal, cx, cy, scale, h, attrs):
    r = 0.3 * scale
    angles = np.sort(pen.rng.uniform(0, 2 * math.pi, 9))
    radii = pen.rng.uniform(0.7, 1.1, 9) * r
    wall = [(cx + rr * math.cos(a), cy + 1.2 * rr * math.sin(a)) for a, rr in zip(angles, radii)]
    pen.polygon(wall, fill=_dim(pen.pick(pal["rock"]), 0.7))
    for _ in range(3):  # cracks
        x = cx + pen.u(-0.6, 0.6) * r
        pen.line([(x, cy - 0.6 * r), (x + pen.u(-0.1, 0.1), cy + 0.6 * r)], fill=(60, 50, 45),
                 width=0.008)
    body, s = pal["named"][0], 1.6 * scale  # the climber's shirt is the colour detail
    hx, hy = cx + pen.u(-0.05, 0.05), cy - 0.1 * scale
    if attrs["rope"] == "roped":
        pen.line([(hx, -0.05), (hx, hy + 0.05 * s)], fill=pen.pick(pal["accent"]), width=0.014)
    else:  # bouldering: a crash pad at the foot of the wall instead of a rope
        pen.rect(cx - 0.17 * scale, cy + 0.3 * scale, cx + 0.17 * scale, cy + 0.37 * scale,
                 fill=pen.pick(pal["pad"]), radius=0.01)
    pen.line([(hx, hy), (hx, hy + 0.1 * s)], fill=body, width=0.035 * s)  # torso
    pen.line([(hx - 0.07 * s, hy - 0.08 * s), (hx, hy + 0.01 * s),
              (hx + 0.06 * s, hy - 0.06 * s)], fill=body, width=0.014 * s)  # arms
    pen.line([(hx - 0.06 * s, hy + 0.19 * s), (hx, hy + 0.1 * s),
              (hx + 0.07 * s, hy + 0.16 * s)], fill=(70, 70, 80), width=0.015 * s)  # legs
    pen.ellipse(hx, hy - 0.03 * s, 0.025 * s, 0.025 * s, fill=(235, 190, 150))


def _night_background(rng, w, pal, attrs):
    bg = pal["bg"]
    arr = _gradient(w, [(0, bg[0]), (1, bg[1])])
    arr = arr + _blotches(rng, w, 14, 4, 4)
    return arr, float(rng.uniform(0.6, 0.8))


def _night_decor(pen, pal, h, attrs):
    for _ in range(int(pen.rng.integers(25, 60))):
        r = pen.u(0.008, 0.04)
        colour = pen.pick(pal["lights"])
        if pen.rng.random() < 0.3:
            pen.ellipse(pen.u(0, 1), pen.u(0, 1), r, r, outline=colour, width=0.006)
        else:
            pen.ellipse(pen.u(0, 1), pen.u(0, 1), r, r, fill=colour)
    if attrs is not None and attrs["lasers"] == "yes":  # a fan of beams from one projector
        x0, colour = pen.u(0.15, 0.85), pen.pick(pal["lights"])
        for _ in range(int(pen.rng.integers(4, 8))):
            pen.line([(x0, -0.02), (pen.u(-0.3, 1.3), 1.02)], fill=colour, width=0.008)


def _night_glass(pen, pal, cx, cy, scale):
    rim, top, tip = cy - 0.12 * scale, 0.13 * scale, cy + 0.04 * scale
    glass = (225, 240, 250)
    pen.polygon([(cx - top, rim), (cx + top, rim), (cx, tip)], fill=pal["named"][0],
                outline=glass)
    pen.line([(cx, tip), (cx, cy + 0.19 * scale)], fill=glass, width=0.012)
    pen.ellipse(cx, cy + 0.19 * scale, 0.07 * scale, 0.015 * scale, fill=glass)
    pen.ellipse(cx + 0.1 * scale, rim, 0.03 * scale, 0.03 * scale, fill=(120, 200, 60))


def _night_subject(pen, pal, cx, cy, scale, h, attrs):
    glow = pen.pick(pal["lights"])
    pen.ellipse(cx, cy, 0.22 * scale, 0.22 * scale, fill=_dim(glow, 0.55))
    pen.ellipse(cx, cy, 0.16 * scale, 0.16 * scale, fill=_dim(glow, 0.8))
    if attrs["count"] == "one":
        _night_glass(pen, pal, cx, cy, scale)
        return
    n = int(pen.rng.integers(2, 4))
    for k in range(n):
        _night_glass(pen, pal, cx + (k - (n - 1) / 2) * 0.24 * scale,
                     cy + pen.u(-0.03, 0.03), 0.85 * scale)


def _food_background(rng, w, pal, attrs):
    rows, cols = _grid(w)
    if attrs["table"] == "marble":
        marble = pal["marble"]
        slope, phase = float(rng.uniform(-1.5, 1.5)), float(rng.uniform(0, 1))
        wave = np.abs(np.sin(math.pi * (2.5 * rows + slope * cols
                                        + 0.15 * np.sin(2 * math.pi * 1.5 * cols) + phase)))
        veins = np.exp(-wave / 0.05)  # thin grey veins where the wave crosses zero
        arr = _gradient(w, [(0, marble[0]), (1, marble[1])])
        return arr - 45 * veins[..., None] + _blotches(rng, w, 12, 6, 6, mono=True), 0.0
    table = pal["table"]
    arr = _gradient(w, [(0, table[0]), (1, table[1])])
    freq, wobble = float(rng.uniform(6, 14)), float(rng.uniform(0.01, 0.04))
    grain = np.sin(2 * math.pi * (rows * freq + wobble * np.sin(2 * math.pi * 2 * cols)))
    arr = arr + 14 * grain[..., None] + _blotches(rng, w, 8, 6, 6)
    return arr, 0.0


def _food_decor(pen, pal, h, attrs):
    metal = (200, 200, 205)
    for side in pen.rng.permutation([0.07, 0.93])[: int(pen.rng.integers(1, 3))]:
        x, y0 = float(side), pen.u(0.2, 0.4)
        pen.rect(x - 0.015, y0, x + 0.015, y0 + 0.45, fill=metal, radius=0.01)
    if attrs is None:
        plates = int(pen.rng.integers(0, 2))
    else:
        plates = 0 if attrs["count"] == "one" else int(pen.rng.integers(2, 4))
    corners = pen.rng.permutation(4)[:plates]
    for corner in corners:
        r = pen.u(0.09, 0.13)
        x, y = (0.12, 0.88)[corner % 2], (0.12, 0.88)[corner // 2]
        pen.ellipse(x, y, r, r, fill=pen.pick(pal["plate"]))
        pen.ellipse(x, y, 0.7 * r, 0.7 * r, fill=pen.pick(pal["food"]))


def _food_subject(pen, pal, cx, cy, scale, h, attrs):
    r = 0.32 * scale
    plate = pal["named"][0]  # the plate's glaze is the colour detail
    pen.ellipse(cx + 0.02, cy + 0.025, r, 0.93 * r, fill=(70, 50, 40))  # shadow
    pen.ellipse(cx, cy, r, 0.93 * r, fill=plate, outline=_dim(plate, 0.85), width=0.01)
    pen.ellipse(cx, cy, 0.72 * r, 0.68 * r, outline=_dim(plate, 0.92), width=0.006)
    for _ in range(int(pen.rng.integers(5, 11))):
        a, d = pen.u(0, 2 * math.pi), pen.u(0, 0.4) * r
        size = pen.u(0.08, 0.18) * r
        pen.ellipse(cx + d * math.cos(a), cy + d * math.sin(a), size, size * pen.u(0.6, 1.0),
                    fill=pen.pick(pal["food"]))
    for _ in range(int(pen.rng.integers(3, 8))):
        a, d = pen.u(0, 2 * math.pi), pen.u(0, 0.5) * r
        pen.ellipse(cx + d * math.cos(a), cy + d * math.sin(a), 0.02, 0.02, fill=(60, 150, 50))


def _cosmetics_background(rng, w, pal, attrs):
    bg = pal["bg"]
    h = float(rng.uniform(0.65, 0.82))
    surface = _dim(bg[1], 0.9)
    arr = _gradient(w, [(0, bg[0]), (h, bg[1]), (h + 0.004, surface), (1, surface)])
    arr = arr + _blotches(rng, w, 5, 3, 3)
    return arr, h


def _cosmetics_flower(pen, x, y, r, petal):
    for k in range(5):
        a = 2 * math.pi * k / 5
        pen.ellipse(x + 0.9 * r * math.cos(a), y + 0.9 * r * math.sin(a), 0.6 * r, 0.6 * r,
                    fill=petal)
    pen.ellipse(x, y, 0.45 * r, 0.45 * r, fill=(245, 200, 60))


def _cosmetics_decor(pen, pal, h, attrs):
    for _ in range(int(pen.rng.integers(1, 4))):
        x, r = pen.u(0.05, 0.95), pen.u(0.04, 0.07)
        pen.ellipse(x, h + 0.05, r, 0.5 * r, fill=pen.pick(pal["cap"]))
        pen.ellipse(x, h + 0.05, 0.7 * r, 0.35 * r, fill=pen.pick(pal["product"]))
    for _ in range(int(pen.rng.integers(3, 9))):
        pen.ellipse(pen.u(0, 1), pen.u(0, h), 0.006, 0.006, fill=(255, 255, 250))
    if attrs is not None and attrs["flowers"] == "yes":  # a spray of flowers in the corners
        for _ in range(int(pen.rng.integers(2, 4))):
            x = pen.u(0.02, 0.22) if pen.rng.random() < 0.5 else pen.u(0.78, 0.98)
            _cosmetics_flower(pen, x, pen.u(0.05, h), pen.u(0.04, 0.06), pen.pick(pal["petal"]))


def _cosmetics_subject(pen, pal, cx, cy, scale, h, attrs):
    one = attrs["count"] == "one"
    n = 1 if one else int(pen.rng.integers(3, 6))
    width = (0.15 if one else 0.09) * scale
    base = cy + 0.22 * scale
    for i in range(n):
        x = cx + (i - (n - 1) / 2) * width * 1.3
        top = base - pen.u(0.4, 0.5) * scale if one else base - pen.u(0.28, 0.48) * scale
        cap = top + (base - top) * pen.u(0.25, 0.4)  # the cap sits on top, the shade below
        pen.rect(x - width / 2, cap, x + width / 2, base, fill=pal["named"][0],
                 radius=0.02 * scale)
        pen.rect(x - 0.35 * width, top, x + 0.35 * width, cap, fill=pen.pick(pal["cap"]),
                 radius=0.01 * scale)


def _country_background(rng, w, pal, attrs):
    h = float(rng.uniform(0.55, 0.72))
    light = attrs["light"]
    sky, ground = pal[_COUNTRY_SKY[light]], pal["ground"]
    if light == "night":
        ground = [_dim(c, 0.45) for c in ground]
    elif light == "golden hour":
        ground = [_mix(c, pal["golden"][1], 0.25) for c in ground]
    arr = _gradient(w, [(0, sky[0]), (h, sky[1]), (h + 0.004, ground[0]), (1, ground[1])])
    rows, _ = _grid(w)
    arr = arr + _blotches(rng, w, 18, 5, 40) * (rows > h)[..., None] + _blotches(rng, w, 6, 4, 4)
    return arr, h


_COUNTRY_SKY = {"day": "sky", "golden hour": "golden", "night": "night"}


def _country_decor(pen, pal, h, attrs):
    light = "day" if attrs is None else attrs["light"]
    tree_shade = 0.5 if light == "night" else 1.0
    if light == "night":  # moon and stars
        for _ in range(int(pen.rng.integers(6, 14))):
            pen.ellipse(pen.u(0, 1), pen.u(0, 0.8 * h), 0.005, 0.005, fill=(240, 240, 220))
        r = pen.u(0.05, 0.07)
        pen.ellipse(pen.u(0.1, 0.9), pen.u(0.08, 0.25), r, r, fill=(240, 238, 215))
    elif light == "golden hour":  # a low sun just above the horizon
        r = pen.u(0.06, 0.09)
        pen.ellipse(pen.u(0.1, 0.9), h - pen.u(0.03, 0.08), r, r, fill=(255, 175, 80))
    elif pen.rng.random() < 0.5:
        r = pen.u(0.05, 0.08)
        pen.ellipse(pen.u(0.1, 0.9), pen.u(0.08, 0.25), r, r, fill=(250, 225, 110))
    for _ in range(int(pen.rng.integers(1, 4))):
        x, size = pen.u(0.05, 0.95), pen.u(0.07, 0.12)
        pen.rect(x - 0.012, h - size, x + 0.012, h + 0.04, fill=_dim((110, 75, 45), tree_shade))
        pen.ellipse(x, h - 1.3 * size, size, size * 1.1,
                    fill=_dim(pen.pick(pal["tree"]), tree_shade))
    fence = pen.rng.random() < 0.4 if attrs is None else attrs["fence"] == "yes"
    if fence:  # a white picket fence along the front
        y, paint = h + 0.1, _dim((238, 235, 225), 0.6 if light == "night" else 1.0)
        pen.line([(0, y), (1, y)], fill=paint, width=0.012)
        for x in np.arange(0.03, 1, 0.07):
            pen.line([(float(x), y - 0.05), (float(x), y + 0.04)], fill=paint, width=0.016)


def _country_subject(pen, pal, cx, cy, scale, h, attrs):
    night = attrs["light"] == "night"
    shade = 0.5 if night else 1.0
    w, hh = 0.2 * scale, 0.14 * scale  # half width, half height of the house body
    wall, roof = _dim(pen.pick(pal["wall"]), shade), _dim(pen.pick(pal["roof"]), shade)
    pen.rect(cx + 0.08 * scale, cy - hh - 0.2 * scale, cx + 0.12 * scale, cy - hh,
             fill=_dim((120, 90, 80), shade))  # chimney
    pen.rect(cx - w, cy - hh, cx + w, cy + hh, fill=wall)
    pen.polygon([(cx - 1.15 * w, cy - hh), (cx + 1.15 * w, cy - hh), (cx, cy - hh - 0.17 * scale)],
                fill=roof)
    door = _dim(pal["named"][0], 0.7 if night else 1.0)  # the door is the colour detail
    pen.rect(cx - 0.05 * scale, cy + hh - 0.17 * scale, cx + 0.05 * scale, cy + hh, fill=door)
    glass = pal["window"][1] if night else pen.pick(pal["window"])  # lit windows at night
    for side in (-1, 1):
        x = cx + side * 0.13 * scale
        pen.rect(x - 0.04 * scale, cy - 0.07 * scale, x + 0.04 * scale, cy + 0.01 * scale,
                 fill=glass)


def _fashion_background(rng, w, pal, attrs):
    h = float(rng.uniform(0.45, 0.6))
    sky, sea, sand = pal["sky"], pal["sea"], pal["sand"]
    if attrs["light"] == "sunset":  # coral sky fading to peach
        stops = [(0, sky[2]), (h, sky[1])]
    else:  # blue sky fading to a pale haze
        stops = [(0, sky[0]), (h, sky[3])]
    arr = _gradient(w, stops + [(h + 0.004, sea[0]), (h + 0.12, sea[1]),
                                (h + 0.124, sand[0]), (1, sand[1])])
    rows, cols = _grid(w)
    freq, phase = float(rng.uniform(5, 10)), float(rng.uniform(0, 2 * math.pi))
    stripes = np.sin(2 * math.pi * freq * (rows + cols) + phase)
    arr = arr + 9 * stripes[..., None] + _blotches(rng, w, 8, 5, 5)
    return arr, h


def _fashion_decor(pen, pal, h, attrs):
    if attrs is not None and attrs["light"] == "day":  # a small sun high in the sky
        r = pen.u(0.04, 0.06)
        pen.ellipse(pen.u(0.1, 0.9), pen.u(0.06, 0.2), r, r, fill=(255, 245, 190))
    else:
        r = pen.u(0.07, 0.12)
        pen.ellipse(pen.u(0.1, 0.9), h, r, r, fill=(250, 170, 80))  # sun setting on the horizon
    if attrs is not None and attrs["boat"] == "yes":  # a sailboat on the sea, beside the figure
        cx = pen.subject[0]
        x = pen.u(cx + 0.28, 0.95) if cx <= 0.5 else pen.u(0.05, cx - 0.28)
        y, s = h + pen.u(0.03, 0.07), pen.u(0.8, 1.2)
        pen.polygon([(x - 0.07 * s, y), (x + 0.07 * s, y), (x + 0.05 * s, y + 0.025 * s),
                     (x - 0.05 * s, y + 0.025 * s)], fill=(70, 50, 45))
        pen.polygon([(x, y - 0.004), (x, y - 0.13 * s), (x + 0.06 * s, y - 0.004)],
                    fill=(250, 250, 245))
    if pen.rng.random() < 0.6:  # a striped awning across a corner
        colour = pen.pick(pal["outfit"])
        x0 = pen.u(-0.3, 0.3)
        for k in range(int(pen.rng.integers(3, 6))):
            off = x0 + 0.12 * k
            pen.line([(off, 0), (off - 0.3, 0.3)], fill=colour, width=0.03)


def _fashion_subject(pen, pal, cx, cy, scale, h, attrs):
    scale *= 1.25
    dress, accent = pal["named"][0], pen.pick(pal["accent"])  # the dress is the colour detail
    skin = (225, 180, 145)
    top, hem = cy - 0.15 * scale, cy + 0.12 * scale
    for side in (-1, 1):
        pen.line([(cx + side * 0.03 * scale, hem), (cx + side * 0.04 * scale, cy + 0.27 * scale)],
                 fill=skin, width=0.018)
    pen.polygon([(cx - 0.05 * scale, top), (cx + 0.05 * scale, top),
                 (cx + 0.13 * scale, hem), (cx - 0.13 * scale, hem)], fill=dress)
    for k in range(1, 4):
        y = top + (hem - top) * k / 4
        half = 0.05 * scale + 0.08 * scale * k / 4
        pen.line([(cx - half, y), (cx + half, y)], fill=accent, width=0.008)
    pen.ellipse(cx, top - 0.05 * scale, 0.035 * scale, 0.04 * scale, fill=skin)
    pen.ellipse(cx, top - 0.085 * scale, 0.09 * scale, 0.02 * scale, fill=(230, 205, 150))  # hat
    pen.rect(cx + 0.08 * scale, cy, cx + 0.14 * scale, cy + 0.06 * scale, fill=accent,
             radius=0.01)  # handbag


@dataclass(frozen=True)
class _Style:
    palette: dict[str, tuple[Colour, ...]]
    background: Callable
    decor: Callable
    subject: Callable
    grain: float


STYLES: dict[str, _Style] = {
    "rockclimbing": _Style(
        {"sky": ((105, 155, 215), (175, 205, 235)),
         "golden": ((235, 140, 80), (255, 205, 140)),
         "rock": ((150, 120, 95), (185, 140, 100), (125, 112, 105), (200, 160, 120)),
         "accent": ((225, 40, 40), (250, 200, 30), (40, 90, 210)),
         "pad": ((45, 50, 60), (70, 60, 50))},
        _rock_background, _rock_decor, _rock_subject, grain=9.0),
    "nightlife": _Style(
        {"bg": ((20, 10, 45), (40, 15, 65), (10, 20, 50)),
         "lights": ((255, 60, 200), (60, 220, 255), (255, 230, 80), (180, 80, 255))},
        _night_background, _night_decor, _night_subject, grain=5.0),
    "foodporn": _Style(
        {"table": ((125, 82, 50), (160, 110, 70)),
         "marble": ((232, 230, 224), (208, 206, 202)),
         "plate": ((245, 245, 240), (235, 228, 215), (215, 225, 235)),
         "food": ((200, 60, 40), (240, 170, 40), (95, 165, 60), (150, 85, 40), (250, 220, 150))},
        _food_background, _food_decor, _food_subject, grain=6.0),
    "cosmetics": _Style(
        {"bg": ((245, 210, 222), (228, 212, 242), (250, 226, 206), (214, 236, 230)),
         "product": ((205, 60, 95), (232, 150, 172), (182, 120, 205), (240, 198, 178)),
         "cap": ((30, 30, 32), (212, 182, 112), (240, 240, 240)),
         "petal": ((252, 252, 250), (250, 215, 225))},
        _cosmetics_background, _cosmetics_decor, _cosmetics_subject, grain=2.5),
    "countryhomes": _Style(
        {"sky": ((140, 190, 235), (205, 225, 242)),
         "golden": ((235, 150, 95), (252, 210, 150)),
         "night": ((10, 14, 40), (40, 46, 88)),
         "ground": ((95, 155, 62), (120, 172, 72), (70, 122, 50)),
         "tree": ((40, 110, 40), (62, 132, 52), (85, 120, 40)),
         "wall": ((236, 226, 200), (242, 242, 236), (205, 170, 130)),
         "roof": ((190, 75, 58), (120, 70, 50), (95, 95, 105)),
         "window": ((170, 210, 240), (250, 220, 120))},
        _country_background, _country_decor, _country_subject, grain=6.0),
    "fashiontravel": _Style(
        {"sky": ((120, 180, 225), (250, 185, 130), (240, 145, 125), (195, 225, 240)),
         "sea": ((40, 120, 165), (65, 155, 175)),
         "sand": ((232, 212, 172), (215, 190, 150)),
         "outfit": ((25, 25, 28), (242, 242, 242), (205, 30, 60), (232, 200, 60),
                    (40, 60, 140)),
         "accent": ((25, 25, 28), (242, 242, 242), (200, 170, 120))},
        _fashion_background, _fashion_decor, _fashion_subject, grain=5.0),
}


def _jitter(style: _Style, perm: tuple[int, int, int], rng: np.random.Generator,
            named: Colour | None = None) -> Palette:
    """The style's palette recoloured for one image: a global colour cast plus per-colour noise.

    The cast makes mean colour an unreliable cue on its own (topics overlap in colour space).
    ``named`` (the colour detail, e.g. a red door) gets the cast and milder noise but not the
    variant's channel permutation: a red door stays red in every topic.
    """
    cast = rng.normal(0, 14, 3)
    out = {}
    for key, colours in style.palette.items():
        arr = np.asarray(colours, dtype=np.float64)[:, perm]
        arr = arr + cast + rng.normal(0, 10, arr.shape)
        out[key] = [tuple(int(v) for v in row) for row in np.clip(arr, 0, 255)]
    if named is not None:
        arr = np.clip(np.asarray(named, dtype=np.float64) + cast + rng.normal(0, 8, 3), 0, 255)
        out["named"] = [tuple(int(v) for v in arr)]
    return out


def render_photo(
    topic: Topic,
    qualities: tuple[float, float, float],
    rng: np.random.Generator,
    size: int,
    borrow_from: Topic | None = None,
    attributes: dict[str, str] | None = None,
) -> np.ndarray:
    """Draw one ``size`` x ``size`` RGB photo of ``topic`` as a uint8 array.

    ``qualities`` = (exposure, saturation, centring), each in [0, 1], are rendered into the
    pixels: exposure scales brightness (x0.4 .. x1.05), saturation blends toward grey (10% ..
    100% of the colour), centring moves the subject up to ``MAX_OFF_CENTRE`` image widths off
    centre. ``attributes`` are the photo's visible details (``draw_attributes``; drawn from
    ``rng`` when omitted). ``borrow_from`` adds a decor element from another topic's
    vocabulary. Shapes are drawn at twice the size and reduced, which anti-aliases them
    cheaply; the smooth background is computed at the final size and stretched, which keeps
    the float work small.
    """
    if attributes is None:
        attributes = draw_attributes(topic, rng)
    exposure, saturation, centring = qualities
    style = STYLES[topic.style]
    pal = _jitter(style, topic.perm, rng, NAMED_COLOURS[attributes["colour"]])
    arr, horizon = style.background(rng, size, pal, attributes)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    img = img.resize((2 * size, 2 * size), Image.Resampling.BILINEAR)
    angle = rng.uniform(0, 2 * math.pi)
    offset = (1 - centring) * MAX_OFF_CENTRE
    cx, cy = 0.5 + offset * math.cos(angle), 0.5 + offset * math.sin(angle)
    pen = _Pen(img, rng, (cx, cy))
    style.decor(pen, pal, horizon, attributes)
    if borrow_from is not None:
        other = STYLES[borrow_from.style]
        other.decor(pen, _jitter(other, borrow_from.perm, rng), horizon, None)
    style.subject(pen, pal, cx, cy, float(rng.uniform(0.85, 1.15)), horizon, attributes)
    out = np.asarray(img.reduce(2), dtype=np.float32)
    # Uniform grain with the same standard deviation as Gaussian grain looks alike and is
    # several times cheaper to draw.
    out += (rng.random(out.shape, dtype=np.float32) - 0.5) * (style.grain * math.sqrt(12))
    grey = (out * _LUMA).sum(axis=-1, keepdims=True)  # elementwise: no BLAS in the pixel path
    out = grey + (0.1 + 0.9 * saturation) * (out - grey)
    out *= 0.4 + 0.65 * exposure
    return np.clip(out, 0, 255).astype(np.uint8)


def quality_factor(qualities: np.ndarray) -> np.ndarray:
    """``f`` for an (n, 3) array of (exposure, saturation, centring): the planted multiplier."""
    weights = np.array(list(QUALITY_WEIGHTS.values()))
    return np.exp(((np.asarray(qualities) - 0.5) * weights).sum(axis=-1))


def _names(folder: Path) -> set[str]:
    """File names in ``folder`` (empty if it does not exist); one scandir, no per-file stat."""
    return {e.name for e in os.scandir(folder)} if folder.is_dir() else set()


def _save(array: np.ndarray, path: Path) -> None:
    # JPEG at quality 90 measured 0.4 ms per 96 px image against 2.0 ms for PNG (0.9 ms at
    # compress_level=1), and files are ~5x smaller.
    Image.fromarray(array, "RGB").save(path, format="JPEG", quality=90)


class _ImageWriter:
    """Encodes and writes images on a few threads while the caller draws the next one.

    Creating a file takes up to a millisecond or more on a busy disk, as long as drawing an
    image; JPEG encoding and file I/O release the GIL, so the two overlap. Each file's bytes
    depend only on its own array, so the output stays deterministic.
    """

    def __init__(self, threads: int = 4):
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="synthetic-io")
        self.pending: list[Future] = []

    def write(self, array: np.ndarray, path: Path) -> None:
        self.pending.append(self.pool.submit(_save, array, path))

    def __enter__(self) -> _ImageWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.pool.shutdown(wait=True)
        if exc_type is None:
            for future in self.pending:
                future.result()  # re-raise the first failed write (e.g. a full disk)


# ----------------------------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------------------------


class SyntheticSource:
    """Generate (once) and load the synthetic corpus; see the module docstring for the model.

    Usable without Hydra: ``SyntheticSource(num_posts=200, cache_dir=tmp).load()``.

    Args:
        num_posts: posts to generate.
        num_topics: planted topics (six named; more are recoloured variants).
        num_accounts: accounts posting; account ``i`` has topic ``i % num_topics`` as its
            dominant topic so that every topic is some account's focus when accounts >= topics.
        image_size: side of the square images in pixels.
        seed: everything (posts, images, shoot) is a function of the seed and the parameters.
        cache_dir: where ``<fingerprint>/`` folders are written.
        shoot_size: caption-less photos in the held-out ``shoot/`` folder.
        dirichlet_alpha: concentration of the account topic mixtures (small = focused accounts).
        followers_median, followers_sigma: log-normal follower counts of accounts.
        base_rate: like rate of an average-quality post on a perfectly fitting topic (f=1, fit=1).
        noise_sigma: sigma of the log-normal noise on likes.
        overlap: probability that an image borrows a decor element from another topic, and that
            a caption borrows a hashtag from another topic.
        caption_detail_rate, caption_mood_rate: how often a caption names a visible detail
            (the door's colour, golden hour) or an extreme exposure/saturation. The details
            are in the pixels whatever these rates are.
    """

    def __init__(
        self,
        num_posts: int = 2000,
        num_topics: int = 6,
        num_accounts: int = 8,
        image_size: int = 96,
        seed: int = 0,
        cache_dir: str | Path = ".cache/mmembed/synthetic",
        shoot_size: int = 60,
        dirichlet_alpha: float = 0.3,
        followers_median: float = 20000.0,
        followers_sigma: float = 1.0,
        base_rate: float = 0.03,
        noise_sigma: float = 0.3,
        overlap: float = 0.15,
        caption_detail_rate: float = 0.0,
        caption_mood_rate: float = 0.0,
    ):
        if num_posts < 1 or num_topics < 1 or num_accounts < 1 or shoot_size < 0:
            raise ValueError("num_posts, num_topics and num_accounts must be >= 1, "
                             "shoot_size >= 0")
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
        self.params: dict[str, Any] = {
            "num_posts": int(num_posts), "num_topics": int(num_topics),
            "num_accounts": int(num_accounts), "image_size": int(image_size), "seed": int(seed),
            "shoot_size": int(shoot_size), "dirichlet_alpha": float(dirichlet_alpha),
            "followers_median": float(followers_median),
            "followers_sigma": float(followers_sigma), "base_rate": float(base_rate),
            "noise_sigma": float(noise_sigma), "overlap": float(overlap),
            "caption_detail_rate": float(caption_detail_rate),
            "caption_mood_rate": float(caption_mood_rate),
        }
        self.cache_dir = Path(cache_dir).expanduser()
        self.topics = make_topics(num_topics)

    # -- cache --------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """Readable prefix plus a hash of every parameter and the generator version."""
        blob = json.dumps({**self.params, "version": GENERATOR_VERSION}, sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
        p = self.params
        return f"n{p['num_posts']}-t{p['num_topics']}-a{p['num_accounts']}-s{p['seed']}-{digest}"

    @property
    def root(self) -> Path:
        """The dataset folder, ``<cache_dir>/<fingerprint>`` (absolute)."""
        return (self.cache_dir / self.fingerprint).resolve()

    @property
    def shoot_dir(self) -> Path:
        """The held-out folder of caption-less photos, generated with the dataset if needed."""
        return self._ensure() / "shoot"

    def _is_complete(self, root: Path) -> bool:
        """True when every file a load needs is present (metadata files and all images)."""
        needed = [root / "posts.jsonl", root / "truth.json", root / "shoot_truth.json"]
        if not all(p.is_file() for p in needed):
            return False
        images = {f"syn-{i:06d}.jpg" for i in range(self.params["num_posts"])}
        shoot = {f"IMG_{i + 1:04d}.jpg" for i in range(self.params["shoot_size"])}
        return images <= _names(root / "images") and shoot <= _names(root / "shoot")

    def _ensure(self) -> Path:
        """Return the complete dataset folder, generating it first if it is missing or partial.

        The data is written into a private temporary folder and renamed into place, so readers
        (and concurrent generators, e.g. several DDP ranks) never see a partial dataset.
        """
        root = self.root
        if self._is_complete(root):
            return root
        log.info("generating the synthetic dataset (%d posts) into %s",
                 self.params["num_posts"], root)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{self.fingerprint}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            self._generate(tmp)
            if root.exists() and not self._is_complete(root):
                shutil.rmtree(root)
            try:
                os.rename(tmp, root)
            except OSError:
                if not self._is_complete(root):  # another process won the race only if complete
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return root

    # -- generation ---------------------------------------------------------------------------

    def _accounts(self) -> tuple[list[str], np.ndarray, np.ndarray, list[list[str]]]:
        """Account names, topic mixtures (A, T), followers (A,) and whom each account mentions."""
        p = self.params
        n_acc, n_top = p["num_accounts"], p["num_topics"]
        rng = np.random.default_rng([p["seed"], _ACCOUNTS])
        mixtures = rng.dirichlet(np.full(n_top, p["dirichlet_alpha"]), size=n_acc)
        mixtures = np.maximum(mixtures, 1e-12)
        mixtures /= mixtures.sum(axis=1, keepdims=True)
        for i in range(n_acc):  # make topic i % T the dominant one (swap it with the argmax)
            dominant, top = i % n_top, int(mixtures[i].argmax())
            mixtures[i, [dominant, top]] = mixtures[i, [top, dominant]]
        followers = np.maximum(
            50, np.round(rng.lognormal(math.log(p["followers_median"]), p["followers_sigma"],
                                       n_acc))).astype(np.int64)
        names = []
        for i in range(n_acc):
            suffix = ACCOUNT_SUFFIXES[i % len(ACCOUNT_SUFFIXES)]
            lap = i // len(ACCOUNT_SUFFIXES)
            names.append(f"{self.topics[i % n_top].stem}_{suffix}" + (str(lap + 1) if lap else ""))
        friends = []
        for i in range(n_acc):
            others = [j for j in range(n_acc) if j != i]
            k = min(len(others), int(rng.integers(1, 4)))
            friends.append([names[j] for j in rng.choice(others, size=k, replace=False)]
                           if k else [])
        return names, mixtures, followers, friends

    def _caption(self, rng, topic: Topic, friends: list[str], attributes: dict[str, str],
                 qualities) -> tuple[str, list[str]]:
        """A caption and the names of the details it mentions.

        A short sentence with the topic's words and an optional @mention, phrases for some of
        the photo's visible details (before or after the sentence), then hashtags (mostly the
        topic's own).
        """
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        words = []
        for token in template.split():
            core = token.rstrip(",")
            if core == "{t}":
                vocab = topic.words if rng.random() < 0.9 else GENERIC_WORDS
            elif core == "{g}":
                vocab = GENERIC_WORDS
            else:
                words.append(token)
                continue
            words.append(vocab[int(rng.integers(len(vocab)))] + token[len(core):])
        sentence = " ".join(words)
        if rng.random() < 0.35:
            pool = topic.brands if (rng.random() < 0.6 or not friends) else friends
            sentence += f" with @{pool[int(rng.integers(len(pool)))]}"
        punct = (".", "!", "")[int(rng.integers(3))]
        # the details draw from their own stream, so their rates change nothing else
        detail_rng = np.random.default_rng(int(rng.integers(2**63)))
        details, mentioned = describe(topic, attributes, qualities, detail_rng,
                                      self.params["caption_detail_rate"],
                                      self.params["caption_mood_rate"])
        details_first = rng.random() < 0.5
        if not details:
            text = sentence + punct
        elif details_first:  # "Red door, golden hour. Cottage garden today!"
            text = ", ".join(details) + ". " + sentence[0].upper() + sentence[1:] + punct
        else:  # "Cottage garden today, red door, golden hour!"
            text = sentence + ", " + ", ".join(details) + punct
        text = text[0].upper() + text[1:]
        tags = list(rng.choice(topic.hashtags, size=int(rng.integers(2, 6)), replace=False))
        tags += list(rng.choice(GENERIC_HASHTAGS, size=int(rng.integers(0, 3)), replace=False))
        others = [t for t in self.topics if t.name != topic.name]
        if others and rng.random() < self.params["overlap"]:
            other = others[int(rng.integers(len(others)))]
            tags.append(other.hashtags[int(rng.integers(len(other.hashtags)))])
        return text + "\n\n" + " ".join("#" + t for t in dict.fromkeys(tags)), mentioned

    def _borrow(self, rng, topic_index: int) -> Topic | None:
        """Another topic to borrow a decor element from, with probability ``overlap``."""
        if len(self.topics) < 2 or rng.random() >= self.params["overlap"]:
            return None
        other = int(rng.integers(len(self.topics) - 1))
        return self.topics[other + (other >= topic_index)]

    def _generate(self, folder: Path) -> None:
        """Write images, ``truth.json``, ``posts.jsonl``, the shoot and ``shoot_truth.json``."""
        p = self.params
        n, size, seed = p["num_posts"], p["image_size"], p["seed"]
        names, mixtures, followers, friends = self._accounts()
        rng = np.random.default_rng([seed, _POSTS])
        account = rng.integers(len(names), size=n)
        cumulative = np.cumsum(mixtures, axis=1)[account]
        topic = np.minimum((cumulative < rng.random(n)[:, None]).sum(axis=1), len(self.topics) - 1)
        qualities = rng.uniform(0, 1, size=(n, 3))
        fit = 0.5 + mixtures[account, topic]
        true_rate = p["base_rate"] * quality_factor(qualities) * fit
        likes = np.round(followers[account] * true_rate
                         * rng.lognormal(0, p["noise_sigma"], n)).astype(np.int64)
        comments = rng.poisson(likes * COMMENT_RATE * rng.lognormal(0, 0.5, n))
        seconds = np.sort(rng.uniform(0, 365 * 86400, n))

        (folder / "images").mkdir(parents=True)
        records, attributes, mentioned = [], [], []
        with _ImageWriter() as writer:
            for i in range(n):
                top = self.topics[topic[i]]
                image_rng = np.random.default_rng([seed, _POST_IMAGES, i])
                rel = f"images/syn-{i:06d}.jpg"
                attributes.append(draw_attributes(top, image_rng))
                borrow = self._borrow(image_rng, int(topic[i]))
                writer.write(render_photo(top, tuple(qualities[i]), image_rng, size, borrow,
                                          attributes[i]), folder / rel)
                caption, said = self._caption(rng, top, friends[account[i]], attributes[i],
                                              qualities[i])
                mentioned.append(said)
                post = Post(
                    post_id=f"syn-{i:06d}", image_path=rel, caption=caption,
                    hashtags=parse_hashtags(caption), mentions=parse_mentions(caption),
                    likes=int(likes[i]), comments=int(comments[i]),
                    followers=int(followers[account[i]]), account=names[account[i]],
                    timestamp=(START_DATE + timedelta(seconds=float(seconds[i])))
                    .isoformat(timespec="seconds"),
                    source="synthetic", topic=top.name, true_engagement=float(true_rate[i]),
                )
                records.append(post.to_dict())
            self._generate_shoot(folder, writer)

        truth = {
            "topics": [t.name for t in self.topics],
            "account_mixtures": {
                name: {t.name: float(w) for t, w in zip(self.topics, mixtures[a])}
                for a, name in enumerate(names)
            },
            "account_followers": {name: int(f) for name, f in zip(names, followers)},
            "quality_weights": QUALITY_WEIGHTS,
            "post_qualities": {
                r["post_id"]: dict(zip(QUALITY_WEIGHTS, map(float, q)))
                for r, q in zip(records, qualities)
            },
            "attributes": {
                t.name: {a.name: list(a.values) for a in ATTRIBUTES[t.style]} for t in self.topics
            },
            "caption_detail_rate": DETAIL_RATE,
            "caption_mood_rate": MOOD_RATE,
            "post_attributes": {r["post_id"]: a for r, a in zip(records, attributes)},
            "post_caption_details": {r["post_id"]: m for r, m in zip(records, mentioned)},
            "engagement_model": "likes = followers * base_rate * f * (0.5 + mixture[account]"
                                "[topic]) * LogNormal(0, noise_sigma); f = exp(sum w (q - 0.5))",
            "params": p,
            "seed": seed,
            "generator_version": GENERATOR_VERSION,
        }
        (folder / "truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
        with (folder / "posts.jsonl").open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _generate_shoot(self, folder: Path, writer: _ImageWriter) -> None:
        """Caption-less photos, balanced over topics, from a stream independent of the posts."""
        p = self.params
        n, seed = p["shoot_size"], p["seed"]
        rng = np.random.default_rng([seed, _SHOOT])
        topic = rng.permutation(np.arange(n) % len(self.topics))
        qualities = rng.uniform(0, 1, size=(n, 3))
        factor = quality_factor(qualities)
        (folder / "shoot").mkdir(parents=True)
        photos = {}
        for i in range(n):
            image_rng = np.random.default_rng([seed, _SHOOT_IMAGES, i])
            name = f"IMG_{i + 1:04d}.jpg"
            top = self.topics[topic[i]]
            attributes = draw_attributes(top, image_rng)
            borrow = self._borrow(image_rng, int(topic[i]))
            writer.write(render_photo(top, tuple(qualities[i]), image_rng, p["image_size"],
                                      borrow, attributes), folder / "shoot" / name)
            photos[name] = {
                "topic": top.name,
                **dict(zip(QUALITY_WEIGHTS, map(float, qualities[i]))),
                "true_engagement_factor": float(factor[i]),
                "attributes": attributes,
            }
        shoot_truth = {"photos": photos, "quality_weights": QUALITY_WEIGHTS, "seed": seed,
                       "generator_version": GENERATOR_VERSION}
        (folder / "shoot_truth.json").write_text(json.dumps(shoot_truth, indent=1),
                                                 encoding="utf-8")

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> Corpus:
        """Generate the dataset if the cache lacks it, then read it back as a Corpus."""
        root = self._ensure()
        posts = []
        with (root / "posts.jsonl").open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                post = make_post(json.loads(line), f"posts.jsonl row {number}")
                post.image_path = str(root / post.image_path)
                posts.append(post)
        truth = json.loads((root / "truth.json").read_text(encoding="utf-8"))
        return Corpus(posts=posts, truth=truth, name="synthetic",
                      counts={"topics": len(self.topics)})
