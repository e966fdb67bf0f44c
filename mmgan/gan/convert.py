"""``mmgan convert``: an old checkpoint of this project rewritten as plain values, without running any code.

Checkpoints written before the weights-only rule held the run configuration (:class:`~mmgan.gan.config.GANConfig`)
and NumPy scalars and arrays, which a plain weights-only load refuses. The conversion reads such a file weights-only
too, allowing exactly those objects (:func:`convertible_globals`), and rewrites it with
:func:`mmgan.base.run_folder.plain`; a file that names anything else is refused before anything is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from mmgan.base.results import atomic_torch_save, is_plain_pickle, needs_pickle
from mmgan.base.run_folder import CHECKPOINT, plain
from mmgan.gan.config import GANConfig


def convertible_globals() -> dict[str, Any]:
    """What :func:`convert_checkpoint` lets an old checkpoint's pickle build, by the name the pickle gives: the
    objects this project's checkpoints held before they were plain — the run configuration
    (:class:`~mmgan.gan.config.GANConfig`) and NumPy scalars and arrays (their reconstructors under NumPy 2's and
    NumPy 1's module names, ``ndarray``, ``dtype``, and the boolean and numeric dtype classes of
    :mod:`numpy.dtypes`, which the unpickler builds without naming them as globals)."""
    import numpy as np

    # the functions NumPy's own pickles rebuild scalars and arrays with, taken from them (whatever their module)
    scalar, reconstruct = np.float64(0).__reduce__()[0], np.zeros(0).__reduce__()[0]
    allowed: dict[str, Any] = {"mmgan.gan.config.GANConfig": GANConfig, "numpy.ndarray": np.ndarray,
                               "numpy.dtype": np.dtype}
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        allowed[f"{module}.scalar"] = scalar
        allowed[f"{module}._reconstruct"] = reconstruct
    for name in np.dtypes.__all__:
        kind = getattr(np.dtypes, name)
        if issubclass(kind.type, (np.bool_, np.number)):
            allowed[f"numpy.dtypes.{kind.__qualname__}"] = kind
    return allowed


def convert_checkpoint(folder: Path | str) -> Path:
    """Rewrite ``folder/checkpoint.pt`` so that a plain weights-only load reads it (:func:`plain`), atomically.

    The old file is read weights-only too, allowing only :func:`convertible_globals`: the globals its pickle
    names are listed (without loading it) first, and a file that names any other is refused with a ValueError
    naming them, before anything is loaded; nothing in the file can run code. A plain Python pickle, a damaged
    file and a payload without ``iteration`` are refused as well."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if is_plain_pickle(path):
        raise ValueError(f"{path} is a plain Python pickle, not a torch file: refused (loading it could run code), "
                         "nothing was converted")
    allowed = convertible_globals()
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as error:  # ValueError (not a zip archive), RuntimeError (damaged archive), ...
        raise ValueError(f"{path} is not a readable torch checkpoint ({type(error).__name__}: {error}), so nothing "
                         "was converted: restore the file from a copy") from None
    refused = sorted(set(needed) - set(allowed))
    if refused:
        raise ValueError(f"{path} needs {', '.join(refused)}, which no checkpoint of this project held: refused, "
                         "nothing was loaded (`mmgan convert` allows only a run configuration and NumPy values; "
                         "start such a run over with --overwrite)")
    try:
        with torch.serialization.safe_globals([(value, name) for name, value in allowed.items()]):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError (an object beyond the allow-list), RuntimeError, EOFError, ...
        what = "holds objects beyond what `mmgan convert` allows" if needs_pickle(error) else "is damaged"
        # torch wraps the unpickler's own reason in advice to load without weights_only: keep the reason only
        reason = str(error).partition("WeightsUnpickler error:")[2].partition("Check the documentation")[0]
        raise ValueError(f"{path} {what} ({' '.join((reason or str(error)).split())}): refused, nothing was "
                         "converted") from None
    if not isinstance(payload, dict) or "iteration" not in payload:
        raise ValueError(f"{path} is not a checkpoint of this project (no iteration)")
    atomic_torch_save(plain(payload), path)
    torch.load(path, map_location="cpu", weights_only=True)  # it now loads weights-only
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mmgan convert",
        description="Rewrite old checkpoints (holding a GANConfig and NumPy values) as plain values that load "
                    "weights-only. Conversion runs no code: it reads the old file weights-only, allowing a run "
                    "configuration and NumPy scalars and arrays, and refuses a file that needs anything else.")
    parser.add_argument("folders", type=Path, nargs="+", metavar="RUN_FOLDER",
                        help="run folders whose checkpoint.pt to rewrite; a file needing any other object is "
                             "refused and left unchanged")
    args = parser.parse_args(argv)
    for folder in args.folders:
        try:
            print(f"converted {convert_checkpoint(folder)}")
        except (OSError, ValueError, TypeError) as error:
            print(f"mmgan convert: error: {folder}: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
