"""The command-line apps (``train.py``, ``rank.py``): they parse, print and write; the library
returns values.

:func:`run` is their shared behaviour: one clear line and an exit code instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from omegaconf import DictConfig


def run(fn: Callable[[DictConfig], object], cfg: DictConfig) -> object:
    """Call ``fn(cfg)``; on an error print one line (the traceback only with verbose=true)."""
    try:
        return fn(cfg)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - the entry point's job is to report any failure
        if cfg.get("verbose"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        print("(run again with verbose=true for the full traceback)", file=sys.stderr)
        sys.exit(1)
