"""Build objects from a config that came from a bundle, through an allow-list only.

A bundle's ``manifest.json`` holds the resolved config its model was trained with, and
``rank.py`` rebuilds the model (towers, heads, the joint model) and the data source from it.
Bundles are made to be shared, and nothing covers that config with a signature, so it is
untrusted input: handed to ``hydra.utils.instantiate`` as it is, a ``_target_`` such as
``pathlib.Path.touch``, ``builtins.open`` or ``numpy.load`` would run on the reader's machine.

:func:`check_targets` walks the whole config first, at any depth and through lists (so
``_args_`` and nested objects are covered), and refuses every ``_target_`` that is not one of
mmembed's own buildable classes (:data:`BUILDABLE`), naming the key and the value, before
anything is imported or built. It also refuses ``${...}`` interpolations, which a resolved
config never holds and which could read the environment. :func:`build` checks, then
instantiates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Every class a bundle's config may build: the joint models, their towers and heads, the
#: clusterers and the data sources. Dotted names, compared exactly (nothing is imported to
#: check them).
BUILDABLE: frozenset[str] = frozenset({
    "mmembed.models.joint.JointEmbedding",
    "mmembed.models.heads.ProjectionHead",
    "mmembed.models.heads.Normalize",
    "mmembed.models.heads.PostAutoencoder",
    "mmembed.models.heads.IdentityAutoencoder",
    "mmembed.models.heads.ContrastiveLatent",
    "mmembed.models.heads.EngagementHead",
    "mmembed.models.heads.RidgeEngagementHead",
    "mmembed.models.towers.EfficientNetLite0Tower",
    "mmembed.models.towers.ImageNetTagTower",
    "mmembed.models.towers.TorchvisionTower",
    "mmembed.models.towers.TimmTower",
    "mmembed.models.towers.OpenCLIPImageTower",
    "mmembed.models.towers.OpenCLIPTextTower",
    "mmembed.models.towers.SmallCNNTower",
    "mmembed.models.towers.HFTextTower",
    "mmembed.models.towers.MiniLMTower",
    "mmembed.models.towers.ScratchTextTower",
    "mmembed.models.towers.BagOfWordsTower",
    "mmembed.communities.clustering.KMeansClusterer",
    "mmembed.communities.clustering.GMMClusterer",
    "mmembed.communities.clustering.PAMClusterer",
    "mmembed.communities.clustering.LDAClusterer",
    "mmembed.data.sources.synthetic.SyntheticSource",
    "mmembed.data.sources.tuxpaint.TuxpaintSource",
    "mmembed.data.sources.manifest.ManifestSource",
    "mmembed.data.sources.instaloader.InstaloaderSource",
    "mmembed.data.sources.openclipart.OpenclipartSource",
    "mmembed.data.sources.shards.ShardSource",
})

TARGET_KEY = "_target_"


class UnsafeConfigError(ValueError):
    """A config from a bundle names something outside :data:`BUILDABLE`."""


def check_targets(config: Any, where: str, path: str = "") -> None:
    """Raise :class:`UnsafeConfigError` unless every ``_target_`` under ``config`` is buildable.

    ``where`` names the file the config came from (for the message); ``path`` is the dotted key
    of ``config`` inside it. Walks mappings and sequences at any depth.
    """
    if isinstance(config, Mapping):
        for key, value in config.items():
            key_path = f"{path}.{key}" if path else str(key)
            if key == TARGET_KEY and (not isinstance(value, str) or value not in BUILDABLE):
                raise UnsafeConfigError(
                    f"{where}: refused to build {key_path}={value!r}: a bundle may only build "
                    "mmembed's own models, towers, heads, clusterers and data sources. The "
                    "bundle was altered or comes from an untrusted source; rebuild it with "
                    "`python train.py`")
            check_targets(value, where, key_path)
    elif isinstance(config, Sequence) and not isinstance(config, str | bytes):
        for i, value in enumerate(config):
            check_targets(value, where, f"{path}[{i}]")
    elif isinstance(config, str) and "${" in config:
        raise UnsafeConfigError(
            f"{where}: refused {path}={config!r}: a bundle's config is stored resolved and holds "
            "no ${...} interpolation; rebuild the bundle with `python train.py`")


def build(config: Mapping[str, Any], where: str, path: str = "", **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(config, **kwargs)`` after :func:`check_targets` passed.

    ``kwargs`` come from mmembed itself, never from the bundle, and are not checked.
    """
    from hydra.utils import instantiate

    check_targets(config, where, path)
    if not isinstance(config, Mapping) or TARGET_KEY not in config:
        raise UnsafeConfigError(f"{where}: {path or 'the config'} names no class to build "
                                f"({TARGET_KEY} is missing); rebuild the bundle")
    return instantiate(dict(config), **kwargs)
