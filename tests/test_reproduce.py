"""mmgan reproduce (issue 37, item 1): a finished run trained again in the arrangement it trained in (its pack,
position, threads), its log compared line by line with the record; committed runs reproduced for 50 iterations.

Which committed studies repeat bit for bit depends on the machine: the kernels torch picks, and how they block a
sum, follow the CPU. Each study was checked on two platforms (:data:`PLATFORMS`) with ``mmgan reproduce --iterations
50``. On an AMD EPYC, Table 2's runs trained at commit 1054923 (its HingeGAN cells at seeds 8-23), Table 8's study
and the studies trained again there with their execution recorded (the four zero-centred ones, Tables 3, 4 and 5,
Table 2's signed-maximum companion) repeat bit for bit; on an Intel Xeon with AMX, Table 2's seeds 0-7 (all 12
packs; one pack over its whole run: every training line and the final networks, its FDDs within 2.4e-11 relative, as
with the code that trained them). Each differs on the other platform from the first logged iteration. The suite
reproduces one run of each study on the platform where it repeats (50 iterations, about 10 s of CPU each), asserts
elsewhere that the command promised no bits before training, and checks that the pack of every study is found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mmgan import cli
from mmgan.base.paths import results_root
from mmgan.base.run_folder import LOG, SUMMARY
from mmgan.gan import reproduce, reproduce_plan, train
from mmgan.gan import tables as gan_tables
from mmgan.gan.trained import export_networks

GAN = results_root() / "gan"
#: The platforms on which the committed studies were checked (the values of train.platform_record that choose
#: kernels): a run of BIT_FOR_BIT repeats bit for bit on its platform; elsewhere only "not promised" can be asserted.
LIBRARIES = {"torch": "2.14.1+cu130", "cpu_capability": "AVX512", "onednn": "3.12.0", "mkl": "2024.2"}
PLATFORMS = {
    "AMD EPYC (AVX-512)": {**LIBRARIES, "cpu_flags": [
        "avx", "avx2", "avx512_bf16", "avx512_bitalg", "avx512_vbmi2", "avx512_vnni", "avx512_vpopcntdq", "avx512bw",
        "avx512cd", "avx512dq", "avx512f", "avx512ifma", "avx512vbmi", "avx512vl", "f16c", "fma", "sse4_1", "sse4_2",
        "sse4a"]},
    "Intel Xeon (AVX-512, AMX)": {**LIBRARIES, "cpu_flags": [
        "amx_bf16", "amx_int8", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512_bitalg", "avx512_fp16",
        "avx512_vbmi2", "avx512_vnni", "avx512_vpopcntdq", "avx512bw", "avx512cd", "avx512dq", "avx512f",
        "avx512ifma", "avx512vbmi", "avx512vl", "avx_vnni", "f16c", "fma", "sse4_1", "sse4_2"]},
}
AMD, INTEL = PLATFORMS
#: One committed run of each study (run, the size of its pack, its position in it, the platform where it repeats):
#: Table 2's extra seeds (whose summaries record their pack), Table 8 (its pack inferred from its log), the four
#: zero-centred studies, Tables 3, 4 and 5 and Table 2's signed-maximum companion (trained again with their execution
#: recorded), and Table 2's seeds 0-7 (their pack inferred from their logs).
BIT_FOR_BIT = [("table2/cpu-c001dc6bbf3d/hinge-q2-hinge-s16", 8, 0, AMD),
               ("table8/cpu-c001dc6bbf3d/hinge-qsmax-hinge-s0", 8, 0, AMD),
               ("tabler1/cpu-fb8c9008ad69/hinge-q2-zero_centered-s5", 4, 1, AMD),
               ("tabler2/cpu-008306e58c6c/hinge-q2-zero_centered-s3", 4, 3, AMD),
               ("tabler1r2/cpu-91873ea5a3ca/hinge-q2-zero_centered-s0", 4, 0, AMD),
               ("tabler3gan/cpu-62b089456e3d/rpsgan-q2-zero_centered-s6", 4, 2, AMD),
               ("table3/cpu-c001dc6bbf3d/rahinge-qinf-hinge-s3", 8, 3, AMD),
               ("table4/cpu-da76ef6f06cc/hinge-qinf-hinge-s7", 8, 7, AMD),
               ("table2/cpu-29179db9a7b8/wgan-qinf-ls-s3", 8, 3, AMD),
               ("table5/cpu-349046e01bb1/hinge-qinf-hinge-s1", 6, 4, AMD),
               ("table2/cpu-c001dc6bbf3d/wgan-q1-ls-s5", 8, 5, INTEL)]
#: Every committed study: (a run, the size of its pack, whether its summary records it).
STUDIES = [("table2/cpu-c001dc6bbf3d/hinge-qinf-hinge-s0", 8, False),
           ("table2/cpu-c001dc6bbf3d/hinge-qinf-hinge-s8", 8, True),
           ("table2/cpu-29179db9a7b8/wgan-qinf-ls-s3", 8, True),
           ("table3/cpu-c001dc6bbf3d/rahinge-q2-hinge-s0", 8, True),
           ("table4/cpu-da76ef6f06cc/hinge-qinf-hinge-s7", 8, True),
           ("table5/cpu-349046e01bb1/hinge-qinf-hinge-s1", 6, True),
           ("table8/cpu-c001dc6bbf3d/wgan-qsmax-ls-s2", 8, False),
           ("tabler1/cpu-fb8c9008ad69/hinge-q2-zero_centered-s5", 4, True),
           ("tabler1r2/cpu-91873ea5a3ca/hinge-q2-zero_centered-s0", 4, True),
           ("tabler2/cpu-008306e58c6c/hinge-q2-zero_centered-s3", 4, True),
           ("tabler3gan/cpu-62b089456e3d/rpsgan-q2-zero_centered-s6", 4, True)]


@pytest.fixture(autouse=True)
def _float32_and_threads(tmp_path_factory, monkeypatch):
    """The engine's dtype; the thread count restored (reproduce sets the recorded one while it trains)."""
    threads = torch.get_num_threads()
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_num_threads(threads)


def _here_is(platform: str) -> bool:
    here = train.platform_record("cpu")
    return all(here.get(key) == value for key, value in PLATFORMS[platform].items())


# ----------------------------------------------------------------------------- committed runs


@pytest.mark.parametrize(("run", "size", "position", "platform"), BIT_FOR_BIT)
def test_committed_runs_repeat_their_first_50_iterations_bit_for_bit(run, size, position, platform):
    said = []
    result = reproduce.reproduce(GAN / run, iterations=50, say=said.append)
    asked = result.comparisons[0]
    assert asked.run == Path(run).name and len(result.comparisons) == size  # the whole pack, the asked run first
    assert asked.lines["training"] == 1 and asked.lines["metric"] == 0  # the line of iteration 50
    assert any(text.startswith(f"arrangement: position {position} of a pack of {size}") for text in said)
    if not _here_is(platform):  # another machine: it says so before training, and promises nothing
        assert any("not promised bit for bit" in text for text in said)
        pytest.skip(f"bit for bit on {platform} only; here {train.platform_record('cpu')}")
    assert result.same, reproduce.report(result)
    assert "generator_grad_norm" in asked.unrecorded or "execution" in json.loads((GAN / run / SUMMARY).read_text())


@pytest.mark.parametrize(("run", "size", "recorded"), STUDIES)
def test_the_pack_of_every_committed_study_is_found(run, size, recorded):
    """From the summary's record, or inferred from the iterations/s the packed loop writes alike into the logs of
    a pack (in table order); no training."""
    folder = GAN / run
    plan = reproduce_plan.plan(folder)
    assert len(plan.members) == size and folder in plan.members and plan.packed and plan.threads == 1
    assert plan.source.startswith("recorded" if recorded else "inferred") and plan.dtype == "float32"
    rates = {json.dumps([line.get("iterations_per_s") for line in reproduce_plan.log_lines(member)])
             for member in plan.members}
    assert len(rates) == 1  # every member shares the asked run's rates, line for line
    runs, _ = gan_tables.table_configs(folder.parent.parent.name.removeprefix("table"), "cpu",
                                       **gan_tables.STUDIES.get(folder.parent.parent.name.removeprefix("table"), {}))
    order = [f"{gan_tables.cell_name(*r[:3])}-s{r[3]}" for r in runs]
    names = [m.name for m in plan.members]
    if not recorded:
        assert sorted(names, key=order.index) == names  # the order in which a table packs its runs
    if not recorded:
        assert any("code commit is not recorded" in note for note in plan.notes)


def test_a_run_whose_pack_cannot_be_inferred_is_refused_with_the_way_out(tmp_path):
    """A run without a record that shares its iterations/s with no other run trained alone, unpacked or as a
    pack of one: nothing tells which, so it is not guessed."""
    study = tmp_path / "table2" / "cpu-c001dc6bbf3d"
    source = GAN / "table2" / "cpu-c001dc6bbf3d" / "hinge-q2-hinge-s0"
    shutil.copytree(source, study / source.name)
    with pytest.raises(ValueError, match="no other run of .* shares its log's iterations/s.*--alone"):
        reproduce_plan.plan(study / source.name)
    alone = reproduce_plan.plan(study / source.name, alone=True)
    assert alone.members == [study / source.name] and not alone.packed and "no bits" in alone.notes[0]
    other = tmp_path / "elsewhere" / "mine"  # not a table's study folder: the pack's order is unknown
    shutil.copytree(source, other / source.name)
    shutil.copytree(source.parent / "hinge-q2-hinge-s1", other / "hinge-q2-hinge-s1")
    with pytest.raises(ValueError, match="is not the folder of a table's study .* order of the inferred pack"):
        reproduce_plan.plan(other / source.name)


def test_user_errors_name_the_remedy(tmp_path, capsys):
    run = GAN / BIT_FOR_BIT[0][0]
    with pytest.raises(ValueError, match="--iterations must be a whole number from 1 to 10000"):
        reproduce.reproduce(run, iterations=20_000)
    with pytest.raises(ValueError, match="is under the results root .* reproduce writes elsewhere"):
        reproduce.reproduce(run, iterations=1, out=GAN / "reproduced")
    assert not (GAN / "reproduced").exists()
    assert cli.main(["reproduce", str(tmp_path / "nothing")]) == 2
    assert "is not a run folder (give a folder holding config.yaml" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["reproduce", str(tmp_path / "empty")]) == 2
    assert "holds no finished run (summary.json) nor a checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a whole run, and the comparison


SMOKE = dict(cells=["wgan-q1-ls", "hinge-qinf-hinge"], iterations=6, log_every=2, metric_every=2, checkpoint_every=2,
             metric_samples=64, batch_size=16, as_released=True)


def test_a_whole_run_repeats_with_its_networks_and_a_changed_one_is_named(tmp_path):
    """A study trained here (a pack of 2, recorded) reproduced whole: every log line (metrics included) and the
    final networks bit for bit; a changed value in its log is found and named, field and iteration."""
    torch.set_num_threads(1)
    frame = gan_tables.run_table("2", "smoke", tmp_path / "study", **SMOKE)
    run = Path(frame["run"][1])
    for folder in frame["run"]:
        export_networks(folder)
    record = json.loads((run / SUMMARY).read_text())["execution"]
    assert record["packed"] and record["position"] == 1 and record["dtype"] == "float32"
    assert record["platform"] == train.platform_record("cpu")
    torch.set_num_threads(2)  # reproduce trains with the recorded count, whatever this process uses
    said = []
    result = reproduce.reproduce(run, out=tmp_path / "again", say=said.append)
    assert result.same, reproduce.report(result)
    asked = result.comparisons[0]
    assert asked.run == run.name and asked.lines == {"training": 3, "metric": 3} and asked.networks == "identical"
    assert torch.get_num_threads() == 2
    assert (tmp_path / "again" / run.name / LOG).is_file()  # kept in --out
    assert any("position 1 of a pack of 2" in text for text in said)
    assert reproduce.report(result)[0].startswith(f"{run.name} (bit for bit, log up to iteration 6)")

    lines = [json.loads(line) for line in (run / LOG).read_text().splitlines()]
    assert lines[2]["iteration"] == 4 and "critic_loss" in lines[2]
    original = lines[2]["critic_loss"]
    lines[2]["critic_loss"] = original * (1 + 1e-6)  # iteration 4's training line
    (run / LOG).write_text("".join(json.dumps(line) + "\n" for line in lines))
    changed = reproduce.reproduce(run, iterations=4)
    assert not changed.same and changed.out is None
    assert changed.comparisons[0].differences["training"].startswith(
        f"iteration 4, field critic_loss: recorded {lines[2]['critic_loss']!r}, reproduced {original!r} "
        "(relative 1.0e-06")
    assert changed.comparisons[0].lines == {"training": 2, "metric": 2}
    assert changed.comparisons[0].networks is None  # not the whole run: no final networks to compare


def test_compare_logs_names_the_first_differing_field():
    recorded = [{"iteration": 2, "critic_loss": 1.0, "penalty": 0.5, "iterations_per_s": 3.0},
                {"iteration": 2, "fdd": 10.0},
                {"iteration": 4, "critic_loss": float("nan"), "penalty": 0.25, "iterations_per_s": 3.0}]
    same = [{**line, "iterations_per_s": 9.0, "new": 1} if "critic_loss" in line else dict(line) for line in recorded]
    result = reproduce.compare_logs(recorded, same, 4, "r")
    assert result.same and result.unrecorded == ["new"] and result.lines == {"training": 2, "metric": 1}
    changed = [dict(line) for line in same]
    changed[1]["fdd"] = 10.5
    del changed[2]["penalty"]
    result = reproduce.compare_logs(recorded, changed, 4, "r")
    assert result.differences == {"training": "iteration 4, field penalty: recorded 0.25, not logged now",
                                  "metric": "iteration 2, field fdd: recorded 10.0, reproduced 10.5 (relative 5.0e-02)"}
    assert result.first.startswith("iteration 4, field penalty")
    assert reproduce.compare_logs(recorded, changed, 2, "r").differences.keys() == {"metric"}  # up to iteration 2
    missing = reproduce.compare_logs(recorded, same[:1], 4, "r")
    assert missing.differences["metric"] == "iteration 2: the reproduction has no metric line"


def test_platform_differences_are_said_before_training():
    here = train.platform_record("cpu")
    plan = reproduce_plan.Plan(Path("r"), [Path("r")], False, 1, "float32", 10, "recorded", {**here, "onednn": "2.0",
                          "cpu_flags": [*here["cpu_flags"], "no_such_isa"]}, {}, "0" * 40)
    notes = reproduce_plan.platform_notes(plan, torch.device("cpu"))
    assert "onednn: recorded 2.0, here " + here["onednn"] in notes
    assert "the CPU's vector instruction sets differ (recorded only: no_such_isa)" in notes
    same_sets = reproduce_plan.Plan(Path("r"), [Path("r")], False, 1, "float32", 10, "recorded",
                                    {**here, "cpu_flags": [*reversed(here["cpu_flags"]), *here["cpu_flags"][:1]]},
                                    {}, "0" * 40)
    assert not any("instruction sets" in note for note in reproduce_plan.platform_notes(same_sets, torch.device("cpu")))
    assert any(note.startswith("code: recorded commit " + "0" * 40) for note in notes)
    unrecorded = reproduce_plan.Plan(Path("r"), [Path("r")], False, 1, "float32", 10, "inferred", None,
                                {"torch": "1.0", "threads": "1"}, None)
    notes = reproduce_plan.platform_notes(unrecorded, torch.device("cpu"))
    assert notes[0] == f"torch: recorded 1.0, here {torch.__version__}" and "not recorded" in notes[-1]
