"""The six scene styles: each topic's palette and its background, decor and subject painters."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mmembed.data.sources.synthetic.details import Colour
from mmembed.data.sources.synthetic.pen import _blotches, _dim, _gradient, _grid, _jagged, _mix

# Each style: palette, background(rng, W, pal, attrs) -> (float image, horizon),
# decor(pen, pal, h, attrs), subject(pen, pal, cx, cy, scale, h, attrs), and the grain amplitude
# of the final image. ``attrs`` are the photo's visible details (see ATTRIBUTES); ``pal["named"]``
# holds the one colour of its colour detail. A decor borrowed from another topic gets
# ``attrs=None`` and draws only its generic elements, never a detail that a caption could name.


def _rock_background(rng, w, pal, attrs):
    h = float(rng.uniform(0.3, 0.5))
    golden = attrs["light"] == "golden hour"
    sky = pal["golden"] if golden else pal["sky"]
    rock = [_mix(c, pal["golden"][0], 0.3) for c in pal["rock"]] if golden else pal["rock"]
    arr = _gradient(w, [(0, sky[0]), (h, sky[1]), (h + 0.004, rock[0]), (1, rock[1])])
    arr = arr + _blotches(rng, w, 24, 5, 5, mono=True) + _blotches(rng, w, 10, 18, 18)
    return arr, h


def _rock_decor(pen, pal, h, attrs):
    for depth in range(2):
        shade = _dim(pen.pick(pal["rock"]), 0.75 + 0.15 * depth)
        ridge = _jagged(pen.rng, -0.05, 1.05, h + 0.08 * depth, 0.02, 0.22)
        pen.polygon(ridge + [(1.05, 1.05), (-0.05, 1.05)], fill=shade)


def _rock_subject(pen, pal, cx, cy, scale, h, attrs):
    r = 0.3 * scale
    angles = np.sort(pen.rng.uniform(0, 2 * math.pi, 9))
    radii = pen.rng.uniform(0.7, 1.1, 9) * r
    wall = [(cx + rr * math.cos(a), cy + 1.2 * rr * math.sin(a)) for a, rr in zip(angles, radii)]
    pen.polygon(wall, fill=_dim(pen.pick(pal["rock"]), 0.7))
    for _ in range(3):  # cracks
        x = cx + pen.u(-0.6, 0.6) * r
        pen.line(
            [(x, cy - 0.6 * r), (x + pen.u(-0.1, 0.1), cy + 0.6 * r)],
            fill=(60, 50, 45),
            width=0.008,
        )
    body, s = pal["named"][0], 1.6 * scale  # the climber's shirt is the colour detail
    hx, hy = cx + pen.u(-0.05, 0.05), cy - 0.1 * scale
    if attrs["rope"] == "roped":
        pen.line([(hx, -0.05), (hx, hy + 0.05 * s)], fill=pen.pick(pal["accent"]), width=0.014)
    else:  # bouldering: a crash pad at the foot of the wall instead of a rope
        pen.rect(
            cx - 0.17 * scale,
            cy + 0.3 * scale,
            cx + 0.17 * scale,
            cy + 0.37 * scale,
            fill=pen.pick(pal["pad"]),
            radius=0.01,
        )
    pen.line([(hx, hy), (hx, hy + 0.1 * s)], fill=body, width=0.035 * s)  # torso
    pen.line(
        [(hx - 0.07 * s, hy - 0.08 * s), (hx, hy + 0.01 * s), (hx + 0.06 * s, hy - 0.06 * s)],
        fill=body,
        width=0.014 * s,
    )  # arms
    pen.line(
        [(hx - 0.06 * s, hy + 0.19 * s), (hx, hy + 0.1 * s), (hx + 0.07 * s, hy + 0.16 * s)],
        fill=(70, 70, 80),
        width=0.015 * s,
    )  # legs
    pen.ellipse(hx, hy - 0.03 * s, 0.025 * s, 0.025 * s, fill=(235, 190, 150))


def _night_background(rng, w, pal, attrs):
    bg = pal["bg"]
    arr = _gradient(w, [(0, bg[0]), (1, bg[1])])
    arr = arr + _blotches(rng, w, 14, 4, 4)
    return arr, float(rng.uniform(0.6, 0.8))


def _night_decor(pen, pal, h, attrs):
    for _ in range(int(pen.rng.integers(25, 60))):
        r = pen.u(0.008, 0.04)
        colour = pen.pick(pal["lights"])
        if pen.rng.random() < 0.3:
            pen.ellipse(pen.u(0, 1), pen.u(0, 1), r, r, outline=colour, width=0.006)
        else:
            pen.ellipse(pen.u(0, 1), pen.u(0, 1), r, r, fill=colour)
    if attrs is not None and attrs["lasers"] == "yes":  # a fan of beams from one projector
        x0, colour = pen.u(0.15, 0.85), pen.pick(pal["lights"])
        for _ in range(int(pen.rng.integers(4, 8))):
            pen.line([(x0, -0.02), (pen.u(-0.3, 1.3), 1.02)], fill=colour, width=0.008)


def _night_glass(pen, pal, cx, cy, scale):
    rim, top, tip = cy - 0.12 * scale, 0.13 * scale, cy + 0.04 * scale
    glass = (225, 240, 250)
    pen.polygon([(cx - top, rim), (cx + top, rim), (cx, tip)], fill=pal["named"][0], outline=glass)
    pen.line([(cx, tip), (cx, cy + 0.19 * scale)], fill=glass, width=0.012)
    pen.ellipse(cx, cy + 0.19 * scale, 0.07 * scale, 0.015 * scale, fill=glass)
    pen.ellipse(cx + 0.1 * scale, rim, 0.03 * scale, 0.03 * scale, fill=(120, 200, 60))


def _night_subject(pen, pal, cx, cy, scale, h, attrs):
    glow = pen.pick(pal["lights"])
    pen.ellipse(cx, cy, 0.22 * scale, 0.22 * scale, fill=_dim(glow, 0.55))
    pen.ellipse(cx, cy, 0.16 * scale, 0.16 * scale, fill=_dim(glow, 0.8))
    if attrs["count"] == "one":
        _night_glass(pen, pal, cx, cy, scale)
        return
    n = int(pen.rng.integers(2, 4))
    for k in range(n):
        _night_glass(
            pen, pal, cx + (k - (n - 1) / 2) * 0.24 * scale, cy + pen.u(-0.03, 0.03), 0.85 * scale
        )


def _food_background(rng, w, pal, attrs):
    rows, cols = _grid(w)
    if attrs["table"] == "marble":
        marble = pal["marble"]
        slope, phase = float(rng.uniform(-1.5, 1.5)), float(rng.uniform(0, 1))
        wave = np.abs(
            np.sin(
                math.pi
                * (2.5 * rows + slope * cols + 0.15 * np.sin(2 * math.pi * 1.5 * cols) + phase)
            )
        )
        veins = np.exp(-wave / 0.05)  # thin grey veins where the wave crosses zero
        arr = _gradient(w, [(0, marble[0]), (1, marble[1])])
        return arr - 45 * veins[..., None] + _blotches(rng, w, 12, 6, 6, mono=True), 0.0
    table = pal["table"]
    arr = _gradient(w, [(0, table[0]), (1, table[1])])
    freq, wobble = float(rng.uniform(6, 14)), float(rng.uniform(0.01, 0.04))
    grain = np.sin(2 * math.pi * (rows * freq + wobble * np.sin(2 * math.pi * 2 * cols)))
    arr = arr + 14 * grain[..., None] + _blotches(rng, w, 8, 6, 6)
    return arr, 0.0


def _food_decor(pen, pal, h, attrs):
    metal = (200, 200, 205)
    for side in pen.rng.permutation([0.07, 0.93])[: int(pen.rng.integers(1, 3))]:
        x, y0 = float(side), pen.u(0.2, 0.4)
        pen.rect(x - 0.015, y0, x + 0.015, y0 + 0.45, fill=metal, radius=0.01)
    if attrs is None:
        plates = int(pen.rng.integers(0, 2))
    else:
        plates = 0 if attrs["count"] == "one" else int(pen.rng.integers(2, 4))
    corners = pen.rng.permutation(4)[:plates]
    for corner in corners:
        r = pen.u(0.09, 0.13)
        x, y = (0.12, 0.88)[corner % 2], (0.12, 0.88)[corner // 2]
        pen.ellipse(x, y, r, r, fill=pen.pick(pal["plate"]))
        pen.ellipse(x, y, 0.7 * r, 0.7 * r, fill=pen.pick(pal["food"]))


def _food_subject(pen, pal, cx, cy, scale, h, attrs):
    r = 0.32 * scale
    plate = pal["named"][0]  # the plate's glaze is the colour detail
    pen.ellipse(cx + 0.02, cy + 0.025, r, 0.93 * r, fill=(70, 50, 40))  # shadow
    pen.ellipse(cx, cy, r, 0.93 * r, fill=plate, outline=_dim(plate, 0.85), width=0.01)
    pen.ellipse(cx, cy, 0.72 * r, 0.68 * r, outline=_dim(plate, 0.92), width=0.006)
    for _ in range(int(pen.rng.integers(5, 11))):
        a, d = pen.u(0, 2 * math.pi), pen.u(0, 0.4) * r
        size = pen.u(0.08, 0.18) * r
        pen.ellipse(
            cx + d * math.cos(a),
            cy + d * math.sin(a),
            size,
            size * pen.u(0.6, 1.0),
            fill=pen.pick(pal["food"]),
        )
    for _ in range(int(pen.rng.integers(3, 8))):
        a, d = pen.u(0, 2 * math.pi), pen.u(0, 0.5) * r
        pen.ellipse(cx + d * math.cos(a), cy + d * math.sin(a), 0.02, 0.02, fill=(60, 150, 50))


def _cosmetics_background(rng, w, pal, attrs):
    bg = pal["bg"]
    h = float(rng.uniform(0.65, 0.82))
    surface = _dim(bg[1], 0.9)
    arr = _gradient(w, [(0, bg[0]), (h, bg[1]), (h + 0.004, surface), (1, surface)])
    arr = arr + _blotches(rng, w, 5, 3, 3)
    return arr, h


def _cosmetics_flower(pen, x, y, r, petal):
    for k in range(5):
        a = 2 * math.pi * k / 5
        pen.ellipse(
            x + 0.9 * r * math.cos(a), y + 0.9 * r * math.sin(a), 0.6 * r, 0.6 * r, fill=petal
        )
    pen.ellipse(x, y, 0.45 * r, 0.45 * r, fill=(245, 200, 60))


def _cosmetics_decor(pen, pal, h, attrs):
    for _ in range(int(pen.rng.integers(1, 4))):
        x, r = pen.u(0.05, 0.95), pen.u(0.04, 0.07)
        pen.ellipse(x, h + 0.05, r, 0.5 * r, fill=pen.pick(pal["cap"]))
        pen.ellipse(x, h + 0.05, 0.7 * r, 0.35 * r, fill=pen.pick(pal["product"]))
    for _ in range(int(pen.rng.integers(3, 9))):
        pen.ellipse(pen.u(0, 1), pen.u(0, h), 0.006, 0.006, fill=(255, 255, 250))
    if attrs is not None and attrs["flowers"] == "yes":  # a spray of flowers in the corners
        for _ in range(int(pen.rng.integers(2, 4))):
            x = pen.u(0.02, 0.22) if pen.rng.random() < 0.5 else pen.u(0.78, 0.98)
            _cosmetics_flower(pen, x, pen.u(0.05, h), pen.u(0.04, 0.06), pen.pick(pal["petal"]))


def _cosmetics_subject(pen, pal, cx, cy, scale, h, attrs):
    one = attrs["count"] == "one"
    n = 1 if one else int(pen.rng.integers(3, 6))
    width = (0.15 if one else 0.09) * scale
    base = cy + 0.22 * scale
    for i in range(n):
        x = cx + (i - (n - 1) / 2) * width * 1.3
        top = base - pen.u(0.4, 0.5) * scale if one else base - pen.u(0.28, 0.48) * scale
        cap = top + (base - top) * pen.u(0.25, 0.4)  # the cap sits on top, the shade below
        pen.rect(x - width / 2, cap, x + width / 2, base, fill=pal["named"][0], radius=0.02 * scale)
        pen.rect(
            x - 0.35 * width,
            top,
            x + 0.35 * width,
            cap,
            fill=pen.pick(pal["cap"]),
            radius=0.01 * scale,
        )


def _country_background(rng, w, pal, attrs):
    h = float(rng.uniform(0.55, 0.72))
    light = attrs["light"]
    sky, ground = pal[_COUNTRY_SKY[light]], pal["ground"]
    if light == "night":
        ground = [_dim(c, 0.45) for c in ground]
    elif light == "golden hour":
        ground = [_mix(c, pal["golden"][1], 0.25) for c in ground]
    arr = _gradient(w, [(0, sky[0]), (h, sky[1]), (h + 0.004, ground[0]), (1, ground[1])])
    rows, _ = _grid(w)
    arr = arr + _blotches(rng, w, 18, 5, 40) * (rows > h)[..., None] + _blotches(rng, w, 6, 4, 4)
    return arr, h


_COUNTRY_SKY = {"day": "sky", "golden hour": "golden", "night": "night"}


def _country_decor(pen, pal, h, attrs):
    light = "day" if attrs is None else attrs["light"]
    tree_shade = 0.5 if light == "night" else 1.0
    if light == "night":  # moon and stars
        for _ in range(int(pen.rng.integers(6, 14))):
            pen.ellipse(pen.u(0, 1), pen.u(0, 0.8 * h), 0.005, 0.005, fill=(240, 240, 220))
        r = pen.u(0.05, 0.07)
        pen.ellipse(pen.u(0.1, 0.9), pen.u(0.08, 0.25), r, r, fill=(240, 238, 215))
    elif light == "golden hour":  # a low sun just above the horizon
        r = pen.u(0.06, 0.09)
        pen.ellipse(pen.u(0.1, 0.9), h - pen.u(0.03, 0.08), r, r, fill=(255, 175, 80))
    elif pen.rng.random() < 0.5:
        r = pen.u(0.05, 0.08)
        pen.ellipse(pen.u(0.1, 0.9), pen.u(0.08, 0.25), r, r, fill=(250, 225, 110))
    for _ in range(int(pen.rng.integers(1, 4))):
        x, size = pen.u(0.05, 0.95), pen.u(0.07, 0.12)
        pen.rect(x - 0.012, h - size, x + 0.012, h + 0.04, fill=_dim((110, 75, 45), tree_shade))
        pen.ellipse(
            x, h - 1.3 * size, size, size * 1.1, fill=_dim(pen.pick(pal["tree"]), tree_shade)
        )
    fence = pen.rng.random() < 0.4 if attrs is None else attrs["fence"] == "yes"
    if fence:  # a white picket fence along the front
        y, paint = h + 0.1, _dim((238, 235, 225), 0.6 if light == "night" else 1.0)
        pen.line([(0, y), (1, y)], fill=paint, width=0.012)
        for x in np.arange(0.03, 1, 0.07):
            pen.line([(float(x), y - 0.05), (float(x), y + 0.04)], fill=paint, width=0.016)


def _country_subject(pen, pal, cx, cy, scale, h, attrs):
    night = attrs["light"] == "night"
    shade = 0.5 if night else 1.0
    w, hh = 0.2 * scale, 0.14 * scale  # half width, half height of the house body
    wall, roof = _dim(pen.pick(pal["wall"]), shade), _dim(pen.pick(pal["roof"]), shade)
    pen.rect(
        cx + 0.08 * scale,
        cy - hh - 0.2 * scale,
        cx + 0.12 * scale,
        cy - hh,
        fill=_dim((120, 90, 80), shade),
    )  # chimney
    pen.rect(cx - w, cy - hh, cx + w, cy + hh, fill=wall)
    pen.polygon(
        [(cx - 1.15 * w, cy - hh), (cx + 1.15 * w, cy - hh), (cx, cy - hh - 0.17 * scale)],
        fill=roof,
    )
    door = _dim(pal["named"][0], 0.7 if night else 1.0)  # the door is the colour detail
    pen.rect(cx - 0.05 * scale, cy + hh - 0.17 * scale, cx + 0.05 * scale, cy + hh, fill=door)
    glass = pal["window"][1] if night else pen.pick(pal["window"])  # lit windows at night
    for side in (-1, 1):
        x = cx + side * 0.13 * scale
        pen.rect(
            x - 0.04 * scale, cy - 0.07 * scale, x + 0.04 * scale, cy + 0.01 * scale, fill=glass
        )


def _fashion_background(rng, w, pal, attrs):
    h = float(rng.uniform(0.45, 0.6))
    sky, sea, sand = pal["sky"], pal["sea"], pal["sand"]
    if attrs["light"] == "sunset":  # coral sky fading to peach
        stops = [(0, sky[2]), (h, sky[1])]
    else:  # blue sky fading to a pale haze
        stops = [(0, sky[0]), (h, sky[3])]
    arr = _gradient(
        w, stops + [(h + 0.004, sea[0]), (h + 0.12, sea[1]), (h + 0.124, sand[0]), (1, sand[1])]
    )
    rows, cols = _grid(w)
    freq, phase = float(rng.uniform(5, 10)), float(rng.uniform(0, 2 * math.pi))
    stripes = np.sin(2 * math.pi * freq * (rows + cols) + phase)
    arr = arr + 9 * stripes[..., None] + _blotches(rng, w, 8, 5, 5)
    return arr, h


def _fashion_decor(pen, pal, h, attrs):
    if attrs is not None and attrs["light"] == "day":  # a small sun high in the sky
        r = pen.u(0.04, 0.06)
        pen.ellipse(pen.u(0.1, 0.9), pen.u(0.06, 0.2), r, r, fill=(255, 245, 190))
    else:
        r = pen.u(0.07, 0.12)
        pen.ellipse(pen.u(0.1, 0.9), h, r, r, fill=(250, 170, 80))  # sun setting on the horizon
    if attrs is not None and attrs["boat"] == "yes":  # a sailboat on the sea, beside the figure
        cx = pen.subject[0]
        x = pen.u(cx + 0.28, 0.95) if cx <= 0.5 else pen.u(0.05, cx - 0.28)
        y, s = h + pen.u(0.03, 0.07), pen.u(0.8, 1.2)
        pen.polygon(
            [
                (x - 0.07 * s, y),
                (x + 0.07 * s, y),
                (x + 0.05 * s, y + 0.025 * s),
                (x - 0.05 * s, y + 0.025 * s),
            ],
            fill=(70, 50, 45),
        )
        pen.polygon(
            [(x, y - 0.004), (x, y - 0.13 * s), (x + 0.06 * s, y - 0.004)], fill=(250, 250, 245)
        )
    if pen.rng.random() < 0.6:  # a striped awning across a corner
        colour = pen.pick(pal["outfit"])
        x0 = pen.u(-0.3, 0.3)
        for k in range(int(pen.rng.integers(3, 6))):
            off = x0 + 0.12 * k
            pen.line([(off, 0), (off - 0.3, 0.3)], fill=colour, width=0.03)


def _fashion_subject(pen, pal, cx, cy, scale, h, attrs):
    scale *= 1.25
    dress, accent = pal["named"][0], pen.pick(pal["accent"])  # the dress is the colour detail
    skin = (225, 180, 145)
    top, hem = cy - 0.15 * scale, cy + 0.12 * scale
    for side in (-1, 1):
        pen.line(
            [(cx + side * 0.03 * scale, hem), (cx + side * 0.04 * scale, cy + 0.27 * scale)],
            fill=skin,
            width=0.018,
        )
    pen.polygon(
        [
            (cx - 0.05 * scale, top),
            (cx + 0.05 * scale, top),
            (cx + 0.13 * scale, hem),
            (cx - 0.13 * scale, hem),
        ],
        fill=dress,
    )
    for k in range(1, 4):
        y = top + (hem - top) * k / 4
        half = 0.05 * scale + 0.08 * scale * k / 4
        pen.line([(cx - half, y), (cx + half, y)], fill=accent, width=0.008)
    pen.ellipse(cx, top - 0.05 * scale, 0.035 * scale, 0.04 * scale, fill=skin)
    pen.ellipse(cx, top - 0.085 * scale, 0.09 * scale, 0.02 * scale, fill=(230, 205, 150))  # hat
    pen.rect(
        cx + 0.08 * scale, cy, cx + 0.14 * scale, cy + 0.06 * scale, fill=accent, radius=0.01
    )  # handbag


@dataclass(frozen=True)
class _Style:
    palette: dict[str, tuple[Colour, ...]]
    background: Callable
    decor: Callable
    subject: Callable
    grain: float


STYLES: dict[str, _Style] = {
    "rockclimbing": _Style(
        {
            "sky": ((105, 155, 215), (175, 205, 235)),
            "golden": ((235, 140, 80), (255, 205, 140)),
            "rock": ((150, 120, 95), (185, 140, 100), (125, 112, 105), (200, 160, 120)),
            "accent": ((225, 40, 40), (250, 200, 30), (40, 90, 210)),
            "pad": ((45, 50, 60), (70, 60, 50)),
        },
        _rock_background,
        _rock_decor,
        _rock_subject,
        grain=9.0,
    ),
    "nightlife": _Style(
        {
            "bg": ((20, 10, 45), (40, 15, 65), (10, 20, 50)),
            "lights": ((255, 60, 200), (60, 220, 255), (255, 230, 80), (180, 80, 255)),
        },
        _night_background,
        _night_decor,
        _night_subject,
        grain=5.0,
    ),
    "foodporn": _Style(
        {
            "table": ((125, 82, 50), (160, 110, 70)),
            "marble": ((232, 230, 224), (208, 206, 202)),
            "plate": ((245, 245, 240), (235, 228, 215), (215, 225, 235)),
            "food": ((200, 60, 40), (240, 170, 40), (95, 165, 60), (150, 85, 40), (250, 220, 150)),
        },
        _food_background,
        _food_decor,
        _food_subject,
        grain=6.0,
    ),
    "cosmetics": _Style(
        {
            "bg": ((245, 210, 222), (228, 212, 242), (250, 226, 206), (214, 236, 230)),
            "product": ((205, 60, 95), (232, 150, 172), (182, 120, 205), (240, 198, 178)),
            "cap": ((30, 30, 32), (212, 182, 112), (240, 240, 240)),
            "petal": ((252, 252, 250), (250, 215, 225)),
        },
        _cosmetics_background,
        _cosmetics_decor,
        _cosmetics_subject,
        grain=2.5,
    ),
    "countryhomes": _Style(
        {
            "sky": ((140, 190, 235), (205, 225, 242)),
            "golden": ((235, 150, 95), (252, 210, 150)),
            "night": ((10, 14, 40), (40, 46, 88)),
            "ground": ((95, 155, 62), (120, 172, 72), (70, 122, 50)),
            "tree": ((40, 110, 40), (62, 132, 52), (85, 120, 40)),
            "wall": ((236, 226, 200), (242, 242, 236), (205, 170, 130)),
            "roof": ((190, 75, 58), (120, 70, 50), (95, 95, 105)),
            "window": ((170, 210, 240), (250, 220, 120)),
        },
        _country_background,
        _country_decor,
        _country_subject,
        grain=6.0,
    ),
    "fashiontravel": _Style(
        {
            "sky": ((120, 180, 225), (250, 185, 130), (240, 145, 125), (195, 225, 240)),
            "sea": ((40, 120, 165), (65, 155, 175)),
            "sand": ((232, 212, 172), (215, 190, 150)),
            "outfit": ((25, 25, 28), (242, 242, 242), (205, 30, 60), (232, 200, 60), (40, 60, 140)),
            "accent": ((25, 25, 28), (242, 242, 242), (200, 170, 120)),
        },
        _fashion_background,
        _fashion_decor,
        _fashion_subject,
        grain=5.0,
    ),
}
