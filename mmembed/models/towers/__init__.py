"""Image and text towers: the pretrained (or from-scratch) encoders under the joint embedding.

Every tower owns its own preprocessing, so the data pipeline stays tower-agnostic:

- an :class:`ImageTower` takes float images ``[B, 3, H, W]`` in ``[0, 1]`` at whatever size the
  image cache holds, resizes them to its ``input_size`` and applies its own normalisation;
- a :class:`TextTower` turns raw captions into token tensors with :meth:`TextTower.tokenize`
  (run in the DataLoader's collate function, so it must be cheap and picklable) and embeds them.

Weights are only ever read as plain tensors (``safetensors`` or ``torch.load(weights_only=True)``):
a weights file never gets to run code. Everything that ships inside an installed package
(EfficientNet-Lite0, all-MiniLM-L6-v2) loads offline; hub downloads (torchvision, timm,
open_clip, Hugging Face names) stay available for users with a network and fail with a message
that says what to do.

The towers live in one module per kind: :mod:`~mmembed.models.towers.base` (the base classes,
:func:`freeze`), :mod:`~mmembed.models.towers.image`, :mod:`~mmembed.models.towers.text`,
:mod:`~mmembed.models.towers.clip` (the two halves of an open_clip model),
:mod:`~mmembed.models.towers.bag_of_words` (the seed's bag of words),
:mod:`~mmembed.models.towers.photo_stats` and :mod:`~mmembed.models.towers.weights` (reading
weight files, and the errors that say what to do when they are missing or do not fit);
:mod:`~mmembed.models.towers.runtime` runs a frozen image tower for inference at the machine's
speed (ONNX Runtime, ``channels_last``, bfloat16 on a GPU).

Every public name is re-exported here: configs and bundles name the classes as
``mmembed.models.towers.<Class>`` (see :mod:`mmembed.allowlist`), and so does each buildable
class's ``__module__``.
"""

from mmembed.models.towers.bag_of_words import BagOfWordsTokenizer, BagOfWordsTower, words
from mmembed.models.towers.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageTower,
    TextTower,
    freeze,
)
from mmembed.models.towers.clip import (
    OpenCLIPCaptionTokenizer,
    OpenCLIPImageTower,
    OpenCLIPTextTower,
    open_clip_model,
)
from mmembed.models.towers.image import (
    EfficientNetLite0Tower,
    ImageNetTagTower,
    SmallCNNTower,
    TimmTower,
    TorchvisionTower,
    imagenet_classes,
)
from mmembed.models.towers.photo_stats import (
    N_PHOTO_STATS,
    PHOTO_STATS_GRID,
    PHOTO_STATS_NAMES,
    PHOTO_STATS_SIZE,
    photo_statistics,
)
from mmembed.models.towers.runtime import FastImageTower
from mmembed.models.towers.text import (
    HFCaptionTokenizer,
    HFTextTower,
    MiniLMTower,
    ScratchCaptionTokenizer,
    ScratchTextTower,
)
from mmembed.models.towers.weights import (
    HubDownloadError,
    WeightsMismatchError,
    load_weights_file,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "N_PHOTO_STATS",
    "PHOTO_STATS_GRID",
    "PHOTO_STATS_NAMES",
    "PHOTO_STATS_SIZE",
    "BagOfWordsTokenizer",
    "BagOfWordsTower",
    "EfficientNetLite0Tower",
    "FastImageTower",
    "HFCaptionTokenizer",
    "HFTextTower",
    "HubDownloadError",
    "ImageNetTagTower",
    "ImageTower",
    "MiniLMTower",
    "OpenCLIPCaptionTokenizer",
    "OpenCLIPImageTower",
    "OpenCLIPTextTower",
    "ScratchCaptionTokenizer",
    "ScratchTextTower",
    "SmallCNNTower",
    "TextTower",
    "TimmTower",
    "TorchvisionTower",
    "WeightsMismatchError",
    "freeze",
    "imagenet_classes",
    "load_weights_file",
    "open_clip_model",
    "photo_statistics",
    "words",
]
