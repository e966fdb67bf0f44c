"""An interrupted margin study resumes from its finished critics (:mod:`mmgan.critics.parts`) and writes the same
numbers as an uninterrupted one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmgan.critics import measure as cm
from mmgan.critics import parts

QUICK = dict(images=1, thresholds=("midpoint",), fmn_steps=0, modes=("eval",), population=32)


@pytest.fixture
def counted(monkeypatch):
    """Every critic actually measured (not read back from a part) is counted."""
    calls = []
    measure_run = cm.measure_run

    def counting(*args):
        calls.append(args[0])
        return measure_run(*args)

    monkeypatch.setattr(cm, "measure_run", counting)
    return calls


@pytest.fixture
def study_copy(tmp_path):
    """Table 3's committed study copied under ``tmp_path/gan`` (without snapshots and logs): (that GAN root, its
    first run's folder, a function that "retrains" that run: another run's weights in its place, its manifest
    rewritten)."""
    from mmgan.base.manifest import record_in_manifest
    from mmgan.base.results import results_root

    source = results_root() / "gan"
    relative = Path(cm.study_plan("3", runs=1)["folder"].iloc[0]).relative_to(source)
    root = tmp_path / "gan"
    shutil.copytree(source / relative.parent, root / relative.parent,
                    ignore=shutil.ignore_patterns("snapshots", "log.jsonl"))
    run = root / relative

    def retrain() -> None:
        other = sorted(p for p in run.parent.iterdir() if p.is_dir() and p != run)[0]
        shutil.copyfile(other / "networks.pt", run / "networks.pt")
        record_in_manifest(run.parent, [run / "networks.pt"])

    return root, run, retrain


def test_a_study_resumes_from_its_finished_critics_with_the_same_numbers(tmp_path, counted, capsys):
    plain = cm.measure_study("3", runs=1, **QUICK)
    kept = cm.measure_study("3", runs=1, parts=tmp_path / "first", **QUICK)
    assert len(counted) == 2
    # read back at full precision: the study's file is the same as without parts
    assert kept.to_csv(index=False, float_format="%.7g") == plain.to_csv(index=False, float_format="%.7g")
    out = tmp_path / "out"
    shutil.copytree(tmp_path / "first", parts.parts_folder(out, "3"))
    assert cm.main(["3", "--runs", "2", "--images", "1", "--thresholds", "midpoint", "--fmn-steps", "0", "--mode",
                    "eval", "--population", "32", "--workers", "1", "--out", str(out)]) == 0
    assert "1 of 2 critics measured already" in capsys.readouterr().err
    assert len(counted) == 3  # the first critic was read back, only the second measured
    assert not (out / parts.PARTIAL).exists()  # removed once the study's files are written
    written, meta = cm.load_measurements("3", out, mode="eval")
    assert written.groupby("seed").ngroups == 2 and meta["parts"]["commits"] and meta["parts"]["seconds"] > 0
    first = written[written["seed"] == kept["seed"].iloc[0]]
    assert first["upper"].tolist() == pytest.approx(kept["upper"].tolist(), rel=1e-6)  # (the file keeps 7 digits)


def test_a_part_that_describes_another_task_is_refused(tmp_path):
    task = {"folder": "x", "images": 1}
    key = parts.task_key(task)
    (tmp_path / f"{key}.csv").write_text("a\n1\n")
    (tmp_path / f"{key}.json").write_text(json.dumps({"task": {"folder": "y", "images": 1}, "commit": "c",
                                                      "seconds": 1.0}))
    with pytest.raises(ValueError, match="describes another task"):
        parts.finished_tasks(tmp_path, [task])
    (tmp_path / f"{key}.json").unlink()  # a CSV without its description is unfinished: measured again
    assert parts.finished_tasks(tmp_path, [task]) == 0


def test_a_study_folder_being_written_is_locked(tmp_path):
    from mmgan.base.run_folder import RunFolderBusy, RunLock

    with RunLock(parts.parts_folder(tmp_path, "3")), pytest.raises(RunFolderBusy):
        cm.main(["3", "--runs", "1", "--images", "1", "--mode", "eval", "--out", str(tmp_path)])


def test_the_parts_of_an_unfinished_study_are_not_results_a_manifest_lists(tmp_path):
    from mmgan.base.manifest import manifest_files

    (tmp_path / "table3.csv").write_text("a\n1\n")
    folder = parts.parts_folder(tmp_path, "3")
    folder.mkdir(parents=True)
    (folder / "0123.csv").write_text("a\n1\n")
    assert manifest_files(tmp_path) == [tmp_path / "table3.csv"]


def test_a_retrained_critic_is_measured_again_not_read_back(tmp_path, counted, study_copy):
    """A part names the SHA-256 of the weights it measured: once a run is trained again (other weights in the same
    folder), a resumed study measures its critic again."""
    root, run, retrain = study_copy
    kept = tmp_path / "parts"
    cm.measure_study("3", runs=1, root=root, parts=kept, **QUICK)
    cm.measure_study("3", runs=1, root=root, parts=kept, **QUICK)
    assert len(counted) == 1  # the same weights: read back
    retrain()
    cm.measure_study("3", runs=1, root=root, parts=kept, **QUICK)
    assert len(counted) == 2


def test_a_measurement_names_its_weights_and_a_retrained_study_is_refused(tmp_path, study_copy):
    """The study's meta data records each measured critic's weights (SHA-256); once a run is trained again, reading
    the measurement beside it is refused with the command that measures it again."""
    root, run, retrain = study_copy
    out = tmp_path / "out"
    assert cm.main(["3", "--runs", "1", "--images", "1", "--thresholds", "midpoint", "--fmn-steps", "0", "--mode",
                    "eval", "--population", "32", "--workers", "1", "--root", str(root), "--out", str(out)]) == 0
    _, meta = cm.load_measurements("3", out, mode="eval")
    assert list(meta["parts"]["weights"]) == [run.name]
    cm.verify_measured_weights("3", meta, root)  # the committed critic: accepted
    retrain()
    with pytest.raises(ValueError, match=r"trained again since; measure again: `mmgan critic-margins 3`"):
        cm.verify_measured_weights("3", meta, root)


def test_a_measurement_from_before_the_weights_record_is_checked_on_its_runs_final_fdd():
    """Without the weights record, each run's final FDD as the measurement copied it must be its summary's: a study
    trained again since (another final FDD) is refused."""
    from mmgan.base.results import read_json

    plan = cm.study_plan("3", runs=2)
    finals = [read_json(Path(folder) / "summary.json")["final"] for folder in plan["folder"]]
    copied = plan[["cell", "seed"]].assign(final_fdd=finals)
    cm.verify_measured_weights("3", {}, None, copied)  # as committed: accepted
    cm.verify_measured_weights("3", {}, None, None)  # nothing to check it on: not checked
    copied.loc[1, "final_fdd"] = finals[1] * 1.01
    with pytest.raises(ValueError, match=r"whose summary now says .*trained again since"):
        cm.verify_measured_weights("3", {}, None, copied)


def test_a_study_refused_before_its_first_critic_leaves_no_folder_of_parts(tmp_path):
    with pytest.raises(ValueError, match="seeds \\[99\\] are not in Table 3's study"):
        cm.main(["3", "--seeds", "99", "--mode", "eval", "--out", str(tmp_path)])
    assert not (tmp_path / parts.PARTIAL).exists()
