"""One vocabulary for verdicts (issue 35): what the chapters print says *holds*, *does not hold*, *no effect larger
than …*, *cannot tell at this noise*, *not comparable* (the introduction defines each), and none of the drifted
phrases that crept in beside them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mmgan.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[1]
#: Phrases once printed in place of a verdict word, and the word the book uses instead.
DRIFT = {r"\bthey (grow|shrink)\b": "holds / does not hold", r"\bnot confirmed\b": "does not hold",
         r"\bno change larger than\b": "no effect larger than",
         r"\? cannot tell(?! at this noise)": "cannot tell at this noise"}


def rendered_text(path: Path) -> str:
    """What a chapter shows: its markdown and every text its cells output."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    parts = []
    for cell in cells:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            parts += ["".join(data[k]) for k in ("text/markdown", "text/html", "text/plain") if k in data]
    return "\n".join(parts)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_no_chapter_prints_a_verdict_outside_the_vocabulary(path):
    text = rendered_text(path)
    for pattern, instead in DRIFT.items():
        found = re.search(pattern, text)
        assert found is None, (f"{path.name} prints {found.group(0)!r} "
                               f"(…{text[max(0, found.start() - 80):found.end() + 40]}…); the book says {instead!r}")


def test_the_drift_patterns_catch_what_they_are_for():
    assert all(re.search(p, s) for p, s in zip(DRIFT, ["margins: they shrink", "is not confirmed at λ = 10",
                                                       "no change larger than 10%", "? cannot tell |"]))
    assert not any(re.search(p, str(v)) for p in DRIFT for v in Verdict)
