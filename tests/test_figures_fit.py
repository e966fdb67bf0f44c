"""Every figure a chapter shows fits a page's column on a desktop (issue 35): none is drawn wider than the 960 px
column, so none is clipped in a scroller; wider sets of panels wrap onto more rows (``mmgan.book.plots._panels``)."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The width (CSS px) of a chapter's column at 1280 px, where a figure is shown at its drawn size.
COLUMN_PX = 960


def figure_widths(path: Path) -> list[int]:
    """The pixel width of every PNG figure the executed chapter ``path`` shows."""
    widths = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                raw = base64.b64decode(png if isinstance(png, str) else "".join(png))
                widths.append(struct.unpack(">I", raw[16:20])[0])
    return widths


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_no_figure_is_wider_than_the_column(path):
    too_wide = [w for w in figure_widths(path) if w > COLUMN_PX]
    assert not too_wide, f"{path.name} draws figures {too_wide} px wide, wider than the {COLUMN_PX} px column"


def test_wide_panel_sets_wrap():
    from mmgan.book import plots

    fig, axes = plots._panels(3, 3.2, 3.0)  # two fit a row of MAX_FIGURE_WIDTH: a 2 × 2 grid, its last cell hidden
    assert len(axes) == 3 and tuple(fig.get_size_inches()) == (6.4, 6.0)
    assert len(fig.axes) == 4 and not fig.axes[3].axison
