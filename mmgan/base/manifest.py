"""Manifests: the SHA-256 of every committed results file, checked wherever a file is read.

A folder of committed results (a GAN study, a Table 1 variant, the critic-margins measurements, the protocol
search) holds ``MANIFEST.json``: ``{"files": {relative path: SHA-256}}`` for every file under it, except
machine-local ones (:data:`UNLISTED`, hidden files) and files under a subfolder that has a manifest of its own.

* :func:`verify_listed` — called by every reader of :mod:`mmgan.base.results` (and the run-folder readers):
  a file listed by the manifest of the nearest folder above it must have the listed digest, or it is refused,
  named, with the remedy. A file no manifest lists (a user's own runs, a cache) is read as it is.
* :func:`verify_manifest` — a whole folder: every listed file present and unchanged (the chapters and
  ``mmgan table`` check a study before reading any of it, so a deleted run is named, not retrained).
* :func:`write_manifest` / :func:`record_in_manifest` — written by ``mmgan manifest`` after a deliberate
  change, and by the commands that write committed results (Table 1, critic margins) for what they wrote.

Digests are cached per file (path, inode, size, modification time), so a file is hashed once per process.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from mmgan.base.atomic import atomic_write_text

MANIFEST = "MANIFEST.json"
#: What a manifest leaves out (besides hidden files such as ``.lock`` and unfinished atomic writes): files that
#: belong to a machine's own runs, not to the committed results.
UNLISTED = ("checkpoint.pt", MANIFEST)

_digests: dict[tuple[str, int, int, int], str] = {}
_manifests: dict[tuple[str, int, int, int], dict[str, str]] = {}


def file_digest(path: Path | str) -> str:
    """The SHA-256 of a file (hex), computed once per version of the file in this process."""
    path = Path(os.path.abspath(path))
    stat = path.stat()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def _listable(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name not in UNLISTED


def manifest_files(folder: Path | str) -> list[Path]:
    """The results files a manifest of ``folder`` lists (sorted): every file under it but hidden ones (or under a
    hidden folder, such as an unfinished margin study's ``.partial``), :data:`UNLISTED` ones and those under a
    subfolder with a manifest of its own."""
    folder = Path(folder)
    nested = {p.parent for p in folder.rglob(MANIFEST) if p.parent != folder}
    return sorted(p for p in folder.rglob("*")
                  if _listable(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                  and not any(n in p.parents for n in nested))


def read_manifest(folder: Path | str) -> dict[str, str]:
    """The ``files`` mapping of ``folder/MANIFEST.json`` (a copy; parsed once per version of the file);
    ``ValueError`` naming it when it is not a manifest."""
    path = Path(os.path.abspath(Path(folder) / MANIFEST))
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write one with `mmgan manifest {folder}`")
    stat = path.stat()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _manifests:
        _manifests[key] = _parse_manifest(path, Path(folder))
    return dict(_manifests[key])


def _parse_manifest(path: Path, folder: Path) -> dict[str, str]:
    try:
        files = json.loads(path.read_text(encoding="utf-8")).get("files")
    except (ValueError, UnicodeDecodeError, AttributeError) as error:
        raise ValueError(f"{path}: not a manifest ({type(error).__name__}); restore it "
                         f"(git checkout -- {path}) or rewrite it with `mmgan manifest {folder}`") from None
    if not isinstance(files, dict) or not files or not all(isinstance(v, str) for v in files.values()):
        raise ValueError(f"{path}: lists no files; restore it (git checkout -- {path}) or rewrite it with "
                         f"`mmgan manifest {folder}`")
    return files


def _write(folder: Path, files: dict[str, str]) -> Path:
    path = folder / MANIFEST
    atomic_write_text(path, json.dumps({"files": dict(sorted(files.items()))}, indent=1) + "\n")
    return path


def write_manifest(folder: Path | str) -> Path:
    """Write ``folder/MANIFEST.json`` listing every results file under ``folder`` (:func:`manifest_files`)."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): file_digest(p) for p in manifest_files(folder)}
    if not files:
        raise ValueError(f"{folder} holds no results files to list")
    return _write(folder, files)


def record_in_manifest(folder: Path | str, paths: Iterable[Path | str]) -> Path:
    """Add (or update) ``paths`` in ``folder/MANIFEST.json``, creating it: what a command that writes committed
    results calls for the files it wrote."""
    folder = Path(folder)
    files = read_manifest(folder) if (folder / MANIFEST).is_file() else {}
    for path in paths:
        files[Path(os.path.abspath(path)).relative_to(os.path.abspath(folder)).as_posix()] = file_digest(path)
    return _write(folder, files)


def _rewrite(folder: Path) -> str:
    return f"if you changed it on purpose, rewrite the manifest with `mmgan manifest {folder}`"


def verify_manifest(folder: Path | str) -> None:
    """Check every file of ``folder/MANIFEST.json`` against its SHA-256; ``ValueError`` naming each file that is
    missing or differs, and the remedies."""
    folder = Path(folder)
    files = read_manifest(folder)
    missing = sorted(name for name in files if not (folder / name).is_file())
    changed = sorted(name for name in files if (folder / name).is_file() and file_digest(folder / name) != files[name])
    if missing or changed:
        raise ValueError(f"{folder}: results files differ from its manifest ({MANIFEST}): "
                         + "; ".join(([f"missing: {', '.join(missing)}"] if missing else [])
                                     + ([f"changed: {', '.join(changed)}"] if changed else []))
                         + f". Restore them (git checkout -- {folder}), or {_rewrite(folder)}")


def unlisted_files(folder: Path | str) -> list[Path]:
    """Results files under ``folder`` that its manifest does not list (new runs, files added by hand)."""
    folder = Path(folder)
    listed = set(read_manifest(folder))
    return [p for p in manifest_files(folder) if p.relative_to(folder).as_posix() not in listed]


def nearest_manifest(path: Path | str) -> Path | None:
    """The nearest folder above ``path`` that holds a manifest (None if there is none)."""
    for folder in Path(os.path.abspath(path)).parents:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def verify_listed(path: Path | str) -> None:
    """Refuse ``path`` (``ValueError`` naming it, its digests and the remedies) when the nearest manifest above it
    lists it with another SHA-256; nothing happens for a file that no manifest lists."""
    path = Path(os.path.abspath(path))
    folder = nearest_manifest(path)
    if folder is None:
        return
    expected = read_manifest(folder).get(path.relative_to(folder).as_posix())
    if expected is None:
        return
    found = file_digest(path)
    if found != expected:
        raise ValueError(f"{path}: differs from the file its manifest {folder / MANIFEST} lists (SHA-256 "
                         f"{found[:12]}…, listed {expected[:12]}…), so it is refused: restore it "
                         f"(git checkout -- {path}), or {_rewrite(folder)}")


def main_manifest(argv: list[str] | None = None) -> int:
    """``mmgan manifest FOLDER...``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="mmgan manifest",
        description="Write MANIFEST.json in each folder: the SHA-256 of every results file under it, which every "
                    "reader of the project then checks. Run it after you change committed results on purpose.")
    parser.add_argument("folders", type=Path, nargs="+", metavar="FOLDER",
                        help="a study folder (e.g. results/gan/table2/cpu-c001dc6bbf3d), a Table 1 variant, or "
                             "results/critic_margins")
    args = parser.parse_args(argv)
    for folder in args.folders:
        if not folder.is_dir():
            parser.exit(2, f"mmgan manifest: error: {folder} is not a folder; give a folder of results files\n")
        try:
            print(f"wrote {write_manifest(folder)} ({len(read_manifest(folder))} files)")
        except ValueError as error:
            parser.exit(2, f"mmgan manifest: error: {error}\n")
    return 0


def main_verify(argv: list[str] | None = None) -> int:
    """``mmgan verify [FOLDER...]``."""
    import argparse
    import sys

    from mmgan.base.paths import results_root

    parser = argparse.ArgumentParser(
        prog="mmgan verify",
        description="Check results files against their manifests: every listed file present and with its "
                    "SHA-256. Without a folder, every manifest under the project's results root.")
    parser.add_argument("folders", type=Path, nargs="*", metavar="FOLDER",
                        help="folders holding a MANIFEST.json (default: every one under the results root)")
    args = parser.parse_args(argv)
    root = results_root()
    folders = args.folders or sorted(p.parent for p in root.rglob(MANIFEST))
    if not folders:
        parser.exit(2, f"mmgan verify: error: no {MANIFEST} under {root}; give a folder, or set MMGAN_RESULTS\n")
    failed = 0
    for folder in folders:
        try:
            verify_manifest(folder)
        except (OSError, ValueError) as error:
            print(f"mmgan verify: error: {error}", file=sys.stderr, flush=True)
            failed += 1
            continue
        extra = unlisted_files(folder)
        print(f"{folder}: {len(read_manifest(folder))} files match" +
              (f"; {len(extra)} not listed (e.g. {extra[0].relative_to(folder)})" if extra else ""))
    return 2 if failed else 0
