"""The web app's settings (``app.*``), registered in Hydra's ConfigStore as the ``app`` group's
default (:mod:`mmembed.settings`), so ``rank.py serve=true app.max_files=50`` is type-checked
before anything runs. Where the server listens is ``host=`` and ``port=`` in ``conf/rank.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIB", "AppSettings"]

MIB = 2**20


@dataclass
class AppSettings:
    """Limits and keeping of the served app (``app.*``).

    max_files: photos in one request, each file or zip member counted (more: 413).
    max_file_mb: MiB of one photo as uploaded, or of one zip member once extracted (more: 413).
    max_upload_mb: MiB of every photo of one request together, zips extracted (more: 413).
        The request body itself may be this plus a little multipart overhead.
    keep_results: rankings kept in memory for their result page and downloads; the oldest is
        dropped first (its page then answers 404).
    concurrent_rankings: rankings that run at once; the others wait their turn. Each holds
        its photos' decoded batches, so on a CPU one at a time uses the cores as well as two
        and half the memory.
    upload_dir: where each request's temporary folder is made (null: the system's temporary
        folder). The folder is deleted when the request ends, whatever happened.
    """

    max_files: int = 200
    max_file_mb: float = 30.0
    max_upload_mb: float = 300.0
    keep_results: int = 20
    concurrent_rankings: int = 1
    upload_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_files", "keep_results", "concurrent_rankings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"app.{name} must be an integer >= 1, got {value!r}")
        for name in ("max_file_mb", "max_upload_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"app.{name} must be a number of MiB > 0, got {value!r}")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MIB)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)

    @property
    def max_body_bytes(self) -> int:
        """The largest request body accepted: the photos plus multipart headers (~1 KiB a
        file) and the form's few text fields."""
        return self.max_upload_bytes + 1024 * self.max_files + 64 * 1024
