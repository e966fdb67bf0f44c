"""Serve MathJax from the built book instead of a CDN, so equations render without network.

The MathJax 3 distribution comes from the PyPI package django-static-mathjax (pinned in
requirements-lock.txt; it ships the files and needs nothing else). Its es5/ folder is copied
to _build/html/_static/mathjax/ when an HTML build finishes, and Sphinx's mathjax_path points there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx

MATHJAX_PATH = "mathjax/tex-chtml.js"


def _distribution() -> Path:
    import mathjax  # the django-static-mathjax package

    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax's es5 build was not found at {es5}; install django-static-mathjax")
    return es5


def _set_path(app: Sphinx, config) -> None:
    config.mathjax_path = MATHJAX_PATH


def _copy(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(_distribution(), Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    _distribution()  # fail early with a clear message
    app.connect("config-inited", _set_path)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
