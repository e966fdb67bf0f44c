"""Regenerate a finished GAN run as its user would, and compare it with its record line by line.

    mmgan reproduce results/gan/table2/cpu-c001dc6bbf3d/hinge-q2-hinge-s8 --iterations 50
    mmgan reproduce RUN_FOLDER                          # the whole run, networks included
    mmgan reproduce RUN_FOLDER --out runs/again         # keep what it trains (default: a temporary folder)

Same seed, configuration, code and thread count repeat a run bit for bit, but only in the same
*arrangement*: a run trained in a pack (:mod:`mmgan.gan.packed`) computes with grouped convolutions, which sum
in another order than the plain ones of a run trained alone, and the thread count, the CPU's instruction set and
the library versions change the rounding too. GAN training amplifies a difference of one rounding into one of
1e-3 within 50 iterations. So this command rebuilds the arrangement first:

1. *What fixed the run's arithmetic*: its pack and position, threads, memory layout, code commit and platform,
   recorded, or inferred for runs older than the record (:mod:`mmgan.gan.reproduce_plan`).
2. *Where this machine differs*, said before training, instead of promising bits (the same module).
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
import math
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmgan.base.paths import results_root
from mmgan.base.processes import using_threads
from mmgan.base.run_folder import CHECKPOINT
from mmgan.gan.config import GANConfig, resolve_device
from mmgan.gan.packed_training import train_packed
from mmgan.gan.reproduce_plan import Plan, log_lines, plan, platform_notes, run_config
from mmgan.gan.train import check_threads, train
from mmgan.gan.trained import NETWORKS

__all__ = ["Comparison", "Reproduction", "compare_logs", "main", "reproduce"]

#: Log fields that are not results: the wall-clock rate of the pack.
NOT_COMPARED = ("iteration", "iterations_per_s")


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
        config = run_config(member)
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
        evaluate = any(_kind(line) == "metric" and line["iteration"] <= until for line in log_lines(plan_.run))
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
            comparison = compare_logs(log_lines(member), log_lines(trained), until, member.name)
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
