"""Every picture of a bundle, as writers that :meth:`mmembed.bundle.Bundle.save` calls.

:func:`bundle_pictures` returns ``{file name: writer}``, each writer taking the path the bundle
gives it (inside its temporary folder, under ``pictures/``), so the pictures are written
atomically with the rest of the bundle and listed in its manifest:

* ``map.png`` — the 2-D map of every post, coloured by cluster (:mod:`.maps`);
* ``cluster_NN.png`` — a contact sheet of cluster NN's medoid posts (:mod:`.sheets`);
* ``cluster_NN_terms.png`` — cluster NN's top c-TF-IDF terms (:mod:`.sheets`);
* ``communities.html`` — one card per community (:mod:`.cards`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmembed.report.cards import community_cards_html
from mmembed.report.maps import map_2d, plot_map
from mmembed.report.sheets import cluster_contact_sheet, top_terms_chart

Writer = Callable[[Path], Any]


def bundle_pictures(
    latent: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    cluster_names: Sequence[str],
    top_terms: Sequence[Sequence[tuple[str, float]]],
    medoids: Sequence[Sequence[int]],
    posts: Sequence[Any],
    communities: Mapping[str, Mapping[str, Any]],
    *,
    seed: int = 0,
    community_thumbs: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Writer]:
    """The bundle's pictures by file name (see the module docstring), each a ``writer(path)``.

    ``latent`` [N, d] and ``labels`` [N] are every post's latent and cluster; ``top_terms[c]``
    and ``medoids[c]`` (post indices into ``posts``) describe cluster c, one entry per name in
    ``cluster_names``. ``community_thumbs`` maps a community to the image paths shown on its
    card (else its ``medoids``). The map's 2-D coordinates (``seed``-ed; a t-SNE sample is
    stratified by ``labels``) are computed here, once; the files are drawn when the writers
    are called.
    """
    coords, method = map_2d(latent, seed=seed, labels=labels)
    files: dict[str, Writer] = {
        "map.png": lambda path: plot_map(
            coords, labels, cluster_names, path, "Posts by content cluster", method),
        "communities.html": lambda path: community_cards_html(
            communities, cluster_names, path, thumbs=community_thumbs),
    }
    for c, name in enumerate(cluster_names):
        paths = [posts[i].image_path for i in medoids[c]]
        files[f"cluster_{c:02d}.png"] = (
            lambda path, paths=paths, name=name: cluster_contact_sheet(paths, path, name))
        files[f"cluster_{c:02d}_terms.png"] = (
            lambda path, t=top_terms[c], name=name: top_terms_chart(t, path, name))
    return files
