"""A frozen image tower run for inference at this machine's speed limit.

:class:`FastImageTower` computes what ``tower(images)`` computes (the tower's features, plus
its photo statistics when it appends them), only faster. The tower's ``preprocess`` (resize,
normalise) and its photo statistics run in torch as always; only the network itself,
``tower.features``, runs through one of these backends:

- ``onnx`` (CPU): the network exported with ``torch.onnx`` (batch dimension dynamic) and run
  by ONNX Runtime, which folds batch norm into the convolutions and has fast depthwise kernels.
  The exported graph is written once per tower (a hash of its class and weights) into
  ``cache_dir`` and read back from there; without ``cache_dir`` it stays in memory. Needs the
  ``onnxruntime`` and ``onnx`` packages (installed with mmembed; without them ``auto`` falls
  back to ``torch``).
- ``torch``: a copy of the network in ``channels_last`` memory format under
  ``torch.inference_mode`` (on the CPU 1.5–1.7× faster than eager for EfficientNet-Lite0,
  against 4.7–6.7× for ONNX Runtime: ``benchmarks/tower_speed.py``). On a GPU the forward runs
  under bfloat16 autocast; the features come back as float32.
- ``eager``: ``tower(images)`` unchanged (today's path, the reference).

``auto`` picks ``onnx`` on the CPU when onnxruntime is installed, else ``torch``. A tower
that ONNX cannot export falls back to ``torch`` with a warning. The features agree with the
eager tower's to about 1e-6 in cosine on the CPU (bfloat16 on a GPU: about 1e-3).

:data:`BATCH_SIZE` is the batch size the feature cache feeds it, by device (measured with
``benchmarks/tower_speed.py``).
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from mmembed.fileio import atomic_write

__all__ = ["BACKENDS", "BATCH_SIZE", "FastImageTower", "onnxruntime_available"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "torch", "eager")
#: Batch size of the feature pass by device type: on the CPU larger batches gained nothing
#: (they leave the caches); on a GPU large batches keep it busy.
BATCH_SIZE = {"cpu": 64, "cuda": 512}
ONNX_OPSET = 17


def onnxruntime_available() -> bool:
    """Whether ONNX Runtime and ``onnx`` (which ``torch.onnx`` needs to export) are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class _Network(nn.Module):
    """``tower.features`` as a module of its own (what is exported or converted)."""

    def __init__(self, tower: nn.Module):
        super().__init__()
        self.tower = tower

    def forward(self, x: Tensor) -> Tensor:
        return self.tower.features(x)


class FastImageTower:
    """``tower(images)`` for inference, faster (see the module docstring).

    ``tower`` must be an :class:`~mmembed.models.towers.ImageTower` whose weights no longer
    change (a frozen tower): the backends work on a copy or an export of the weights as they
    were when this object was built.
    """

    def __init__(self, tower: nn.Module, backend: str = "auto",
                 cache_dir: str | Path | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown tower backend {backend!r}; choose from {BACKENDS}")
        self.tower = tower
        self.device = next(tower.parameters()).device
        if backend == "auto":
            backend = "onnx" if self.device.type == "cpu" and onnxruntime_available() else "torch"
        if backend == "onnx" and self.device.type != "cpu":
            raise ValueError(f"the onnx tower backend runs on the CPU; the tower is on "
                             f"{self.device} (use backend=torch or auto)")
        if backend == "onnx" and not onnxruntime_available():
            raise ImportError("the onnx tower backend needs onnxruntime and onnx: "
                              "pip install onnxruntime onnx (or backend=torch)")
        self._network = None
        self._session = None
        if backend == "onnx":
            try:
                self._session = self._onnx_session(cache_dir)
            except Exception as err:  # an operator or model ONNX cannot export
                warnings.warn(f"{type(tower).__name__} could not run through ONNX Runtime "
                              f"({type(err).__name__}: {err}); using backend=torch instead",
                              stacklevel=2)
                backend = "torch"
        if backend == "torch":
            self._network = copy.deepcopy(_Network(tower)).eval().to(
                memory_format=torch.channels_last)
        self.backend = backend

    # ------------------------------------------------------------------ ONNX Runtime
    def _onnx_bytes(self) -> bytes:
        size = int(self.tower.input_size)
        example = torch.zeros(2, 3, size, size)
        buffer = io.BytesIO()
        was_training = self.tower.training
        self.tower.eval()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
                torch.onnx.export(_Network(self.tower), (example,), buffer, dynamo=False,
                                  opset_version=ONNX_OPSET, input_names=["images"],
                                  output_names=["features"],
                                  dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})
        finally:
            self.tower.train(was_training)
        return buffer.getvalue()

    def _onnx_session(self, cache_dir: str | Path | None):
        import onnxruntime as ort

        if cache_dir is not None:
            from mmembed.models.features import module_hash

            path = Path(cache_dir) / (f"tower-{module_hash(self.tower)}-opset{ONNX_OPSET}-"
                                      f"torch{torch.__version__.split('+')[0]}.onnx")
            if not path.is_file():
                atomic_write(path, self._onnx_bytes())
            model: bytes | str = str(path)
        else:
            model = self._onnx_bytes()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # Idle threads sleep instead of spinning, as OMP_WAIT_POLICY=PASSIVE does for torch:
        # on a shared machine spinning takes CPU from others (and from us) for no throughput.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    # ------------------------------------------------------------------ the forward
    def features(self, x: Tensor) -> Tensor:
        """``tower.features(x)`` of a preprocessed batch."""
        if self.backend == "eager":
            return self.tower.features(x)
        if self._session is not None:
            x = x.detach().float().cpu().contiguous().numpy()
            return torch.from_numpy(self._session.run(None, {"images": x})[0])
        x = x.contiguous(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self._network(x).float()
        return self._network(x)

    def __call__(self, images: Tensor) -> Tensor:
        """``tower(images)``: features of images ``[B, 3, H, W]`` (uint8 or floats in [0, 1])."""
        with torch.inference_mode():
            images = images.to(self.device, non_blocking=True)
            if self.backend == "eager":
                out = self.tower(images)
            else:
                out = self.tower.with_photo_stats(images,
                                                  self.features(self.tower.preprocess(images)))
        return out.clone()  # a normal tensor, usable outside inference mode (autograd)

    def __repr__(self) -> str:
        return f"FastImageTower({type(self.tower).__name__}, backend={self.backend}, {self.device})"
