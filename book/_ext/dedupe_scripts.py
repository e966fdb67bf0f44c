"""Drop repeated <script> entries from every page.

With jupyter-book 1.0.4 and sphinx-book-theme 1.3, the env-before-read-docs hooks of sphinx-thebe and
sphinx-togglebutton run twice per build, so each page declares `const THEBE_JS_URL` twice, which a
browser reports as a console error ("Identifier ... has already been declared"). Identical entries
(same file or inline body, same attributes) are kept once, in their first position.
"""

from __future__ import annotations

from sphinx.application import Sphinx


def _key(script) -> tuple:
    """Sphinx's script entries: a file name (None for inline scripts) and attributes (the inline body too)."""
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", str(script)) or ""  # inline scripts: None or "" depending on the caller
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _dedupe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
