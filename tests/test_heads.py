"""The clustered latent's heads: the contrastive latent (the default) and the autoencoder."""

import pytest
import torch
from torch.nn import functional as F

from mmembed.config import compose
from mmembed.models.heads import ContrastiveLatent, PostAutoencoder


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


def test_the_contrastive_latent_without_a_text_tower_is_a_clear_error():
    from mmembed.models.joint import JointEmbedding
    from mmembed.models.towers import SmallCNNTower

    with pytest.raises(ValueError, match="model/autoencoder=post"):
        JointEmbedding(SmallCNNTower(out_dim=16), text_tower=None, autoencoder=ContrastiveLatent)
