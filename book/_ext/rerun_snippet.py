"""Close every chapter page with the command that reruns it, and its parameters.

For each document under notebooks/, the parameters cell (tagged ``parameters``) is read with
papermill's parser and a "Rerun this chapter" section is appended: the papermill command line and a
list of the parameters with their help text, so a reader can regenerate what the page shows.
"""

from __future__ import annotations

import ast
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

from mmgan.book.commands import rerun_command


def _parameters(path: Path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(path))


def _value(default: str) -> object:
    """A parameter's default as papermill reports it (Python source) turned back into its value."""
    try:
        return ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return default


def _append_snippet(app: Sphinx, doctree: nodes.document) -> None:
    docname = app.env.docname
    if not docname.startswith("notebooks/"):
        return
    path = Path(app.srcdir) / f"{docname}.ipynb"
    if not path.is_file():
        return
    name = Path(docname).name
    section = nodes.section(ids=["rerun-this-chapter"])
    section += nodes.title(text="Rerun this chapter")
    section += nodes.paragraph(text="From the repository root, with the environment of the README:")
    params = _parameters(path)
    first = [(info["name"], _value(info["default"])) for info in list(params.values())[:1]]
    section += nodes.literal_block(text=rerun_command(name, first), language="bash")
    if params:
        section += nodes.paragraph(text="Parameters (defaults as executed on this page):")
        items = nodes.bullet_list()
        for info in params.values():
            item = nodes.list_item()
            para = nodes.paragraph()
            para += nodes.literal(text=f"{info['name']} = {info['default']}")
            para += nodes.Text(f": {info['help']}")
            item += para
            items += item
        section += items
    doctree += section


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", _append_snippet)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
