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
