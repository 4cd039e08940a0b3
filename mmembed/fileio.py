"""Files on disk: atomic writes and strict JSON, in one place.

Every file mmembed writes for later reading (caches, bundle files, reports, outputs) goes
through :func:`atomic_write`: the content is written to a hidden temporary sibling and renamed
over the target, so a reader (or a run killed half-way) sees the old file or the new one,
never half of one. The temporary name keeps the target's suffix, so writers that add one
(``np.save``) or check it (safetensors, matplotlib) behave.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Content = bytes | str | Callable[[Path], None]


def atomic_write(path: str | os.PathLike, content: Content) -> Path:
    """Write ``content`` (bytes, text as UTF-8, or a writer ``fn(tmp_path)``) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")
    try:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        elif isinstance(content, str):
            tmp.write_text(content, encoding="utf-8")
        else:
            content(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays, paths, tuples, sets, dataclasses and datetimes turned
    into JSON types. Non-finite floats (NaN, ±inf) become ``None``, so the output is strict
    JSON."""
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | bool | int):
        return obj
    if isinstance(obj, Mapping):
        return {str(to_jsonable(k)) if not isinstance(k, str) else k: to_jsonable(v)
                for k, v in obj.items()}
    if isinstance(obj, set | frozenset):
        return [to_jsonable(v) for v in sorted(obj, key=str)]
    if isinstance(obj, Sequence) and not isinstance(obj, bytes | bytearray):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    raise TypeError(f"cannot store {type(obj).__name__} in JSON: {obj!r:.80}")


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` after :func:`to_jsonable`."""
    return json.dumps(to_jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)
