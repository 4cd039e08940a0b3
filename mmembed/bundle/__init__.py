"""The bundle (``index/<name>/``): everything ``rank.py`` needs, and the one place that knows
its files.

:class:`Bundle` names every file and owns its format; :meth:`Bundle.save` writes them all from
the objects a build made (:class:`BundleContents`), and the readers (:meth:`Bundle.model`,
:meth:`Bundle.clusterer`, :meth:`Bundle.clusters`, :meth:`Bundle.communities`,
:meth:`Bundle.posts`, :meth:`Bundle.latents`, :meth:`Bundle.index`) give them back as objects.
No other module opens a bundle file by name. The folder itself (written atomically, with a
manifest of versions and hashes, verified on read, recovered after a killed build) is
:mod:`mmembed.bundle.folder`'s.

Formats, all free of pickle: weights in safetensors; arrays in ``np.savez`` (read back with
``allow_pickle=False``); the FAISS index with ``faiss.write_index``; the rest JSON. Objects are
rebuilt from the bundle's config only through the allow-list of :mod:`mmembed.allowlist`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mmembed.bundle.folder import (
    FORMAT_VERSION,
    MANIFEST,
    REBUILD_HINT,
    BundleError,
    default_bundle_name,
    list_bundles,
    newest_bundle,
    read_manifest,
    recover_bundles,
    write_bundle,
)
from mmembed.fileio import dumps_json

if TYPE_CHECKING:
    import torch

    from mmembed.communities.cluster import Cluster
    from mmembed.communities.clustering import Clusterer
    from mmembed.communities.profiles import Community
    from mmembed.search.index import PostIndex

__all__ = ["FORMAT_VERSION", "MANIFEST", "Bundle", "BundleContents", "BundleError",
           "default_bundle_name", "list_bundles", "newest_bundle", "read_bundle",
           "recover_bundles", "write_bundle"]


@dataclasses.dataclass
class BundleContents:
    """What a build hands to :meth:`Bundle.save`.

    ``posts``: one JSON-able row per post (the Post fields plus ``engagement``,
    ``engagement_pred``, ``cluster`` and ``split``), any iterable (written a row at a time, so
    it can make each row as it is asked for); ``latents``: name → ``[N, ...]`` array in
    the posts' order; ``pictures``: file name under ``pictures/`` → writer ``fn(path)``.
    """

    model: Any
    clusterer: Any
    clusters: list[Cluster]
    communities: dict[str, Community]
    posts: Iterable[dict[str, Any]]
    latents: dict[str, np.ndarray]
    index: PostIndex
    pictures: dict[str, Callable[[Path], None]] = dataclasses.field(default_factory=dict)
    tokenizer_json: str | None = None
    calibration: dict[str, Any] = dataclasses.field(default_factory=dict)
    feature_index: PostIndex | None = None


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A verified bundle folder and its manifest."""

    MODEL: ClassVar[str] = "model.safetensors"
    TOKENIZER: ClassVar[str] = "tokenizer.json"
    CLUSTERS: ClassVar[str] = "clusters.json"
    CLUSTER_STATE: ClassVar[str] = "clusters.npz"
    COMMUNITIES: ClassVar[str] = "communities.json"
    POSTS: ClassVar[str] = "posts.jsonl"
    LATENTS: ClassVar[str] = "latents.npz"
    INDEX: ClassVar[str] = "posts.faiss"
    INDEX_META: ClassVar[str] = "post_ids.json"
    FEATURE_INDEX: ClassVar[str] = "features.faiss"
    FEATURE_INDEX_META: ClassVar[str] = "features_ids.json"
    CALIBRATION: ClassVar[str] = "calibration.json"
    PICTURES: ClassVar[str] = "pictures"
    COMMUNITY_CARDS: ClassVar[str] = "pictures/communities.html"

    path: Path
    manifest: dict[str, Any]

    # ------------------------------------------------------------------ the folder
    @classmethod
    def load(cls, folder: str | Path, verify: bool = True) -> Bundle:
        """Open and verify the bundle at ``folder`` (see :func:`~mmembed.bundle.folder.
        read_manifest`): :class:`BundleError` names the file at fault and the fix."""
        folder = Path(folder)
        return cls(path=folder, manifest=read_manifest(folder, verify=verify))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config", {})

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    @property
    def created(self) -> str:
        return self.manifest["created"]

    @property
    def image_size(self) -> int:
        """The side the photos are decoded at, as in training."""
        try:
            return int(self.config["datamodule"]["image_size"])
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{self.manifest_path} has no datamodule.image_size in its "
                              "config; rebuild the bundle") from err

    def has(self, name: str) -> bool:
        return name in self.manifest["files"]

    def file(self, name: str) -> Path:
        """Path of a file listed in the manifest."""
        if not self.has(name):
            raise BundleError(f"{self.path / name} is not part of this bundle (the manifest "
                              f"lists {sorted(self.manifest['files'])}); {REBUILD_HINT}")
        return self.path / name

    def _json(self, name: str) -> Any:
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    def _npz(self, name: str) -> dict[str, np.ndarray]:
        try:
            with np.load(self.file(name), allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except ValueError as err:
            raise BundleError(f"{self.path / name} holds object arrays, which would need "
                              f"unpickling; refused ({err})") from err

    # ------------------------------------------------------------------ readers
    def model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The trained JointEmbedding in eval mode, rebuilt from the config and the weights.

        Pretrained tower weights are not fetched (``weights``/``pretrained`` are switched off):
        every parameter comes from ``model.safetensors`` (``strict``), so a bundle never needs
        the network. A fitted text vocabulary comes from ``tokenizer.json``.
        """
        from safetensors.torch import load_file

        from mmembed.allowlist import UnsafeConfigError, build

        config = copy.deepcopy(self.config.get("model"))
        if not isinstance(config, dict) or "_target_" not in config:
            raise BundleError(f"{self.manifest_path} has no model config; rebuild the bundle "
                              "with `python train.py`")
        for key in ("optimizer", "scheduler"):
            config[key] = None  # training-only; not needed to embed
        for tower in (config.get("image_tower"), config.get("text_tower")):
            if isinstance(tower, dict):
                for key, off in (("weights", None), ("pretrained", False)):
                    if key in tower:
                        tower[key] = off
        if isinstance(config.get("text_tower"), dict):
            _quiet_transformers()
        try:
            model = build(config, str(self.manifest_path), "config.model")
        except UnsafeConfigError as err:
            raise BundleError(str(err)) from err
        except Exception as err:
            raise BundleError(f"cannot rebuild the model described in {self.manifest_path} "
                              f"({type(err).__name__}: {err}); rebuild the bundle with this "
                              "version of mmembed") from err
        if self.has(self.TOKENIZER) and model.text_tower is not None:
            model.text_tower.load_tokenizer(self.file(self.TOKENIZER).read_text("utf-8"))
        weights = self.file(self.MODEL)
        try:
            model.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
        except Exception as err:
            first = str(err).strip().splitlines()[0][:300]
            raise BundleError(f"{weights} does not fit the model its config describes "
                              f"({first}); rebuild the bundle") from err
        return model.to(device).eval()

    def clusterer(self) -> Clusterer:
        """The fitted clusterer, ready for ``soft_assign``."""
        from mmembed.communities.clustering import load_clusterer

        try:
            return load_clusterer(self._npz(self.CLUSTER_STATE),
                                  self._json(self.CLUSTERS)["method"])
        except (KeyError, ValueError, TypeError) as err:
            raise BundleError(f"{self.path / self.CLUSTER_STATE} cannot be read back ({err}); "
                              "rebuild the bundle") from err

    def clusters(self) -> list[Cluster]:
        """The K clusters, by id."""
        from mmembed.communities.cluster import Cluster

        rows = self._json(self.CLUSTERS)["clusters"]
        return sorted((Cluster.from_dict(c) for c in rows), key=lambda c: c.id)

    def communities(self) -> dict[str, Community]:
        from mmembed.communities.profiles import Community

        return {name: Community.from_dict(name, c)
                for name, c in self._json(self.COMMUNITIES).items()}

    def posts(self) -> Iterator[dict[str, Any]]:
        """Every post's row (``split`` says which were held out), in the bundle's order."""
        with self.file(self.POSTS).open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def latents(self) -> dict[str, np.ndarray]:
        """Every post's vectors (``latent``, ``latent_image``, ``z_image``, ...), in order. A
        bundle whose photo latent is its z_image (the default contrastive latent) stores that
        array once, and ``latent_image`` is then the same array as ``z_image``."""
        latents = self._npz(self.LATENTS)
        if "latent_image" not in latents and "z_image" in latents:
            latents["latent_image"] = latents["z_image"]
        return latents

    def index(self, use_gpu: bool | str = False) -> PostIndex:
        """The FAISS index of the posts' image embeddings (on the GPUs with ``use_gpu``:
        ``"auto"`` when FAISS sees one, see :meth:`mmembed.search.index.PostIndex.load`)."""
        from mmembed.search.index import PostIndex

        try:
            return PostIndex.load(self.file(self.INDEX), self._json(self.INDEX_META), use_gpu)
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise BundleError(f"the post index in {self.path} cannot be read ({err}); "
                              "rebuild the bundle") from err

    def feature_index(self, use_gpu: bool | str = False) -> PostIndex:
        """The image-tower content features of the training posts (for novelty)."""
        from mmembed.search.index import PostIndex

        try:
            return PostIndex.load(self.file(self.FEATURE_INDEX),
                                  self._json(self.FEATURE_INDEX_META), use_gpu)
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise BundleError(f"the feature index in {self.path} cannot be read ({err}); "
                              "rebuild the bundle") from err

    def calibration(self) -> dict[str, Any]:
        """What the build measured on held-out posts to calibrate the ranking
        (:mod:`mmembed.build.calibrate`): temperature, lift, novelty, engagement range."""
        return self._json(self.CALIBRATION)

    def data_source(self, cache_dir: str | Path):
        """The bundle's data source, rebuilt (through the allow-list) with its cache under
        this machine's ``cache_dir``, never where the bundle's config points."""
        from mmembed.allowlist import UnsafeConfigError, build

        data = dict(self.config.get("data") or {})
        if "cache_dir" in data:
            name = Path(str(data["cache_dir"])).name or "data"
            data["cache_dir"] = str(Path(cache_dir) / name)
        try:
            return build(data, str(self.manifest_path), "config.data")
        except UnsafeConfigError as err:
            raise BundleError(str(err)) from err

    # ------------------------------------------------------------------ writer
    @classmethod
    def save(cls, target: str | Path, contents: BundleContents, *, config: dict[str, Any],
             data_fingerprint: str, metrics: dict[str, Any],
             extra: dict[str, Any] | None = None) -> Bundle:
        """Write a complete bundle to ``target`` atomically; the bundle, verified."""
        from safetensors.torch import save_file

        arrays, params = contents.clusterer.state()
        clusters = {"method": params, "k": len(contents.clusters),
                    "clusters": [c.to_dict() for c in contents.clusters]}
        communities = {name: c.to_dict() for name, c in contents.communities.items()}
        model = contents.model
        files: dict[str, Any] = {
            cls.MODEL: lambda path: save_file(
                {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                str(path)),
            cls.CLUSTER_STATE: lambda path: np.savez(path, **arrays),
            cls.CLUSTERS: dumps_json(clusters).encode(),
            cls.COMMUNITIES: dumps_json(communities).encode(),
            cls.POSTS: lambda path: _write_lines(path, contents.posts),
            cls.LATENTS: lambda path: np.savez(path, **contents.latents),
            cls.INDEX: contents.index.write_index,
            cls.INDEX_META: dumps_json(contents.index.metadata(), indent=None).encode(),
        }
        if contents.tokenizer_json is not None:
            files[cls.TOKENIZER] = contents.tokenizer_json.encode()
        files[cls.CALIBRATION] = dumps_json(contents.calibration).encode()
        if contents.feature_index is not None:
            files[cls.FEATURE_INDEX] = contents.feature_index.write_index
            files[cls.FEATURE_INDEX_META] = dumps_json(contents.feature_index.metadata(),
                                                       indent=None).encode()
        for name, writer in contents.pictures.items():
            files[f"{cls.PICTURES}/{name}"] = writer
        write_bundle(target, files, config=config, data_fingerprint=data_fingerprint,
                     metrics=metrics, extra=extra)
        return cls.load(target)


def _write_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """``rows`` as JSON lines, one row in memory at a time."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_bundle(folder: str | Path, verify: bool = True) -> Bundle:
    """:meth:`Bundle.load`."""
    return Bundle.load(folder, verify=verify)


def _quiet_transformers() -> None:
    """No per-tensor "Loading weights" bar from Hugging Face: the bundle's weights replace them."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
