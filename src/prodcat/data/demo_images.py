"""Product-like drawings for the demo dataset: one family of shapes and palettes per class.

Each picture imitates a catalogue photo: an object drawn with ``PIL.ImageDraw`` on a white
(sometimes light coloured) background, with a white border of random width (some objects
fill the frame), random rotation, colour jitter and sensor-like noise. Classes of a family
share shapes (books, magazines and newspapers are all rectangles with text lines; a pool
float and a pet bed are both rings), so an image model alone stays well below a text model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops, ImageDraw

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)


class _Pen:
    """Draws on the canvas in the unit square of the object's frame.

    The frame is a square of ``side`` pixels centred on ``(cx, cy)`` and turned by ``angle``
    degrees: every shape is mapped through that transform and drawn as a polygon, so a
    rotated object costs no raster rotation.
    """

    def __init__(self, draw: ImageDraw.ImageDraw, rng: np.random.Generator, *, side: float,
                 cx: float, cy: float, angle: float = 0.0) -> None:
        self.draw = draw
        self.rng = rng
        self.side = side
        self._cx, self._cy = cx, cy
        theta = math.radians(angle)
        self._cos, self._sin = math.cos(theta) * side, math.sin(theta) * side

    def _map(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        c, s, cx, cy = self._cos, self._sin, self._cx, self._cy
        return [(cx + (u - 0.5) * c - (v - 0.5) * s, cy + (u - 0.5) * s + (v - 0.5) * c) for u, v in points]

    def _width(self, width: float) -> int:
        return max(1, round(width * self.side))

    @staticmethod
    def _arc_points(x0: float, y0: float, x1: float, y1: float, start: float, end: float,
                    steps: int = 24) -> list[tuple[float, float]]:
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        angles = np.radians(np.linspace(start, end, steps))
        return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]

    def polygon(self, points: list[tuple[float, float]], fill: Color | None, outline: Color | None = None,
                width: float = 0.0) -> None:
        line = self._width(width) if outline else 0
        self.draw.polygon(self._map(points), fill=fill, outline=outline, width=line)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color | None,
             outline: Color | None = None, width: float = 0.0, radius: float = 0.0) -> None:
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        radius = min(radius, (x1 - x0) / 2, (y1 - y0) / 2)
        if radius <= 0:
            points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        else:
            points = []
            for (cx, cy), start in (((x1 - radius, y0 + radius), -90), ((x1 - radius, y1 - radius), 0),
                                    ((x0 + radius, y1 - radius), 90), ((x0 + radius, y0 + radius), 180)):
                points += self._arc_points(cx - radius, cy - radius, cx + radius, cy + radius, start, start + 90, 6)
        self.polygon(points, fill, outline, width)

    def ellipse(self, x0: float, y0: float, x1: float, y1: float, fill: Color | None,
                outline: Color | None = None, width: float = 0.0) -> None:
        self.polygon(self._arc_points(x0, y0, x1, y1, 0, 360, 36)[:-1], fill, outline, width)

    def circle(self, cx: float, cy: float, r: float, fill: Color | None, outline: Color | None = None,
               width: float = 0.0) -> None:
        self.ellipse(cx - r, cy - r, cx + r, cy + r, fill, outline, width)

    def line(self, points: list[tuple[float, float]], fill: Color, width: float) -> None:
        self.draw.line(self._map(points), fill=fill, width=self._width(width), joint="curve")

    def arc(self, x0: float, y0: float, x1: float, y1: float, start: float, end: float, fill: Color,
            width: float) -> None:
        self.line(self._arc_points(x0, y0, x1, y1, start, end, 12), fill, width)

    def pieslice(self, x0: float, y0: float, x1: float, y1: float, start: float, end: float, fill: Color) -> None:
        self.polygon([((x0 + x1) / 2, (y0 + y1) / 2), *self._arc_points(x0, y0, x1, y1, start, end)], fill)

    def chord(self, x0: float, y0: float, x1: float, y1: float, start: float, end: float, fill: Color) -> None:
        self.polygon(self._arc_points(x0, y0, x1, y1, start, end), fill)

    def text_lines(self, x0: float, y0: float, x1: float, y1: float, color: Color, count: int,
                   thickness: float = 0.02) -> None:
        """Grey bars standing for lines of printed text."""
        step = (y1 - y0) / max(count, 1)
        for i in range(count):
            end = x0 + (x1 - x0) * self.rng.uniform(0.55, 1.0)
            y = y0 + i * step
            self.rect(x0, y, end, y + min(thickness, step * 0.6), color)

    # colours ---------------------------------------------------------------------------
    def jitter(self, color: Color, amount: int = 28) -> Color:
        shift = self.rng.integers(-amount, amount + 1, size=3)
        return tuple(int(v) for v in np.clip(np.asarray(color) + shift, 0, 255))  # type: ignore[return-value]

    def pick(self, colors: tuple[Color, ...], amount: int = 28) -> Color:
        return self.jitter(colors[int(self.rng.integers(len(colors)))], amount)

    def u(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))


def _darker(color: Color, factor: float = 0.65) -> Color:
    return tuple(int(v * factor) for v in color)  # type: ignore[return-value]


def _lighter(color: Color, factor: float = 0.5) -> Color:
    return tuple(int(v + (255 - v) * factor) for v in color)  # type: ignore[return-value]


BRIGHT: tuple[Color, ...] = ((220, 40, 40), (30, 90, 200), (250, 200, 30), (40, 160, 70), (240, 120, 20),
                             (150, 60, 170), (20, 170, 200), (230, 80, 150))
DARK: tuple[Color, ...] = ((30, 30, 35), (60, 60, 70), (20, 40, 80), (70, 20, 20))
PASTEL: tuple[Color, ...] = ((245, 200, 210), (200, 225, 245), (250, 240, 190), (210, 240, 210), (230, 215, 245),
                             (240, 225, 200))
WOOD: tuple[Color, ...] = ((150, 100, 60), (190, 150, 100), (110, 70, 40), (210, 180, 140))
OLD_BOOK: tuple[Color, ...] = ((120, 40, 30), (60, 70, 40), (140, 110, 70), (40, 50, 80), (170, 150, 110))
GREY: tuple[Color, ...] = ((150, 150, 150), (190, 190, 195), (110, 110, 115))
BLUE_WATER: tuple[Color, ...] = ((40, 140, 220), (60, 180, 230), (20, 110, 190))
GREEN: tuple[Color, ...] = ((40, 150, 60), (90, 180, 70), (30, 110, 50))


# --------------------------------------------------------------------------- books family
def _book(pen: _Pen, old: bool) -> None:
    x0, x1 = pen.u(0.18, 0.3), pen.u(0.7, 0.82)
    y0, y1 = pen.u(0.04, 0.12), pen.u(0.88, 0.96)
    cover = pen.pick(OLD_BOOK if old else BRIGHT)
    if old:
        pen.rect(x1 - 0.01, y0 + 0.01, x1 + 0.02, y1 - 0.01, (235, 225, 190))
    pen.rect(x0, y0, x1, y1, cover, outline=_darker(cover), width=0.01)
    pen.rect(x0, y0, x0 + 0.05, y1, _darker(cover))
    ink = (235, 220, 170) if old else WHITE
    pen.text_lines(x0 + 0.1, y0 + 0.08, x1 - 0.06, y0 + 0.25, ink, int(pen.rng.integers(1, 4)), 0.035)
    if old:
        pen.ellipse(0.42, 0.45, 0.58, 0.6, None, outline=ink, width=0.01)
    else:
        art = pen.pick(BRIGHT)
        pen.ellipse(x0 + 0.1, y0 + 0.32, x1 - 0.06, y1 - 0.18, art)
        pen.polygon([(x0 + 0.1, y1 - 0.15), ((x0 + x1) / 2, y0 + 0.4), (x1 - 0.06, y1 - 0.15)], pen.pick(BRIGHT))
        pen.text_lines(x0 + 0.12, y1 - 0.1, x1 - 0.12, y1 - 0.05, WHITE, 1, 0.025)


def book_old(pen: _Pen) -> None:
    _book(pen, old=True)


def book_new(pen: _Pen) -> None:
    _book(pen, old=False)


def magazine(pen: _Pen) -> None:
    x0, x1, y0, y1 = pen.u(0.15, 0.25), pen.u(0.75, 0.85), pen.u(0.03, 0.08), pen.u(0.92, 0.97)
    pen.rect(x0, y0, x1, y1, pen.pick(PASTEL + BRIGHT, 20))
    pen.rect(x0, y0, x1, y0 + 0.16, pen.pick(BRIGHT, 15))
    pen.text_lines(x0 + 0.04, y0 + 0.04, x1 - 0.2, y0 + 0.14, WHITE, 2, 0.04)
    pen.ellipse(x0 + 0.15, y0 + 0.25, x1 - 0.02, y1 - 0.1, pen.pick(BRIGHT + DARK))
    pen.text_lines(x0 + 0.03, y0 + 0.3, x0 + 0.25, y1 - 0.1, pen.pick(DARK), int(pen.rng.integers(3, 7)), 0.025)


def manga_stack(pen: _Pen) -> None:
    count = int(pen.rng.integers(3, 7))
    width = 0.7 / count
    base = pen.pick(BRIGHT)
    for i in range(count):
        x = 0.15 + i * width
        color = pen.jitter(base, 40)
        pen.rect(x, 0.12, x + width * 0.92, 0.9, color, outline=_darker(color), width=0.005)
        pen.rect(x + 0.01, 0.2, x + width * 0.8, 0.26, WHITE)
        pen.rect(x + 0.01, 0.75, x + width * 0.8, 0.8, (30, 30, 30))


def newspaper(pen: _Pen) -> None:
    paper = pen.jitter((232, 228, 212), 12)
    x0, x1, y0, y1 = pen.u(0.12, 0.22), pen.u(0.78, 0.88), pen.u(0.03, 0.08), pen.u(0.92, 0.97)
    pen.rect(x0, y0, x1, y1, paper, outline=(200, 195, 180), width=0.005)
    pen.rect(x0 + 0.04, y0 + 0.03, x1 - 0.04, y0 + 0.1, (40, 40, 40))
    columns = int(pen.rng.integers(2, 5))
    width = (x1 - x0 - 0.08) / columns
    ink = (110, 110, 105)
    for c in range(columns):
        cx = x0 + 0.04 + c * width
        pen.text_lines(cx, y0 + 0.15, cx + width * 0.85, y1 - 0.05, ink, 14, 0.008)
    if pen.rng.random() < 0.7:
        pen.rect(x0 + 0.06, y0 + 0.2, x0 + 0.06 + width * 1.5, y0 + 0.45, pen.jitter((150, 150, 140), 20))


def poster(pen: _Pen) -> None:
    x0, x1, y0, y1 = pen.u(0.12, 0.2), pen.u(0.8, 0.88), pen.u(0.04, 0.1), pen.u(0.9, 0.96)
    pen.rect(x0, y0, x1, y1, pen.jitter((235, 225, 195), 15), outline=pen.pick(DARK), width=0.012)
    pen.rect(x0 + 0.05, y0 + 0.05, x1 - 0.05, y0 + 0.55, pen.pick(BRIGHT))
    pen.polygon([(x0 + 0.05, y0 + 0.55), (0.5, y0 + 0.15), (x1 - 0.05, y0 + 0.55)], pen.pick(BRIGHT))
    pen.text_lines(x0 + 0.08, y0 + 0.62, x1 - 0.08, y1 - 0.05, pen.pick(DARK), 3, 0.04)


# --------------------------------------------------------------------------- video games family
_PLATFORM_BANDS: tuple[Color, ...] = ((20, 60, 160), (30, 140, 40), (210, 20, 30), (245, 245, 245), (20, 20, 20))


def game_case(pen: _Pen) -> None:
    x0, x1, y0, y1 = pen.u(0.2, 0.3), pen.u(0.7, 0.8), pen.u(0.06, 0.12), pen.u(0.88, 0.94)
    band = pen.pick(_PLATFORM_BANDS, 10)
    pen.rect(x0, y0, x1, y1, pen.pick(DARK + BRIGHT), outline=(90, 90, 90), width=0.01)
    pen.rect(x0, y0, x1, y0 + 0.1, band)
    pen.text_lines(x0 + 0.03, y0 + 0.03, x0 + 0.25, y0 + 0.07, (255, 255, 255) if sum(band) < 500 else (20, 20, 20), 1, 0.03)
    pen.polygon([(x0, y1 - 0.1), (pen.u(x0, x1), y0 + 0.2), (x1, y1 - 0.25), (x1, y1 - 0.1)], pen.pick(BRIGHT))
    pen.text_lines(x0 + 0.05, y0 + 0.16, x1 - 0.05, y0 + 0.24, WHITE, 1, 0.05)
    pen.rect(x0 + 0.03, y1 - 0.09, x0 + 0.1, y1 - 0.02, WHITE, outline=(0, 0, 0), width=0.004)


def pc_download(pen: _Pen) -> None:
    frame = pen.pick(DARK, 10)
    pen.rect(0.08, 0.15, 0.92, 0.7, frame, radius=0.02)
    pen.rect(0.11, 0.18, 0.89, 0.66, pen.pick(BLUE_WATER + BRIGHT, 30))
    pen.rect(0.11, 0.18, 0.89, 0.22, (230, 230, 230))
    pen.rect(0.3, 0.3, 0.7, 0.52, pen.pick(BRIGHT))
    pen.polygon([(0.42, 0.7), (0.58, 0.7), (0.62, 0.82), (0.38, 0.82)], frame)
    pen.rect(0.28, 0.82, 0.72, 0.86, frame)


def dvd_case(pen: _Pen) -> None:
    pen.circle(0.62, 0.5, 0.28, (210, 210, 220), outline=(150, 150, 160), width=0.01)
    pen.circle(0.62, 0.5, 0.05, WHITE)
    game_case(pen)


def controller(pen: _Pen) -> None:
    body = pen.pick(DARK + ((235, 235, 235), (200, 30, 40), (30, 70, 180)), 15)
    cy = pen.u(0.4, 0.6)
    pen.ellipse(0.08, cy - 0.12, 0.42, cy + 0.3, body)
    pen.ellipse(0.58, cy - 0.12, 0.92, cy + 0.3, body)
    pen.rect(0.22, cy - 0.15, 0.78, cy + 0.1, body, radius=0.08)
    accent = (230, 230, 230) if sum(body) < 300 else (40, 40, 40)
    pen.rect(0.2, cy - 0.04, 0.3, cy - 0.01, accent)
    pen.rect(0.235, cy - 0.08, 0.265, cy + 0.03, accent)
    for dx, dy, color in ((0.74, -0.08, (40, 170, 60)), (0.8, -0.03, (220, 40, 40)), (0.68, -0.03, (40, 90, 220)),
                          (0.74, 0.02, (240, 200, 30))):
        pen.circle(dx, cy + dy, 0.025, color)
    pen.circle(0.38, cy + 0.06, 0.045, _darker(body, 0.5) if sum(body) > 150 else (90, 90, 90))
    pen.circle(0.62, cy + 0.06, 0.045, _darker(body, 0.5) if sum(body) > 150 else (90, 90, 90))


def handheld(pen: _Pen) -> None:
    body = pen.pick(BRIGHT + DARK + ((235, 235, 235),), 20)
    if pen.rng.random() < 0.5:
        pen.rect(0.28, 0.08, 0.72, 0.92, body, radius=0.05)
        pen.rect(0.33, 0.14, 0.67, 0.46, (20, 20, 30))
        pen.rect(0.35, 0.16, 0.65, 0.44, pen.pick(BLUE_WATER + GREEN, 30))
        pen.rect(0.34, 0.6, 0.46, 0.63, (30, 30, 30))
        pen.rect(0.385, 0.555, 0.415, 0.675, (30, 30, 30))
        pen.circle(0.6, 0.58, 0.03, (200, 30, 60))
        pen.circle(0.66, 0.64, 0.03, (200, 30, 60))
    else:
        pen.rect(0.06, 0.3, 0.94, 0.7, body, radius=0.1)
        pen.rect(0.27, 0.34, 0.73, 0.66, (20, 20, 30))
        pen.rect(0.29, 0.36, 0.71, 0.64, pen.pick(BLUE_WATER + GREEN + BRIGHT, 30))
        pen.circle(0.16, 0.46, 0.05, (50, 50, 50))
        pen.circle(0.84, 0.54, 0.05, (50, 50, 50))


def console_lot(pen: _Pen) -> None:
    shell = pen.pick(DARK + ((230, 230, 230), (170, 170, 175)), 12)
    pen.rect(0.08, 0.5, 0.62, 0.72, shell, outline=_darker(shell, 0.5) if sum(shell) > 200 else (90, 90, 90), width=0.008)
    pen.rect(0.12, 0.58, 0.4, 0.6, (120, 120, 120))
    pen.circle(0.55, 0.58, 0.02, (60, 200, 80))
    games = int(pen.rng.integers(2, 6))
    for i in range(games):
        x = 0.66 + (i % 3) * 0.1
        y = 0.15 + (i // 3) * 0.32
        pen.rect(x, y, x + 0.09, y + 0.28, pen.pick(BRIGHT + DARK), outline=(80, 80, 80), width=0.004)
        pen.rect(x, y, x + 0.09, y + 0.04, pen.pick(_PLATFORM_BANDS, 5))
    pen.ellipse(0.12, 0.78, 0.3, 0.92, shell)
    pen.ellipse(0.3, 0.78, 0.48, 0.92, shell)
    pen.rect(0.2, 0.76, 0.4, 0.86, shell)
    pen.line([(0.3, 0.76), (0.35, 0.72)], (60, 60, 60), 0.008)


# --------------------------------------------------------------------------- toys family
def figurine(pen: _Pen) -> None:
    skin = pen.pick(((240, 200, 170), (200, 160, 120), (120, 200, 90), (90, 90, 100)), 20)
    suit = pen.pick(BRIGHT + DARK)
    pen.ellipse(0.3, 0.82, 0.7, 0.94, (25, 25, 25))
    pen.polygon([(0.38, 0.4), (0.62, 0.4), (0.66, 0.72), (0.34, 0.72)], suit)
    pen.rect(0.38, 0.7, 0.47, 0.88, _darker(suit))
    pen.rect(0.53, 0.7, 0.62, 0.88, _darker(suit))
    pen.line([(0.38, 0.43), (0.26, 0.62)], suit, 0.05)
    pen.line([(0.62, 0.43), (0.74, 0.62)], suit, 0.05)
    pen.circle(0.5, 0.28, pen.u(0.1, 0.16), skin)
    pen.circle(0.46, 0.27, 0.015, (0, 0, 0))
    pen.circle(0.54, 0.27, 0.015, (0, 0, 0))


def figurine_box(pen: _Pen) -> None:
    box = pen.pick(BRIGHT, 15)
    pen.rect(0.2, 0.05, 0.8, 0.95, box)
    pen.rect(0.26, 0.18, 0.74, 0.8, (230, 235, 240))
    pen.text_lines(0.26, 0.08, 0.7, 0.14, WHITE, 1, 0.04)
    pen.circle(0.5, 0.38, 0.12, pen.pick(((240, 200, 170), (90, 90, 100))))
    pen.rect(0.4, 0.5, 0.6, 0.76, pen.pick(BRIGHT + DARK))


def cards(pen: _Pen) -> None:
    count = int(pen.rng.integers(1, 6))
    frame = pen.pick(((240, 210, 60), (200, 200, 210), (40, 40, 45), (180, 40, 40), (40, 90, 170)), 20)
    spread = pen.u(8, 18)
    for i in range(count):
        angle = math.radians((i - (count - 1) / 2) * spread)
        cx, cy, w, h = 0.5 + (i - (count - 1) / 2) * 0.05, 0.55, 0.17, 0.25
        pts = []
        for dx, dy in ((-w, -h), (w, -h), (w, h), (-w, h)):
            pts.append((cx + dx * math.cos(angle) - dy * math.sin(angle), cy + dx * math.sin(angle) + dy * math.cos(angle)))
        pen.polygon(pts, frame, outline=_darker(frame))
        inset = [(cx + (x - cx) * 0.8, cy + (y - cy) * 0.55 - 0.06) for x, y in pts]
        pen.polygon(inset, pen.pick(BRIGHT + PASTEL))


def board_game(pen: _Pen) -> None:
    board = pen.pick(WOOD + PASTEL, 15)
    pen.rect(0.1, 0.1, 0.9, 0.9, board, outline=_darker(board), width=0.012)
    cells = int(pen.rng.integers(4, 9))
    step = 0.7 / cells
    alt = pen.pick(BRIGHT + DARK)
    for i in range(cells):
        for j in range(cells):
            if (i + j) % 2 == 0:
                pen.rect(0.15 + i * step, 0.15 + j * step, 0.15 + (i + 1) * step, 0.15 + (j + 1) * step, alt)
    for _ in range(int(pen.rng.integers(2, 5))):
        pen.circle(pen.u(0.2, 0.8), pen.u(0.2, 0.8), 0.035, pen.pick(BRIGHT), outline=(0, 0, 0), width=0.004)
    pen.rect(0.72, 0.72, 0.86, 0.86, WHITE, outline=(0, 0, 0), width=0.005)
    pen.circle(0.79, 0.79, 0.015, (0, 0, 0))


def miniature(pen: _Pen) -> None:
    metal = pen.pick(GREY, 15)
    pen.ellipse(0.28, 0.8, 0.72, 0.92, (60, 60, 60))
    pen.polygon([(0.42, 0.4), (0.58, 0.4), (0.64, 0.82), (0.36, 0.82)], metal)
    pen.circle(0.5, 0.32, 0.08, metal)
    pen.line([(0.6, 0.45), (0.72, 0.15)], _darker(metal), 0.025)


def plush(pen: _Pen) -> None:
    fur = pen.pick(PASTEL + WOOD + ((250, 250, 250),), 20)
    pen.ellipse(0.25, 0.45, 0.75, 0.95, fur)
    pen.circle(0.5, 0.35, 0.2, fur)
    pen.circle(0.34, 0.17, 0.07, fur)
    pen.circle(0.66, 0.17, 0.07, fur)
    pen.circle(0.43, 0.33, 0.025, (20, 20, 20))
    pen.circle(0.57, 0.33, 0.025, (20, 20, 20))
    pen.ellipse(0.46, 0.4, 0.54, 0.45, _darker(fur, 0.5))
    pen.ellipse(0.2, 0.55, 0.32, 0.75, fur)
    pen.ellipse(0.68, 0.55, 0.8, 0.75, fur)


def costume(pen: _Pen) -> None:
    cloth = pen.pick(BRIGHT + DARK)
    pen.line([(0.5, 0.05), (0.5, 0.12)], (80, 80, 80), 0.012)
    pen.line([(0.3, 0.2), (0.5, 0.1), (0.7, 0.2)], (80, 80, 80), 0.012)
    pen.polygon([(0.36, 0.18), (0.64, 0.18), (0.85, 0.92), (0.15, 0.92)], cloth)
    pen.polygon([(0.36, 0.18), (0.2, 0.4), (0.28, 0.44), (0.4, 0.3)], cloth)
    pen.polygon([(0.64, 0.18), (0.8, 0.4), (0.72, 0.44), (0.6, 0.3)], cloth)
    pen.rect(0.36, 0.42, 0.64, 0.47, pen.pick(BRIGHT))
    for _ in range(int(pen.rng.integers(0, 6))):
        pen.circle(pen.u(0.3, 0.7), pen.u(0.5, 0.88), 0.02, pen.pick(((250, 220, 60), WHITE)))


def kids_box(pen: _Pen) -> None:
    box = pen.pick(BRIGHT, 15)
    pen.rect(0.05, 0.2, 0.95, 0.8, box, outline=_darker(box), width=0.01)
    pen.rect(0.05, 0.2, 0.95, 0.32, _lighter(box, 0.6))
    pen.text_lines(0.1, 0.23, 0.6, 0.29, _darker(box, 0.4), 1, 0.05)
    for i in range(4):
        for j in range(3):
            pen.rect(0.4 + i * 0.12, 0.36 + j * 0.13, 0.51 + i * 0.12, 0.48 + j * 0.13, pen.pick(BRIGHT + PASTEL))
    pen.circle(0.2, 0.55, 0.1, (250, 250, 250), outline=(230, 40, 40), width=0.012)
    pen.text_lines(0.15, 0.54, 0.25, 0.57, (230, 40, 40), 1, 0.03)


def drone(pen: _Pen) -> None:
    body = pen.pick(DARK + ((235, 235, 235),), 10)
    pen.line([(0.2, 0.2), (0.8, 0.8)], body, 0.05)
    pen.line([(0.8, 0.2), (0.2, 0.8)], body, 0.05)
    for cx, cy in ((0.2, 0.2), (0.8, 0.2), (0.2, 0.8), (0.8, 0.8)):
        pen.circle(cx, cy, 0.15, (200, 205, 210), outline=(120, 120, 130), width=0.008)
        pen.circle(cx, cy, 0.03, body)
    pen.rect(0.38, 0.38, 0.62, 0.62, body, radius=0.05)
    pen.circle(0.5, 0.58, 0.04, (20, 20, 20), outline=(120, 160, 220), width=0.01)


def rc_car(pen: _Pen) -> None:
    paint = pen.pick(BRIGHT)
    pen.polygon([(0.1, 0.55), (0.25, 0.4), (0.65, 0.38), (0.88, 0.5), (0.9, 0.62), (0.1, 0.64)], paint)
    pen.rect(0.35, 0.3, 0.62, 0.42, _lighter(paint, 0.3))
    for cx in (0.26, 0.74):
        pen.circle(cx, 0.68, 0.13, (25, 25, 25))
        pen.circle(cx, 0.68, 0.05, (170, 170, 170))


def socks(pen: _Pen) -> None:
    base = pen.pick(BRIGHT + PASTEL + ((250, 250, 250),), 20)
    stripe = pen.pick(BRIGHT + DARK + ((250, 250, 250),))
    for ox in (0.0, 0.3):
        x0 = 0.15 + ox
        pen.polygon([(x0, 0.1), (x0 + 0.2, 0.1), (x0 + 0.2, 0.62), (x0 + 0.34, 0.74), (x0 + 0.3, 0.9),
                     (x0 + 0.08, 0.88), (x0, 0.72)], base)
        for k in range(int(pen.rng.integers(2, 6))):
            y = 0.14 + k * 0.09
            pen.rect(x0, y, x0 + 0.2, y + 0.035, stripe)
        pen.ellipse(x0 + 0.16, 0.76, x0 + 0.34, 0.92, stripe)
        pen.rect(x0, 0.1, x0 + 0.2, 0.14, _darker(base, 0.85))


def slime_jar(pen: _Pen) -> None:
    goo = pen.pick(BRIGHT, 20)
    pen.rect(0.3, 0.3, 0.7, 0.85, _lighter(goo, 0.25), radius=0.04)
    pen.ellipse(0.3, 0.78, 0.7, 0.9, _lighter(goo, 0.25))
    pen.rect(0.28, 0.2, 0.72, 0.32, pen.pick(BRIGHT + DARK))
    pen.ellipse(0.36, 0.4, 0.5, 0.5, _lighter(goo, 0.7))


def spinner(pen: _Pen) -> None:
    color = pen.pick(BRIGHT + DARK, 20)
    for k in range(3):
        angle = k * 2 * math.pi / 3 + pen.u(0, 1)
        cx, cy = 0.5 + 0.25 * math.cos(angle), 0.5 + 0.25 * math.sin(angle)
        pen.line([(0.5, 0.5), (cx, cy)], color, 0.12)
        pen.circle(cx, cy, 0.13, color)
        pen.circle(cx, cy, 0.07, (200, 200, 200))
    pen.circle(0.5, 0.5, 0.1, _darker(color))


def squishy(pen: _Pen) -> None:
    color = pen.pick(PASTEL + BRIGHT, 15)
    pen.ellipse(0.15, 0.25, 0.85, 0.85, color)
    pen.circle(0.4, 0.5, 0.035, (30, 30, 30))
    pen.circle(0.6, 0.5, 0.035, (30, 30, 30))
    pen.arc(0.43, 0.52, 0.57, 0.62, 20, 160, (30, 30, 30), 0.012)
    pen.ellipse(0.3, 0.56, 0.38, 0.61, (245, 150, 170))
    pen.ellipse(0.62, 0.56, 0.7, 0.61, (245, 150, 170))


def stroller(pen: _Pen) -> None:
    fabric = pen.pick(DARK + BRIGHT + PASTEL, 15)
    frame = (60, 60, 65)
    pen.line([(0.3, 0.6), (0.25, 0.82)], frame, 0.015)
    pen.line([(0.65, 0.6), (0.72, 0.82)], frame, 0.015)
    pen.line([(0.7, 0.55), (0.85, 0.2)], frame, 0.02)
    pen.chord(0.15, 0.2, 0.75, 0.8, 90, 270, fabric)
    pen.rect(0.2, 0.45, 0.72, 0.62, fabric, radius=0.04)
    pen.pieslice(0.15, 0.2, 0.75, 0.8, 180, 270, _darker(fabric, 0.8))
    for cx in (0.25, 0.72):
        pen.circle(cx, 0.85, 0.08, (30, 30, 30))
        pen.circle(cx, 0.85, 0.03, (180, 180, 180))


# --------------------------------------------------------------------------- home family
def chair(pen: _Pen) -> None:
    seat = pen.pick(BRIGHT + DARK + WOOD + GREY, 20)
    legs = pen.pick(WOOD + DARK + GREY, 10)
    pen.rect(0.3, 0.08, 0.7, 0.5, seat, radius=0.06)
    pen.rect(0.25, 0.48, 0.75, 0.6, _darker(seat, 0.85), radius=0.03)
    for x0, x1 in ((0.28, 0.3), (0.7, 0.72)):
        pen.line([(x0, 0.6), (x1 - 0.04 if x0 < 0.5 else x1 + 0.02, 0.94)], legs, 0.02)
    pen.line([(0.4, 0.6), (0.42, 0.88)], legs, 0.015)
    pen.line([(0.6, 0.6), (0.58, 0.88)], legs, 0.015)


def sofa(pen: _Pen) -> None:
    fabric = pen.pick(DARK + GREY + PASTEL + ((30, 90, 60), (120, 30, 40)), 20)
    pen.rect(0.08, 0.3, 0.92, 0.6, _darker(fabric, 0.85), radius=0.05)
    pen.rect(0.05, 0.45, 0.18, 0.78, fabric, radius=0.04)
    pen.rect(0.82, 0.45, 0.95, 0.78, fabric, radius=0.04)
    pen.rect(0.16, 0.55, 0.84, 0.78, fabric, radius=0.03)
    pen.line([(0.5, 0.56), (0.5, 0.77)], _darker(fabric, 0.7), 0.006)
    pen.rect(0.12, 0.78, 0.15, 0.86, (40, 30, 20))
    pen.rect(0.85, 0.78, 0.88, 0.86, (40, 30, 20))


def pillow(pen: _Pen) -> None:
    cloth = pen.pick(PASTEL + BRIGHT + GREY, 20)
    pen.rect(0.12, 0.15, 0.88, 0.85, cloth, radius=0.1)
    motif = pen.pick(BRIGHT + DARK + ((250, 250, 250),))
    kind = int(pen.rng.integers(3))
    if kind == 0:
        for k in range(5):
            pen.rect(0.14, 0.22 + k * 0.13, 0.86, 0.27 + k * 0.13, motif)
    elif kind == 1:
        for _ in range(8):
            pen.circle(pen.u(0.22, 0.78), pen.u(0.25, 0.75), 0.04, motif)
    else:
        pen.polygon([(0.5, 0.25), (0.75, 0.5), (0.5, 0.75), (0.25, 0.5)], motif)


def curtain(pen: _Pen) -> None:
    cloth = pen.pick(PASTEL + GREY + BRIGHT, 20)
    pen.line([(0.05, 0.08), (0.95, 0.08)], (80, 80, 80), 0.015)
    pen.rect(0.15, 0.08, 0.85, 0.95, cloth)
    for k in range(7):
        x = 0.2 + k * 0.1
        pen.line([(x, 0.1), (x, 0.94)], _darker(cloth, 0.85), 0.012)
        pen.circle(x, 0.09, 0.015, (120, 120, 120))


def food_pack(pen: _Pen) -> None:
    label = pen.pick(((110, 60, 30), (40, 120, 60), (200, 40, 40), (30, 30, 30), (230, 170, 40)), 20)
    if pen.rng.random() < 0.5:
        pen.rect(0.3, 0.2, 0.7, 0.85, label)
        pen.ellipse(0.3, 0.15, 0.7, 0.25, _lighter(label, 0.3))
        pen.ellipse(0.3, 0.8, 0.7, 0.9, label)
        pen.rect(0.3, 0.42, 0.7, 0.6, (245, 240, 225))
        pen.text_lines(0.35, 0.46, 0.65, 0.56, label, 2, 0.03)
    else:
        pen.rect(0.2, 0.15, 0.8, 0.88, label)
        pen.rect(0.25, 0.55, 0.75, 0.8, (245, 240, 225))
        pen.circle(0.5, 0.35, 0.12, pen.pick(((120, 70, 40), (240, 120, 30), (220, 60, 80))))
        pen.text_lines(0.3, 0.6, 0.7, 0.76, label, 3, 0.025)


def lamp(pen: _Pen) -> None:
    shade = pen.pick(PASTEL + BRIGHT + ((250, 250, 245),), 20)
    pen.circle(0.5, 0.35, 0.3, pen.jitter((255, 240, 190), 10))
    pen.polygon([(0.35, 0.15), (0.65, 0.15), (0.75, 0.42), (0.25, 0.42)], shade)
    pen.line([(0.5, 0.42), (0.5, 0.85)], (90, 90, 90), 0.02)
    pen.ellipse(0.35, 0.83, 0.65, 0.92, (70, 70, 70))


def wall_stickers(pen: _Pen) -> None:
    color = pen.pick(BRIGHT + DARK, 25)
    for _ in range(int(pen.rng.integers(4, 10))):
        cx, cy, r = pen.u(0.15, 0.85), pen.u(0.15, 0.85), pen.u(0.04, 0.12)
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = k * math.pi / 5 - math.pi / 2
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        pen.polygon(points, pen.jitter(color, 30))


def garland(pen: _Pen) -> None:
    points = [(0.05 + k * 0.09, 0.35 + 0.2 * math.sin(k * 0.9)) for k in range(11)]
    pen.line(points, (40, 90, 40), 0.01)
    for x, y in points:
        pen.circle(x, y + 0.04, 0.03, pen.pick(BRIGHT + ((255, 230, 120),)))


def pet_bed(pen: _Pen) -> None:
    cloth = pen.pick(GREY + WOOD + DARK + PASTEL, 20)
    pen.ellipse(0.08, 0.3, 0.92, 0.85, cloth)
    pen.ellipse(0.2, 0.38, 0.8, 0.77, _lighter(cloth, 0.4))
    if pen.rng.random() < 0.5:
        pen.circle(0.5, 0.57, 0.1, pen.pick(WOOD))


def pet_bowl(pen: _Pen) -> None:
    metal = pen.pick(GREY + BRIGHT, 15)
    pen.ellipse(0.2, 0.45, 0.8, 0.6, _darker(metal, 0.8))
    pen.polygon([(0.2, 0.52), (0.8, 0.52), (0.72, 0.78), (0.28, 0.78)], metal)
    pen.ellipse(0.25, 0.47, 0.75, 0.57, (150, 100, 60))
    pen.rect(0.38, 0.2, 0.62, 0.26, (240, 235, 220))
    for x in (0.38, 0.62):
        pen.circle(x, 0.19, 0.035, (240, 235, 220))
        pen.circle(x, 0.27, 0.035, (240, 235, 220))


def cat_tree(pen: _Pen) -> None:
    fabric = pen.pick(GREY + WOOD + PASTEL, 20)
    post = (210, 180, 130)
    pen.rect(0.42, 0.2, 0.5, 0.9, post)
    pen.rect(0.62, 0.45, 0.7, 0.9, post)
    pen.rect(0.25, 0.85, 0.8, 0.93, fabric)
    pen.rect(0.3, 0.42, 0.75, 0.48, fabric)
    pen.rect(0.3, 0.15, 0.6, 0.21, fabric)


def pen_tool(pen: _Pen) -> None:
    body = pen.pick(BRIGHT + DARK, 20)
    pen.line([(0.15, 0.85), (0.8, 0.2)], body, 0.06)
    pen.polygon([(0.78, 0.17), (0.83, 0.22), (0.9, 0.1)], (40, 40, 40))
    pen.line([(0.2, 0.8), (0.35, 0.65)], _darker(body), 0.065)


def notebook(pen: _Pen) -> None:
    cover = pen.pick(BRIGHT + PASTEL + DARK, 20)
    pen.rect(0.2, 0.1, 0.8, 0.9, cover)
    for k in range(9):
        pen.circle(0.22, 0.15 + k * 0.09, 0.02, (180, 180, 180), outline=(90, 90, 90), width=0.005)
    pen.rect(0.35, 0.2, 0.72, 0.32, WHITE)
    pen.text_lines(0.37, 0.23, 0.68, 0.3, (90, 90, 90), 2, 0.015)


def pencils(pen: _Pen) -> None:
    for k in range(int(pen.rng.integers(3, 9))):
        x = 0.2 + k * 0.075
        color = pen.pick(BRIGHT, 20)
        pen.rect(x, 0.2, x + 0.05, 0.75, color)
        pen.polygon([(x, 0.75), (x + 0.05, 0.75), (x + 0.025, 0.85)], (230, 200, 150))
        pen.polygon([(x + 0.015, 0.81), (x + 0.035, 0.81), (x + 0.025, 0.85)], color)


# --------------------------------------------------------------------------- garden family
def plant_pot(pen: _Pen) -> None:
    pot = pen.pick(((190, 90, 50), (240, 240, 240), (60, 60, 60), (40, 90, 160)) + WOOD, 20)
    for _ in range(int(pen.rng.integers(4, 9))):
        x, y = pen.u(0.3, 0.7), pen.u(0.1, 0.45)
        pen.ellipse(x - 0.07, y - 0.12, x + 0.07, y + 0.12, pen.pick(GREEN, 25))
    pen.polygon([(0.25, 0.5), (0.75, 0.5), (0.67, 0.92), (0.33, 0.92)], pot)
    pen.rect(0.22, 0.47, 0.78, 0.53, _darker(pot, 0.85))


def tent(pen: _Pen) -> None:
    canvas = pen.pick(((245, 245, 245), (200, 200, 205), (40, 110, 60), (200, 40, 40)), 10)
    pen.polygon([(0.08, 0.38), (0.3, 0.15), (0.7, 0.15), (0.92, 0.38)], canvas, outline=(150, 150, 150))
    pen.rect(0.08, 0.38, 0.92, 0.43, _darker(canvas, 0.9))
    for x in (0.1, 0.4, 0.6, 0.9):
        pen.line([(x, 0.43), (x, 0.9)], (150, 150, 155), 0.012)


def parasol(pen: _Pen) -> None:
    cloth = pen.pick(BRIGHT + ((240, 230, 200),), 15)
    pen.pieslice(0.05, 0.1, 0.95, 0.7, 180, 360, cloth)
    pen.line([(0.5, 0.4), (0.5, 0.9)], (90, 90, 90), 0.02)
    pen.rect(0.38, 0.88, 0.62, 0.93, (70, 70, 70))


def solar_lamp(pen: _Pen) -> None:
    for k in range(int(pen.rng.integers(1, 4))):
        x = 0.3 + k * 0.2
        pen.line([(x, 0.45), (x, 0.92)], (40, 40, 40), 0.02)
        pen.rect(x - 0.07, 0.3, x + 0.07, 0.45, (230, 230, 200))
        pen.rect(x - 0.08, 0.27, x + 0.08, 0.3, (30, 30, 60))


def pool(pen: _Pen) -> None:
    water = pen.pick(BLUE_WATER, 20)
    rim = pen.pick(((240, 240, 240), (120, 120, 130), (180, 160, 120)), 10)
    if pen.rng.random() < 0.5:
        pen.ellipse(0.05, 0.3, 0.95, 0.85, rim)
        pen.ellipse(0.1, 0.34, 0.9, 0.8, water)
    else:
        pen.rect(0.05, 0.25, 0.95, 0.85, rim)
        pen.rect(0.1, 0.3, 0.9, 0.8, water)
    for _ in range(5):
        x, y = pen.u(0.2, 0.7), pen.u(0.4, 0.7)
        pen.arc(x, y, x + 0.15, y + 0.06, 200, 340, _lighter(water, 0.6), 0.008)


def pump(pen: _Pen) -> None:
    body = pen.pick(BLUE_WATER + GREY + ((30, 30, 30),), 15)
    pen.rect(0.2, 0.4, 0.7, 0.8, body, radius=0.05)
    pen.circle(0.7, 0.6, 0.15, _darker(body, 0.8))
    pen.rect(0.3, 0.25, 0.4, 0.4, (90, 90, 90))
    pen.rect(0.25, 0.8, 0.75, 0.86, (60, 60, 60))
    pen.line([(0.85, 0.6), (0.95, 0.6)], (90, 90, 90), 0.05)


def ring_float(pen: _Pen) -> None:
    color = pen.pick(BRIGHT + BLUE_WATER, 20)
    pen.ellipse(0.1, 0.2, 0.9, 0.8, color)
    pen.ellipse(0.33, 0.37, 0.67, 0.63, WHITE)
    pen.arc(0.15, 0.25, 0.85, 0.75, 200, 260, _lighter(color, 0.7), 0.03)


def hose(pen: _Pen) -> None:
    color = pen.pick(GREEN + ((240, 140, 30), (40, 40, 40)), 20)
    for k in range(6):
        r = 0.38 - k * 0.045
        pen.circle(0.5, 0.5, r, None, outline=color, width=0.035)
    pen.line([(0.88, 0.5), (0.95, 0.85)], color, 0.035)
    pen.rect(0.9, 0.82, 0.98, 0.95, (240, 200, 40))


def power_tool(pen: _Pen) -> None:
    body = pen.pick(((240, 130, 20), (30, 110, 60), (40, 90, 180), (200, 30, 30), (240, 200, 30)), 15)
    pen.rect(0.15, 0.25, 0.7, 0.45, body, radius=0.05)
    pen.rect(0.7, 0.31, 0.9, 0.37, (150, 150, 150))
    pen.polygon([(0.35, 0.45), (0.5, 0.45), (0.45, 0.75), (0.3, 0.75)], _darker(body, 0.3))
    pen.rect(0.22, 0.75, 0.55, 0.88, (40, 40, 40), radius=0.02)


def trimmer(pen: _Pen) -> None:
    body = pen.pick(((240, 130, 20), (30, 110, 60), (40, 90, 180)), 15)
    pen.rect(0.05, 0.42, 0.4, 0.58, body, radius=0.05)
    pen.rect(0.4, 0.47, 0.95, 0.53, (170, 170, 175))
    for k in range(14):
        x = 0.42 + k * 0.038
        pen.rect(x, 0.44, x + 0.015, 0.56, (130, 130, 135))


Drawer = Callable[[_Pen], None]
STYLES: dict[int, tuple[Drawer, ...]] = {
    10: (book_old, book_old, book_new),
    2705: (book_new, book_new, book_old),
    2403: (magazine, magazine, manga_stack, book_new),
    2280: (newspaper, newspaper, poster),
    40: (game_case,),
    2905: (pc_download, dvd_case),
    50: (controller,),
    60: (handheld,),
    2462: (console_lot, console_lot, game_case, controller),
    1140: (figurine, figurine_box),
    1160: (cards,),
    1180: (board_game, miniature),
    1280: (plush, costume),
    1281: (kids_box, board_game),
    1300: (drone, rc_car),
    1301: (socks,),
    1302: (slime_jar, spinner, squishy),
    1320: (stroller, plush),
    1560: (chair, sofa),
    1920: (pillow, curtain),
    1940: (food_pack,),
    2060: (lamp, wall_stickers, garland),
    2220: (pet_bed, pet_bowl, cat_tree),
    2522: (pen_tool, notebook, pencils),
    2582: (plant_pot, tent, parasol, solar_lamp),
    2583: (pool, pump, ring_float),
    2585: (hose, power_tool, trimmer),
}


class NoiseBank:
    """Seeded grain tiles (grey, centred on 128) reused across images: no per-pixel work per image."""

    def __init__(self, size: int, seed: int, sigmas: tuple[float, ...] = (2.0, 4.0, 7.0)) -> None:
        rng = np.random.default_rng([seed, 7])
        self.tiles = [
            Image.fromarray(np.clip(128 + rng.normal(0, sigma, (size, size)), 0, 255).astype(np.uint8), "L").convert("RGB")
            for sigma in sigmas
        ]

    def add(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        tile = self.tiles[int(rng.integers(len(self.tiles)))]
        if rng.random() < 0.5:
            tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return ImageChops.add(image, tile, scale=1.0, offset=-128)


def draw_product(code: int, rng: np.random.Generator, size: int, noise: NoiseBank | None = None) -> Image.Image:
    """One catalogue-like RGB picture of a product of class ``code`` (``size`` x ``size``)."""
    styles = STYLES[code]
    drawer = styles[int(rng.integers(len(styles)))]
    canvas = Image.new("RGB", (size, size), WHITE)
    if rng.random() < 0.12:  # studio or table background filling the frame
        tone = tuple(int(v) for v in rng.integers(200, 245, size=3))
        ImageDraw.Draw(canvas).rectangle((0, 0, size, size), fill=tone)
        if rng.random() < 0.5:
            floor = tuple(max(0, v - 30) for v in tone)
            ImageDraw.Draw(canvas).rectangle((0, int(size * rng.uniform(0.55, 0.8)), size, size), fill=floor)
    fill_frame = rng.random() < 0.2
    side = size * (rng.uniform(0.9, 1.05) if fill_frame else rng.uniform(0.35, 0.92))
    angle = float(np.clip(rng.normal(0, 10), -35, 35)) if rng.random() < 0.85 else float(rng.choice([90, -90, 180]))
    margin = side / 2 if not fill_frame else size / 2
    cx = float(rng.uniform(margin, size - margin)) if margin < size / 2 else size / 2
    cy = float(rng.uniform(margin, size - margin)) if margin < size / 2 else size / 2
    drawer(_Pen(ImageDraw.Draw(canvas), rng, side=side, cx=cx, cy=cy, angle=angle))
    if noise is not None and rng.random() < 0.4:
        canvas = noise.add(canvas, rng)
    return canvas
