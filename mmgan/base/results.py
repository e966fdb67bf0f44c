"""Result files: where they live, run keys, and readers that name the file and check it against its manifest.

Experiment chapters write their results under ``results/`` and read them back, so the book does not retrain on
every build. Files are written atomically (:mod:`mmgan.base.atomic`); every reader below refuses a committed file
that differs from its manifest (:func:`mmgan.base.manifest.verify_listed`), names a missing, empty, truncated or
corrupt file with the remedy, and loads nothing that could run code.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from mmgan.base.atomic import atomic_savez, atomic_torch_save, atomic_write_bytes, atomic_write_text
from mmgan.base.manifest import MANIFEST, file_digest, verify_listed, verify_manifest, write_manifest
from mmgan.base.paths import project_root, results_root, shown_path

__all__ = ["MANIFEST", "atomic_savez", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "code_commit",
           "config_key", "environment", "file_digest", "is_plain_pickle", "project_root", "read_csv", "read_json",
           "read_npz", "read_torch", "read_yaml", "results_root", "shown_path", "verify_listed", "verify_manifest",
           "write_manifest"]


def config_key(config: dict[str, Any]) -> str:
    """A short stable digest of a JSON-serialisable configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


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
    """The commit of the repository this package was imported from (``'<sha>+dirty'`` when its code, the tracked
    files of the package and its build file, has changes; results written into the checkout are not code), or
    ``'unknown'`` outside a git checkout."""
    here = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "mmgan",
                                "pyproject.toml"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


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
    verify_listed(path)


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
    verify_listed(path)
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
    """Whether a weights-only ``torch.load`` refused a file for holding an object only pickle could build: a
    global it does not allow, or an instance of a class it was not told to allow (a damaged file fails the same
    loader with other reasons: an unknown opcode, a truncated stream)."""
    reason = str(error).lower()
    return "unsupported global" in reason or "allowlisted via `add_safe_globals`" in reason


def is_plain_pickle(path: Path | str) -> bool:
    """Whether ``path`` is a whole plain Python pickle (protocol 2 or above) rather than a torch file.

    ``torch.save`` writes a zip archive (it starts with ``PK``); its legacy format is a series of pickles whose
    first holds nothing but torch's magic number. The first pickle is decoded opcode by opcode with
    :mod:`pickletools`, which builds no object and runs nothing; a stream that does not decode up to its end is
    not called a pickle (it is damaged: the readers' truncated-or-corrupt messages apply).
    """
    import pickle
    import pickletools

    import torch

    with Path(path).open("rb") as stream:
        head = stream.read(2)
        if len(head) < 2 or head[0] != pickle.PROTO[0] or not 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
            return False
        stream.seek(0)
        first, count = None, 0
        try:
            for opcode, argument, _ in pickletools.genops(stream):
                if opcode.name not in ("PROTO", "FRAME", "STOP"):
                    first, count = first or (opcode.name, argument), count + 1
        except ValueError:  # an unknown opcode, or the stream ends before the pickle's STOP
            return False
    return not (count == 1 and first == ("LONG1", torch.serialization.MAGIC_NUMBER))


def read_torch(path: Path | str, remedy: str | None = None, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name ``path``: nothing in the file can run code.

    Raises FileNotFoundError when ``path`` is missing and ValueError naming it when it is empty,
    truncated, corrupt, a plain Python pickle (:func:`is_plain_pickle`) or a torch file holding objects that
    only pickle could load (both refused).
    """
    import torch

    path = Path(path)
    _check_file(path, remedy, "a valid torch file")
    if is_plain_pickle(path):
        raise ValueError(f"{path} is a plain Python pickle, not a torch file: refused (loading it could run code) — "
                         f"{_remedy(path, remedy)}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # RuntimeError (zip reader), UnpicklingError, EOFError, ...
        if needs_pickle(error):
            raise ValueError(f"{path} holds Python objects that only pickle can load, so it is refused: loading it "
                             f"could run code — {_remedy(path, remedy)}") from None
        raise ValueError(f"{path}: not a valid torch file ({_reason(error)}; the file is truncated or corrupt) — "
                         f"{_remedy(path, remedy)}") from error
