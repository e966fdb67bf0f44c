"""The saved results of Table 1 variants: their folders, writing them, reading them back with every check (a file
that is empty, truncated, corrupt or inconsistent with its configuration is refused, naming it), the variants the
book shows, and the protocol search's file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmgan.base.manifest import write_manifest
from mmgan.base.results import (
    atomic_savez,
    atomic_torch_save,
    atomic_write_text,
    file_digest,
    read_csv,
    read_json,
    read_npz,
    read_torch,
)
from mmgan.margins import MARGIN_ORDERS
from mmgan.table1.swiss_roll import STANDARDIZED
from mmgan.table1.variant import Table1Config, Table1Result, build_model, make_config


def result_directory(config: Table1Config, root: Path) -> Path:
    rows = "" if config.rows == "table1" else f"-{config.rows}"
    return Path(root) / f"{config.preset}-dim{config.dim}-{config.scale}{rows}-{config.key()}"


#: Where :func:`probe_accuracy` records its results (the protocol search of the chapter).
PROBE_FILE = "protocol-search.csv"


def read_probes(root: Path | str) -> pd.DataFrame:
    """The saved results of :func:`probe_accuracy` (``ROOT/protocol-search.csv``)."""
    path = Path(root) / PROBE_FILE
    remedy = f"rerun the search with `mmgan table1 --probe ...` (each run appends to {path})"
    frame = read_csv(path, remedy)
    check_frame(frame, PROBE_COLUMNS, path, remedy)
    return frame


PROBE_COLUMNS: tuple[str, ...] = ("scale", "width", "lr", "iterations", "row", "seed", "held_out_accuracy")


def save_table1(result: Table1Result, directory: Path) -> None:
    """Write summary.csv, curves.csv, samples.npz, model.pt and meta.json atomically (meta last), then the
    folder's manifest (:mod:`mmgan.base.manifest`: every reader checks these files against it)."""
    atomic_write_text(directory / "summary.csv", result.summary.to_csv(index=False))
    atomic_write_text(directory / "curves.csv", result.curves.to_csv(index=False, float_format="%.6g"))
    atomic_savez(directory / "samples.npz", compressed=True,
                 **{k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in result.samples.items()})
    atomic_torch_save(result.model.state_dict(), directory / "model.pt")
    atomic_write_text(directory / "meta.json", json.dumps(result.meta, indent=2, default=str))
    write_manifest(directory)


RESULT_FILES = ("summary.csv", "curves.csv", "samples.npz", "model.pt", "meta.json")


#: A result folder's name: ``<preset>-dim<d>-<scale>-<key>`` (see :func:`result_directory`).
FOLDER_NAME = re.compile(r"^(?P<preset>.+)-dim(?P<dim>\d+)-(?P<scale>[^-]+)-(?P<key>[0-9a-f]{12})$")


SUMMARY_COLUMNS: tuple[str, ...] = ("row", "g", "q", "seed", "p", "margin_mean", "distance_mean",
                                    "nonconverged_share", "not_found_share", "test_accuracy")


CURVE_COLUMNS: tuple[str, ...] = ("row", "seed", "iteration", "loss", "penalty", "accuracy", "grad_norm")


def _rerun_hint(directory: Path) -> str:
    match = FOLDER_NAME.match(directory.name)
    options = (f" --preset {match['preset']} --dim {match['dim']} --scale {match['scale']}" if match else "")
    return (f"delete the folder {directory} and rerun `mmgan table1{options}` "
            "(plus any other options it was run with)")


def _config_from_meta(meta: Any, path: Path, remedy: str) -> Table1Config:
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{path}: has no 'config' object — {remedy}")
    fields = meta["config"]
    try:
        return Table1Config(**{**fields, "seeds": tuple(fields.get("seeds", ()))}).validate()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: invalid configuration ({error}) — {remedy}") from error


def check_folder_key(directory: Path, config: Table1Config, meta: dict[str, Any]) -> None:
    """Refuse a folder whose configuration (meta.json) does not digest to the key in its name.

    The folder name is what :func:`run_table1` looks results up by, so a ``meta.json`` edited
    by hand (or a renamed folder) would otherwise be shown under a configuration it was not run
    with. A folder not named ``<preset>-dim<d>-<scale>-<key>`` is checked against the key
    recorded in its meta.json instead.
    """
    path = directory / "meta.json"
    found = config.key()
    match = FOLDER_NAME.match(directory.name)
    recorded = meta.get("key")
    expected, source = (match["key"], f"its folder name {directory.name}") if match else (recorded, "its 'key'")
    restore = (f"restore meta.json (or the folder name), or {_rerun_hint(directory)}")
    if expected is None:
        raise ValueError(f"{path}: records no key and its folder name {directory.name} carries none, so its "
                         f"configuration cannot be checked — {restore}")
    if found != expected:
        raise ValueError(f"{path}: configuration does not match its folder: expected key {expected} (from "
                         f"{source}), found key {found} (the digest of the configuration in meta.json); "
                         f"meta.json was edited by hand or the folder renamed — {restore}")
    if recorded is not None and recorded != found:
        raise ValueError(f"{path}: records key {recorded} but its configuration has key {found} — {restore}")
    if match and directory.name != result_directory(config, Path()).name:
        raise ValueError(f"{path}: configuration belongs in a folder named {result_directory(config, Path()).name}, "
                         f"not {directory.name} — {restore}")


def _check_samples(samples: dict[str, np.ndarray], config: Table1Config, path: Path, remedy: str) -> None:
    required = ["x", "y", "score", "orders", "distance", "converged", "point"] + (["exact"] if config.dim == 2 else [])
    required += ["ray"] if "ray" in samples else []  # 3-D results before the ray reference have none
    missing = [name for name in required if name not in samples]
    if missing:
        raise ValueError(f"{path}: lacks the arrays {missing} — {remedy}")
    m, p = len(config.specs) * len(config.seeds), len(MARGIN_ORDERS)
    n = samples["x"].shape[1] if samples["x"].ndim == 3 else -1
    expected = {"x": (m, n, config.dim), "y": (m, n), "score": (m, n), "orders": (p,), "distance": (m, p, n),
                "converged": (m, p, n), "point": (m, p, n, config.dim), "exact": (m, p, n), "ray": (m, p, n)}
    for name in required:
        if samples[name].shape != expected[name]:
            raise ValueError(f"{path}: array {name!r} has shape {samples[name].shape}, its configuration "
                             f"({len(config.seeds)} seeds, dim {config.dim}) implies {expected[name]} — {remedy}")


def check_frame(frame: pd.DataFrame, columns: tuple[str, ...], path: Path, remedy: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ValueError(f"{path}: lacks the columns {missing} — {remedy}")


def load_table1(directory: Path | str, expected_digest: str | None = None) -> Table1Result:
    """Read a saved variant back.

    Raises FileNotFoundError naming what is missing (and how to produce it), and
    ValueError when ``expected_digest`` (a prefix of the SHA-256 of summary.csv,
    pinned by the chapter that shows it) does not match: regenerated results must
    be acknowledged in the chapter, which also invalidates the book's execution cache.
    Every file that is empty, truncated, corrupt or inconsistent with the configuration
    raises ValueError naming it, and so does a meta.json whose configuration does not
    digest to the key in the folder's name (:func:`check_folder_key`).
    """
    directory = Path(directory)
    missing = [name for name in RESULT_FILES if not (directory / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"{directory} lacks {missing}; produce it with `mmgan table1` and the same options")
    remedy = _rerun_hint(directory)
    meta = read_json(directory / "meta.json", remedy)
    config = _config_from_meta(meta, directory / "meta.json", remedy)
    check_folder_key(directory, config, meta)
    samples = read_npz(directory / "samples.npz", remedy)
    _check_samples(samples, config, directory / "samples.npz", remedy)
    model, _, _ = build_model(config)
    state = read_torch(directory / "model.pt", remedy)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        reason = " ".join(str(error).split())[:300]
        raise ValueError(f"{directory / 'model.pt'}: does not hold the networks of its configuration "
                         f"({reason}) — {remedy}") from error
    models = len(config.specs) * len(config.seeds)
    summary = read_csv(directory / "summary.csv", remedy)
    check_frame(summary, SUMMARY_COLUMNS, directory / "summary.csv", remedy)
    if len(summary) != models * len(MARGIN_ORDERS):
        raise ValueError(f"{directory / 'summary.csv'}: has {len(summary)} rows, its configuration implies "
                         f"{models * len(MARGIN_ORDERS)} (rows × seeds × p); the file is truncated — {remedy}")
    digest = file_digest(directory / "summary.csv")  # a readable file that differs: regenerated or edited
    if expected_digest is not None and not digest.startswith(expected_digest):
        raise ValueError(f"{directory}/summary.csv is readable but differs from the file the chapter was written "
                         f"for (digest {digest[:12]}, expected {expected_digest}): if you regenerated it, update the "
                         f"digest in the chapter; otherwise restore it (`git checkout -- {directory}/summary.csv`)")
    curves = read_csv(directory / "curves.csv", remedy)
    check_frame(curves, CURVE_COLUMNS, directory / "curves.csv", remedy)
    sizes = curves.groupby(["row", "seed"]).size()
    if len(sizes) != models or sizes.nunique() > 1:
        raise ValueError(f"{directory / 'curves.csv'}: does not log every model equally often ({len(sizes)} "
                         f"of {models} models, {sorted(set(sizes.tolist()))} rows each); the file is truncated "
                         f"— {remedy}")
    return Table1Result(config, summary, curves, samples, model, meta, directory)


#: The variants whose saved results the book shows, by role: (preset, dim, scale).
HEADLINE = ("fitted", 2, "raw")


BOOK_VARIANTS: tuple[tuple[str, int, str], ...] = (
    HEADLINE, ("fitted", 3, "raw"),
    ("paper", 2, STANDARDIZED), ("paper", 2, "raw"), ("paper", 2, "maxabs"), ("paper", 2, "unitrange"),
    ("paper", 3, STANDARDIZED), ("paper", 3, "raw"),
    ("long", 2, STANDARDIZED), ("long", 2, "raw"),
)


def variant_name(preset: str, dim: int, scale: str) -> str:
    return f"{preset}-dim{dim}-{scale}"


def load_book_variants(root: Path | str, digests: dict[str, str]) -> dict[str, Table1Result]:
    """Load every saved variant of :data:`BOOK_VARIANTS`, checking the digests the chapter pins."""
    out = {}
    for preset, dim, scale in BOOK_VARIANTS:
        name = variant_name(preset, dim, scale)
        config = make_config(preset, dim=dim, scale=scale)
        out[name] = load_table1(result_directory(config, Path(root)), expected_digest=digests.get(name))
    return out
