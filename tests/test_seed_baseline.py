"""+experiment=seed_baseline: object tags + bag of words, PAM, through train → bundle → rank."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mmembed.bundle import Bundle
from mmembed.config import compose
from mmembed.evaluate import EvalSettings, evaluate
from mmembed.models.heads import IdentityAutoencoder, Normalize
from mmembed.models.joint import JointEmbedding
from mmembed.models.towers import BagOfWordsTower, ImageNetTagTower, imagenet_classes, words
from mmembed.ranking.ranker import Ranker
from mmembed.training import train

CAPTIONS = ["Sunset at the crag with @cragworks #climbing #sunset",
            "The crag again #climbing",
            "Dinner with friends #food #homemade",
            "Homemade dinner #food",
            "a one-off word",
            None]


def test_words_keep_hashtags_and_mentions_whole():
    assert words("Sunset at the Crag with @CragWorks #Climbing!") == [
        "sunset", "at", "the", "crag", "with", "@cragworks", "#climbing"]
    assert words(None) == [] and words("") == []


def test_bag_of_words_vocabulary_tfidf_and_round_trip():
    tower = BagOfWordsTower(max_features=50, min_df=2)
    with pytest.raises(RuntimeError, match="fit_tokenizer"):
        tower.tokenizer_fn()
    tower.fit_tokenizer(CAPTIONS)
    # terms in >= 2 captions, stop words ("the", "with") dropped; "homemade" and "#homemade"
    # are two terms, each in one caption
    assert set(tower.vocabulary) == {"crag", "#climbing", "dinner", "#food"}
    tokenize = pickle.loads(pickle.dumps(tower.tokenizer_fn()))  # goes to DataLoader workers
    vectors = tower(tokenize(CAPTIONS))
    assert vectors.shape == (len(CAPTIONS), 50)
    norms = vectors.norm(dim=1)
    assert torch.allclose(norms[:4], torch.ones(4))
    assert norms[4] == 0 and norms[5] == 0  # no known word / no caption: the zero vector
    # the rarer of two present terms weighs more (idf)
    again = BagOfWordsTower(max_features=50, min_df=1)
    again.fit_tokenizer(CAPTIONS)
    v = again(again.tokenize(["crag sunset"]))[0]
    assert v[again.vocabulary.index("sunset")] > v[again.vocabulary.index("crag")] > 0
    # the bundle stores the vocabulary as JSON; a tower rebuilt from it embeds identically
    rebuilt = BagOfWordsTower(max_features=50, min_df=2, tokenizer_json=tower.tokenizer_json())
    rebuilt.load_state_dict(tower.state_dict())
    assert torch.equal(rebuilt(rebuilt.tokenize(CAPTIONS)), vectors)
    assert rebuilt.fingerprint() == tower.fingerprint() != again.fingerprint()
    with pytest.raises(ValueError, match="max_features"):
        BagOfWordsTower(max_features=2, tokenizer_json=tower.tokenizer_json())


TFIDF = json.loads((Path(__file__).parent / "data" / "bag_of_words_tfidf.json").read_text("utf-8"))


@pytest.mark.parametrize("name", sorted(TFIDF["towers"]))
def test_bag_of_words_gives_the_recorded_vectors(name):
    """Vocabulary, IDF and vectors as recorded from the hand-written TF-IDF it replaced."""
    recorded = TFIDF["towers"][name]
    tower = BagOfWordsTower(**recorded["kwargs"])
    tower.fit_tokenizer(TFIDF["corpus"])
    assert tower.tokenizer_json() == recorded["tokenizer_json"]  # the bundle's file, unchanged
    assert tower.fingerprint() == recorded["fingerprint"]  # so is the feature cache key
    expected = torch.zeros(recorded["shape"])
    for row, column, value in recorded["nonzero"]:
        expected[row, column] = value
    with torch.no_grad():
        vectors = tower(tower.tokenize(TFIDF["captions"]))
    assert vectors.dtype == torch.float32
    assert torch.allclose(vectors, expected, rtol=0, atol=1e-6)
    if recorded["kwargs"].get("binary", True):
        # bit for bit, as the seed baseline's features must be for the same ranking; counts
        # (1 + ln n) may differ in the last bit: numpy's float32 log is not torch's
        assert torch.equal(vectors, expected)


def test_bag_of_words_with_no_term_in_min_df_captions_is_the_zero_vector():
    tower = BagOfWordsTower(max_features=4, min_df=3)
    tower.fit_tokenizer(["one caption", "another one", None])
    assert tower.vocabulary == []
    assert not tower(tower.tokenize(["one caption"])).any()


def test_imagenet_tags_are_the_top_k_labels():
    torch.manual_seed(0)
    tower = ImageNetTagTower(k=3, pretrained=False, input_size=64).eval()
    images = torch.rand(4, 3, 48, 48)
    with torch.no_grad():
        tags = tower(images)
        probs = tower.classify(images).softmax(-1)
    assert tags.shape == (4, 1000)
    assert ((tags > 0).sum(dim=1) == 3).all()
    top = probs.topk(3, dim=1)
    assert torch.allclose(tags.gather(1, top.indices), top.values)
    names = imagenet_classes()
    assert tower.tags(tags) == [[names[i] for i in row] for row in top.indices.tolist()]
    binary = ImageNetTagTower(k=2, binary=True, pretrained=False, input_size=64)
    binary.load_state_dict(tower.state_dict())
    with torch.no_grad():
        assert sorted(binary.eval()(images).unique().tolist()) == [0.0, 1.0]
    with pytest.raises(ValueError, match="k must be"):
        ImageNetTagTower(k=0, pretrained=False)


@pytest.fixture(scope="module")
def seed_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed")
    cfg = compose([
        "+experiment=seed_baseline", "data.num_posts=240", "data.image_size=32",
        "data.shoot_size=6", "datamodule.image_size=32", "datamodule.batch_size=32",
        "print_config=false", "trainer.enable_progress_bar=false", "trainer.max_epochs=2",
        "trainer.min_epochs=1", "logger=none", "model.image_tower.input_size=64",
        "cluster.k=4", f"paths.output_dir={root / 'run'}", f"paths.cache_dir={root / 'cache'}",
        f"paths.index_dir={root / 'index'}", "bundle_name=seed"])
    metrics, objects = train(cfg)
    return root / "index" / "seed", objects


def test_seed_baseline_trains_builds_and_ranks(seed_bundle, tmp_path):
    path, objects = seed_bundle
    bundle = Bundle.load(path)
    assert bundle.metrics["method"] == "pam" and bundle.metrics["k"] == 4
    assert bundle.has(Bundle.TOKENIZER)  # the fitted vocabulary travels with the bundle
    model = bundle.model()
    trained = objects["model"]
    # the seed's recipe is a config of the one joint model, with heads that learn nothing
    assert type(model) is JointEmbedding and isinstance(model.proj_text, Normalize)
    assert isinstance(model.autoencoder, IdentityAutoencoder)
    assert model.text_tower.vocabulary == trained.text_tower.vocabulary
    # a post's latent is [tags, words]; a photo alone is [tags, 0]
    feats = {"image": torch.rand(2, 1000), "text": torch.rand(2, model.text_tower.out_dim)}
    z_image = model.project_image(feats["image"])
    full = model.encode(z_image, model.proj_text(feats["text"]))
    alone = model.encode(z_image)
    assert full.shape == (2, 1000 + model.text_tower.out_dim)
    assert torch.equal(full[:, :1000], alone[:, :1000]) and not alone[:, 1000:].any()
    # rank.py's path: new photos (the shoot folder) get q over the 4 clusters and a score
    photos = [str(p.image_path) for p in objects["datamodule"].posts[:6]]
    ranker = Ranker.from_bundle(path)
    result = ranker.rank(photos, ranker.default_community(), EvalSettings().rank)
    assert len(result.photos) == 6
    for photo in result.photos:
        assert len(photo.q) == 4 and np.isclose(sum(photo.q), 1.0)
        assert np.isfinite(photo.engagement)


def test_seed_baseline_is_evaluated_with_the_same_metrics(seed_bundle):
    path, _ = seed_bundle
    res = evaluate(path, EvalSettings(random_repeats=2))
    for key in ("nmi", "profile_tv", "image_only_nmi", "image_only_agreement",
                "engagement_src", "ndcg@10"):
        assert res[key] is not None, key
    assert 0.0 <= res["nmi"] <= 1.0 and 0.0 <= res["image_only_agreement"] <= 1.0
    assert set(res["baselines"]) == {"random", "engagement_only", "cluster_kl_only", "fit_only",
                                     "alpha_sweep"}
