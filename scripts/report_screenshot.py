"""Screenshot of a ranking report (``report.html``) with headless Chromium, for the docs.

    python scripts/report_screenshot.py [REPORT] [--out docs/report.png] [--size 1280,2000]

REPORT defaults to the newest ``outputs/*/*/report.html`` (what ``python rank.py`` writes).
Needs Debian's Chromium at ``/usr/bin/chromium`` (``apt-get install -y chromium``), run headless
with a fresh throw-away profile and every network feature off: the report is self-contained, so
nothing is fetched.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = "apt-get install -y chromium"


def newest_report(root: Path = ROOT) -> Path | None:
    """The most recently modified ``outputs/*/*/report.html`` under ``root``, if any."""
    reports = [p for p in (root / "outputs").glob("*/*/report.html") if p.is_file()]
    return max(reports, key=lambda p: p.stat().st_mtime) if reports else None


def find_chromium(explicit: str | None = None) -> str | None:
    """``explicit`` if it exists (nothing else is tried then), else /usr/bin/chromium or PATH's."""
    candidates = [explicit] if explicit else [CHROMIUM, shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def screenshot(report: Path, out: Path, chromium: str, size: tuple[int, int],
               timeout: float = 120.0) -> Path:
    """Render ``report`` with headless ``chromium`` into the PNG ``out``; returns ``out``."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="report-shot-") as tmp:
        shot = Path(tmp) / "shot.png"
        cmd = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={Path(tmp) / 'profile'}", "--hide-scrollbars",
            f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}",
            report.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0 or not shot.is_file() or shot.stat().st_size == 0:
            tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-15:])
            raise RuntimeError(f"chromium failed (exit {proc.returncode}) on {report}:\n{tail}")
        shutil.copyfile(shot, out)  # Chromium writes into the temp dir; publish only a full PNG
    return out


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be WIDTH,HEIGHT, got {text!r}") from exc
    if w < 100 or h < 100:
        raise argparse.ArgumentTypeError(f"size too small: {text!r}")
    return w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", nargs="?", type=Path,
                        help="report.html (default: the newest outputs/*/*/report.html)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png",
                        help="PNG to write (default: docs/report.png)")
    parser.add_argument("--size", type=_size, default=(1280, 2000),
                        help="window WIDTH,HEIGHT in pixels (default: 1280,2000)")
    parser.add_argument("--chromium", default=None, help=f"browser binary (default: {CHROMIUM})")
    args = parser.parse_args(argv)

    report = args.report or newest_report()
    if report is None:
        print(f"no report given and none found under {ROOT / 'outputs'}/*/*/report.html; "
              "run `python rank.py` first or pass a report path", file=sys.stderr)
        return 2
    if not report.is_file():
        print(f"report not found: {report}", file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print(f"Chromium not found at {args.chromium or CHROMIUM}. Install it with:\n"
              f"    {INSTALL_HINT}\n(as root, on Debian/Ubuntu) and run this script again.",
              file=sys.stderr)
        return 3
    try:
        out = screenshot(report, args.out, chromium, args.size)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"screenshot failed: {exc}", file=sys.stderr)
        return 1
    print(f"{report} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
