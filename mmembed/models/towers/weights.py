"""Tower weight files: read as plain tensors, loaded strictly, with errors that say the fix.

Weights are only ever read as tensors (``safetensors`` or ``torch.load(weights_only=True)``): a
weights file never gets to run code. :func:`load_weights_file` reads one, :func:`load_into` loads
it into a tower's network and turns a mismatch into a :class:`WeightsMismatchError` that names the
file, what differs and what to do. A hub download that fails (no network) is a
:class:`HubDownloadError` that says how to use a local file instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

#: File suffixes read as a state dict (anything else that exists as a file is tried with
#: ``torch.load(weights_only=True)`` too).
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


class HubDownloadError(RuntimeError):
    """Hub weights were requested but could not be downloaded (typically: no network)."""


class WeightsMismatchError(ValueError):
    """A weights file does not fit the network it was loaded into."""


def looks_like_path(weights: str | Path) -> bool:
    """Whether a ``weights`` setting names a local file (rather than a hub weight name)."""
    text = str(weights)
    return (text.endswith(WEIGHT_SUFFIXES) or text.startswith(("/", ".", "~"))
            or "/" in text or "\\" in text or Path(text).expanduser().exists())


def missing_file_error(path: str | Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"weights file not found: {path} (for {what}). Pass the path of an existing .safetensors "
        "or .pth file as weights=/path/to/file, weights=null for random initialisation, or "
        "weights=DEFAULT to download the library's own pretrained weights (needs network).")


def load_weights_file(path: str | Path, what: str = "the tower") -> dict[str, Tensor]:
    """Tensors from a ``.safetensors`` file or a ``.pth``/``.pt``/``.bin`` state dict.

    ``torch.load`` runs with ``weights_only=True``: a state dict is plain tensors, and we never
    unpickle arbitrary objects. A checkpoint that wraps the state dict under ``"state_dict"``,
    ``"model"`` or ``"state_dict_ema"`` (common training-script layouts) is unwrapped, and a
    ``module.`` prefix (saved from DataParallel/DDP) is removed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise missing_file_error(path, what)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsMismatchError(
            f"{path} could not be read as weights for {what} ({type(err).__name__}: "
            f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}). Pass a "
            ".safetensors file or a state dict saved with torch.save(model.state_dict(), path); "
            "files that need unpickling of code (whole pickled models) are refused.") from err
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsMismatchError(
            f"{path} does not hold a state dict of tensors (got {type(state).__name__}) for "
            f"{what}; save one with torch.save(model.state_dict(), path) or safetensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _sample(keys, n: int = 3) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def check_fits(module: nn.Module, state: Mapping[str, Tensor], path: str | Path,
               what: str) -> None:
    """Raise :class:`WeightsMismatchError` unless ``state`` has exactly ``module``'s keys and
    shapes, naming the file, the keys that are missing, unexpected or of another shape."""
    own = module.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_sample(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_sample(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape (file vs model: {'; '.join(shapes[:3])})")
    raise WeightsMismatchError(
        f"{path} does not fit {what}: {', '.join(parts)}. The file was saved from another "
        "architecture or variant; pass the checkpoint made for this model (or set the tower's "
        "name/arch to the model the file was saved from), or weights=null for random "
        "initialisation.")


def load_into(module: nn.Module, state: Mapping[str, Tensor], path: str | Path,
              what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` after :func:`check_fits`."""
    check_fits(module, state, path, what)
    module.load_state_dict(dict(state), strict=True)


def hub_error(what: str, err: Exception, fix: str) -> HubDownloadError:
    """The error for a failed download of ``what``: the reason, then ``fix`` (a local path)."""
    reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    return HubDownloadError(
        f"could not download {what} ({reason}). Without network access, {fix}, or use "
        "weights=null for random initialisation.")
