"""Caption tokenisation: what the terms of a caption are, for every part of mmembed reading them.

Four readers split captions into terms, and each needs a slightly different reading. Their
differences are the options of :func:`caption_terms` (or, for the scratch tower, one pattern),
so they are written down in one place:

- the seed's bag-of-words tower (:class:`~mmembed.models.towers.BagOfWordsTower`):
  ``caption_terms(caption)``; ``#crag``, ``@cragworks`` and ``crag`` are three terms;
- LDA (:class:`~mmembed.communities.clustering.LDAClusterer`):
  ``caption_terms(caption, signs="#", min_length=2)``, English stop words dropped by
  scikit-learn's ``CountVectorizer``: hashtags stay apart from words, a mention is its name;
- cluster names (:func:`~mmembed.communities.naming.post_terms`): the post's hashtags, then
  ``caption_terms(caption, kind="words", min_length=3, stop_words=ENGLISH_STOP_WORDS)``, so a
  tag and its word are one term and names are made of words, never of numbers;
- the from-scratch text tower (:class:`~mmembed.models.towers.ScratchTextTower`): its
  pre-tokenizer splits on :data:`PRETOKEN_PATTERN` (terms as above, plus each other symbol on
  its own), after NFKC and lower-casing. The ``tokenizers`` library runs it (its Oniguruma
  ``\\w`` also matches combining marks), and it is stored in every trained vocabulary's JSON.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache

from mmembed.data.post import HASHTAG_RE, MENTION_RE

#: The signs that mark a term as a hashtag or a mention.
SIGNS = "#@"
#: A term: a run of word characters, with its sign when it is a ``#hashtag`` or an ``@mention``.
TERM_PATTERN = r"[#@]?\w+"
#: What the scratch tower's pre-tokenizer isolates: terms, and every other symbol on its own.
PRETOKEN_PATTERN = TERM_PATTERN + r"|[^\w\s]"
#: A word (``kind="words"``): a letter, then word characters, apostrophes and hyphens.
WORD_PATTERN = r"[^\W\d_][\w'-]*"

_WORD_RE = re.compile(WORD_PATTERN)
KINDS = ("terms", "words")

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_WEEKDAY = (r"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day|mon|tue|tues|wed|thu|thur|thurs"
            r"|fri|sat|sun)\.?")
_ORDINAL = r"\d{1,2}(?:st|nd|rd|th)?"
#: A written date (``kind="words"`` drops it): a month next to a day number, optionally after a
#: weekday: ``Wed Aug 25`` (as ``ctime`` writes it), ``August 25th``, ``25 Aug``, ``3rd of May``.
#: A month or a weekday without a day number is a word (``Sunday brunch``, ``may``).
DATE_PATTERN = (rf"\b(?:{_WEEKDAY},?\s+)?(?:{_MONTH}\s+{_ORDINAL}\b"
                rf"|{_ORDINAL}\s+(?:of\s+)?{_MONTH}(?![\w'-]))")
_DATE_RE = re.compile(DATE_PATTERN, re.IGNORECASE)


@lru_cache(maxsize=8)
def _term_re(signs: str) -> re.Pattern[str]:
    if not set(signs) <= set(SIGNS):
        raise ValueError(f"signs must be made of {SIGNS!r}, got {signs!r}")
    return re.compile(rf"[{signs}]?\w+" if signs else r"\w+")


def caption_terms(caption: str | None, *, kind: str = "terms", signs: str = SIGNS,
                  min_length: int = 1, stop_words: Collection[str] = ()) -> list[str]:
    """The lower-cased terms of ``caption``, in order, repeats kept (``None``: no terms).

    ``kind="terms"``: every run of word characters (Python's ``\\w``: letters, digits, ``_``),
    found in the lower-cased caption. A ``#`` or ``@`` just before a run stays on it when it is
    in ``signs``: with ``"#@"`` (default) ``#crag``, ``@crag`` and ``crag`` are three terms,
    with ``"#"`` a mention is its plain name, with ``""`` every term is a plain word. Any other
    character, a sign not in ``signs`` included, separates terms.

    ``kind="words"``: words of language only. The caption's hashtags and mentions (as
    :mod:`mmembed.data.post` parses them) and written dates (:data:`DATE_PATTERN`: a month
    next to a day number, as in ``Wed Aug 25 23:29:46 2004``, which would otherwise name a
    cluster "wed · aug") are removed first; a word then starts with a letter
    and goes on with word characters, ``'`` and ``-`` (``don't``, ``t-shirt``; never
    ``2024``). Words are found in the caption as written and lower-cased after, which differs
    from ``"terms"`` for one letter only: ``İ``, whose lower case is two code points, so
    ``İstanbul`` stays one word. ``signs`` does not apply.

    ``min_length``: shorter terms are dropped; a term's length is that of the text it was found
    as, without its sign. ``stop_words``: lower-cased terms to drop, compared with their sign
    (``the`` is dropped, ``#the`` is kept).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    text = caption if isinstance(caption, str) else "" if caption is None else str(caption)
    if kind == "terms":
        found = [t for t in _term_re(signs).findall(text.lower())
                 if len(t) - (t[0] in SIGNS) >= min_length]
    else:
        text = _DATE_RE.sub(" ", MENTION_RE.sub(" ", HASHTAG_RE.sub(" ", text)))
        found = [w.lower() for w in _WORD_RE.findall(text) if len(w) >= min_length]
    if stop_words:
        found = [t for t in found if t not in stop_words]
    return found
