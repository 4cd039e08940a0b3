"""The heads: the contrastive latent (the default), the autoencoder, and the engagement heads."""

import functools

import pytest
import torch
from torch.nn import functional as F

from mmembed.config import compose
from mmembed.models.heads import (
    ContrastiveLatent,
    EngagementHead,
    Normalize,
    PostAutoencoder,
    RidgeEngagementHead,
)


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_contrastive_latent_is_the_normalised_sum_of_the_halves():
    z_image, z_text = _unit(5, 8, seed=1), _unit(5, 8, seed=2)
    head = ContrastiveLatent(16, text_weight=0.5)
    latent = head.encode(torch.cat([z_image, z_text], dim=1))
    assert head.latent_dim == 8 and latent.shape == (5, 8)
    torch.testing.assert_close(latent, F.normalize(z_image + 0.5 * z_text, dim=-1))
    torch.testing.assert_close(latent.norm(dim=1), torch.ones(5))


def test_a_photo_without_caption_sits_at_its_own_image_embedding():
    z_image = _unit(4, 8, seed=3)
    head = ContrastiveLatent(16)
    latent = head.encode(torch.cat([z_image, torch.zeros_like(z_image)], dim=1))
    torch.testing.assert_close(latent, z_image)


def test_a_caption_moves_a_post_towards_its_text():
    z_image, z_text = _unit(6, 8, seed=4), _unit(6, 8, seed=5)
    fused = torch.cat([z_image, z_text], dim=1)
    near = [F.cosine_similarity(ContrastiveLatent(16, text_weight=w).encode(fused), z_text).mean()
            for w in (0.0, 0.5, 1.0, 2.0)]
    assert near == sorted(near) and near[-1] > near[0] + 0.3


def test_contrastive_latent_learns_nothing_and_rejects_bad_sizes():
    assert not list(ContrastiveLatent(16).parameters())
    with pytest.raises(ValueError, match="halves"):
        ContrastiveLatent(15)
    with pytest.raises(ValueError, match="text_weight"):
        ContrastiveLatent(16, text_weight=-1)


@pytest.mark.parametrize("overrides, head, reconstruction", [
    ([], ContrastiveLatent, 0.0),
    (["model/autoencoder=post", "model.loss_weights.reconstruction=1"], PostAutoencoder, 1.0),
    (["+experiment=image_ae"], PostAutoencoder, 1.0),
    (["cluster=dec"], PostAutoencoder, 1.0),
])
def test_configs_pick_the_latent_and_its_reconstruction_weight(overrides, head, reconstruction):
    cfg = compose(overrides)
    assert cfg.model.autoencoder._target_ == f"mmembed.models.heads.{head.__name__}"
    assert cfg.model.loss_weights.reconstruction == reconstruction


def test_training_step_with_the_contrastive_latent_has_no_reconstruction_term():
    from mmembed.models.joint import JointEmbedding
    from mmembed.models.towers import BagOfWordsTower, SmallCNNTower

    text_tower = BagOfWordsTower(max_features=12)
    model = JointEmbedding(SmallCNNTower(out_dim=16), text_tower=text_tower, embed_dim=8,
                           autoencoder=ContrastiveLatent)
    assert isinstance(model.autoencoder, ContrastiveLatent)
    batch = {"image_features": torch.randn(6, 16),
             "text_features": torch.randn(6, text_tower.out_dim), "engagement": torch.randn(6),
             "account": torch.zeros(6, dtype=torch.long), "index": torch.arange(6)}
    parts, out = model._step(batch)
    assert "reconstruction" not in parts and {"contrastive", "engagement"} <= set(parts)
    torch.testing.assert_close(out["latent_full"],
                               F.normalize(out["z_image"] + out["z_text"], dim=-1))
    torch.testing.assert_close(out["latent_image_only"], out["z_image"])


@pytest.mark.parametrize("autoencoder, proj_image, same", [
    (ContrastiveLatent, None, True),
    (PostAutoencoder, None, False),
    (ContrastiveLatent, functools.partial(Normalize, weight=0.5), False),
])
def test_a_photo_latent_is_its_z_image_exactly_where_the_model_says_so(autoencoder, proj_image,
                                                                       same):
    from mmembed.models.joint import JointEmbedding
    from mmembed.models.towers import BagOfWordsTower, SmallCNNTower

    model = JointEmbedding(SmallCNNTower(out_dim=16), text_tower=BagOfWordsTower(max_features=16),
                           embed_dim=16, autoencoder=autoencoder, proj_image=proj_image,
                           proj_text=proj_image)
    assert model.image_latent_is_z_image is same
    out = model.predict_step({"image_features": torch.randn(5, 16), "index": torch.arange(5)})
    close = (out["latent_image"].shape == out["z_image"].shape
             and torch.allclose(out["latent_image"], out["z_image"], atol=1e-6))
    assert close is same  # the build keeps one array for both only where they are equal


def test_the_contrastive_latent_without_a_text_tower_is_a_clear_error():
    from mmembed.models.joint import JointEmbedding
    from mmembed.models.towers import SmallCNNTower

    with pytest.raises(ValueError, match="model/autoencoder=post"):
        JointEmbedding(SmallCNNTower(out_dim=16), text_tower=None, autoencoder=ContrastiveLatent)


# ------------------------------------------------------------------------------ engagement
def _likes(n, dim=40, noise=2.0, seed=0):
    """Features and a log engagement that a few of them drive, plus noise a model can memorise."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.5, 20.0, dim)  # features on unequal scales
    x = torch.randn(n, dim, generator=g) * scales
    signal = (x[:, :4] / scales[:4]) @ torch.tensor([1.0, -0.5, 0.25, 0.1])
    return x, signal, signal + noise * torch.randn(n, generator=g)


def test_the_ridge_head_predicts_unseen_posts_better_than_the_mlp_it_replaces():
    x, _, y = _likes(600)
    train, held = slice(0, 300), slice(300, None)
    ridge = RidgeEngagementHead(x.shape[1])
    assert not ridge.fitted and torch.equal(ridge(x[:3]), torch.zeros(3))
    fit = ridge.fit(x[train], y[train])
    assert ridge.fitted and fit["rows"] == 300 and fit["alpha"] in ridge.alphas
    mlp = EngagementHead(x.shape[1])
    opt = torch.optim.AdamW(mlp.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(400):  # what a training run does to it: fit the training posts closely
        opt.zero_grad()
        F.mse_loss(mlp(x[train]), y[train]).backward()
        opt.step()
    mlp.eval()

    def corr(pred, rows):
        return float(torch.corrcoef(torch.stack([pred.detach()[rows], y[rows]]))[0, 1])

    assert corr(mlp(x), train) > corr(ridge(x), train)  # the MLP memorises the noise
    assert corr(ridge(x), held) > corr(mlp(x), held) + 0.05
    assert corr(ridge(x), held) > 0.3


def test_the_ridge_head_is_scikit_learns_ridge_and_saves_as_tensors():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    x, _, y = _likes(200, seed=1)
    head = RidgeEngagementHead(x.shape[1])
    head.fit(x, y)
    scaler = StandardScaler().fit(x.double().numpy())
    ref = Ridge(alpha=float(head.alpha)).fit(scaler.transform(x.double().numpy()), y.numpy())
    expected = ref.predict(scaler.transform(x[:7].double().numpy()))
    torch.testing.assert_close(head(x[:7]), torch.as_tensor(expected, dtype=torch.float32),
                               rtol=1e-4, atol=1e-4)
    again = RidgeEngagementHead(x.shape[1])
    again.load_state_dict(head.state_dict())  # what a bundle's model.safetensors restores
    assert again.fitted and torch.equal(again(x), head(x))


def test_the_ridge_head_samples_the_same_rows_every_time_above_its_cap():
    head = RidgeEngagementHead(4, max_rows=50)
    rows = torch.arange(1000, 1200)
    picked = head.sample(rows)
    assert len(picked) == 50 and torch.equal(picked, head.sample(rows))
    assert bool((picked.diff() > 0).all()) and set(picked.tolist()) <= set(rows.tolist())
    assert torch.equal(head.sample(rows[:50]), rows[:50])
    with pytest.raises(ValueError, match="at least 3"):
        head.fit(torch.randn(2, 4), torch.randn(2))
    with pytest.raises(ValueError, match="positive"):
        RidgeEngagementHead(4, alphas=[0.0, 1.0])


def test_the_ridge_head_needs_frozen_towers_and_names_the_fix():
    from hydra.utils import instantiate

    cfg = compose(["model/image_tower=small_cnn", "model/text_tower=scratch",
                   "model.freeze_towers=false"])
    with pytest.raises(Exception, match="model/engagement_head=mlp"):  # Hydra wraps the error
        instantiate(cfg.model)
    cfg = compose(["+experiment=scratch_clip"])  # towers that train: the MLP head
    assert cfg.model.engagement_head._target_.endswith(".EngagementHead")
    assert compose([]).model.engagement_head._target_.endswith(".RidgeEngagementHead")
