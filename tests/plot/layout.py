"""Layout checks of figures: they render to PNG with Agg, and no two texts overlap or leave the canvas."""

from __future__ import annotations

import io
from itertools import combinations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["check_layout", "drawn_texts", "render"]


def drawn_texts(figure: Figure):
    """(description, window extent) of every text the figure draws that a reader reads."""
    FigureCanvasAgg(figure)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    texts = []

    def add(what, text):
        if text is not None and text.get_visible() and text.get_text().strip():
            texts.append((f"{what} {text.get_text()!r}", text.get_window_extent(renderer)))

    for index, ax in enumerate(figure.axes):
        for name, axis, limits in (("x", ax.xaxis, ax.get_xlim()), ("y", ax.yaxis, ax.get_ylim())):
            low, high = sorted(limits)
            slack = 1e-9 * (high - low)
            for tick in axis.get_major_ticks():
                if low - slack <= tick.get_loc() <= high + slack:
                    add(f"axes {index} {name} tick", tick.label1)
            add(f"axes {index} {name} label", axis.label)
        for title in (ax.title, ax._left_title, ax._right_title):
            add(f"axes {index} title", title)
        for text in ax.texts:
            add(f"axes {index} text", text)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                add(f"axes {index} legend", text)
    add("suptitle", figure._suptitle)
    return texts


def check_layout(figure: Figure) -> None:
    """No two texts overlap (1 px tolerance) and every text lies inside the canvas."""
    texts = drawn_texts(figure)
    width, height = figure.canvas.get_width_height()
    outside = [
        what for what, box in texts if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1
    ]
    assert not outside, f"texts leave the canvas ({width}x{height} px): {outside}"
    clashes = []
    for (a, box_a), (b, box_b) in combinations(texts, 2):
        overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if overlap_x > 1 and overlap_y > 1:
            clashes.append(f"{a} / {b}")
    assert not clashes, f"overlapping texts: {clashes}"


def render(figure: Figure) -> bytes:
    """The figure as PNG bytes at 100 dpi (Agg), after checking its layout."""
    assert isinstance(figure, Figure)
    check_layout(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    data = buffer.getvalue()
    assert data.startswith(b"\x89PNG")
    return data
