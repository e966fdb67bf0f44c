"""Checks of the rendered book as a reader's browser sees it (headless Chromium via Playwright).

For every HTML page: no console errors or uncaught exceptions, every image loaded,
every math element typeset by MathJax (no raw $$ or \\[ left in the text), no
unpasted glue roles, no missing value (NaN) shown in a table, no verdict word in the
output of a cell whose table reports numbers that cannot carry one (smoke preset, "no
verdict"), no object repr (``<... at 0x...>``) in an output, no unrendered ``$`` in a
table, no table wider than its column unless it scrolls inside its frame, no figure wider than its column (clipped)
on a desktop, and every
internal link pointing at an existing file and anchor; on a phone, no page that scrolls sideways and every figure
a link to its own image (tap to see it at the size it was drawn). At both widths, the smallest text of every
figure, as shown (its size in the drawn image, recorded in the notebook's output by
:mod:`mmgan.book.figure_text`, times the shown / drawn width), is at least :data:`MIN_TEXT_CSS_PX` CSS px.
Screenshots at desktop and phone widths are written to a folder for people to look at.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}
#: The executed chapters the book was rendered from (their outputs record each figure's text size).
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _playwright_chromium() -> str | None:
    """The browser `python -m playwright install chromium` downloads, if it is there."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as p:
        return p.chromium.executable_path


def chromium_path() -> str | None:
    """$MMGAN_CHROMIUM, Debian's chromium, one on PATH, or Playwright's own download (in that order)."""
    for candidate in (os.environ.get("MMGAN_CHROMIUM"), CHROMIUM, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    candidate = _playwright_chromium()
    return candidate if candidate and Path(candidate).is_file() else None


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) for the duration of the block."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.links.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.links.append(attrs["href"])


def pages(root: Path) -> list[Path]:
    """The book's pages (search and index pages of Sphinx included, generated files excluded)."""
    skip = ("_static", "_sources", "_images", "_downloads", "jupyter_execute", ".doctrees")
    return sorted(p for p in root.rglob("*.html") if not any(part in skip for part in p.relative_to(root).parts))


def dead_links(root: Path) -> list[str]:
    """Internal links, images and scripts whose file or #anchor does not exist."""
    parsed: dict[Path, _Links] = {}

    def parse(path: Path) -> _Links:
        if path not in parsed:
            parser = _Links()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            parsed[path] = parser
        return parsed[path]

    problems = []
    for page in pages(root):
        for link in parse(page).links:
            url = urlparse(link)
            if url.scheme or link.startswith("//") or link.startswith("mailto:"):
                continue
            target = page if not url.path else (page.parent / unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page.relative_to(root)}: missing {link}")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in parse(target).ids:
                problems.append(f"{page.relative_to(root)}: missing anchor {link}")
    return problems


@dataclass
class PageReport:
    page: str
    problems: list[str] = field(default_factory=list)


#: Markup that did not render: display TeX, a glue role, markdown bold inside glued text (glue:text is plain).
RAW_MATH = re.compile(r"\$\$|\\\[|\\begin\{|\{glue:|\*\*[A-Za-z][^*\n]{0,80}\*\*")
#: An object's default repr in an output (``<torch._C.Generator at 0x7f...>``): housekeeping that leaked.
OBJECT_REPR = re.compile(r"<[\w.]+(?: object)? at 0x[0-9a-f]+>")
#: The smallest text a figure may show, in CSS px, on a desktop and on a phone (issue 35).
MIN_TEXT_CSS_PX = {"desktop": 9.0, "phone": 7.0}


def recorded_text_sizes(notebooks: Path) -> dict[str, float]:
    """Image file name as the book names it (SHA-256 of the PNG, as myst-nb writes it) → the size in image pixels
    of the figure's smallest text, recorded in the chapters' outputs (:mod:`mmgan.book.figure_text`)."""
    import base64
    import hashlib
    import json

    from mmgan.book.figure_text import SMALLEST_TEXT_KEY

    sizes = {}
    for path in sorted(notebooks.glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                size = output.get("metadata", {}).get("image/png", {}).get(SMALLEST_TEXT_KEY)
                if png and size is not None:
                    sizes[hashlib.sha256(base64.b64decode(png)).hexdigest() + ".png"] = float(size)
    return sizes


def small_text(figures: list[dict], sizes: dict[str, float], label: str) -> list[str]:
    """Problems of the figures of one page at one width: text shown smaller than the width's minimum, or a
    figure whose text size no chapter recorded."""
    problems = []
    for figure in figures:
        name = figure["src"].rsplit("/", 1)[-1]
        if name not in sizes:
            problems.append(f"figure with no recorded text size (not drawn by mmgan.book.plots?): {name}")
            continue
        shown = sizes[name] * figure["shown"] / figure["drawn"]
        if shown < MIN_TEXT_CSS_PX[label]:
            problems.append(f"figure text shown at {shown:.1f} CSS px on a {label} (at least "
                            f"{MIN_TEXT_CSS_PX[label]:g}): {name} at {figure['shown']} of {figure['drawn']} px")
    return problems

CHECK_SCRIPT = """
async () => {
  const out = {images: [], math: [], raw: null};
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) out.images.push(img.getAttribute('src'));
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  for (const el of document.querySelectorAll('.math')) {
    if (!el.querySelector('mjx-container') && !el.closest('mjx-container')) out.math.push(el.textContent.slice(0, 60));
  }
  const main = document.querySelector('main') || document.body;
  out.raw = main.innerText;
  // results tables: no missing value shown as a number, no verdict word beside a number from runs that cannot
  // carry one (a smoke preset, or a table marked "no verdict": one seed, one evaluation, runs that did not learn)
  out.nan = []; out.smoke_verdicts = [];
  for (const table of main.querySelectorAll('table')) {
    for (const cell of table.querySelectorAll('td, th')) {
      const text = cell.textContent.trim();
      if (/^(nan|NaN|<NA>|None)$/.test(text) || /\\bnan\\b/i.test(text) && /±/.test(text)) out.nan.push(text);
    }
    const header = Array.from(table.querySelectorAll('th')).map(th => th.textContent).join(' ');
    if (/\\bsmoke\\b|no verdict/.test(header)) {
      const scope = table.closest('.cell') || table;
      const verdict = scope.innerHTML.replace(/<[^>]+>/g, ' ')
        .match(/\\b(holds|does not hold|mixed|cannot tell|no effect larger)\\b/);
      if (verdict) out.smoke_verdicts.push(verdict[0]);
    }
  }
  // tables wider than their column must scroll inside a frame; no raw $ (unrendered math) in a table
  out.wide = []; out.dollars = [];
  const column = main.getBoundingClientRect();
  for (const table of main.querySelectorAll('table')) {
    let framed = false;
    for (let el = table.parentElement; el && el !== main; el = el.parentElement) {
      const style = getComputedStyle(el).overflowX;
      if (style === 'auto' || style === 'scroll') { framed = true; break; }
    }
    if (!framed && getComputedStyle(table).overflowX !== 'auto'
        && table.getBoundingClientRect().right > column.right + 1) {
      out.wide.push((table.querySelector('th, td') || table).textContent.trim().slice(0, 50));
    }
    for (const cell of table.querySelectorAll('td, th')) {
      if (!cell.querySelector('mjx-container') && /\\$/.test(cell.textContent)) {
        out.dollars.push(cell.textContent.trim().slice(0, 50));
      }
    }
  }
  // every figure of an output: shown and drawn widths (its text is shown at drawn text size × shown / drawn)
  // and whether it is wider than its output's frame (clipped, to be scrolled), which a desktop must never need
  out.figures = [];
  for (const img of main.querySelectorAll('.cell_output img')) {
    if (img.naturalWidth > 0) out.figures.push({src: img.getAttribute('src'), shown: img.getBoundingClientRect().width,
                                                drawn: img.naturalWidth,
                                                clipped: img.getBoundingClientRect().width
                                                         > img.closest('.cell_output').clientWidth + 1});
  }
  // every figure opens at the size it was drawn (a phone shrinks it, and its text, to the column)
  out.unlinked = [];
  for (const img of main.querySelectorAll('.cell_output img')) {
    const link = img.closest('a');
    if (!link || link.href !== img.currentSrc && link.href !== img.src) out.unlinked.push(img.getAttribute('src'));
  }
  // the page itself must not scroll sideways (checked on a phone, where a long heading or code would push it)
  out.sideways = document.documentElement.scrollWidth - window.innerWidth;
  return out;
}
"""


def check_pages(root: Path, screenshots: Path | None = None, viewports: dict = VIEWPORTS,
                only: set[str] | None = None, notebooks: Path = NOTEBOOKS) -> list[PageReport]:
    """Open every page (or the pages named in ``only``, relative to ``root``) in headless Chromium and collect
    what a reader would see go wrong; the figures' text sizes are read from the chapters in ``notebooks``."""
    from playwright.sync_api import sync_playwright

    reports = []
    text_sizes = recorded_text_sizes(notebooks)
    with serve(root) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            for page_path in pages(root):
                name = str(page_path.relative_to(root))
                if only is not None and name not in only:
                    continue
                report = PageReport(name)
                for label, (width, height) in viewports.items():
                    context = browser.new_context(viewport={"width": width, "height": height})
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("console",
                            lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error" else None)
                    page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                    page.goto(urljoin(base, name), wait_until="load")
                    page.wait_for_load_state("networkidle")
                    found = page.evaluate(CHECK_SCRIPT)
                    if label == "desktop":
                        report.problems += [f"console error: {e}" for e in errors]
                        report.problems += [f"image did not load: {src}" for src in found["images"]]
                        report.problems += [f"math not typeset: {text!r}" for text in found["math"]]
                        report.problems += [f"missing value shown in a table: {text!r}" for text in found["nan"]]
                        report.problems += [f"verdict word {word!r} beside a number that cannot carry one"
                                            for word in found["smoke_verdicts"]]
                        report.problems += [f"table wider than its column, not framed: {text!r}"
                                            for text in found["wide"]]
                        report.problems += [f"unrendered $ in a table: {text!r}" for text in found["dollars"]]
                        report.problems += [f"figure wider than its column (clipped): {f['src']}"
                                            for f in found["figures"] if f["clipped"]]
                        report.problems += [f"object repr in an output: {m.group(0)!r}"
                                            for m in OBJECT_REPR.finditer(found["raw"] or "")]
                        for match in RAW_MATH.finditer(found["raw"] or ""):
                            context_text = found["raw"][max(0, match.start() - 30): match.end() + 30]
                            report.problems.append(f"raw markup in the text: {context_text!r}")
                    else:
                        if found["sideways"] > 1:
                            report.problems.append(f"the page scrolls sideways by {found['sideways']} px on a {label}")
                        report.problems += [f"figure that does not open at full size on a {label}: {src}"
                                            for src in found["unlinked"]]
                    report.problems += small_text(found["figures"], text_sizes, label)
                    if screenshots is not None:
                        screenshots.mkdir(parents=True, exist_ok=True)
                        shot = screenshots / f"{name.replace('/', '__')}-{label}.png"
                        page.screenshot(path=str(shot), full_page=False)
                    context.close()
                reports.append(report)
        finally:
            browser.close()
    return reports
