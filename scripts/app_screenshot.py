"""Screenshot of the served app's results page, for the docs: start the app on a bundle, upload
photos through its form in headless Chromium, and save the page it answers with.

    python scripts/app_screenshot.py [BUNDLE] [--images FOLDER] [--community ID]
        [--followers N] [--out docs/app.png] [--size 1280,1500]

BUNDLE defaults to the one ``rank.py`` would use (the newest under ``index/``), the photos to the
bundle's held-out shoot, the community to the one ``rank.py`` defaults to. Needs Debian's
Chromium at ``/usr/bin/chromium`` (``apt-get install -y chromium``), driven by Playwright with
every network feature off; the app listens on 127.0.0.1 on a free port while the script runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be WIDTH,HEIGHT, got {text!r}") from exc
    return w, h


def screenshot(bundle: Path, images: list[Path], community: str | None,
               followers: int | None, out: Path, size: tuple[int, int]) -> Path:
    """Upload ``images`` for ``community`` through the app's form and save the results page
    (its first ``size`` pixels) as the PNG ``out``."""
    from playwright.sync_api import sync_playwright

    from mmembed.app.server import create_app, running
    from mmembed.app.service import RankService

    service = RankService.from_bundle(bundle)
    community = service.ranker.community_ids[service.ranker.resolve_community(community)
                                             if community else
                                             service.ranker.default_community()]
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with running(create_app(service)) as url, sync_playwright() as pw, \
            tempfile.TemporaryDirectory(prefix="app-shot-") as tmp:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(url + "/")
            page.set_input_files("#files", [str(p) for p in images])
            page.select_option("#community", community)
            if followers is not None:
                page.fill("#followers", str(followers))
            page.click("#rank")
            page.wait_for_url(url + "/results/*", timeout=600_000)
            shot = Path(tmp) / "shot.png"
            page.screenshot(path=str(shot))
            shutil.copyfile(shot, out)  # publish only a whole PNG
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", nargs="?", help="bundle folder or name under index/ "
                        "(default: the one rank.py would use)")
    parser.add_argument("--images", type=Path, help="folder of photos to upload "
                        "(default: the bundle's held-out shoot)")
    parser.add_argument("--community", help="community id or name (default: rank.py's)")
    parser.add_argument("--followers", type=int, default=12000,
                        help="followers to type in the form (default: 12000)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "app.png",
                        help="PNG to write (default: docs/app.png)")
    parser.add_argument("--size", type=_size, default=(1280, 1500),
                        help="window WIDTH,HEIGHT in pixels (default: 1280,1500)")
    args = parser.parse_args(argv)

    if not Path(CHROMIUM).is_file():
        print(f"Chromium not found at {CHROMIUM}. Install it with:\n    apt-get install -y "
              "chromium\n(as root, on Debian/Ubuntu) and run this script again.", file=sys.stderr)
        return 3
    from mmembed.bundle import Bundle
    from mmembed.cli.rank import default_images, resolve_bundle
    from mmembed.config import compose
    from mmembed.data.images import list_images

    cfg = compose(config_name="rank")
    try:
        bundle, why = resolve_bundle(args.bundle, cfg.paths.index_dir)
        folder = args.images or default_images(Bundle.load(bundle, verify=False),
                                               cfg.paths.cache_dir)
    except Exception as exc:  # noqa: BLE001 - one clear line for a missing bundle or shoot
        print(f"error: {exc}", file=sys.stderr)
        return 2
    images, _ = list_images(folder)
    if not images:
        print(f"error: no photo in {folder}", file=sys.stderr)
        return 2
    print(f"bundle {bundle} ({why}); uploading {len(images)} photos from {folder}")
    out = screenshot(bundle, images, args.community, args.followers, args.out, args.size)
    print(f"results page -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
