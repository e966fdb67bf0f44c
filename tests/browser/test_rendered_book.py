"""The rendered book, opened page by page in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from book_checks import check_pages, dead_links, pages


def test_every_page_renders_cleanly(book_html, chromium, request):
    screenshots = Path(request.config.getoption("--screenshots"))
    reports = check_pages(book_html, screenshots)
    problems = [f"{r.page}: {p}" for r in reports for p in r.problems]
    assert len(reports) >= 10
    assert not problems, "\n".join(problems)
    assert len(list(screenshots.glob("*-phone.png"))) == len(reports)


def test_no_dead_internal_links(book_html):
    assert len(pages(book_html)) >= 10
    problems = dead_links(book_html)
    assert not problems, "\n".join(problems)


def test_math_is_served_locally(book_html):
    intro = (book_html / "notebooks" / "intro.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in intro
    assert "cdn.jsdelivr.net/npm/mathjax" not in intro
    assert (book_html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_every_chapter_offers_its_notebook_and_the_command_that_reruns_it(book_html):
    chapters = sorted((book_html / "notebooks").glob("*.html"))
    assert len(chapters) >= 10
    for page in chapters:
        html = page.read_text()
        assert f"papermill notebooks/{page.stem}.ipynb" in html, f"{page.name}: no rerun command"
        assert "rerun-this-chapter" in html, f"{page.name}: no 'Rerun this chapter' section"
        assert f"{page.stem}.ipynb" in html and "download" in html.lower(), f"{page.name}: no download button"


def _first_page_with(root: Path, needle: str) -> Path:
    for page in pages(root):
        if needle in page.read_text():
            return page
    raise AssertionError(f"no page contains {needle!r}")


def _a_wide_image(root) -> str:
    """The name of a figure of the book wider than 400 px."""
    import struct

    for path in sorted((root / "_images").glob("*.png")):
        width = struct.unpack(">I", path.read_bytes()[16:20])[0]
        if width > 400:
            return path.name
    raise AssertionError("the book has no figure wider than 400 px")


def test_checks_catch_a_broken_image_raw_math_and_a_dead_link(broken_copy, chromium):
    # a broken image: delete the file behind the first figure
    page = _first_page_with(broken_copy, "<img")
    src = re.search(r'<img[^>]+src="([^"]+)"', page.read_text()).group(1)
    (page.parent / src).unlink()
    # an unrendered equation: raw TeX outside any math element
    other = _first_page_with(broken_copy, "</main>")
    other.write_text(other.read_text().replace("</main>", "<p>$$ x^2 + 1 $$</p></main>", 1))
    # markdown bold glued into a plain-text role
    bold = broken_copy / "notebooks" / "lipschitz.html"
    bold.write_text(bold.read_text().replace("</main>", "<p>R1: **holds** (1.10)</p></main>", 1))
    # a dead internal link
    third = broken_copy / "notebooks" / "taylor_margin.html"
    third.write_text(third.read_text().replace("</main>", '<a href="no_such_page.html">gone</a></main>', 1))

    # a results table with a missing value and a verdict beside smoke-preset numbers; a cpu-preset run of one
    # iteration (no verdict) with a verdict word beside it
    fourth = broken_copy / "notebooks" / "framework.html"
    fourth.write_text(fourth.read_text().replace(
        "</main>", "<div class='cell'><table><tr><th>ours: FDD (digits, smoke, 20 it.)</th><th>verdict</th></tr>"
                   "<tr><td>nan</td><td>holds</td></tr></table></div>"
                   "<div class='cell'><table><tr><th>ours: FDD (digits, cpu, 1 it., final; no verdict)</th></tr>"
                   "<tr><td>12.0</td></tr></table><p>cannot tell at this noise</p></div>"
                   # a table wider than the column and not framed, with raw math; an object repr; a shrunk figure
                   "<table style='width:4000px'><tr><td>$x^2$ raw</td></tr></table>"
                   "<pre>&lt;torch._C.Generator at 0x7fb0dfd3b2b0&gt;</pre>"
                   f"<div class='cell_output'><img src='../_images/{_a_wide_image(broken_copy)}' "
                   "style='width:60px;min-width:0'></div>"
                   # a figure wider than the column
                   f"<div class='cell_output'><img src='../_images/{_a_wide_image(broken_copy)}' "
                   "style='width:3000px;max-width:none'></div></main>", 1))

    links = dead_links(broken_copy)
    assert any("no_such_page.html" in p for p in links)
    assert any(src in p for p in links)
    broken = {str(p.relative_to(broken_copy)) for p in (page, other, fourth, bold)}
    reports = {r.page: r.problems for r in check_pages(broken_copy, None, {"desktop": (1280, 900)}, only=broken)}
    rel = str(page.relative_to(broken_copy))
    assert any("image did not load" in p for p in reports[rel]), reports[rel]
    assert any("raw markup" in p for p in reports[str(other.relative_to(broken_copy))])
    assert any("raw markup" in p and "**holds**" in p for p in reports["notebooks/lipschitz.html"])
    table_problems = reports["notebooks/framework.html"]
    assert any("missing value" in p for p in table_problems), table_problems
    assert sum("cannot carry one" in p for p in table_problems) == 2, table_problems
    for expected in ("table wider than its column", "unrendered $ in a table", "object repr in an output",
                     "figure text shown at", "figure wider than its column"):
        assert any(expected in p for p in table_problems), (expected, table_problems)
    assert any("beside a number that cannot carry one" in p for p in table_problems), table_problems


def test_the_sideways_check_catches_a_page_wider_than_a_phone(broken_copy, chromium):
    page = broken_copy / "notebooks" / "taylor_margin.html"
    page.write_text(page.read_text().replace("</main>", "<p style='white-space:nowrap'>" + "x" * 200 + "</p></main>",
                                             1))
    reports = check_pages(broken_copy, None, {"phone": (390, 844)}, only={"notebooks/taylor_margin.html"})
    assert any("scrolls sideways" in p for p in reports[0].problems), reports[0].problems


def test_the_phone_check_catches_a_figure_that_does_not_open(broken_copy, chromium):
    page = broken_copy / "notebooks" / "table2_cifar10.html"  # it shows figures as wide as a desktop's column
    text = page.read_text()
    assert "<img" in text and "mmgan.js" in text
    page.write_text(text.replace("mmgan.js", "missing.js"))  # the script that makes figures links is gone
    reports = check_pages(broken_copy, None, {"phone": (390, 844)}, only={"notebooks/table2_cifar10.html"})
    assert any("does not open at full size" in p for p in reports[0].problems), reports[0].problems
    # without the script, figures also shrink to the column, and their text below 7 CSS px
    assert any("figure text shown at" in p and "on a phone" in p for p in reports[0].problems), reports[0].problems


def test_the_text_size_check_needs_every_figure_to_record_its_text(book_html, chromium, tmp_path):
    reports = check_pages(book_html, None, {"desktop": (1280, 900)}, only={"notebooks/intro.html"},
                          notebooks=tmp_path)  # no chapter here: no figure's text size is known
    assert any("no recorded text size" in p for p in reports[0].problems), reports[0].problems
