"""Caption drafts: composed from a community's own phrases, hashtags and mentions, and never
holding a run of 6 words of any caption (checked here by an independent tokeniser), both on
generated captions (hypothesis) and on the session's tiny bundle."""

import json
import re
import unicodedata

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmembed.ranking.captions import (
    MIN_VOCABULARY_POSTS,
    RUN,
    TEMPLATES,
    CopyGuard,
    Vocabulary,
    cluster_vocabulary,
    compose_drafts,
    draft_seed,
)
from mmembed.ranking.settings import RankSettings


def words_of(text: str) -> list[str]:
    """Case- and punctuation-blind words, written apart from the module under test. Composed
    again after case folding: folding 'ǰ' gives 'j' and a combining caron, which ``\w`` would
    split in two (Unicode's NFKC_Casefold composes after folding too)."""
    return re.findall(r"\w+", unicodedata.normalize(
        "NFKC", unicodedata.normalize("NFKC", text).casefold()))


def runs(text: str, n: int = RUN) -> set[tuple[str, ...]]:
    w = words_of(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def copied_runs(drafts, captions) -> set[tuple[str, ...]]:
    guarded = set().union(*(runs(c) for c in captions)) if captions else set()
    return set().union(*(runs(d) for d in drafts)) & guarded if drafts else set()


# Few words, and the templates' own words among them, so that captions and drafts collide.
TEMPLATE_WORDS = sorted({w for t in TEMPLATES for w in words_of(t.format(p="", q="", m=""))})
WORDS = ["crag", "boulder", "sunset", "send", "chalk", "project", "granite", "happy"]
word = st.sampled_from(WORDS + TEMPLATE_WORDS).map(
    lambda w: w.upper() if len(w) % 3 == 0 else w.capitalize() if len(w) % 3 == 1 else w)
separator = st.sampled_from([" ", " ", ", ", "! ", ". ", " - ", "\n"])


@st.composite
def caption(draw):
    """Words at random, or a post that already says what a draft would (a template filled
    with two-word phrases), in any case and punctuation, then hashtags."""
    if draw(st.booleans()):
        phrase = st.tuples(word, word).map(" ".join)
        text = draw(st.sampled_from(TEMPLATES)).format(p=draw(phrase), q=draw(phrase), m="")
        text = draw(separator).join(text.split(" "))
    else:
        parts = draw(st.lists(st.tuples(word, separator), min_size=1, max_size=14))
        text = "".join(w + s for w, s in parts).strip()
    tags = draw(st.lists(st.sampled_from(WORDS), max_size=4, unique=True))
    return {"caption": text + ("\n\n" + " ".join(f"#{t}" for t in tags) if tags else ""),
            "hashtags": tags, "mentions": draw(st.lists(st.sampled_from(["crew", "gym"]),
                                                        max_size=1))}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(posts=st.lists(caption(), min_size=1, max_size=25),
       others=st.lists(st.text(max_size=80), max_size=5), seed=st.integers(0, 2**64 - 1),
       n=st.integers(1, 5))
def test_no_draft_holds_six_words_of_a_caption(posts, others, seed, n):
    captions = [p["caption"] for p in posts]
    vocabulary = cluster_vocabulary(captions, [p["hashtags"] for p in posts],
                                    [p["mentions"] for p in posts])
    guarded = captions + others  # the community's captions and the rest of the bundle's
    drafts = compose_drafts(vocabulary, n, seed, CopyGuard(guarded))
    assert len(drafts) <= n and len(set(drafts)) == len(drafts)
    assert not copied_runs(drafts, guarded)


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(max_codepoint=0x24F), max_size=120),
       case=st.sampled_from([str.upper, str.lower, str.title]),
       punct=st.sampled_from(["", "!", " #", " @", "..."]))
@example(text="0:ǰ0:0:0:0", case=str.upper, punct="")  # folds to j + a combining caron
def test_the_guard_refuses_a_caption_in_another_case_or_punctuation(text, case, punct):
    guard = CopyGuard([text])
    variant = punct.join(case(text).split(" ")) + punct
    assert guard.allows(variant) == (not copied_runs([variant], [text]))
    if len(words_of(text)) >= RUN:
        assert not guard.allows(text)


CLIMBING = [
    ("Sunset crag session with the crew!\n\n#climbing #crag #sunset", 1.0),
    ("Another sunset crag evening.\n\n#climbing #sunset", 0.5),
    ("Chalk up, send the project with @gymco\n\n#climbing #send", -0.5),
    ("Granite slab and sunset crag vibes\n\n#climbing #granite #crag", 0.0),
    ("Send the project before dark with @gymco\n\n#climbing #project", 2.0),
]


def climbing_vocabulary() -> Vocabulary:
    return cluster_vocabulary([c for c, _ in CLIMBING],
                              [re.findall(r"#(\w+)", c) for c, _ in CLIMBING],
                              [re.findall(r"@(\w+)", c) for c, _ in CLIMBING],
                              [z for _, z in CLIMBING])


def test_the_vocabulary_is_the_posts_own_phrases_hashtags_and_mentions():
    v = climbing_vocabulary()
    # phrases two posts say first, by engagement: the two "send the project" posts are liked
    # far more (z = 2.0 and -0.5) than the three "sunset crag" ones (1.0, 0.5, 0.0)
    assert v.phrases[:2] == ["send the project", "sunset crag"]
    assert not {"send the", "the project", "with the"} & set(v.phrases)
    for phrase in v.phrases:  # each one is said, word for word, in some caption
        assert any(f" {phrase} " in " " + " ".join(words_of(c)) + " " for c, _ in CLIMBING)
        assert phrase.split()[0] not in {"the", "with", "and"}
        assert phrase.split()[-1] not in {"the", "with", "and"}
    assert "sunset crag vibes" not in v.phrases  # holds a phrase already chosen
    assert v.hashtags[:2] == ["climbing", "project"] and set(v.hashtags) == {
        "climbing", "crag", "sunset", "send", "granite", "project"}
    assert v.mentions == ["gymco"] and v.n_hashtags == 2 and v.posts == 5


def test_drafts_use_the_vocabulary_and_are_the_same_for_the_same_seed():
    v = climbing_vocabulary()
    drafts = compose_drafts(v, 3, seed=7)
    assert drafts == compose_drafts(v, 3, seed=7) and len(drafts) == 3
    for d in drafts:
        sentence, tags = d.split("\n\n")
        assert tags == "#climbing #project"  # the top ones, as many as a post has (median)
        assert any(p in sentence.lower() for p in v.phrases)
    assert sum("@gymco" in d for d in drafts) == 1
    firsts = {compose_drafts(v, 1, seed=s)[0] for s in range(20)}
    assert len(firsts) >= 5  # photos of one cluster get different drafts


def test_a_draft_that_copies_a_caption_is_replaced():
    v = climbing_vocabulary()
    drafts = compose_drafts(v, 3, seed=3)
    guard = CopyGuard([drafts[0].upper().replace(" ", " ... ")])  # a post said the first one
    assert not guard.allows(drafts[0])
    again = compose_drafts(v, 3, seed=3, guard=guard)
    assert drafts[0] not in again and len(again) == 3
    assert not copied_runs(again, [drafts[0]])


def test_a_mention_that_only_copies_is_left_out_rather_than_the_draft():
    """A post that ends "… with @gymco #climbing #crag #send #chalk" leaves every draft that
    names the mention (before the same hashtag line) a copy: the drafts go without it."""
    v = climbing_vocabulary()
    v = Vocabulary(phrases=v.phrases, hashtags=["climbing", "crag", "send", "chalk"],
                   mentions=["gymco"], n_hashtags=4)
    post = "Great session with @gymco\n\n#climbing #crag #send #chalk"
    assert any("@gymco" in d for d in compose_drafts(v, 3, seed=5))
    drafts = compose_drafts(v, 3, seed=5, guard=CopyGuard([post]))
    assert len(drafts) == 3 and not any("@gymco" in d for d in drafts)
    assert not copied_runs(drafts, [post])


def test_no_phrase_means_no_draft():
    assert compose_drafts(cluster_vocabulary([], [], []), 3) == []
    assert compose_drafts(cluster_vocabulary(["!!", "#tag"], [["tag"], []], [[], []]), 3) == []
    assert compose_drafts(climbing_vocabulary(), 0) == []


# ---------------------------------------------------------------- on a real bundle
def test_drafts_on_the_tiny_bundle_copy_no_caption_and_speak_the_communitys_words(
        ranker, shoot, tiny_bundle):
    every_caption = [json.loads(line)["caption"] or ""
                     for line in (tiny_bundle / "posts.jsonl").read_text().splitlines()]
    accounts = [n for n, c in ranker.communities.items() if c.kind == "account"]
    drafted = 0
    photos = ranker.embed(shoot)
    for community in accounts:
        members = set(ranker.communities[community].members)
        for photo in ranker.score(photos, community, RankSettings(captions=3)).photos:
            assert len(photo.captions) <= 3 and len(set(photo.captions)) == len(photo.captions)
            assert not copied_runs(photo.captions, every_caption), (community, photo.name)
            drafted += bool(photo.captions)
            cluster = photo.top_cluster["id"]
            own = [r for r in ranker.posts() if r["post_id"] in members
                   and r["cluster"] == cluster and r["split"] != "test"]
            speakers = own if len(own) >= MIN_VOCABULARY_POSTS else [
                r for r in ranker.posts() if r["cluster"] == cluster and r["split"] != "test"]
            said = {t for r in speakers for t in r["hashtags"]}
            mentioned = {m for r in speakers for m in r["mentions"]}
            text = " ".join(" ".join(words_of(r["caption"] or "")) for r in speakers)
            for draft in photo.captions:
                sentence, _, tags = draft.partition("\n\n")
                assert {t.lstrip("#") for t in tags.split()} <= said
                assert set(re.findall(r"@(\w+)", sentence)) <= mentioned - {community}
                # at least one phrase of 2+ words that these posts say, word for word
                w = words_of(re.sub(r"@\w+", "", sentence))
                assert any(" ".join(w[i:i + 2]) in text for i in range(len(w) - 1)), draft
    assert drafted >= 0.9 * len(accounts) * len(shoot)


def test_drafts_on_the_tiny_bundle_differ_between_photos_and_not_between_runs(ranker, shoot):
    community = ranker.default_community()
    first = ranker.rank(shoot, community, RankSettings()).photos
    again = {p.name: p.captions for p in ranker.rank(shoot[::-1], community,
                                                     RankSettings(batch_size=4)).photos}
    assert all(p.captions == again[p.name] for p in first)
    by_cluster: dict[int, set[str]] = {}
    for p in first:
        if p.captions:
            by_cluster.setdefault(p.top_cluster["id"], set()).add(p.captions[0])
    sizes = [sum(p.top_cluster["id"] == c for p in first) for c in by_cluster]
    assert any(len(by_cluster[c]) > 1 for c, n in zip(by_cluster, sizes) if n > 1)
    assert draft_seed("IMG_0001.jpg") != draft_seed("IMG_0002.jpg")
