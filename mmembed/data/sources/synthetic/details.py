"""Visible details: what a caption says about its own photo.

:data:`ATTRIBUTES` are the details that vary from photo to photo within a style (colours,
props), :func:`draw_attributes` draws a photo's, and :func:`describe` turns a photo's details
and extreme qualities into caption phrases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmembed.data.sources.synthetic.engagement import QUALITY_WEIGHTS
from mmembed.data.sources.synthetic.topics import Topic

Colour = tuple[int, int, int]

#: The named colours of the colour details. Their RGB values are absolute: variant topics
#: recolour their style but a "red" door is red in every topic.
NAMED_COLOURS: dict[str, Colour] = {
    "red": (215, 35, 45),
    "blue": (40, 90, 215),
    "green": (45, 160, 70),
    "yellow": (245, 205, 45),
    "pink": (245, 130, 185),
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
    return Attribute(
        "colour",
        tuple(NAMED_COLOURS),
        {c: tuple(t.format(c=c) for t in templates) for c in NAMED_COLOURS},
    )


def _prop(name: str, *phrases: str) -> Attribute:
    """A prop that is present ("yes") or absent ("no") and mentioned only when present."""
    return Attribute(name, ("no", "yes"), {"yes": phrases})


#: Per base style: the details drawn per photo. Every style has a ``colour`` detail (the main
#: subject's colour) and two others: the light (sky), a count of items, or a prop.
ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    "rockclimbing": (
        _colour_detail("{c} shirt", "{c} top", "in {c}"),
        Attribute(
            "light",
            ("day", "golden hour"),
            {
                "day": ("blue sky", "bluebird day", "clear skies"),
                "golden hour": ("golden hour", "sunset session", "evening light"),
            },
        ),
        Attribute(
            "rope",
            ("roped", "bouldering"),
            {
                "roped": ("on the rope", "roped up", "lead climbing"),
                "bouldering": ("no rope", "crash pad", "ropeless"),
            },
        ),
    ),
    "nightlife": (
        _colour_detail(
            "{c} cocktail vibes", "something {c} in the glass", "{c} is the colour tonight"
        ),
        Attribute(
            "count",
            ("one", "several"),
            {
                "one": ("one drink", "just the one", "a single glass"),
                "several": ("a round for the table", "drinks for everyone", "a round of cocktails"),
            },
        ),
        _prop("lasers", "lasers", "laser show", "lasers on the dancefloor"),
    ),
    "foodporn": (
        _colour_detail("{c} plate", "on a {c} plate", "{c} ceramics"),
        Attribute(
            "count",
            ("one", "several"),
            {
                "one": ("dinner for one", "just one plate", "solo plate"),
                "several": ("sharing plates", "a table full of plates", "small plates to share"),
            },
        ),
        Attribute(
            "table",
            ("wood", "marble"),
            {
                "wood": ("wooden table", "rustic wood table", "dark wood"),
                "marble": ("marble table", "white marble", "on marble"),
            },
        ),
    ),
    "cosmetics": (
        _colour_detail("{c} polish", "{c} nail polish", "{c} bottles"),
        Attribute(
            "count",
            ("one", "several"),
            {
                "one": ("one bottle", "a single bottle", "just this one"),
                "several": ("the whole lineup", "lineup of bottles", "the collection"),
            },
        ),
        _prop("flowers", "with flowers", "fresh flowers", "florals"),
    ),
    "countryhomes": (
        _colour_detail("{c} door", "the {c} front door", "{c} front door"),
        Attribute(
            "light",
            ("day", "golden hour", "night"),
            {
                "day": ("sunny day", "blue skies", "sunny morning"),
                "golden hour": ("golden hour", "evening glow", "sunset light"),
                "night": ("by night", "moonlight", "under the moon"),
            },
        ),
        _prop("fence", "picket fence", "white picket fence", "by the fence"),
    ),
    "fashiontravel": (
        _colour_detail("{c} dress", "in a {c} dress", "{c} sundress"),
        Attribute(
            "light",
            ("day", "sunset"),
            {
                "day": ("midday sun", "blue sky", "sunny afternoon"),
                "sunset": ("sunset glow", "golden hour", "sunset by the sea"),
            },
        ),
        _prop("boat", "sailboat", "boats on the water", "sailing boat"),
    ),
}


def draw_attributes(topic: Topic, rng: np.random.Generator) -> dict[str, str]:
    """One photo's visible details: a uniformly drawn value for each of its style's details."""
    return {a.name: a.values[int(rng.integers(len(a.values)))] for a in ATTRIBUTES[topic.style]}


def describe(
    topic: Topic,
    attributes: dict[str, str],
    qualities,
    rng: np.random.Generator,
    detail_rate: float = DETAIL_RATE,
    mood_rate: float = MOOD_RATE,
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
        if (
            value < threshold if side == "below" else value > threshold
        ) and rng.random() < mood_rate:
            phrases.append(ways[int(rng.integers(len(ways)))])
            mentioned.append(quality)
    order = rng.permutation(len(phrases)) if len(phrases) > 1 else range(len(phrases))
    return [phrases[k] for k in order], [mentioned[k] for k in order]
