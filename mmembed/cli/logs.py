"""One plain line per message on the terminal: the apps' logging, and the libraries' own
printing turned down.

Hydra sets up logging from ``conf/hydra/job_logging/`` before the app runs. The libraries
imported after that add their own output:

- ``lightning`` gives its package logger a console handler when imported, so each of its
  messages appeared twice (once through it, once through Hydra's root handler);
- Lightning advertises other packages at INFO ("💡 Tip: ... try installing litlogger");
- transformers draws a bar while it loads a tower's weights, W&B prints a banner and a
  forty-line summary of every run, and Lightning warns about its own use of torch's pytree.

:func:`quiet_libraries` removes these; the run's own lines (what is loaded, why training
stopped, where the bundle is) are printed by the apps.
"""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["DropTips", "quiet_libraries"]


class DropTips(logging.Filter):
    """Drops Lightning's advertisements for other packages."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_libraries() -> None:
    """Call at the start of an app, after Hydra set up logging."""
    import lightning

    own = logging.getLogger(lightning.__name__)
    for handler in list(own.handlers):
        own.removeHandler(handler)  # its records reach Hydra's handlers through the root
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, DropTips) for f in handler.filters):
            handler.addFilter(DropTips())
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
