"""Caption tokenisation: one function for every reader, and each reader's terms unchanged.

``data/caption_terms.json`` holds what each of the four readers (bag of words, cluster names,
LDA, the scratch tower's pre-tokenizer) made of tricky captions (tags, mentions, unicode,
punctuation, numbers) before they shared :mod:`mmembed.text`.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from tokenizers import Tokenizer

from mmembed.communities.clustering import LDAClusterer
from mmembed.communities.naming import post_terms
from mmembed.data.post import make_post, parse_hashtags
from mmembed.models.towers import ScratchTextTower, words
from mmembed.text import PRETOKEN_PATTERN, caption_terms

DATA = json.loads((Path(__file__).parent / "data" / "caption_terms.json").read_text("utf-8"))
CASES = DATA["captions"]
IDS = [repr(case["caption"])[:24] for case in CASES]


def as_post(caption):
    return make_post({"post_id": "p", "image_path": "x.jpg", "caption": caption or ""}, "test")


# ------------------------------------------------------------------- each reader, as it was
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bag_of_words_terms_are_unchanged(case):
    assert words(case["caption"]) == case["words"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cluster_name_terms_are_unchanged(case):
    assert post_terms(as_post(case["caption"])) == case["post_terms"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_lda_vocabulary_is_unchanged(case):
    posts = [SimpleNamespace(caption=case["caption"], hashtags=[])] * 3
    lda = LDAClusterer(k=2, n_init=1, max_iter=1)
    latent = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    if not case["lda"]:
        with pytest.raises(ValueError, match="no usable words"):
            lda.fit(latent, posts)
        return
    assert lda.fit(latent, posts).vocabulary_.tolist() == sorted(set(case["lda"]))


def test_scratch_pre_tokenizer_is_unchanged():
    tower = ScratchTextTower(vocab_size=400, min_frequency=1)
    tower.fit_tokenizer([case["caption"] for case in CASES if case["caption"]])
    state = json.loads(tower.tokenizer_json())  # what a bundle stores
    assert state["normalizer"] == DATA["scratch_normalizer"]
    assert state["pre_tokenizer"] == DATA["scratch_pre_tokenizer"]
    tokenizer = Tokenizer.from_str(tower.tokenizer_json())
    for case in CASES:
        text = tokenizer.normalizer.normalize_str(case["caption"] or "")
        pieces = [piece for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text)]
        assert pieces == case["scratch"], case["caption"]


# ------------------------------------------------------------------- the one function
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_caption_terms_gives_each_reader_its_terms(case):
    caption = case["caption"]
    assert caption_terms(caption) == case["words"]
    assert caption_terms(caption, signs="#", min_length=2,
                         stop_words=ENGLISH_STOP_WORDS) == case["lda"]
    names = caption_terms(caption, kind="words", min_length=3, stop_words=ENGLISH_STOP_WORDS)
    assert parse_hashtags(caption or "") + names == case["post_terms"]


def test_caption_terms_options():
    caption = "The #the @the crag #a @Crag don't 2024 x"
    assert caption_terms(caption) == ["the", "#the", "@the", "crag", "#a", "@crag", "don", "t",
                                      "2024", "x"]
    assert caption_terms(caption, signs="", min_length=2, stop_words={"the"}) == [
        "crag", "crag", "don", "2024"]
    assert caption_terms(caption, stop_words={"the", "crag"}) == [
        "#the", "@the", "#a", "@crag", "don", "t", "2024", "x"]
    assert caption_terms(caption, kind="words") == ["the", "crag", "don't", "x"]
    with pytest.raises(ValueError, match="kind"):
        caption_terms(caption, kind="tokens")
    with pytest.raises(ValueError, match="signs"):
        caption_terms(caption, signs="$")


def test_words_leave_out_written_dates_but_not_month_or_day_words():
    # a creator's titles stamped as ctime writes dates named an Open Clip Art cluster "aug · wed"
    assert caption_terms("Flat Icon Collection (Wed Aug 25 23:29:46 2004)", kind="words") == [
        "flat", "icon", "collection"]
    assert caption_terms("August 25th, 2004 at the crag", kind="words") == ["at", "the", "crag"]
    assert caption_terms("sent 3rd of May 2020, 25 Aug too", kind="words") == ["sent", "too"]
    # without a day number a month or a weekday is a word; the other readers keep every term
    assert caption_terms("Sunday brunch, may we sat in the sun", kind="words") == [
        "sunday", "brunch", "may", "we", "sat", "in", "the", "sun"]
    assert caption_terms("Wed Aug 25") == ["wed", "aug", "25"]


def test_pretoken_pattern_is_the_scratch_towers():
    assert PRETOKEN_PATTERN == DATA["scratch_pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"]
