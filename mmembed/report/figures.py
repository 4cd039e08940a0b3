"""matplotlib figures for the report's PNGs, without pyplot and without global state.

Each figure lives on its own Agg canvas (:func:`new_figure`), so nothing here changes the
global backend or keeps figures alive; styling is applied with a temporary
:func:`matplotlib.rc_context` (:func:`mpl_style`). Scraped text (names, hashtags, captions) is
drawn with mathtext off, so a ``$`` in a caption is just a dollar sign.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

STYLE = {
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


def output_path(path: str | Path) -> Path:
    """``path`` as a Path, with its parent folder created (every picture writer starts here)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def mpl_style():
    """Temporary matplotlib style; silences missing-glyph warnings (emoji in hashtags)."""
    import matplotlib

    with matplotlib.rc_context(STYLE), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph .* missing.*")
        warnings.filterwarnings("ignore", message=r".*missing from (current )?font.*")
        yield


def new_figure(width_in: float, height_in: float, dpi: int = 100):
    """A Figure on its own Agg canvas (no pyplot, no global figure manager)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path, dpi: int) -> Path:
    """Save ``fig`` as a PNG at ``path`` and free its artists; returns ``path``."""
    try:
        fig.savefig(path, dpi=dpi, format="png")
    finally:
        fig.clear()
    return path
