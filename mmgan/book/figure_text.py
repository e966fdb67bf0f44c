"""The size of a figure's smallest text, carried with the figure into the chapter's output.

A figure shown in a notebook becomes a PNG drawn at the figure's own dpi; a page then shows it at some width, so
the text a reader sees is the drawn text scaled by (shown width / drawn width). The browser check of the book
(``tests/browser``) knows the shown width; this module records the other factor: each :class:`BookFigure` a
chapter displays is stored with ``{"image/png": {SMALLEST_TEXT_KEY: px}}`` in its output's metadata, the height
in image pixels of its smallest visible text.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.text import Text

#: The output-metadata key (under "image/png") holding the smallest text's size in pixels of the drawn image.
SMALLEST_TEXT_KEY = "mmgan_smallest_text_px"

#: Points per inch: a font size in points times dpi / 72 is its size in pixels.
POINTS_PER_INCH = 72.0


class BookFigure(Figure):
    """A matplotlib Figure that a notebook shows as a PNG together with the size of its smallest text."""


def _hidden_tick_labels(fig: Figure) -> set[int]:
    """Ids of the tick labels of axes drawn without their axis (a hidden panel, an image): never on the page."""
    hidden = set()
    for ax in fig.axes:
        if not ax.axison or not ax.get_visible():
            for axis in (ax.xaxis, ax.yaxis):
                hidden.update(id(label) for label in axis.get_ticklabels(which="both"))
    return hidden


def smallest_text_px(fig: Figure) -> float:
    """Height in pixels (at the figure's dpi) of the smallest text drawn: titles, labels, tick labels, legends and
    annotations that are visible and not empty. A figure without text has none: infinity."""
    hidden = _hidden_tick_labels(fig)
    sizes = [text.get_fontsize() for text in fig.findobj(Text)
             if text.get_visible() and text.get_text().strip() and id(text) not in hidden
             and (text.axes is None or text.axes.get_visible())]
    return min(sizes, default=float("inf")) * fig.dpi / POINTS_PER_INCH


def _png_with_text_size(fig: BookFigure) -> tuple[str, dict] | None:
    """IPython's PNG of the figure (whatever prints a plain Figure: the inline backend's printer) and the metadata
    recording its smallest text."""
    from IPython import get_ipython

    formatter = get_ipython().display_formatter.formatters["image/png"]
    try:
        print_png = formatter.lookup_by_type(Figure)
    except KeyError:  # no backend prints figures here (a plain terminal): nothing to show
        return None
    return print_png(fig), {SMALLEST_TEXT_KEY: round(smallest_text_px(fig), 2)}


def record_text_sizes_in_outputs() -> None:
    """In a notebook, show every :class:`BookFigure` with its smallest text size in the output's metadata.

    Registered for the subclass, so a later ``%matplotlib inline`` (which re-registers the printer of ``Figure``)
    leaves it in place; outside IPython it does nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(BookFigure, _png_with_text_size)
