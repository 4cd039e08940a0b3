"""Posts and where they come from: schema, sources, safe image decoding, the datamodule."""

from mmembed.data.images import ImageError, list_images, load_image
from mmembed.data.post import Corpus, Post, PostError, Skipped, engagement, make_post
from mmembed.progress import QUIET, Progress

__all__ = [
    "Corpus",
    "ImageError",
    "Post",
    "PostError",
    "Skipped",
    "check_images",
    "engagement",
    "list_images",
    "load_corpus",
    "load_image",
    "make_post",
]


def load_corpus(data_cfg) -> Corpus:
    """Instantiate the configured source (the ``data`` config group) and load it."""
    from hydra.utils import instantiate

    return instantiate(data_cfg).load()


def check_images(
    corpus: Corpus, workers: int = 4, progress: Progress = QUIET, size: int | None = None
) -> Corpus:
    """Decode every post's image (at ``size``, as the datamodule will) and move the ones that
    fail to ``corpus.skipped``.

    Returns a new Corpus; the reasons name the post and file. The decodes share one
    :class:`~mmembed.data.images.DecodeBudget`, so a folder of huge images cannot hold
    ``workers`` of them in memory at once.
    """
    from concurrent.futures import ThreadPoolExecutor

    from mmembed.data.images import DecodeBudget

    budget = DecodeBudget()
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(
            lambda p: load_image(p.image_path, size=size, budget=budget), corpus.posts
        )
        results = progress.track(results, len(corpus.posts), "checking images")
        errors = [r if isinstance(r, ImageError) else None for r in results]
    posts = [p for p, e in zip(corpus.posts, errors) if e is None]
    skipped = list(corpus.skipped) + [
        Skipped(f"{p.post_id} ({e.path})", e.reason) for p, e in zip(corpus.posts, errors) if e
    ]
    return Corpus(
        posts=posts,
        skipped=skipped,
        counts=dict(corpus.counts),
        truth=corpus.truth,
        name=corpus.name,
    )
