"""Result files: atomic writes, content digests, and run keys.

Experiment chapters write their results under ``results/`` and read them back,
so the book does not retrain on every build. Files are written to a temporary
name and renamed, so an interrupted run never leaves a half-written file, and
a chapter can pin the digest of the file it shows.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
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


def environment() -> dict[str, str]:
    """Versions that produced a result (stored beside it)."""
    import numpy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "machine": platform.machine(), "threads": str(torch.get_num_threads())}


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


def read_torch(path: Path | str, remedy: str | None = None, map_location: Any = "cpu",
               weights_only: bool = True) -> Any:
    """``torch.load(path)`` with errors that name ``path``.

    Raises FileNotFoundError when ``path`` is missing and ValueError naming it when it is empty,
    truncated or corrupt.
    """
    import torch

    path = Path(path)
    _check_file(path, remedy, "a valid torch file")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as error:  # RuntimeError (zip reader), UnpicklingError, EOFError, ...
        raise ValueError(f"{path}: not a valid torch file ({_reason(error)}; the file is truncated or corrupt) — "
                         f"{_remedy(path, remedy)}") from error
