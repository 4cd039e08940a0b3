"""DEC as a refinement stage of the model: k-means with DEC's kernel, then encoder and centroids
trained together (mmembed.models.dec)."""

import numpy as np
import pytest
import torch
from test_clustering import DIM, N_TOPICS, make_blobs

from mmembed.communities.clustering import KMeansClusterer
from mmembed.communities.metrics import truth_metrics
from mmembed.models.dec import DECRefinement


def dec_kmeans(latent, seed=0):
    return KMeansClusterer(k=N_TOPICS, seed=seed, alpha=1.0, kernel="dec", scaled=False).fit(
        latent)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs()


def test_dec_refines_the_encoder_in_place(blobs):
    latent_in, truth = blobs
    torch.manual_seed(0)
    encoder = torch.nn.Linear(DIM, 8)
    encoder.train()
    inputs = torch.from_numpy(latent_in)
    with torch.no_grad():
        latent = encoder(inputs).numpy()
    before = encoder.weight.detach().clone()
    clusterer = dec_kmeans(latent)
    dec = DECRefinement(max_iter=100, update_interval=25, tol=0.0, seed=0)
    refined_latent = dec.refine(clusterer, latent, encoder=encoder, inputs=inputs)

    assert not torch.equal(before, encoder.weight) and encoder.training
    assert dec.n_steps_ == 100 and len(dec.history_) == 4
    # each target P was held fixed for update_interval steps, which lowered KL(P || Q)
    assert all(h["kl_end"] < h["kl_start"] for h in dec.history_)
    assert truth_metrics(clusterer.labels_, truth)["nmi"] >= 0.9
    with torch.no_grad():
        refined = encoder(inputs).numpy()
    np.testing.assert_allclose(refined_latent, refined, atol=1e-6)
    assert (clusterer.soft_assign(refined).argmax(1) == clusterer.labels_).mean() >= 0.95


def test_dec_without_encoder_moves_only_centroids(blobs):
    clusterer = dec_kmeans(blobs[0])
    init = clusterer.centroids_.copy()
    latent = DECRefinement(max_iter=50, update_interval=25, tol=0.0).refine(clusterer, blobs[0])
    assert not np.array_equal(clusterer.centroids_, init)
    np.testing.assert_array_equal(latent, blobs[0])
    assert truth_metrics(clusterer.labels_, blobs[1])["nmi"] >= 0.9


def test_dec_stops_when_labels_settle(blobs):
    dec = DECRefinement(max_iter=500, update_interval=25, tol=1e-3)
    dec.refine(dec_kmeans(blobs[0]), blobs[0])
    assert dec.n_steps_ < 500 and dec.history_[-1]["label_change"] < 1e-3


def test_dec_needs_its_kernel_and_encoder_with_inputs(blobs):
    with pytest.raises(ValueError, match="both encoder and inputs"):
        DECRefinement().refine(dec_kmeans(blobs[0]), blobs[0], encoder=torch.nn.Linear(DIM, DIM))
    with pytest.raises(ValueError, match="kernel: dec"):
        DECRefinement().refine(KMeansClusterer(k=3).fit(blobs[0]), blobs[0])
