"""Facts that stand on two pages of the rendered book must agree: the introduction's overview of the GAN
propositions against each table chapter's own propositions, and its computed status notes against the chapters."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from mmgan.book.table_chapters import chapter_notebooks
from mmgan.verdicts import Verdict

CHAPTERS = chapter_notebooks()


def tables(page: Path) -> list[list[list[str]]]:
    """Every table of a page as rows of cell texts (header rows included)."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    out = []
    for table in soup.select("main table"):
        rows = [[" ".join(cell.get_text(" ", strip=True).split()) for cell in row.find_all(["th", "td"])]
                for row in table.find_all("tr")]
        out.append(rows)
    return out


#: The two judgements of a proposition, as the columns of both tables name them.
JUDGEMENTS = ("verdict", "reliability verdict")


def chapter_verdicts(page: Path, judgement: str = "verdict") -> dict[str, str]:
    """Proposition → one judgement of a table chapter's propositions table (the first with a 'verdict' column)."""
    for rows in tables(page):
        header = next((row for row in rows if "verdict" in row), None)
        if header is None or not any("ratio other / better" in cell for cell in header):
            continue
        column = header.index(judgement)
        verdicts = {}
        for row in rows:
            if len(row) == len(header) and row[0] not in ("", "proposition") and row != header:
                verdicts[row[0]] = row[column]
        return verdicts
    return {}


def overview_verdicts(page: Path, judgement: str = "verdict") -> dict[tuple[str, str], str]:
    """(table, proposition) → one judgement of the introduction's overview table."""
    for rows in tables(page):
        header = next((row for row in rows if "verdict" in row and "evidence" in row), None)
        if header is None:
            continue
        out, table = {}, None
        for row in rows:
            if row and row[0].startswith("Table "):
                table = row[0]
                row = row[1:]
            if table and len(row) == len(header) - 1 and row[0] not in ("proposition",):
                out[(table.removeprefix("Table "), row[0])] = row[header.index(judgement) - 1]
        return out
    return {}


#: The verdict words of the book (mmgan.verdicts.Verdict), longest first so that a clause takes the whole.
VERDICT_WORDS = sorted((str(verdict) for verdict in Verdict), key=len, reverse=True)
#: The chapters of the studies beyond the paper whose verdicts the introduction's status table repeats.
BEYOND = ("critic_margins", "zero_centred")


#: Norm names as inline maths (before MathJax: ``\(L^2\)``) and as the Unicode the status notes print (``L²``).
SUPERSCRIPTS = {"1": "¹", "2": "²", "\\infty": "^∞", "q": "^q", "p": "^p"}


def _text(node) -> str:
    """A node's text with its whitespace collapsed and its norm names written one way (``L²``, ``L^∞``)."""
    text = " ".join(node.get_text(" ", strip=True).split())
    text = re.sub(r"\\\(\s*L\^\{?(1|2|\\infty|q|p)\}?\s*\\\)", lambda m: "L" + SUPERSCRIPTS[m.group(1)], text)
    return text.replace("L^\\infty", "L^∞")


def _numbers(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"-?\d+\.\d+", text.replace("−", "-")))


def status_claims(intro: Path, chapter: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(proposition, verdict, its numbers) of each "proposition: verdict (ratio [interval])" clause in the
    introduction's status row of a chapter. The numbers tell apart one proposition judged at several settings (R1
    at λ = 0.1 and at λ = 1)."""
    soup = BeautifulSoup(intro.read_text(encoding="utf-8"), "html.parser")
    row = next((tr for tr in soup.select("main table tr") if tr.select_one(f"a[href*='{chapter}']")
                and "Computed:" in tr.get_text()), None)
    if row is None:
        return []
    words = "|".join(re.escape(word) for word in VERDICT_WORDS)
    return [(proposition.strip(), verdict, _numbers(numbers))
            for proposition, verdict, numbers in re.findall(rf"([^:;.]+?): ({words})\b(?: \(([^()]*)\))?", _text(row))]


def chapter_states(page: Path, proposition: str, verdict: str, numbers: tuple[str, ...] = ()) -> bool:
    """Whether a chapter page says ``proposition: verdict`` with the same numbers, in a sentence or in one row of one
    of its tables."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    text = _text(soup.select_one("main") or soup)
    for match in re.finditer(re.escape(f"{proposition}: {verdict}"), text):
        if set(numbers) <= set(_numbers(text[match.end(): match.end() + 80])):
            return True
    return any(proposition in row and verdict in row and set(numbers) <= set(_numbers(row))
               for row in map(_text, soup.select("main table tr")))


def status_disagreements(html: Path) -> list[str]:
    """Every verdict the introduction's status table gives for a study beyond the paper, missing from its chapter."""
    problems = []
    for chapter in BEYOND:
        claims = status_claims(html / "notebooks" / "intro.html", chapter)
        if not claims:
            problems.append(f"the introduction's status row of {chapter} states no verdict")
        page = html / "notebooks" / f"{chapter}.html"
        problems += [f"{chapter}: the introduction says {proposition!r}: {verdict!r} {numbers}, the chapter does not"
                     for proposition, verdict, numbers in claims if not chapter_states(page, proposition, verdict,
                                                                                       numbers)]
    return problems


def disagreements(html: Path) -> list[str]:
    problems = []
    for judgement in JUDGEMENTS:
        overview = overview_verdicts(html / "notebooks" / "intro.html", judgement)
        if not overview:
            problems.append(f"the introduction shows no overview of the propositions' {judgement}")
        for (table, proposition), verdict in overview.items():
            own = chapter_verdicts(html / "notebooks" / f"{CHAPTERS[table]}.html", judgement)
            if own.get(proposition) != verdict and not (verdict.startswith("not comparable")
                                                        and str(own.get(proposition, "")).startswith("not comparable")):
                problems.append(f"Table {table}, {proposition}: the introduction's {judgement} is {verdict!r}, the "
                                f"chapter's {own.get(proposition)!r}")
    problems += status_disagreements(html)
    return problems


def test_the_introduction_agrees_with_every_chapter(book_html):
    assert disagreements(book_html) == []


def test_the_check_catches_a_chapter_that_says_otherwise(book_html, tmp_path):
    copy = tmp_path / "html"
    shutil.copytree(book_html, copy)
    overview = overview_verdicts(copy / "notebooks" / "intro.html")
    if not overview:
        pytest.fail("the introduction shows no overview of the propositions")
    (table, proposition), verdict = next(iter(overview.items()))
    page = copy / "notebooks" / f"{CHAPTERS[table]}.html"
    other = "holds" if verdict != "holds" else "does not hold"
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace(f">{verdict}<", f">{other}<", 1), encoding="utf-8")
    assert any(proposition in problem for problem in disagreements(copy))


def test_the_check_catches_a_reliability_verdict_that_differs(book_html, tmp_path):
    copy = tmp_path / "html"
    shutil.copytree(book_html, copy)
    page = copy / "notebooks" / "intro.html"
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    for table in soup.select("main table"):  # the overview: its first row's reliability cell says otherwise
        rows = table.find_all("tr")
        header = next(([" ".join(c.get_text(" ", strip=True).split()) for c in r.find_all(["th", "td"])]
                       for r in rows if "reliability verdict" in r.get_text(" ")), None)
        if header is not None and "evidence" in header:
            row = next(r for r in rows if r.find("td"))
            proposition = " ".join(row.find_all("th")[-1].get_text(" ", strip=True).split())
            cells = row.find_all("td")  # the data cells; the header row has the index columns in front
            cell = cells[header.index("reliability verdict") - (len(header) - len(cells))]
            cell.string = "holds" if cell.get_text(strip=True) != "holds" else "does not hold"
            break
    else:
        pytest.fail("the introduction shows no overview with a reliability column")
    page.write_text(str(soup), encoding="utf-8")
    assert any(proposition in problem and "reliability" in problem for problem in disagreements(copy))


@pytest.mark.parametrize("chapter", BEYOND)
def test_the_check_catches_a_study_verdict_the_chapter_does_not_give(book_html, tmp_path, chapter):
    copy = tmp_path / "html"
    shutil.copytree(book_html, copy)
    claims = status_claims(copy / "notebooks" / "intro.html", chapter)
    assert claims, f"the introduction states no verdict for {chapter}"
    proposition, verdict, _ = claims[0]
    page = copy / "notebooks" / "intro.html"
    other = "holds" if verdict != "holds" else "does not hold"
    page.write_text(page.read_text(encoding="utf-8").replace(f"{proposition}: {verdict}", f"{proposition}: {other}", 1),
                    encoding="utf-8")
    assert any(chapter in problem and proposition in problem for problem in status_disagreements(copy))
