"""Topics and what captions say about them: text vocabularies and visual styles' names.

A :class:`Topic` carries its words, hashtags and brand handles and names the style it is drawn
in. The details that vary from photo to photo within a style, and the caption phrases that
name them, are in :mod:`~mmembed.data.sources.synthetic.details`.
"""

from __future__ import annotations

from dataclasses import dataclass

GENERIC_WORDS = (
    "love",
    "style",
    "happy",
    "today",
    "weekend",
    "vibes",
    "life",
    "best",
    "good",
    "beautiful",
    "amazing",
    "time",
    "new",
    "perfect",
    "moment",
    "friends",
    "sunday",
    "mood",
    "feeling",
    "day",
)
GENERIC_HASHTAGS = (
    "instagood",
    "photooftheday",
    "love",
    "picoftheday",
    "instadaily",
    "happy",
    "beautiful",
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
        (
            "crag",
            "route",
            "send",
            "boulder",
            "chalk",
            "summit",
            "rope",
            "belay",
            "granite",
            "ridge",
            "project",
            "crux",
            "holds",
            "harness",
            "approach",
            "trail",
            "alpine",
            "wall",
            "beta",
            "pitch",
        ),
        (
            "climbing",
            "rockclimbing",
            "bouldering",
            "climbinglife",
            "crag",
            "sendit",
            "outdoors",
            "mountains",
            "climber",
            "adventure",
            "chalkup",
            "sportclimbing",
            "tradclimbing",
        ),
        ("cragworks", "granitegrip", "summit_supply"),
    ),
    "nightlife": (
        "nightowls",
        (
            "night",
            "party",
            "club",
            "dj",
            "dance",
            "cocktails",
            "lights",
            "music",
            "bass",
            "crowd",
            "bar",
            "neon",
            "drinks",
            "rooftop",
            "set",
            "beats",
            "dancefloor",
            "late",
            "city",
            "glitter",
        ),
        (
            "nightlife",
            "party",
            "clubbing",
            "nightout",
            "dj",
            "cocktails",
            "weekendvibes",
            "dancefloor",
            "techno",
            "bar",
            "nightclub",
            "livemusic",
            "neon",
        ),
        ("neonroom_club", "bassline_events", "midnight_mixers"),
    ),
    "foodporn": (
        "platefuls",
        (
            "plate",
            "brunch",
            "dinner",
            "pasta",
            "sauce",
            "fresh",
            "delicious",
            "recipe",
            "chef",
            "homemade",
            "flavour",
            "crispy",
            "dessert",
            "spicy",
            "taste",
            "kitchen",
            "bowl",
            "garlic",
            "roasted",
            "cheese",
        ),
        (
            "foodporn",
            "foodie",
            "yummy",
            "delicious",
            "instafood",
            "foodphotography",
            "homemade",
            "brunch",
            "dinner",
            "foodstagram",
            "tasty",
            "chef",
            "eeeeeats",
        ),
        ("ovenhouse_kitchen", "freshfork_market", "saucery_co"),
    ),
    "cosmetics": (
        "glowkit",
        (
            "lipstick",
            "glow",
            "skin",
            "serum",
            "shade",
            "palette",
            "blush",
            "lashes",
            "gloss",
            "routine",
            "matte",
            "foundation",
            "swatch",
            "beauty",
            "pink",
            "nude",
            "shimmer",
            "cream",
            "skincare",
            "look",
        ),
        (
            "makeup",
            "beauty",
            "skincare",
            "cosmetics",
            "lipstick",
            "makeuplover",
            "glow",
            "beautyblogger",
            "nails",
            "mua",
            "crueltyfree",
            "selfcare",
            "swatches",
        ),
        ("velvetglow_beauty", "rosepetal_cosmetics", "lumiskin_lab"),
    ),
    "countryhomes": (
        "cottage",
        (
            "cottage",
            "farmhouse",
            "garden",
            "barn",
            "porch",
            "meadow",
            "rustic",
            "fireplace",
            "village",
            "orchard",
            "fields",
            "hedge",
            "kitchen",
            "home",
            "roses",
            "fence",
            "chimney",
            "countryside",
            "cosy",
            "lane",
        ),
        (
            "countryhome",
            "cottage",
            "farmhouse",
            "countryliving",
            "homedecor",
            "interiordesign",
            "garden",
            "cottagecore",
            "rustic",
            "farmlife",
            "homesweethome",
            "countryside",
            "barn",
        ),
        ("oakbarn_interiors", "meadowlane_homes", "hearthstone_living"),
    ),
    "fashiontravel": (
        "wanderstyle",
        (
            "outfit",
            "travel",
            "beach",
            "dress",
            "look",
            "sunset",
            "coast",
            "style",
            "linen",
            "trip",
            "vacation",
            "hat",
            "stripes",
            "city",
            "getaway",
            "summer",
            "sandals",
            "island",
            "streets",
            "wardrobe",
        ),
        (
            "fashion",
            "travel",
            "ootd",
            "style",
            "wanderlust",
            "travelgram",
            "fashionblogger",
            "outfit",
            "beachlife",
            "summer",
            "streetstyle",
            "vacation",
            "outfitoftheday",
        ),
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
        topics.append(
            Topic(
                name=base + suffix,
                style=base,
                perm=_VARIANT_PERMS[(variant - 1) % len(_VARIANT_PERMS)],
                stem=stem + suffix,
                words=words,
                hashtags=tuple(t + suffix for t in tags),
                brands=tuple(b + suffix for b in brands),
            )
        )
    return topics
