import shutil
from pathlib import Path

import pytest
from book_checks import chromium_path


def pytest_addoption(parser):
    parser.addoption("--book-html", default="_build/html", help="the built book to test")
    parser.addoption("--screenshots", default="_build/screenshots", help="where page screenshots are written")


@pytest.fixture(scope="session")
def book_html(request) -> Path:
    path = Path(request.config.getoption("--book-html"))
    if not (path / "index.html").is_file():
        pytest.fail(f"no built book at {path}: run `jupyter-book build .` first (make test does)")
    return path


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium); the browser checks need one")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    return path


@pytest.fixture
def broken_copy(book_html, tmp_path) -> Path:
    copy = tmp_path / "html"
    shutil.copytree(book_html, copy)
    return copy
