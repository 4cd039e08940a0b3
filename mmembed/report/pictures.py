"""Pictures of a trained bundle: the latent map, contact sheets, top terms, community cards.

Every ``*`` function here is pure: it takes arrays/lists, writes one file to ``path`` (creating
the parent folder) and returns the path as a :class:`~pathlib.Path`.

* :func:`map_2d` — 2-D coordinates of the post latents (UMAP if installed, else t-SNE, else PCA).
* :func:`plot_map` — the scatter of those coordinates coloured by cluster, with a legend.
* :func:`cluster_contact_sheet` — a grid of a cluster's medoid thumbnails.
* :func:`top_terms_chart` — a bar chart of a cluster's most distinctive terms (c-TF-IDF).
* :func:`community_cards_html` — a self-contained HTML page with one card per community.
* :func:`community_cards_png` — the community profiles as stacked bars, one row per community.
* :func:`write_pictures` — all of the above for a bundle, in one call.
* :func:`log_pictures_to_wandb` — log the written files to a W&B run under ``bundle/...``.

Clusters get the same colour everywhere (:func:`cluster_colors`), so a cluster's dots on the
map, its bars in the cards and its term chart match.

matplotlib is used through :class:`~matplotlib.figure.Figure` and the Agg canvas directly, never
through ``pyplot``: nothing here changes the global backend or keeps figures alive, and styling
is applied with a temporary :func:`matplotlib.rc_context`. Scraped text (names, hashtags,
captions) is drawn with mathtext off, so a ``$`` in a caption is just a dollar sign, and in the
HTML it is always escaped by jinja2's autoescape.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmembed.data.images import ImageError, load_image

#: Above this many posts, ``method="auto"`` uses PCA instead of t-SNE when UMAP is missing.
TSNE_MAX = 5000
METHODS = ("auto", "umap", "tsne", "pca")
METHOD_LABELS = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}
#: Colour of points whose label is negative (noise / unassigned).
NOISE_COLOR = "#b8b8b8"
#: The map's legend lists at most this many clusters (the largest); the rest are summarised.
LEGEND_MAX = 40

_KIND_ORDER = {"account": 0, "source": 1, "group": 2, "cluster": 3}
_KIND_TITLES = {
    "account": "Accounts",
    "source": "Hashtag sources",
    "group": "Groups",
    "cluster": "Clusters",
}
_STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "text.parse_math": False,  # '$' in scraped text is a dollar, not mathtext
    "text.usetex": False,
    "axes.edgecolor": "#cccccc",
    "axes.labelcolor": "#555555",
    "axes.titleweight": "bold",
    "xtick.color": "#666666",
    "ytick.color": "#333333",
    "savefig.facecolor": "white",
}


# --------------------------------------------------------------------------------------------
# shared helpers


def cluster_colors(k: int) -> list[str]:
    """``k`` distinct hex colours, one per cluster id (tab10 / tab20 / tab20b+c / turbo)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if k <= 0:
        return []
    if k <= 10:
        cols = [colormaps["tab10"](i) for i in range(k)]
    elif k <= 60:
        tab20 = colormaps["tab20"]
        base = [tab20(i) for i in range(0, 20, 2)] + [tab20(i) for i in range(1, 20, 2)]
        for name in ("tab20b", "tab20c"):
            cmap = colormaps[name]
            base += [cmap(i) for i in range(0, 20, 4)] + [cmap(i) for i in range(2, 20, 4)]
            base += [cmap(i) for i in range(1, 20, 4)] + [cmap(i) for i in range(3, 20, 4)]
        cols = base[:k]
    else:  # many clusters: spread over turbo, neighbours in id far apart in hue
        turbo = colormaps["turbo"]
        golden = (math.sqrt(5) - 1) / 2
        cols = [turbo(0.05 + 0.9 * ((i * golden) % 1.0)) for i in range(k)]
    return [to_hex(c) for c in cols]


def short_name(name: str, max_len: int = 30) -> str:
    """A cluster name cut to ``max_len`` characters, at a term boundary (" · ") when possible."""
    name = " ".join(str(name).split())
    if len(name) <= max_len:
        return name
    out = ""
    for term in name.split(" · "):
        candidate = f"{out} · {term}" if out else term
        if len(candidate) > max_len:
            break
        out = candidate
    if not out:
        out = name[: max_len - 1].rstrip() + "…"
    return out


def _cluster_name(names: Sequence[str], k: int) -> str:
    if k < 0:
        return "unassigned"
    if 0 <= k < len(names) and str(names[k]).strip():
        return str(names[k])
    return f"cluster {k}"


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _mpl_style():
    """Temporary matplotlib style; silences missing-glyph warnings (emoji in hashtags)."""
    import matplotlib

    with matplotlib.rc_context(_STYLE), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph .* missing.*")
        warnings.filterwarnings("ignore", message=r".*missing from (current )?font.*")
        yield


def _new_figure(width_in: float, height_in: float, dpi: int = 100):
    """A Figure on its own Agg canvas (no pyplot, no global figure manager)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, dpi: int) -> Path:
    try:
        fig.savefig(path, dpi=dpi, format="png")
    finally:
        fig.clear()
    return path


# --------------------------------------------------------------------------------------------
# 2-D map


def map_2d(
    latent: np.ndarray, seed: int = 0, method: str = "auto", tsne_max: int = TSNE_MAX
) -> tuple[np.ndarray, str]:
    """2-D coordinates of ``latent`` [N, d] for the map; returns ``(coords [N, 2], method_used)``.

    ``method="auto"`` uses UMAP when ``umap`` (umap-learn) is importable, else t-SNE (scikit-learn,
    PCA-initialised, seeded) for N ≤ ``tsne_max``, else PCA. ``"umap"``, ``"tsne"`` or ``"pca"``
    force one (``"umap"`` raises ImportError when umap-learn is missing). With fewer than 5
    posts, or when a method yields non-finite output, PCA is used and ``method_used`` says so.
    Non-finite latents are replaced by 0 with a warning. ``coords`` is float32.
    """
    if method not in METHODS:
        raise ValueError(f"map_2d: method must be one of {METHODS}, got {method!r}")
    x = np.asarray(latent, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"map_2d: latent must be [N, d], got shape {x.shape}")
    if not np.isfinite(x).all():
        warnings.warn("map_2d: non-finite latent values replaced by 0", stacklevel=2)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    n = x.shape[0]
    if n < 5 or method == "pca" or float(np.ptp(x, axis=0).max(initial=0.0)) == 0.0:
        return _pca(x, seed), "pca"

    if method in ("auto", "umap"):
        try:
            import umap  # noqa: F401  (lazy: its first import compiles with numba)
        except Exception as exc:  # ImportError, or a broken numba install
            if method == "umap":
                raise ImportError(
                    "map_2d(method='umap') needs umap-learn (pip install umap-learn); "
                    "use method='auto' to fall back to t-SNE/PCA"
                ) from exc
        else:
            coords = _umap(x, seed)
            if np.isfinite(coords).all():
                return coords, "umap"
            return _pca(x, seed), "pca"
        method = "tsne" if n <= tsne_max else "pca"
    if method == "tsne":
        coords = _tsne(x, seed)
        if np.isfinite(coords).all():
            return coords, "tsne"
    return _pca(x, seed), "pca"


def _pca(x: np.ndarray, seed: int) -> np.ndarray:
    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2 or d == 0:
        return out
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    if not np.any(centred):
        return out
    from sklearn.decomposition import PCA

    m = min(2, n, d)
    out[:, :m] = PCA(n_components=m, random_state=seed).fit_transform(centred)
    return out


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = x.shape[0]
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tsne.fit_transform(x).astype(np.float32)


def _umap(x: np.ndarray, seed: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(15, x.shape[0] - 1), min_dist=0.1, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def plot_map(
    coords: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    names: Sequence[str],
    path: str | Path,
    title: str = "Content clusters",
    method_used: str = "",
    *,
    highlight: Iterable[int] | None = None,
    seed: int = 0,
    dpi: int = 100,
) -> Path:
    """Scatter of ``coords`` [N, 2] coloured by cluster ``labels`` [N]; PNG of 900×700 pixels.

    ``names[k]`` names cluster k (shortened in the legend; clusters beyond ``names`` are called
    "cluster k", negative labels "unassigned"). Each cluster's id is written at its median point.
    The legend lists the largest :data:`LEGEND_MAX` clusters with their sizes. ``highlight``
    (e.g. the medoid post indices) are circled. Points are drawn in a seeded random order so no
    cluster hides another.
    """
    path = _prepare(path)
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(lab) != len(xy):
        raise ValueError(f"plot_map: {len(xy)} coordinates but {len(lab)} labels")
    n = len(xy)
    present = sorted(int(k) for k in np.unique(lab)) if n else []
    k_total = max(len(names), (max(present) + 1) if present else 0)
    colors = cluster_colors(k_total)
    color_of = {k: (colors[k] if k >= 0 else NOISE_COLOR) for k in present}
    counts = {k: int((lab == k).sum()) for k in present}

    with _mpl_style():
        from matplotlib.lines import Line2D
        from matplotlib.patheffects import withStroke

        fig = _new_figure(9, 7, dpi)
        ax = fig.add_axes((0.03, 0.05, 0.60, 0.82))
        fig.text(0.03, 0.955, title, fontsize=15, fontweight="bold", va="center", color="#222")
        label = METHOD_LABELS.get(method_used, method_used or "2-D map")
        fig.text(
            0.03, 0.915,
            f"{n:,} posts · {len([k for k in present if k >= 0])} clusters · {label}",
            fontsize=10, color="#777777", va="center",
        )
        if n == 0:
            ax.text(0.5, 0.5, "no posts", ha="center", va="center", color="#999999",
                    fontsize=14, transform=ax.transAxes)
        else:
            order = np.random.default_rng(seed).permutation(n)
            size = float(np.clip(40.0 * math.sqrt(300.0 / n), 2.0, 40.0))
            alpha = float(np.clip(0.9 - 0.12 * math.log10(max(n, 1) / 300.0), 0.35, 0.9))
            point_colors = np.array([color_of[int(k)] for k in lab[order]])
            ax.scatter(xy[order, 0], xy[order, 1], c=point_colors, s=size, alpha=alpha,
                       linewidths=0, rasterized=True)
            if highlight is not None:
                idx = np.array([i for i in highlight if 0 <= int(i) < n], dtype=np.int64)
                if len(idx):
                    ax.scatter(xy[idx, 0], xy[idx, 1], s=max(size * 3, 40), facecolors="none",
                               edgecolors="#111111", linewidths=1.1)
            stroke = [withStroke(linewidth=3, foreground="white")]
            for k in present:
                if k < 0:
                    continue
                centre = np.median(xy[lab == k], axis=0)
                ax.text(centre[0], centre[1], str(k), fontsize=9, fontweight="bold",
                        ha="center", va="center", color="#111111", path_effects=stroke)
            ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{label} 1" if method_used else "")
        ax.set_ylabel(f"{label} 2" if method_used else "")

        shown = sorted(present, key=lambda k: -counts[k])[:LEGEND_MAX]
        shown.sort(key=lambda k: (k < 0, k))
        if shown:
            many = len(shown) > 20
            max_len = 24 if many else 30
            handles = [
                Line2D([], [], marker="o", linestyle="", markersize=7, color=color_of[k],
                       label=(f"{k}  " if k >= 0 else "")
                       + f"{short_name(_cluster_name(names, k), max_len)}  ({counts[k]:,})")
                for k in shown
            ]
            if highlight is not None:
                handles.append(Line2D([], [], marker="o", linestyle="", markersize=8,
                                      markerfacecolor="none", markeredgecolor="#111111",
                                      label="medoid"))
            hidden = len(present) - len(shown)
            legend = fig.legend(
                handles=handles, loc="upper left", bbox_to_anchor=(0.655, 0.87),
                frameon=False, fontsize=7.5 if many else 9, ncol=1,
                handletextpad=0.3, labelspacing=0.35 if many else 0.55, borderaxespad=0,
                title=f"clusters (+{hidden} smaller not listed)" if hidden else "clusters",
                title_fontsize=9, alignment="left",
            )
            legend.get_title().set_color("#555555")
        return _save(fig, path, dpi)


# --------------------------------------------------------------------------------------------
# contact sheets


@functools.lru_cache(maxsize=16)
def _font(size: int, bold: bool = False):
    """DejaVu Sans (shipped with matplotlib) at ``size`` px; Pillow's default font otherwise."""
    try:
        import matplotlib

        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name),
                                  size)
    except Exception:
        try:
            return ImageFont.load_default(size=size)
        except Exception:
            return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    text = " ".join(str(text).split())
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _hex_rgb(color: str) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return int(r * 255), int(g * 255), int(b * 255)


def _broken_tile(thumb: int, reason: str) -> Image.Image:
    tile = Image.new("RGB", (thumb, thumb), (208, 208, 208))
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, thumb - 1, thumb - 1), outline=(176, 176, 176))
    font = _font(max(9, thumb // 9), bold=True)
    small = _font(max(8, thumb // 11))
    kind = reason.split(":")[0].strip() if reason else ""
    lines = [("unreadable", font, (90, 90, 90))]
    if kind:
        lines.append((_fit_text(draw, kind, small, thumb - 6), small, (120, 120, 120)))
    heights = [f.getbbox("Ag")[3] + 3 for _, f, _ in lines]
    y = (thumb - sum(heights)) / 2
    for (text, f, fill), h in zip(lines, heights):
        text = _fit_text(draw, text, f, thumb - 6)
        draw.text(((thumb - draw.textlength(text, font=f)) / 2, y), text, font=f, fill=fill)
        y += h
    return tile


def _load_thumb(path: Any, thumb: int) -> Image.Image | ImageError:
    """``load_image(path, size=thumb)`` that also turns unexpected exceptions into errors."""
    try:
        return load_image(str(path), size=thumb)
    except Exception as exc:  # never crash a report on one picture
        return ImageError(str(path), f"unreadable: {type(exc).__name__}: {exc}")


def cluster_contact_sheet(
    image_paths: Sequence[str | Path],
    path: str | Path,
    title: str,
    thumb: int = 96,
    cols: int = 6,
    *,
    captions: Sequence[str] | None = None,
    color: str | None = None,
) -> Path:
    """A PNG grid of thumbnails (e.g. a cluster's medoids) under a title.

    Each image is decoded with :func:`~mmembed.data.images.load_image` (square, ``thumb`` px); a
    file that cannot be read becomes a grey tile labelled "unreadable" with the reason's kind —
    this never raises for a bad image. ``captions`` (one per image) are written under the tiles;
    ``color`` (the cluster's colour) draws an accent stripe under the title.
    """
    path = _prepare(path)
    thumb = max(16, int(thumb))
    cols = max(1, int(cols))
    items = list(image_paths)
    n = len(items)
    ncols = min(cols, max(n, 1))
    nrows = max(1, math.ceil(n / ncols))
    pad, gap = 12, 6
    title_font = _font(17, bold=True)
    info_font = _font(11)
    cap_font = _font(max(9, min(11, thumb // 9)))
    cap_h = (cap_font.getbbox("Ag")[3] + 4) if captions else 0
    header_h = 52
    width = max(2 * pad + ncols * thumb + (ncols - 1) * gap, 380)
    height = header_h + pad + nrows * (thumb + cap_h) + (nrows - 1) * gap + pad

    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 9), _fit_text(draw, title, title_font, width - 2 * pad), font=title_font,
              fill=(34, 34, 34))
    unreadable = 0
    tiles: list[Image.Image] = []
    for item in items:
        img = _load_thumb(item, thumb)
        if isinstance(img, ImageError):
            unreadable += 1
            img = _broken_tile(thumb, img.reason)
        tiles.append(img)
    info = f"{n} image{'s' if n != 1 else ''}"
    if unreadable:
        info += f" · {unreadable} unreadable"
    draw.text((pad, 31), info, font=info_font, fill=(128, 128, 128))
    if color:
        try:
            draw.rectangle((0, header_h - 4, width, header_h - 1), fill=_hex_rgb(color))
        except ValueError:
            pass
    else:
        draw.line((0, header_h - 1, width, header_h - 1), fill=(225, 225, 225))

    if n == 0:
        text = "no images"
        draw.text(((width - draw.textlength(text, font=info_font)) / 2,
                   header_h + pad + thumb / 2 - 6), text, font=info_font, fill=(150, 150, 150))
    left = (width - (ncols * thumb + (ncols - 1) * gap)) // 2
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        x = left + c * (thumb + gap)
        y = header_h + pad + r * (thumb + cap_h + gap)
        if tile.size != (thumb, thumb):
            tile = tile.resize((thumb, thumb))
        sheet.paste(tile.convert("RGB"), (x, y))
        if captions and i < len(captions) and captions[i]:
            text = _fit_text(draw, captions[i], cap_font, thumb)
            draw.text((x, y + thumb + 2), text, font=cap_font, fill=(100, 100, 100))
    sheet.save(path, format="PNG", optimize=True)
    return path


# --------------------------------------------------------------------------------------------
# top terms


def top_terms_chart(
    terms: Sequence[tuple[str, float]] | Mapping[str, float],
    path: str | Path,
    title: str,
    *,
    color: str | None = None,
    max_terms: int = 15,
    dpi: int = 100,
) -> Path:
    """Horizontal bar chart of a cluster's top terms and their c-TF-IDF weights (largest on top).

    ``terms`` is ``[(term, weight), ...]`` (or a mapping); at most ``max_terms`` are drawn. PNG
    700 pixels wide, its height growing with the number of terms.
    """
    path = _prepare(path)
    pairs = list(terms.items()) if isinstance(terms, Mapping) else list(terms)
    clean: list[tuple[str, float]] = []
    for pair in pairs:
        try:
            term, weight = pair[0], float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(weight):
            clean.append((str(term), weight))
    clean.sort(key=lambda tw: -tw[1])
    clean = clean[:max_terms]
    height = 1.3 + 0.32 * max(len(clean), 3)
    with _mpl_style():
        fig = _new_figure(7, height, dpi)
        fig.subplots_adjust(left=0.28, right=0.93, top=1 - 0.62 / height, bottom=0.55 / height)
        ax = fig.add_subplot()
        fig.text(0.03, 1 - 0.32 / height, title, fontsize=13, fontweight="bold", va="center",
                 color="#222222")
        if not clean:
            ax.text(0.5, 0.5, "no terms", ha="center", va="center", color="#999999",
                    fontsize=12, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            labels = [short_name(t, 32) for t, _ in clean][::-1]
            values = np.array([w for _, w in clean][::-1])
            y = np.arange(len(clean))
            ax.barh(y, values, color=color or "#4c78a8", height=0.68, zorder=2)
            ax.set_yticks(y, labels)
            ax.tick_params(axis="y", length=0, labelsize=10)
            ax.tick_params(axis="x", labelsize=8)
            top = float(values.max()) if values.max() > 0 else 1.0
            ax.set_xlim(min(0.0, float(values.min()) * 1.1), top * 1.14)
            ax.set_ylim(-0.6, len(clean) - 0.4)
            for yi, v in zip(y, values):
                ax.text(v + top * 0.01, yi, f"{v:.3g}", va="center", fontsize=8,
                        color="#555555")
            ax.grid(axis="x", color="#eeeeee", zorder=0)
            ax.set_xlabel("c-TF-IDF weight", fontsize=9)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        return _save(fig, path, dpi)


# --------------------------------------------------------------------------------------------
# community cards (HTML + PNG)

_CARDS_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  :root { --ink: #1f2328; --muted: #6a737d; --line: #e4e7eb; --bg: #f6f7f9; }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 24px 32px 48px; background: var(--bg); color: var(--ink);
         font: 14px/1.4 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  h1 { margin: 0 0 4px; font-size: 24px; }
  .sub { color: var(--muted); margin: 0 0 16px; }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 0 0 20px; font-size: 12px;
            color: #444; }
  .legend span { white-space: nowrap; }
  .chip { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
          margin-right: 5px; vertical-align: -1px; }
  h2.kind-title { font-size: 15px; text-transform: uppercase; letter-spacing: .06em;
                  color: var(--muted); margin: 28px 0 10px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr));
           gap: 16px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 10px;
          padding: 14px 16px 12px; box-shadow: 0 1px 2px rgba(0,0,0,.04); min-width: 0; }
  .card header { display: flex; align-items: baseline; gap: 8px; margin-bottom: 8px; }
  .card h3 { margin: 0; font-size: 16px; overflow: hidden; text-overflow: ellipsis;
             white-space: nowrap; flex: 1; min-width: 0; }
  .kind { font-size: 11px; font-weight: 600; padding: 1px 8px; border-radius: 10px;
          background: #eef0f3; color: #444; text-transform: uppercase; letter-spacing: .04em; }
  .kind-account { background: #e3efff; color: #1a56b0; }
  .kind-source { background: #e6f6ea; color: #1f7a3a; }
  .kind-group { background: #f4e9ff; color: #6b2fb3; }
  .kind-cluster { background: #fff1dc; color: #9a5b00; }
  .size { color: var(--muted); font-size: 12px; white-space: nowrap; }
  .strip { display: flex; height: 8px; border-radius: 4px; overflow: hidden;
           background: #eee; margin: 2px 0 10px; }
  .strip span { display: block; height: 100%; }
  .bar { display: grid; grid-template-columns: 44% 1fr 52px; align-items: center; gap: 8px;
         font-size: 12px; margin: 3px 0; }
  .bar .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bar .track { background: #f0f1f3; border-radius: 3px; height: 10px; overflow: hidden; }
  .bar .fill { display: block; height: 100%; border-radius: 3px; }
  .bar .pct { text-align: right; color: #444; font-variant-numeric: tabular-nums; }
  .bar.other .label, .bar.other .pct { color: var(--muted); }
  .section { font-size: 11px; color: var(--muted); text-transform: uppercase;
             letter-spacing: .05em; margin: 10px 0 4px; }
  .tags { display: flex; flex-wrap: wrap; gap: 4px; }
  .tag { background: #f2f4f7; border-radius: 4px; padding: 1px 6px; font-size: 12px;
         max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .tag sup { color: var(--muted); font-size: 10px; margin-left: 2px; }
  .thumbs { display: flex; flex-wrap: wrap; gap: 4px; }
  .thumbs img, .thumbs .broken { width: {{ thumb }}px; height: {{ thumb }}px;
         border-radius: 4px; object-fit: cover; display: block; }
  .thumbs .broken { background: #d0d0d0; color: #5a5a5a; font-size: 10px; display: flex;
                    align-items: center; justify-content: center; }
  .none { color: var(--muted); font-size: 12px; font-style: italic; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="sub">{{ n_communities }} communities · {{ n_clusters }} content clusters · profile =
share of each community's posts in each cluster</p>
<div class="legend">
{%- for c in legend %}
  <span title="{{ c.name }}"><i class="chip" style="background: {{ c.color }}"></i>{{ c.index }}
  {{ c.short }}</span>
{%- endfor %}
</div>
{% for group in groups %}
<h2 class="kind-title">{{ group.title }} ({{ group.cards|length }})</h2>
<section class="cards">
{%- for card in group.cards %}
<article class="card">
  <header>
    <h3 title="{{ card.name }}">{{ card.name }}</h3>
    <span class="kind kind-{{ card.kind_class }}">{{ card.kind }}</span>
    <span class="size">{{ card.size }}</span>
  </header>
  <div class="strip">
  {%- for s in card.strip %}<span style="width: {{ s.width }}%; background: {{ s.color }}"
    title="{{ s.name }}: {{ s.pct }}"></span>{% endfor -%}
  </div>
  {%- if card.bars %}
  {%- for b in card.bars %}
  <div class="bar{% if b.other %} other{% endif %}">
    <span class="label" title="{{ b.name }}">{{ b.name }}</span>
    <span class="track"><span class="fill" style="width: {{ b.width }}%; background:
      {{ b.color }}"></span></span>
    <span class="pct">{{ b.pct }}</span>
  </div>
  {%- endfor %}
  {%- else %}
  <div class="none">no profile</div>
  {%- endif %}
  {%- if card.hashtags %}
  <div class="section">top hashtags</div>
  <div class="tags">
  {%- for t in card.hashtags %}<span class="tag" title="#{{ t.tag }}">#{{ t.tag }}
    {%- if t.count is not none %}<sup>{{ t.count }}</sup>{% endif %}</span>{% endfor -%}
  </div>
  {%- endif %}
  {%- if card.mentions %}
  <div class="section">top mentions</div>
  <div class="tags">
  {%- for t in card.mentions %}<span class="tag" title="@{{ t.tag }}">@{{ t.tag }}
    {%- if t.count is not none %}<sup>{{ t.count }}</sup>{% endif %}</span>{% endfor -%}
  </div>
  {%- endif %}
  {%- if card.thumbs %}
  <div class="section">medoid posts</div>
  <div class="thumbs">
  {%- for t in card.thumbs %}
    {%- if t.uri %}<img src="{{ t.uri }}" alt="{{ t.caption }}" title="{{ t.caption }}"
      width="{{ thumb }}" height="{{ thumb }}">
    {%- else %}<div class="broken" title="{{ t.caption }}">unreadable</div>{% endif %}
  {%- endfor %}
  </div>
  {%- endif %}
</article>
{%- endfor %}
</section>
{% endfor %}
</body>
</html>
"""


def _thumb_uri(path: Any, thumb: int, cache: dict[str, str | None]) -> str | None:
    """A small JPEG of ``path`` as a ``data:`` URI (None when the image cannot be read)."""
    key = f"{path}|{thumb}"
    if key not in cache:
        img = _load_thumb(path, thumb)
        if isinstance(img, ImageError):
            cache[key] = None
        else:
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="JPEG", quality=80, optimize=True)
            cache[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return cache[key]


def _ranked_items(values: Any, limit: int) -> list[dict[str, Any]]:
    """``[[tag, count], ...]`` (or tags, or ``{"tag": .., "count": ..}``) → ``[{tag, count}]``."""
    out: list[dict[str, Any]] = []
    for item in list(values or [])[:limit]:
        count: Any = None
        if isinstance(item, Mapping):
            tag = item.get("tag", item.get("name", ""))
            count = item.get("count")
        elif isinstance(item, (list, tuple)) and item:
            tag = item[0]
            count = item[1] if len(item) > 1 else None
        else:
            tag = item
        tag = str(tag).lstrip("#@")
        if not tag:
            continue
        if isinstance(count, (int, float, np.integer, np.floating)) and math.isfinite(count):
            count = f"{int(count):,}" if float(count).is_integer() else f"{float(count):.2g}"
        elif count is not None:
            count = str(count)
        out.append({"tag": tag, "count": count})
    return out


def _profile(value: Any, k: int) -> np.ndarray:
    try:
        arr = np.asarray(value if value is not None else [], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    arr = np.where(np.isfinite(arr) & (arr > 0), arr, 0.0)
    out = np.zeros(max(k, len(arr)))
    out[: len(arr)] = arr
    total = out.sum()
    return out / total if total > 0 else out


def _pct(share: float) -> str:
    if share <= 0:
        return "0%"
    if share < 0.001:
        return "<0.1%"
    return f"{100 * share:.1f}%" if share < 0.995 else f"{100 * share:.0f}%"


def _format_size(value: Any) -> str:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else ""
    return f"{n:,} post{'s' if n != 1 else ''}"


def _medoid_thumbs(
    info: Mapping[str, Any], posts: Sequence[Any] | None, limit: int
) -> list[tuple[str, str]]:
    """(image path, caption) of a community's medoids: post indices, post ids or image paths."""
    by_id = {str(getattr(p, "post_id", "")): p for p in posts} if posts else {}
    out: list[tuple[str, str]] = []
    for m in list(info.get("medoids") or [])[:limit]:
        post = None
        if isinstance(m, (int, np.integer)) and not isinstance(m, bool):
            if posts is not None and 0 <= int(m) < len(posts):
                post = posts[int(m)]
            else:
                continue
        elif str(m) in by_id:
            post = by_id[str(m)]
        if post is not None:
            out.append((str(post.image_path), str(getattr(post, "caption", "") or "")))
        else:
            out.append((str(m), Path(str(m)).name))
    return out


def community_cards_html(
    communities: Mapping[str, Mapping[str, Any]],
    cluster_names: Sequence[str],
    path: str | Path,
    thumbs: Mapping[str, Sequence[str]] | None = None,
    *,
    posts: Sequence[Any] | None = None,
    title: str = "Communities",
    thumb: int = 72,
    max_thumbs: int = 6,
    max_clusters: int = 6,
    max_tags: int = 12,
) -> Path:
    """A self-contained HTML page with one card per community; returns ``path``.

    Each card shows the community's name, kind, size, a colour strip of its whole profile, bars
    for its ``max_clusters`` largest clusters (cluster name and percentage; the rest summed as
    "other clusters"), its top hashtags (and top mentions, if present) and medoid thumbnails.
    Cards are grouped by kind (accounts, hashtag sources, groups, clusters), largest first.

    Thumbnails are ``thumbs[name]`` (image paths) when given, else the community's ``medoids``:
    image paths, or post indices / post ids resolved through ``posts``. They are embedded as
    small JPEG ``data:`` URIs (an unreadable file becomes a grey "unreadable" box), so the page
    needs no other file. All text is escaped (jinja2 autoescape); captions become alt/title text.
    """
    from jinja2 import Environment, StrictUndefined

    path = _prepare(path)
    k = len(cluster_names)
    max_profile = max((len(c.get("profile") or []) for c in communities.values()), default=0)
    colors = cluster_colors(max(k, max_profile))
    caption_of = {str(p.image_path): str(p.caption or "") for p in posts} if posts else {}
    cache: dict[str, str | None] = {}

    cards = []
    for name, info in communities.items():
        info = info if isinstance(info, Mapping) else {}
        kind = str(info.get("kind") or "")
        profile = _profile(info.get("profile"), k)
        order = [int(i) for i in np.argsort(-profile, kind="stable") if profile[i] > 0]
        bars = [
            {"name": _cluster_name(cluster_names, i), "pct": _pct(profile[i]),
             "width": f"{100 * profile[i]:.1f}", "color": colors[i], "other": False}
            for i in order[:max_clusters]
        ]
        rest = float(profile[order[max_clusters:]].sum()) if len(order) > max_clusters else 0.0
        if rest > 0:
            n_rest = len(order) - max_clusters
            bars.append({"name": f"{n_rest} other cluster{'s' if n_rest != 1 else ''}",
                         "pct": _pct(rest), "width": f"{100 * rest:.1f}", "color": "#b0b4ba",
                         "other": True})
        strip = [{"name": _cluster_name(cluster_names, i), "pct": _pct(profile[i]),
                  "width": f"{100 * profile[i]:.3f}", "color": colors[i]}
                 for i in order if profile[i] >= 0.002]
        if thumbs is not None and name in thumbs:
            pairs = [(str(p), caption_of.get(str(p), Path(str(p)).name))
                     for p in list(thumbs[name])[:max_thumbs]]
        else:
            pairs = _medoid_thumbs(info, posts, max_thumbs)
        card_thumbs = [{"uri": _thumb_uri(p, thumb, cache), "caption": " ".join(cap.split())[:300]}
                       for p, cap in pairs]
        try:
            size_key = -float(info.get("size") or 0)
        except (TypeError, ValueError):
            size_key = 0.0
        cards.append({
            "name": str(name),
            "kind": kind or "community",
            "kind_class": re.sub(r"[^a-z]", "", kind.lower()) or "other",
            "size": _format_size(info.get("size")),
            "bars": bars,
            "strip": strip,
            "hashtags": _ranked_items(info.get("top_hashtags"), max_tags),
            "mentions": _ranked_items(info.get("top_mentions"), max_tags // 2),
            "thumbs": card_thumbs,
            "_sort": (_KIND_ORDER.get(kind, len(_KIND_ORDER)), size_key, str(name)),
        })
    cards.sort(key=lambda c: c["_sort"])
    groups: list[dict[str, Any]] = []
    for card in cards:
        kind = card["kind"]
        if not groups or groups[-1]["kind"] != kind:
            groups.append({"kind": kind, "title": _KIND_TITLES.get(kind, kind.title()),
                           "cards": []})
        groups[-1]["cards"].append(card)
    legend = [{"index": i, "name": _cluster_name(cluster_names, i),
               "short": short_name(_cluster_name(cluster_names, i), 28), "color": colors[i]}
              for i in range(k)]

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=False)
    html = env.from_string(_CARDS_TEMPLATE).render(
        title=title, groups=groups, legend=legend, thumb=int(thumb),
        n_communities=len(cards), n_clusters=k,
    )
    path.write_text(html, encoding="utf-8")
    return path


def community_cards_png(
    communities: Mapping[str, Mapping[str, Any]],
    cluster_names: Sequence[str],
    path: str | Path,
    title: str = "Community profiles",
    *,
    max_communities: int = 40,
    dpi: int = 100,
) -> Path:
    """Community profiles as 100 % stacked bars (one row per community, one colour per cluster).

    Rows are grouped by kind and sorted by size; at most ``max_communities`` (the largest) are
    drawn. Segments of 8 % or more are labelled with their cluster id. PNG 900 pixels wide.
    """
    path = _prepare(path)
    k = len(cluster_names)
    items = []
    for name, info in communities.items():
        info = info if isinstance(info, Mapping) else {}
        try:
            size = float(info.get("size") or 0)
        except (TypeError, ValueError):
            size = 0.0
        items.append((str(name), str(info.get("kind") or ""), size,
                      _profile(info.get("profile"), k)))
    items.sort(key=lambda t: -t[2])
    hidden = max(0, len(items) - max_communities)
    items = items[:max_communities]
    items.sort(key=lambda t: (_KIND_ORDER.get(t[1], len(_KIND_ORDER)), -t[2], t[0]))
    width_k = max([k] + [len(t[3]) for t in items])
    colors = cluster_colors(width_k)
    rows = max(len(items), 1)
    legend_rows = math.ceil(min(width_k, 30) / 3)
    height = 1.3 + 0.34 * rows + 0.22 * legend_rows + 0.4
    with _mpl_style():
        from matplotlib.patches import Patch

        fig = _new_figure(9, height, dpi)
        bottom = (0.55 + 0.22 * legend_rows) / height
        fig.subplots_adjust(left=0.3, right=0.97, top=1 - 0.85 / height, bottom=bottom)
        ax = fig.add_subplot()
        fig.text(0.02, 1 - 0.32 / height, title, fontsize=14, fontweight="bold", va="center")
        sub = f"{len(items)} communities · share of posts per content cluster"
        if hidden:
            sub += f" · {hidden} smaller not shown"
        fig.text(0.02, 1 - 0.6 / height, sub, fontsize=9, color="#777777", va="center")
        if not items:
            ax.text(0.5, 0.5, "no communities", ha="center", va="center", color="#999999",
                    transform=ax.transAxes)
        y = np.arange(len(items))[::-1]
        for row, (_, _, _, prof) in zip(y, items):
            left = 0.0
            for i in range(len(prof)):
                share = float(prof[i])
                if share <= 0:
                    continue
                ax.barh(row, share, left=left, color=colors[i], height=0.72,
                        edgecolor="white", linewidth=0.5)
                if share >= 0.08:
                    ax.text(left + share / 2, row, str(i), ha="center", va="center",
                            fontsize=7.5, color="white", fontweight="bold")
                left += share
        labels = []
        for name, kind, size, _ in items:
            label = short_name(name, 26)
            labels.append(f"{label}  [{kind or '?'}, {int(size):,}]")
        ax.set_yticks(y, labels)
        ax.tick_params(axis="y", length=0, labelsize=8.5)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.6, rows - 0.4)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"],
                      fontsize=8)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        shown = list(range(min(width_k, 30)))
        if shown:
            fig.legend(
                handles=[Patch(color=colors[i],
                               label=f"{i}  {short_name(_cluster_name(cluster_names, i), 26)}")
                         for i in shown],
                loc="lower left", bbox_to_anchor=(0.02, 0.01), ncol=3, frameon=False,
                fontsize=8, handlelength=1.0, columnspacing=1.5, borderaxespad=0,
            )
        return _save(fig, path, dpi)


# --------------------------------------------------------------------------------------------
# everything for a bundle, and W&B


def write_pictures(
    out_dir: str | Path,
    *,
    latent: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    cluster_names: Sequence[str],
    top_terms: Sequence[Sequence[tuple[str, float]]] | None = None,
    medoids: Sequence[Sequence[int]] | None = None,
    posts: Sequence[Any] | None = None,
    communities: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    method: str = "auto",
    title: str = "Content clusters",
) -> dict[str, Path]:
    """Write every picture of a bundle into ``out_dir``; returns ``{key: path}``.

    Keys: ``map`` (map.png), ``cluster_03_sheet`` / ``cluster_03_terms`` per cluster (when
    ``medoids`` + ``posts`` / ``top_terms`` are given), ``communities_html`` and
    ``communities_png`` (when ``communities`` is given). Pass the result to
    :func:`log_pictures_to_wandb`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = len(cluster_names)
    colors = cluster_colors(k)
    width = max(2, len(str(max(k - 1, 0))))
    coords, used = map_2d(latent, seed=seed, method=method)
    flat_medoids = [int(i) for m in (medoids or []) for i in m]
    paths: dict[str, Path] = {
        "map": plot_map(coords, labels, cluster_names, out / "map.png", title, used,
                        highlight=flat_medoids or None, seed=seed)
    }
    for c in range(k):
        tag = f"cluster_{c:0{width}d}"
        label = f"Cluster {c} · {short_name(cluster_names[c], 60)}"
        if medoids is not None and posts is not None and c < len(medoids):
            chosen = [posts[int(i)] for i in medoids[c] if 0 <= int(i) < len(posts)]
            paths[f"{tag}_sheet"] = cluster_contact_sheet(
                [p.image_path for p in chosen], out / f"{tag}_medoids.png", label,
                captions=[(p.account and "@" + p.account) or p.post_id for p in chosen],
                color=colors[c],
            )
        if top_terms is not None and c < len(top_terms):
            paths[f"{tag}_terms"] = top_terms_chart(top_terms[c], out / f"{tag}_terms.png",
                                                    label, color=colors[c])
    if communities:
        paths["communities_html"] = community_cards_html(
            communities, cluster_names, out / "communities.html", posts=posts)
        paths["communities_png"] = community_cards_png(
            communities, cluster_names, out / "communities.png")
    return paths


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
_HTML_SUFFIXES = {".html", ".htm"}


def log_pictures_to_wandb(
    run: Any, paths: Mapping[str, str | Path], prefix: str = "bundle"
) -> dict[str, Any]:
    """Log pictures to a W&B run: PNG/JPEG as ``wandb.Image``, HTML as ``wandb.Html``.

    Keys become ``"<prefix>/<key>"`` (``bundle/map``, ...). With ``run=None`` this does nothing.
    A Lightning ``WandbLogger`` may be passed for ``run`` (its ``experiment`` is used). Missing
    files and other file types are skipped with a warning. Returns what was logged, by key.
    """
    if run is None:
        return {}
    experiment = getattr(run, "experiment", None)
    if not callable(getattr(run, "log", None)) and callable(getattr(experiment, "log", None)):
        run = experiment
    import wandb

    payload: dict[str, Any] = {}
    for key, value in paths.items():
        p = Path(value)
        full = key if key.startswith(f"{prefix}/") else f"{prefix}/{key}"
        suffix = p.suffix.lower()
        if not p.is_file():
            warnings.warn(f"log_pictures_to_wandb: {p} does not exist; not logged", stacklevel=2)
        elif suffix in _IMAGE_SUFFIXES:
            payload[full] = wandb.Image(str(p), caption=p.stem)
        elif suffix in _HTML_SUFFIXES:
            payload[full] = wandb.Html(p.read_text(encoding="utf-8"), inject=False)
        else:
            warnings.warn(f"log_pictures_to_wandb: {p} is not a PNG/JPEG/HTML; not logged",
                          stacklevel=2)
    if payload:
        run.log(payload)
    return payload
