"""Regenerate a finished GAN run as its user would, and compare it with its record line by line.

    mmgan reproduce results/gan/table2/cpu-c001dc6bbf3d/hinge-q2-hinge-s8 --iterations 50
    mmgan reproduce RUN_FOLDER                          # the whole run, networks included
    mmgan reproduce RUN_FOLDER --out runs/again         # keep what it trains (default: a temporary folder)

Same seed, configuration, code and thread count repeat a run bit for bit, but only in the same
*arrangement*: a run trained in a pack (:mod:`mmgan.gan.packed`) computes with grouped convolutions, which sum
in another order than the plain ones of a run trained alone, and the thread count, the CPU's instruction set and
the library versions change the rounding too. GAN training amplifies a difference of one rounding into one of
1e-3 within 50 iterations. So this command rebuilds the arrangement first:

1. *What fixed the run's arithmetic.* A run's summary (and checkpoint) records it
   (:func:`mmgan.gan.train.execution_record`): its pack (the folder names of its runs, in order) and position,
   threads, memory layout, code commit and platform (device, torch, CPU model and vector flags, oneDNN, MKL, GPU),
   and the arrangements it continued from (``earlier``). Runs older than the record carry none; for them the pack
   is *inferred*: the packed loop writes the pack's iterations/s into the log of every run of the pack, so the
   runs of the study folder whose logs hold exactly the same iterations/s, line for line, are its pack; their
   order is the table's (loss, cell, seed), the order in which ``mmgan table`` and ``mmgan sweep`` pack runs;
   the threads are those of the summary's environment. Where the pack cannot be inferred (no other run shares
   the rates: it trained alone, unpacked or as a pack of one, and nothing says which) the command says so
   and stops (``--alone`` compares with the run trained alone, promising nothing).
2. *Where this machine differs.* Before training it lists each recorded platform value that differs here, each
   one not recorded, and a code commit other than the recorded one; with any of them it says that a
   difference would be rounding, not a bug, instead of promising bits.
3. *Training.* The whole pack (or the single run) trains ``--iterations`` generator iterations (default: the
   whole run) with the recorded thread count, into ``--out`` or a temporary folder (never under the results
   root: committed files are hash-listed in their study's manifest).
4. *Comparison.* Every line of the recorded ``log.jsonl`` up to that iteration is compared with the new one,
   field by field and exactly (``iterations_per_s`` aside; fields the record lacks, e.g. diagnostics added
   later, are listed, not compared); the first differing field is named with both values. A whole run also
   compares its final networks (``networks.pt``) tensor by tensor. Every run of the pack is compared.

A run that continued in another arrangement (resumed with ``inexact``, or on another machine) is compared up
to the iteration where that happened; a pack re-formed because one of its runs failed is replayed as it was.
Exit status: 0 when every compared line is identical, 1 when one differs, 2 for a user error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmgan.base.paths import results_root
from mmgan.base.processes import using_threads
from mmgan.base.results import code_commit, environment, read_yaml
from mmgan.base.run_folder import CHECKPOINT, LOG, SUMMARY, read_summary
from mmgan.gan.config import GANConfig, config_from, resolve_device
from mmgan.gan.packed_training import recorded_execution, train_packed
from mmgan.gan.tables import TABLES
from mmgan.gan.train import arrangement, check_threads, platform_record, train
from mmgan.gan.trained import NETWORKS

__all__ = ["Comparison", "Plan", "Reproduction", "compare_logs", "main", "plan", "platform_notes", "reproduce"]

#: Log fields that are not results: the wall-clock rate of the pack.
NOT_COMPARED = ("iteration", "iterations_per_s")


@dataclass
class Plan:
    """How to regenerate ``run``: the arrangement it trained in and where that knowledge comes from."""

    run: Path
    members: list[Path]  # the run folders of its pack, in pack order ([run] when it trained alone)
    packed: bool
    threads: int
    dtype: str  # torch's default dtype it trained with (the networks'), e.g. 'float32'
    iterations: int  # the iterations the record holds (the summary's, or the checkpoint's)
    source: str  # where the arrangement comes from, in words
    platform: dict[str, Any] | None  # the recorded platform (None: not recorded)
    environment: dict[str, Any]  # the summary's environment ({} without a summary)
    commit: str | None  # the recorded code commit (None: not recorded)
    exact_until: int | None = None  # the iteration where the run continued in another arrangement (None: never)
    notes: list[str] = field(default_factory=list)  # said before training

    @property
    def position(self) -> int:
        return self.members.index(self.run)


@dataclass
class Comparison:
    """One run's reproduced log against its record."""

    run: str
    lines: dict[str, int]  # recorded lines compared, per kind ('training', 'metric')
    identical: dict[str, int]  # of them, identical in every compared field, per kind
    differences: dict[str, str]  # the first difference of each kind, in words (none: no entry)
    unrecorded: list[str]  # fields the reproduction logs and the record lacks (not compared)
    networks: str | None = None  # the final networks compared (whole runs only): None, 'identical' or the difference

    @property
    def first(self) -> str | None:
        """The first difference (training lines before metric lines), or None."""
        return next(iter(self.differences.values()), None)

    @property
    def same(self) -> bool:
        return not self.differences and self.networks in (None, "identical")


@dataclass
class Reproduction:
    plan: Plan
    iterations: int
    compared_until: int
    differences: list[str]  # platform and code differences said before training
    comparisons: list[Comparison]  # the asked run first, then the rest of its pack
    out: Path | None  # where the runs were trained (None: a temporary folder, removed)

    @property
    def same(self) -> bool:
        return all(c.same for c in self.comparisons)


# ----------------------------------------------------------------------------- what fixed the arithmetic


def _lines(folder: Path) -> list[dict[str, Any]]:
    lines = []
    path = folder / LOG
    if path.is_file():
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(line, dict) and isinstance(line.get("iteration"), int):
                lines.append(line)
    return lines


def _rates(folder: Path) -> list[tuple[int, Any]]:
    return [(line["iteration"], line["iterations_per_s"]) for line in _lines(folder) if "iterations_per_s" in line]


def _config(folder: Path) -> GANConfig:
    path = folder / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no config.yaml: the run cannot be rebuilt (a run folder holds "
                                "config.yaml, log.jsonl and summary.json)")
    return config_from(read_yaml(path) or {})


def _networks_dtype(folder: Path) -> str:
    """The dtype of a run's final networks (``networks.pt``; 'float32' when it has none): the default dtype it
    trained with, where its record does not say."""
    if (folder / NETWORKS).is_file():
        weights = torch.load(folder / NETWORKS, map_location="cpu", weights_only=True)
        for value in weights.get("generator", {}).values():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return str(value.dtype).removeprefix("torch.")
    return "float32"


def _committed_in(folder: Path) -> str | None:
    """The git commit that last changed the run's log (where a record has no commit of its own), or None."""
    try:
        found = subprocess.run(["git", "log", "-1", "--format=%h", "--", LOG], cwd=folder, capture_output=True,
                               text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return found or None


def _table_order(study: Path, members: list[Path]) -> list[Path]:
    """``members`` in the order a table packs them (loss, cell, seed as :data:`mmgan.gan.table_specs.TABLES` lists
    them); ``ValueError`` when the study folder is not one of a table's (``<root>/table<N>/<preset>-<key>``)."""
    table = study.parent.name.removeprefix("table")
    spec = TABLES.get(table) if study.parent.name.startswith("table") else None
    if spec is None:
        raise ValueError(f"{study} is not the folder of a table's study (<root>/table<N>/<preset>-<key>, N one of "
                         f"{', '.join(TABLES)}), so the order of the inferred pack (which may change its rounding) "
                         "is unknown; reproduce it with --alone (no bits promised)")

    def key(folder: Path) -> tuple[int, int, int]:
        config = _config(folder)
        try:
            return spec.losses.index(config.loss), spec.cells.index((config.q, config.g)), config.seed
        except ValueError:
            raise ValueError(f"{folder} ({config.loss}, q={config.q}, g={config.g}) is not a run of table {table}: "
                             "the order of its inferred pack is unknown; reproduce it with --alone (no bits "
                             "promised)") from None
    return sorted(members, key=key)


def _inferred(run: Path, summary: dict[str, Any]) -> tuple[list[Path], str, int | None]:
    """The pack of a run that records none, from the iterations/s its log shares with other runs of its study
    folder (see the module's docstring): (members in table order, how it was found, the iteration where the
    pack changed, or None)."""
    mine = _rates(run)
    if not mine:
        raise ValueError(f"{run}/{LOG} holds no training line: nothing to infer its pack from, nor to compare")
    study = run.parent
    sharing = []
    for folder in sorted(p for p in study.iterdir() if p.is_dir() and p != run and (p / LOG).is_file()):
        theirs = _rates(folder)
        if theirs[:1] == mine[:1]:
            sharing.append((folder, theirs))
    if not sharing:
        raise ValueError(
            f"{run} predates the execution record (its summary has no 'execution') and no other run of {study} "
            "shares its log's iterations/s, which the packed loop writes alike into every run of a pack: it trained "
            "alone, unpacked (mmgan train, mmgan table --no-pack, a sweep with --pack 1) or as a pack of one, and "
            "nothing recorded tells which (the two round differently); compare it with the run trained alone with "
            "--alone (no bits promised)")
    changed = None
    for _, theirs in sharing:
        for (at, a), (_, b) in zip(mine, theirs):
            if a != b:
                changed = at if changed is None else min(changed, at)
                break
        else:
            if len(theirs) != len(mine):  # one of them stopped (failed) earlier: the pack changed there
                stop = min(len(theirs), len(mine))
                changed = mine[stop - 1][0] if changed is None else min(changed, mine[stop - 1][0])
    members = _table_order(study, [run, *(folder for folder, _ in sharing)])
    threads = summary.get("environment", {}).get("threads")
    how = (f"inferred: the run predates the execution record, and {len(sharing)} other run(s) of its study share "
           f"its log's iterations/s (written alike into every run of a pack), ordered as a table packs them; "
           f"threads from its environment ({threads})")
    return members, how, changed


def plan(run: Path | str, alone: bool = False) -> Plan:
    """How to regenerate the run in folder ``run`` (see the module's docstring); ``alone``: as a single unpacked run
    whatever it trained in. ``ValueError`` / ``FileNotFoundError`` naming what is missing."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run} is not a run folder (give a folder holding config.yaml, log.jsonl and "
                                "summary.json, e.g. results/gan/table2/cpu-c001dc6bbf3d/hinge-q2-hinge-s8)")
    summary: dict[str, Any] = {}
    if (run / SUMMARY).is_file():
        summary = read_summary(run / SUMMARY)
        record, iterations = summary.get("execution"), summary["iterations"]
    elif (run / CHECKPOINT).is_file():
        record = recorded_execution(run)
        iterations = max((line["iteration"] for line in _lines(run)), default=0)
    else:
        raise FileNotFoundError(f"{run} holds no finished run (summary.json) nor a checkpoint: nothing to compare "
                                "with; give a run folder that has them")
    _config(run)  # named now if missing
    environment_ = summary.get("environment", {})
    if alone:
        threads = (record or {}).get("threads") or environment_.get("threads") or 1
        result = Plan(run, [run], False, int(threads), (record or {}).get("dtype") or _networks_dtype(run),
                      iterations,
                      "asked: --alone (not necessarily how it trained)",
                      (record or {}).get("platform"), environment_, (record or {}).get("commit"))
        result.notes.append("--alone: the run is compared with itself trained alone, which need not be how it "
                            "trained; no bits are promised")
        return result
    if record is None:
        members, how, changed = _inferred(run, summary)
        threads = environment_.get("threads")
        if threads is None:
            raise ValueError(f"{run}/{SUMMARY} records no thread count (environment.threads), which changes the "
                             "rounding: reproduce it with --alone (no bits promised)")
        result = Plan(run, members, True, int(threads), _networks_dtype(run), iterations, how, None, environment_,
                      None, changed)
        where = _committed_in(run)
        result.notes.append("its code commit is not recorded" + (f" (its log was last committed in {where}: "
                            f"`git checkout {where}` gives the code of that time)" if where else ""))
        if changed is not None:
            result.notes.append(f"the logs of its pack part at iteration {changed} (a run failed or the runs "
                                "continued in other packs): compared up to there")
        return result
    segments = [*record.get("earlier", []), {k: v for k, v in record.items() if k != "earlier"}]
    first = segments[0]
    if first.get("recorded") is False:
        raise ValueError(f"{run} began in an arrangement nothing recorded (its first checkpoint predates the "
                         f"execution record) and continued from iteration {segments[1].get('from_iteration')} at "
                         f"{arrangement(segments[1])}: its start cannot be rebuilt; compare it with --alone "
                         "(no bits promised)")
    exact_until = next((segment.get("from_iteration") for segment in segments[1:]
                        if segment.get("reason") != "repack"), None)
    if first.get("packed"):
        members = [run.parent / name for name in first.get("pack", [])]
        missing = [str(m) for m in members if not (m / "config.yaml").is_file()]
        if missing or run not in members:
            raise FileNotFoundError(f"{run} trained at {arrangement(first)}, but {', '.join(missing) or run.name} "
                                    f"{'is' if len(missing) < 2 else 'are'} missing beside it: the pack cannot be "
                                    "rebuilt without every run's config.yaml; restore them, or compare with --alone "
                                    "(no bits promised)")
    else:
        members = [run]
    how = "recorded: its summary's execution record" if summary else "recorded: its checkpoint's execution record"
    dtype = first.get("dtype") or _networks_dtype(run)
    result = Plan(run, members, bool(first.get("packed")), int(first.get("threads", 1)), dtype, iterations, how,
                  first.get("platform"), environment_, first.get("commit"), exact_until)
    if exact_until is not None:
        later = next(s for s in segments[1:] if s.get("from_iteration") == exact_until)
        result.notes.append(f"from iteration {exact_until} the run continued at {arrangement(later)} "
                            f"({later.get('reason', 'resumed')}): compared up to there")
    return result


def platform_notes(plan_: Plan, device: torch.device) -> list[str]:
    """What differs here from what the run recorded, or was not recorded, of what fixes its rounding (each a
    sentence); empty when bits can be promised."""
    here = platform_record(device)
    notes = []
    if plan_.platform is not None:
        for key in sorted(set(plan_.platform) | set(here)):
            recorded, now = plan_.platform.get(key), here.get(key)
            if recorded == now:
                continue
            if recorded is None:
                notes.append(f"{key} not recorded (here {_shown(now)})")
            elif key == "cpu_flags" and isinstance(recorded, list) and isinstance(now, list):
                gone, new = sorted(set(recorded) - set(now)), sorted(set(now) - set(recorded))
                notes.append("the CPU's vector instruction sets differ" + (f" (recorded only: {' '.join(gone)})"
                             if gone else "") + (f" (here only: {' '.join(new)})" if new else ""))
            else:
                notes.append(f"{key}: recorded {_shown(recorded)}, here {_shown(now)}")
    else:
        env, current = plan_.environment, environment(device)
        for key in ("torch", "machine", "device", "python", "numpy"):
            if key in env and env[key] != current.get(key):
                notes.append(f"{key}: recorded {env[key]}, here {current.get(key)}")
        notes.append("the platform is not recorded (the run's record predates it): the CPU's instruction sets, "
                     "oneDNN and MKL versions" + (", the GPU" if device.type == "cuda" else "") + " here may "
                     "differ from the machine that trained it")
    commit = code_commit()
    if plan_.commit is None:
        pass  # said among the plan's notes, with the commit that added the run
    elif plan_.commit != commit:
        notes.append(f"code: recorded commit {plan_.commit}, this checkout {commit}")
    elif commit.endswith("+dirty") or commit == "unknown":
        notes.append(f"code: commit {commit}, whose uncommitted changes are not recorded")
    return notes


def _shown(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


# ----------------------------------------------------------------------------- the comparison


def _kind(line: dict[str, Any]) -> str:
    return "training" if "critic_loss" in line else "metric"


def _value(value: Any) -> str:
    return repr(value)


def compare_logs(recorded: list[dict[str, Any]], reproduced: list[dict[str, Any]], until: int,
                 run: str = "") -> Comparison:
    """Every recorded line up to iteration ``until`` against the reproduced line of the same iteration and kind
    (training or metric), field by field and exactly (not :data:`NOT_COMPARED`); the first difference of each
    kind in words."""
    found = {(line["iteration"], _kind(line)): line for line in reproduced}
    lines = {"training": 0, "metric": 0}
    identical = {"training": 0, "metric": 0}
    first: dict[str, str] = {}
    unrecorded: set[str] = set()
    for line in recorded:
        if line["iteration"] > until:
            continue
        kind = _kind(line)
        lines[kind] += 1
        other = found.get((line["iteration"], kind))
        if other is None:
            first.setdefault(kind, f"iteration {line['iteration']}: the reproduction has no {kind} line")
            continue
        unrecorded |= set(other) - set(line)
        problem = None
        for name, value in line.items():
            if name in NOT_COMPARED:
                continue
            if name not in other:
                problem = f"iteration {line['iteration']}, field {name}: recorded {value!r}, not logged now"
            elif other[name] != value and not (_is_nan(value) and _is_nan(other[name])):
                relative = ""
                if isinstance(value, (int, float)) and isinstance(other[name], (int, float)) and value:
                    relative = f" (relative {abs(other[name] - value) / abs(value):.1e})"
                problem = (f"iteration {line['iteration']}, field {name}: recorded {value!r}, reproduced "
                           f"{other[name]!r}{relative}")
            if problem:
                break
        if problem is None:
            identical[kind] += 1
        else:
            first.setdefault(kind, problem)
    if not any(lines.values()):
        first["training"] = (f"the record holds no log line up to iteration {until} (its first is at "
                             f"{min((line['iteration'] for line in recorded), default='none')}): nothing was "
                             "compared; give more --iterations")
    ordered = {kind: first[kind] for kind in ("training", "metric") if kind in first}
    return Comparison(run, lines, identical, ordered, sorted(unrecorded - set(NOT_COMPARED)))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _compare_networks(recorded: Path, reproduced: Path) -> str | None:
    """The final networks of a whole run (``networks.pt``) against the reproduction's checkpoint: None when the
    record has none, 'identical', or the first differing tensor."""
    if not (recorded / NETWORKS).is_file() or not (reproduced / CHECKPOINT).is_file():
        return None
    mine = torch.load(recorded / NETWORKS, map_location="cpu", weights_only=True)
    theirs = torch.load(reproduced / CHECKPOINT, map_location="cpu", weights_only=True)
    for part in ("generator", "critic"):
        for name, value in mine[part].items():
            other = theirs[part].get(name)
            if other is None or other.shape != value.shape:
                return f"{part}.{name}: not in the reproduction (or another shape)"
            if not torch.equal(value, other):
                gap = (value.double() - other.double()).abs().max().item() if value.is_floating_point() else "-"
                return f"{part}.{name} differs (largest difference {gap})"
    return "identical"


# ----------------------------------------------------------------------------- regenerating


def _check_out(out: Path, members: list[Path]) -> None:
    root = results_root().resolve()
    target = out.resolve()
    if target == root or root in target.parents:
        raise ValueError(f"--out {out} is under the results root {root}, whose committed files are hash-listed in "
                         "their manifests: reproduce writes elsewhere (leave --out out for a temporary folder, or "
                         "give a folder outside it)")
    taken = [str(out / m.name) for m in members if (out / m.name).exists()]
    if taken:
        raise FileExistsError(f"--out {out} already holds {', '.join(taken)}: give an empty or new folder (or "
                              "leave --out out for a temporary one)")


def reproduce(run: Path | str, iterations: int | None = None, out: Path | str | None = None,
              data_root: str | None = None, alone: bool = False, progress: bool = False,
              say: Any = None) -> Reproduction:
    """Regenerate the run in folder ``run`` for ``iterations`` generator iterations (default: the whole run) in its
    recorded or inferred arrangement (:func:`plan`) and compare its log (and, for a whole run, its networks) with
    the record; ``say`` (a function of one string) hears what the command prints before training. ``out`` keeps
    the trained runs (default: a temporary folder, removed); ``data_root`` overrides the recorded one."""
    plan_ = plan(run, alone)
    say = say or (lambda text: None)
    recorded_iterations = plan_.iterations
    if iterations is None:
        iterations = recorded_iterations
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= recorded_iterations:
        raise ValueError(f"--iterations must be a whole number from 1 to {recorded_iterations} (the iterations the "
                         f"run's record holds), got {iterations!r}")
    check_threads(plan_.threads)
    configs = []
    for member in plan_.members:
        config = _config(member)
        changes: dict[str, Any] = {"iterations": iterations}
        if data_root is not None:
            changes["data_root"] = data_root
        configs.append(dataclasses.replace(config, **changes).validate())
    device = resolve_device(configs[0].device)
    until = iterations if plan_.exact_until is None else min(iterations, plan_.exact_until)
    differences = platform_notes(plan_, device)
    say(f"reproducing {plan_.run}: {iterations} of its {recorded_iterations} iterations")
    say(f"arrangement: {_arrangement(plan_)} — {plan_.source}")
    for note in plan_.notes:
        say(f"note: {note}")
    if differences or plan_.platform is None or plan_.commit is None:
        say("not promised bit for bit, as " + "; ".join(differences or ["what fixed its rounding is partly "
                                                                       "unrecorded"])
            + ": a difference in the log is then rounding (which GAN training amplifies), not evidence of a bug")
    else:
        say("same arrangement, platform and code: the log should repeat bit for bit")
    keep = out is not None
    folder = Path(out) if keep else Path(tempfile.mkdtemp(prefix="mmgan-reproduce-"))
    try:
        _check_out(folder, plan_.members)
        outs = [folder / member.name for member in plan_.members]
        # the metric only where the record holds a metric line to compare (building its extractor and evaluating
        # it cost more than 50 iterations of a pack); it does not change the training
        evaluate = any(_kind(line) == "metric" and line["iteration"] <= until for line in _lines(plan_.run))
        say(f"training {len(outs)} run(s) in {folder} with {plan_.threads} thread(s), {plan_.dtype}"
            + ("" if evaluate else ", no metric (the record has no metric line to compare up to there)"))
        with using_threads(plan_.threads), _default_dtype(plan_.dtype):
            if plan_.packed:
                results = train_packed(configs, outs, progress=progress, threads=plan_.threads, evaluate=evaluate)
            else:
                results = [_train_alone(configs[0], outs[0], progress, plan_.threads, evaluate)]
        for member, result in zip(plan_.members, results):
            if isinstance(result, Exception) and member == plan_.run:
                raise RuntimeError(f"the reproduction of {member.name} failed: {type(result).__name__}: {result}")
        comparisons = []
        for member, trained in sorted(zip(plan_.members, outs), key=lambda pair: pair[0] != plan_.run):
            comparison = compare_logs(_lines(member), _lines(trained), until, member.name)
            if until == recorded_iterations and iterations == recorded_iterations:
                comparison.networks = _compare_networks(member, trained)
            comparisons.append(comparison)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return Reproduction(plan_, iterations, until, differences, comparisons, folder if keep else None)


@contextlib.contextmanager
def _default_dtype(name: str) -> Iterator[None]:
    """torch's default dtype set to ``name`` ('float32', 'float64') while the block runs."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"the record's dtype {name!r} is not a torch floating-point dtype (float32, float64)")
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def _train_alone(config: GANConfig, out: Path, progress: bool, threads: int,
                 evaluate: bool) -> dict[str, Any] | Exception:
    try:
        return train(config, out, progress=progress, threads=threads, evaluate=evaluate)
    except Exception as error:  # noqa: BLE001 - reported as the packed path reports a failed run
        return error


def _arrangement(plan_: Plan) -> str:
    if not plan_.packed:
        return f"alone (plain layers), {plan_.threads} thread(s)"
    names = ", ".join(m.name for m in plan_.members)
    return f"position {plan_.position} of a pack of {len(plan_.members)} ({names}), {plan_.threads} thread(s)"


def report(result: Reproduction) -> list[str]:
    """What the command prints after training, one line each."""
    lines = []
    asked, rest = result.comparisons[0], result.comparisons[1:]
    lines.append(_verdict(asked, result.compared_until))
    if asked.unrecorded:
        lines.append(f"  not in the record, so not compared: {', '.join(asked.unrecorded)}")
    if rest:
        same = [c for c in rest if c.same]
        lines.append(f"the other {len(rest)} run(s) of its pack: {len(same)} identical")
        lines += [f"  {_verdict(c, result.compared_until)}" for c in rest if not c.same]
    return lines


def _verdict(comparison: Comparison, until: int) -> str:
    parts = []
    for kind in ("training", "metric"):
        count, same = comparison.lines[kind], comparison.identical[kind]
        if kind in comparison.differences:
            parts.append(f"{kind} lines {same}/{count} identical, first difference at "
                         f"{comparison.differences[kind]}")
        elif count:
            parts.append(f"{kind} lines {same}/{count} identical")
    if not any(comparison.lines.values()):
        parts = [comparison.differences["training"]]
    if comparison.networks:
        parts.append(f"final networks {comparison.networks}")
    verdict = ("bit for bit" if comparison.same else "NOTHING COMPARED" if not any(comparison.lines.values())
               else "DIFFERS")
    return f"{comparison.run} ({verdict}, log up to iteration {until}): " + "; ".join(parts)


# ----------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmgan reproduce",
        description="Train a finished GAN run again in the arrangement it trained in (its pack, threads) and "
                    "compare its log line by line with the record; says first where this machine differs from "
                    "the recorded one.")
    parser.add_argument("run", type=Path, help="the run folder (config.yaml, log.jsonl, summary.json)")
    parser.add_argument("--iterations", type=int, help="generator iterations to train and compare (default: the "
                                                       "whole run, whose final networks are compared too)")
    parser.add_argument("--out", type=Path, help="keep the trained runs in this folder (default: a temporary "
                                                 "folder, removed; never under the results root)")
    parser.add_argument("--data-root", dest="data_root", help="folder of CIFAR-10 or the CAT faces, if not the "
                                                              "recorded one")
    parser.add_argument("--alone", action="store_true", help="train the run alone (plain layers) whatever it "
                                                             "trained in: a comparison, no bits promised")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = reproduce(args.run, args.iterations, args.out, args.data_root, args.alone,
                       progress=not args.no_progress, say=lambda text: print(text, flush=True))
    for line in report(result):
        print(line)
    if result.out is not None:
        print(f"the reproduced runs are in {result.out}")
    return 0 if result.same else 1


if __name__ == "__main__":
    sys.exit(main())
