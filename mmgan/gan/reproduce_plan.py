"""How a finished GAN run is regenerated (:mod:`mmgan.gan.reproduce`): the arrangement that fixed its arithmetic,
recorded or inferred, and where this machine differs from the one that trained it.

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
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmgan.base.results import code_commit, environment, read_yaml
from mmgan.base.run_folder import CHECKPOINT, LOG, SUMMARY, read_summary
from mmgan.gan.config import GANConfig, config_from
from mmgan.gan.packed_training import recorded_execution
from mmgan.gan.tables import TABLES
from mmgan.gan.train import arrangement, platform_record
from mmgan.gan.trained import NETWORKS


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


def log_lines(folder: Path) -> list[dict[str, Any]]:
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
    return [(line["iteration"], line["iterations_per_s"]) for line in log_lines(folder) if "iterations_per_s" in line]


def run_config(folder: Path) -> GANConfig:
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
        config = run_config(folder)
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
        iterations = max((line["iteration"] for line in log_lines(run)), default=0)
    else:
        raise FileNotFoundError(f"{run} holds no finished run (summary.json) nor a checkpoint: nothing to compare "
                                "with; give a run folder that has them")
    run_config(run)  # named now if missing
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
                if gone or new:  # else the same instruction sets, listed otherwise
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
