"""Result files: atomic writes, content digests, and run keys.

Experiment chapters write their results under ``results/`` and read them back,
so the book does not retrain on every build. Files are written to a temporary
name and renamed, so an interrupted run never leaves a half-written file, and
a chapter can pin the digest of the file it shows.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_savez(path: Path, compressed: bool = False, **arrays: Any) -> None:
    """``np.savez`` (or ``np.savez_compressed``) of ``arrays`` to ``path`` atomically."""
    import numpy as np

    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def config_key(config: dict[str, Any]) -> str:
    """A short stable digest of a JSON-serialisable configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


#: The manifest of a committed study: the SHA-256 of every results file under its folder.
MANIFEST = "MANIFEST.json"
#: What a manifest leaves out: files that belong to a machine's own runs, not to the committed results.
UNLISTED = ("checkpoint.pt", ".lock", MANIFEST)


def manifest_files(folder: Path) -> list[Path]:
    """The results files a manifest of ``folder`` lists (sorted; :data:`UNLISTED` left out)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in UNLISTED)


def write_manifest(folder: Path | str) -> Path:
    """Write ``folder/MANIFEST.json``: the SHA-256 of every results file under ``folder`` (atomically)."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): file_digest(p) for p in manifest_files(folder)}
    if not files:
        raise ValueError(f"{folder} holds no results files to list")
    path = folder / MANIFEST
    atomic_write_text(path, json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
    return path


def verify_manifest(folder: Path | str) -> None:
    """Check every file of ``folder/MANIFEST.json`` against its SHA-256; ``ValueError`` naming each file that is
    missing or differs (and the command that rewrites the manifest after a deliberate change)."""
    folder = Path(folder)
    rewrite = f"if you changed them on purpose, rewrite it with `mmgan manifest {folder}`"
    manifest = read_json(folder / MANIFEST, f"write one with `mmgan manifest {folder}`")
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise ValueError(f"{folder / MANIFEST}: no 'files' listed; {rewrite}")
    missing = sorted(name for name in files if not (folder / name).is_file())
    changed = sorted(name for name in files if (folder / name).is_file() and file_digest(folder / name) != files[name])
    if missing or changed:
        raise ValueError(f"{folder}: results files differ from its manifest ({MANIFEST}): "
                         + "; ".join(([f"missing: {', '.join(missing)}"] if missing else [])
                                     + ([f"changed: {', '.join(changed)}"] if changed else []))
                         + f". Restore them (git checkout -- {folder}), or {rewrite}")


def environment(device: Any = None) -> dict[str, str]:
    """Versions that produced a result (stored beside it); on a CUDA ``device`` also the GPU and the CUDA and
    cuDNN versions (a GAN run's TF32, autotuning and memory format are fields of its configuration, stored too)."""
    import numpy
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "machine": platform.machine(), "threads": str(torch.get_num_threads())}
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        out.update({"device": torch.cuda.get_device_name(device), "cuda": str(torch.version.cuda),
                    "cudnn": str(torch.backends.cudnn.version())})
    elif device is not None:
        out["device"] = device.type
    return out


@functools.cache
def code_commit() -> str:
    """The commit of the repository this package was imported from (``'<sha>+dirty'`` when its tracked files
    have changes), or ``'unknown'`` outside a git checkout."""
    here = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def results_root(path: str | Path | None = None) -> Path:
    """Where result files live: ``path`` if given, else ``$MMGAN_RESULTS``, else ``results/`` of the
    repository that contains the working directory (found by its ``_toc.yml`` and ``mmgan/``), so a
    chapter finds the same files whether it runs from ``notebooks/`` (the book, nbval) or from the
    repository root (papermill), and else ``./results``."""
    if path is not None:
        return Path(path)
    if "MMGAN_RESULTS" in os.environ:
        return Path(os.environ["MMGAN_RESULTS"])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "mmgan").is_dir():
            return folder / "results"
    return here / "results"


# ----------------------------------------------------------------------------- reading result files back
#
# A result file can be empty, truncated or corrupt (a disk that filled up, an edit by hand, a copy
# interrupted outside this project's atomic writes). The readers below turn every such failure into
# an error that names the file and says what to do, instead of a parser's message without a path.


def _remedy(path: Path, remedy: str | None) -> str:
    return remedy if remedy is not None else f"delete the folder {path.parent} and rerun the command that wrote it"


def _missing(path: Path, remedy: str | None) -> FileNotFoundError:
    return FileNotFoundError(f"{path}: result file is missing — {_remedy(path, remedy)}")


def _reason(error: BaseException) -> str:
    reason = " ".join(f"{type(error).__name__}: {error}".split())
    return reason if len(reason) <= 300 else reason[:300] + "…"


def _check_file(path: Path, remedy: str | None, what: str) -> None:
    """Raise unless ``path`` is a non-empty file (``what`` completes "not …" in the message)."""
    if not path.exists():
        raise _missing(path, remedy)
    if not path.is_file():
        raise ValueError(f"{path}: is not a file — {_remedy(path, remedy)}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: not {what} (the file is empty) — {_remedy(path, remedy)}")


def _read_bytes(path: Path, remedy: str | None, what: str) -> bytes:
    _check_file(path, remedy, what)
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"{path}: not {what} (the file is blank) — {_remedy(path, remedy)}")
    return data


def read_json(path: Path | str, remedy: str | None = None) -> Any:
    """The JSON document in ``path``.

    Raises FileNotFoundError naming ``path`` when it is missing, and ValueError naming it (with the
    parser's reason and ``remedy``, by default "delete the folder and rerun") when it is empty,
    truncated, not UTF-8 or otherwise not valid JSON.
    """
    path = Path(path)
    data = _read_bytes(path, remedy, "valid JSON")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text: {error.reason} at byte {error.start}) — "
                         f"{_remedy(path, remedy)}") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno}; "
                         f"the file is truncated or corrupt) — {_remedy(path, remedy)}") from error


def read_csv(path: Path | str, remedy: str | None = None, **kwargs: Any):
    """``pandas.read_csv(path, **kwargs)`` with errors that name ``path``.

    Raises FileNotFoundError when ``path`` is missing and ValueError when it is empty, not UTF-8,
    not parsable, or truncated: a file whose last line lacks its line break (``DataFrame.to_csv``
    ends every line with one) was cut off mid-row, which pandas would silently pad with NaN.
    """
    import pandas as pd

    path = Path(path)
    data = _read_bytes(path, remedy, "valid CSV")
    if not data.endswith(b"\n"):
        raise ValueError(f"{path}: not valid CSV (the last line is incomplete: the file is truncated or corrupt) — "
                         f"{_remedy(path, remedy)}")
    try:
        return pd.read_csv(io.BytesIO(data), **kwargs)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path}: not valid CSV ({_reason(error)}) — {_remedy(path, remedy)}") from error


def read_yaml(path: Path | str, remedy: str | None = None) -> Any:
    """The YAML file ``path`` read with PyYAML's safe loader (no ``!!python/...`` tags, nothing can run code),
    refusing a key that appears twice in one mapping (YAML would silently keep the last value).

    Raises FileNotFoundError when ``path`` is missing and ValueError naming it (and the line) when it is not
    valid YAML, uses a tag the safe loader does not know, or repeats a key.
    """
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears twice (first on line {seen[key] + 1})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeys)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).replace('"<unicode string>"', "").split())
        raise ValueError(f"{path}: not a valid configuration file ({reason})"
                         + (f" — {remedy}" if remedy else "")) from None


def read_npz(path: Path | str, remedy: str | None = None) -> dict[str, Any]:
    """Every array of the ``.npz`` archive ``path`` (read eagerly; pickles are refused).

    Raises FileNotFoundError when ``path`` is missing and ValueError naming it when it is empty,
    truncated or corrupt (including a damaged member found only while decompressing it).
    """
    import numpy as np

    path = Path(path)
    _check_file(path, remedy, "a valid npz archive")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with archive:
            return {name: archive[name] for name in archive.files}
    except Exception as error:  # zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, ...
        raise ValueError(f"{path}: not a valid npz archive ({_reason(error)}; the file is truncated or corrupt) — "
                         f"{_remedy(path, remedy)}") from error


def needs_pickle(error: Exception) -> bool:
    """Whether a weights-only ``torch.load`` refused a file for holding an object only pickle could build (a
    damaged file fails the same loader with other reasons: an unknown opcode, a truncated stream)."""
    return "unsupported global" in str(error).lower()


def read_torch(path: Path | str, remedy: str | None = None, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name ``path``: nothing in the file can run code.

    Raises FileNotFoundError when ``path`` is missing and ValueError naming it when it is empty,
    truncated, corrupt, or holds objects that only pickle could load (refused).
    """
    import torch

    path = Path(path)
    _check_file(path, remedy, "a valid torch file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # RuntimeError (zip reader), UnpicklingError, EOFError, ...
        if needs_pickle(error):
            raise ValueError(f"{path} holds Python objects that only pickle can load, so it is refused: loading it "
                             f"could run code — {_remedy(path, remedy)}") from None
        raise ValueError(f"{path}: not a valid torch file ({_reason(error)}; the file is truncated or corrupt) — "
                         f"{_remedy(path, remedy)}") from error


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Results files: write the manifest of a finished study folder.")
    parser.add_argument("command", choices=["manifest", "verify"])
    parser.add_argument("folders", type=Path, nargs="+")
    args = parser.parse_args(argv)
    for folder in args.folders:
        try:
            if args.command == "manifest":
                print(f"wrote {write_manifest(folder)}")
            else:
                verify_manifest(folder)
                print(f"{folder}: every file matches its manifest")
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
