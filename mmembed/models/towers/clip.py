"""open_clip towers: the image half and the text half of one open_clip model and checkpoint.

Both towers take the same two settings, so they come from one model and one checkpoint:

- ``name``: an open_clip model name (``open_clip.list_models()``: ``ViT-B-32``, ``ViT-L-14``,
  ``RN50``, ...) or ``local-dir:/path/to/folder``, a folder holding an ``open_clip_config.json``
  (model and preprocessing config), as a Hugging Face open_clip repository does;
- ``weights``: ``None`` → random init; a path to a checkpoint file (``.safetensors``, ``.bin``,
  ``.pt``; open_clip's own layout or one it converts) → loaded strictly with
  ``weights_only=True``; any other string → an open_clip pretrained tag
  (``open_clip.list_pretrained_tags_by_model(name)``, e.g. ``laion2b_s34b_b79k``), downloaded
  by open_clip (needs network the first time).

The image tower keeps ``model.visual`` (its output is the projected CLIP image embedding,
``embed_dim`` wide) and the model's own normalisation; the text tower keeps the text encoder
(``encode_text``, the projected CLIP text embedding) and open_clip's tokenizer for that model,
which pads every caption to the model's context length.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from torch import Tensor, nn

from mmembed.models.towers.base import ImageTower, TextTower, _as_texts
from mmembed.models.towers.weights import (
    WeightsMismatchError,
    check_fits,
    hub_error,
    load_weights_file,
    looks_like_path,
    missing_file_error,
)

__all__ = ["OpenCLIPCaptionTokenizer", "OpenCLIPImageTower", "OpenCLIPTextTower",
           "open_clip_model"]


def _model_config(name: str) -> dict:
    import open_clip

    try:
        config = open_clip.get_model_config(name)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"open_clip model {name!r}: no readable open_clip_config.json "
                                f"({err}); point local-dir: at the folder that holds it") from err
    if config is None:
        raise ValueError(f"unknown open_clip model {name!r}; use one of open_clip.list_models() "
                         "(e.g. ViT-B-32) or local-dir:/path/to/folder with an "
                         "open_clip_config.json")
    return config


def _load_checkpoint(model: nn.Module, path: Path, what: str) -> None:
    """open_clip's ``load_checkpoint`` (its format conversions, ``weights_only=True``), with a
    mismatch turned into :class:`WeightsMismatchError`."""
    import open_clip

    if not path.is_file():
        raise missing_file_error(path, what)
    fix = ("pass the checkpoint of this model (or set name= to the model the file was saved "
           "from), or weights=null for random initialisation")
    try:
        incompatible = open_clip.load_checkpoint(model, str(path), strict=False,
                                                 weights_only=True)
    except (RuntimeError, AssertionError) as err:  # shapes that differ
        if path.suffix not in (".npz", ".npy"):  # name the keys and shapes that differ
            check_fits(model, load_weights_file(path, what), path, what)
        lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        detail = "; ".join(lines[:3]) or (str(err).strip().splitlines() or [""])[0][:300]
        raise WeightsMismatchError(f"{path} does not fit {what}: {detail}. {fix}") from err
    except Exception as err:
        raise WeightsMismatchError(
            f"{path} could not be read as weights for {what} ({type(err).__name__}: "
            f"{str(err).strip()[:200]}); it must be a .safetensors file or a state dict of "
            f"tensors. {fix}") from err
    missing = list(getattr(incompatible, "missing_keys", []))
    unexpected = list(getattr(incompatible, "unexpected_keys", []))
    if missing or unexpected:
        parts = [f"{len(keys)} {kind} keys ({', '.join(sorted(keys)[:3])})"
                 for kind, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise WeightsMismatchError(f"{path} does not fit {what}: {', '.join(parts)}. {fix}")


@contextmanager
def _no_random_init_warnings() -> Iterator[None]:
    """Hide open_clip's root-logger warnings while it builds a randomly initialised model
    ("No pretrained weights loaded", "no CLIP weights found"): the tower loads its weights
    itself, or random weights are what was asked for."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def open_clip_model(name: str, weights: str | None = None,
                    image_size: int | None = None) -> nn.Module:
    """The whole open_clip model ``name`` with ``weights`` (see the module docstring).

    ``image_size`` other than the model's own resizes the vision tower (open_clip's
    ``force_image_size``; ViT position embeddings are resampled when the checkpoint loads).
    """
    import open_clip

    _model_config(name)
    what = f"open_clip {name}"
    options = dict(pretrained_image=False, pretrained_text=False, force_image_size=image_size)
    if weights is None or looks_like_path(weights):
        with _no_random_init_warnings():
            model = open_clip.create_model(name, pretrained=None, load_weights=False,
                                           **options)
        if weights is not None:
            _load_checkpoint(model, Path(str(weights)).expanduser(), what)
        return model
    tags = open_clip.list_pretrained_tags_by_model(name)
    if str(weights) not in tags:
        raise ValueError(f"weights={weights!r} for {what} is neither a file nor a pretrained "
                         f"tag of this model ({', '.join(tags) or 'it has none'}); pass the "
                         "path of a checkpoint file or weights=null")
    try:
        return open_clip.create_model(name, pretrained=str(weights), **options)
    except RuntimeError as err:  # open_clip wraps download errors in RuntimeError
        raise hub_error(f"open_clip weights {weights!r} for {name}", err,
                        "download the checkpoint elsewhere (e.g. open_clip_model.safetensors "
                        "from its Hugging Face repository) and pass its local path as "
                        "weights=/path/to/open_clip_model.safetensors") from err


class OpenCLIPImageTower(ImageTower):
    """The image encoder of an open_clip model (``model.visual``): the projected CLIP image
    embedding, ``embed_dim`` wide, with the model's own normalisation.

    ``name``/``weights``: see :mod:`~mmembed.models.towers.clip`. ``input_size=None`` keeps the
    model's native size (224 for most); another size rebuilds the vision tower for it and
    resamples a ViT's position embeddings. ``photo_stats``: see :class:`ImageTower`.
    """

    def __init__(self, name: str = "ViT-B-32", weights: str | None = None,
                 input_size: int | None = None, photo_stats: bool = False):
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        config = _model_config(name)
        model = open_clip_model(name, weights, image_size=input_size)
        visual = model.visual
        size = getattr(visual, "image_size", None) or config["vision_cfg"].get("image_size", 224)
        size = size[0] if isinstance(size, tuple | list) else size
        preprocess = getattr(visual, "preprocess_cfg", {}) or {}
        super().__init__(int(size), preprocess.get("mean", OPENAI_DATASET_MEAN),
                         preprocess.get("std", OPENAI_DATASET_STD),
                         pretrained=weights is not None, photo_stats=photo_stats)
        self.name = str(name)
        self.model = visual
        self.feature_dim = int(config["embed_dim"])

    def fingerprint(self) -> str:
        """The name and normalisation (not in the state dict) for the feature cache key."""
        return f"{self.name}|{self.mean.flatten().tolist()}|{self.std.flatten().tolist()}"

    def features(self, x: Tensor) -> Tensor:
        return self.model(x)


class OpenCLIPCaptionTokenizer:
    """Picklable collate hook: captions → ``{"input_ids": [B, context_length]}`` with open_clip's
    tokenizer for the model (padded to the context length, truncated at it)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        return {"input_ids": self.tokenizer(_as_texts(captions))}


class OpenCLIPTextTower(TextTower):
    """The text encoder of an open_clip model (``encode_text``): the projected CLIP text
    embedding, ``embed_dim`` wide, with open_clip's tokenizer for the model.

    ``name``/``weights``: see :mod:`~mmembed.models.towers.clip`; give the image tower the same
    two and the towers share one embedding space. The vision tower is dropped after loading.
    ``max_length`` is the model's context length (its position embeddings fix it).
    """

    def __init__(self, name: str = "ViT-B-32", weights: str | None = None):
        super().__init__()
        import open_clip

        config = _model_config(name)
        model = open_clip_model(name, weights)
        model.visual = None  # encode_text never uses it; keeps the image weights out
        self.name = str(name)
        self.model = model
        self._pretrained = weights is not None
        tokenizer = open_clip.get_tokenizer(name)
        self._tokenize = OpenCLIPCaptionTokenizer(tokenizer)
        self.max_length = int(getattr(tokenizer, "context_length", None)
                              or config["text_cfg"].get("context_length", 77))
        self.out_dim = int(config["embed_dim"])

    def fingerprint(self) -> str:
        """The model name (which picks the tokenizer) for the feature cache key."""
        return self.name

    def tokenizer_fn(self) -> OpenCLIPCaptionTokenizer:
        return self._tokenize

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        return self.model.encode_text(tokens["input_ids"])
