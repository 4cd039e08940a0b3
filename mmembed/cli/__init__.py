"""The command-line apps (``train.py``, ``rank.py``): they parse, print and write; the library
returns values.

:func:`run` is their shared behaviour: one clear line and an exit code instead of a traceback.
:func:`prepare_argv` turns the command line as people type it into overrides Hydra accepts
(:mod:`mmembed.cli.argv`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

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


def prepare_argv(config_name: str) -> None:
    """Rewrite ``sys.argv`` for Hydra (:func:`mmembed.cli.argv.prepare`) against
    ``conf/<config_name>.yaml``; a mistyped setting exits with one line and status 2."""
    from mmembed.cli.argv import UnknownSetting, prepare

    config = Path(__file__).resolve().parents[2] / "conf" / f"{config_name}.yaml"
    try:
        sys.argv[1:] = prepare(sys.argv[1:], config)
    except UnknownSetting as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
