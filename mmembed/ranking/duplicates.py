"""Near-duplicates in one set of photos: group them, lead each group with its best member.

A shoot holds bursts, recompressed exports and slightly edited variants of one shot. Ranked
one by one they crowd the top of the list with the same picture. Two photos are **near-copies**
when both signals agree:

- their perceptual hashes (``imagehash.phash``, 64 bits of the image's low DCT frequencies,
  robust to resizing and mild blur; two unrelated photos differ in about 32) differ in at most
  ``max_hamming`` bits, and
- their image-tower features have cosine similarity at least ``min_cosine``;

or when the hashes alone are nearly identical (at most ``same_hamming`` bits). Recompressing a
small, detailed image at JPEG quality 40–95 moved its hash by 6–10 bits in our tests, while two
different photos of one subject in one style (a shoot's) differed by 16 or more, with image
embeddings as close as 0.96: hence both signals together, and a cosine threshold above that.
Groups are the connected components of that relation (a union–find), so a chain of variants is
one group.

The **leader** of a group is its best member: the highest score, except where the predicted
engagement cannot tell the members apart (within ``engagement_tolerance`` of the group's best
prediction, in log-rate units: 0.15, about 16 %, well inside the engagement head's own error),
where the sharper and better exposed photo wins (:func:`photo_quality`). Every other member is
flagged ``duplicate_of:<leader file>``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["duplicate_groups", "group_leaders", "perceptual_hash", "photo_quality"]


def perceptual_hash(pixels: np.ndarray) -> np.ndarray:
    """64-bit pHash of one ``[H, W, 3]`` uint8 photo, as a bool array of 64."""
    import imagehash
    from PIL import Image

    return np.asarray(imagehash.phash(Image.fromarray(pixels)).hash, dtype=bool).ravel()


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


#: Bits set in each byte value (popcount by lookup, for packed hashes).
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
#: Photos compared with all others at once; memory stays O(chunk × n), not O(n²).
_CHUNK = 256


def duplicate_groups(hashes: ArrayLike, features: ArrayLike, max_hamming: int = 12,
                     min_cosine: float = 0.97, same_hamming: int = 6) -> np.ndarray:
    """Group id of each photo, ``[n]`` int (ids ``0..G-1`` in order of first member).

    ``hashes``: ``[n, 64]`` bool pHashes; ``features``: ``[n, D]`` image features (normalised
    here). See the module docstring for the relation. Pairs are compared a block of rows at a
    time, so a folder of thousands of photos needs no n × n × 64 array.
    """
    h = np.packbits(np.asarray(hashes, dtype=bool), axis=1)
    f = np.asarray(features, dtype=np.float64)
    n = h.shape[0]
    if f.shape[0] != n:
        raise ValueError(f"hashes and features must have one row per photo, got {n} and "
                         f"{f.shape[0]}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    parent = list(range(n))
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(n, start + _CHUNK))
        hamming = _POPCOUNT[h[rows, None, :] ^ h[None, :, :]].sum(axis=2, dtype=np.int64)
        cosine = f[rows] @ f.T
        close = (hamming <= same_hamming) | ((hamming <= max_hamming) & (cosine >= min_cosine))
        for i, j in zip(*np.nonzero(close)):
            i, j = int(i) + start, int(j)
            if j <= i:
                continue
            ri, rj = _find(parent, i), _find(parent, j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = [_find(parent, i) for i in range(n)]
    ids: dict[int, int] = {}
    return np.asarray([ids.setdefault(r, len(ids)) for r in roots], dtype=np.int64)


def photo_quality(sharpness: ArrayLike, clipping: ArrayLike,
                  exposure_offset: ArrayLike) -> np.ndarray:
    """A sortable quality key per photo: sharpness first, then less clipping, then exposure
    nearer mid-grey. Returns ``[n, 3]`` (larger is better in every column)."""
    return np.stack([np.asarray(sharpness, dtype=np.float64),
                     -np.asarray(clipping, dtype=np.float64),
                     -np.abs(np.asarray(exposure_offset, dtype=np.float64))], axis=1)


def group_leaders(groups: ArrayLike, score: ArrayLike, engagement: ArrayLike,
                  quality: ArrayLike, engagement_tolerance: float = 0.15) -> np.ndarray:
    """The leader (photo index) of each photo's group, ``[n]`` (a leader leads itself).

    ``quality``: ``[n, m]`` keys from :func:`photo_quality`, compared column by column.
    """
    g = np.asarray(groups)
    s = np.asarray(score, dtype=np.float64)
    e = np.asarray(engagement, dtype=np.float64)
    qk = np.asarray(quality, dtype=np.float64)
    leader = np.arange(len(g))
    for gid in np.unique(g):
        members = np.flatnonzero(g == gid)
        if len(members) == 1:
            continue
        best = members[np.argmax(s[members])]
        tied = members[e[members] >= e[best] - engagement_tolerance]
        if len(tied) > 1:  # engagement cannot tell them apart: the better photo leads
            best = max(tied, key=lambda i: (*qk[i], s[i], -i))
        leader[members] = best
    return leader
