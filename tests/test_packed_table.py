"""run_table(pack=True): the runs of a table trained as packs (mmgan.gan.packed_training) against the same runs
trained one at a time (pack=False): summaries, logs, checkpoints, Ctrl-C and resume, and a failing run."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import signal
from pathlib import Path

import pytest
import torch
import yaml
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.overrides import TorchFunctionMode

from mmgan.base.run_folder import CHECKPOINT, LOG, SUMMARY
from mmgan.gan import packed, packed_training, train
from mmgan.gan import tables as gan_tables
from mmgan.gan.data import load_images


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread for this module only: a module-level set_num_threads would leak into every later test
    (the gpu_check test compares a run resumed here with one killed in a child process at default threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

# The smoke preset (digits 16 px, DCGAN width 4), shortened; two cells of Table 2, the released signed max in
# the q = inf one. Logs, metric evaluations and checkpoints every 2 iterations, so every path is exercised.
CELLS = ["wgan-q1-ls", "hinge-qinf-hinge"]
SETTINGS = dict(cells=CELLS, iterations=6, log_every=2, metric_every=2, checkpoint_every=2, metric_samples=64,
                batch_size=16, as_released=True)
# float32 (the engine's dtype): a grouped convolution may sum in another order than a plain one, so packed and
# single runs agree to rounding, not bit for bit. On this CPU the FDDs came out equal and the logged values
# within 1e-6 relative; the bounds leave room for another machine's kernels.
METRIC_RTOL = 1e-4
LOG_RTOL, LOG_ATOL = 1e-3, 1e-5


@pytest.fixture(autouse=True)
def _float32_and_cache(tmp_path_factory, monkeypatch):
    torch.set_default_dtype(torch.float32)
    monkeypatch.setenv("MMGAN_CACHE", str(tmp_path_factory.getbasetemp() / "mmgan-cache"))


def _table(root: Path, pack: bool = True, **changes):
    return gan_tables.run_table("2", "smoke", root, pack=pack, **{**SETTINGS, **changes})


def _log(run: str | Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run) / LOG).read_text().splitlines()]


def _summary(run: str | Path) -> dict:
    return json.loads((Path(run) / SUMMARY).read_text())


def _checkpoint(run: str | Path) -> dict:
    return torch.load(Path(run) / CHECKPOINT, weights_only=True)


def _assert_same_runs(a, b, exact: bool) -> None:
    """The runs of two run_table frames agree: summaries, log lines (keys and values) and weights."""
    assert list(a["status"]) == list(b["status"]) == ["finished"] * len(a)
    for run_a, run_b in zip(a["run"], b["run"]):
        sa, sb = _summary(run_a), _summary(run_b)
        assert sa["iterations"] == sb["iterations"] and sa["lowest_at"] == sb["lowest_at"]
        assert [it for it, _ in sa["history"]] == [it for it, _ in sb["history"]]
        rtol = 0 if exact else METRIC_RTOL
        assert [v for _, v in sa["history"]] == pytest.approx([v for _, v in sb["history"]], rel=rtol, abs=0)
        assert sa["config"] == sb["config"]
        la, lb = _log(run_a), _log(run_b)
        assert [sorted(line) for line in la] == [sorted(line) for line in lb]
        for line_a, line_b in zip(la, lb):
            for key in line_a:
                if key != "iterations_per_s":
                    assert line_a[key] == pytest.approx(line_b[key], rel=0 if exact else LOG_RTOL,
                                                        abs=0 if exact else LOG_ATOL), key
        ca, cb = _checkpoint(run_a), _checkpoint(run_b)
        assert ca.keys() == cb.keys() and ca["iteration"] == cb["iteration"]
        assert torch.equal(ca["rng"], cb["rng"])  # the same random draws, in the same number
        for part in ("generator", "critic"):
            for key, value in ca[part].items():
                if exact or not value.is_floating_point():
                    assert torch.equal(value, cb[part][key]), (part, key)
                else:
                    torch.testing.assert_close(value, cb[part][key], rtol=1e-3, atol=1e-4)


# ----------------------------------------------------------------------------- (a) packed = one at a time


def test_packed_table_equals_runs_one_at_a_time(tmp_path):
    packed_frame = _table(tmp_path / "packed")
    single_frame = _table(tmp_path / "single", pack=False)
    cols = ["loss", "q", "g", "seed", "status", "iterations", "lowest_at", "metric"]
    assert packed_frame[cols].equals(single_frame[cols])
    assert list(packed_frame["final"]) == pytest.approx(list(single_frame["final"]), rel=METRIC_RTOL)
    _assert_same_runs(packed_frame, single_frame, exact=False)
    first = _log(packed_frame["run"][0])
    assert [line["iteration"] for line in first] == [2, 2, 4, 4, 6, 6]  # a training line and a metric line each
    assert {"critic_loss", "penalty", "generator_loss", "iterations_per_s", "grad_norm_real", "grad_norm_fake",
            "grad_norm_interpolates", "grad_l1_real", "grad_l2_real", "grad_linf_real", "grad_l1_fake", "grad_l2_fake",
            "grad_linf_fake", "generator_grad_norm", "saturated_share"} == set(first[0]) - {"iteration"}
    assert first[0]["grad_l1_fake"] >= first[0]["grad_l2_fake"] >= first[0]["grad_linf_fake"] > 0  # dual-norm order
    assert first[0]["generator_grad_norm"] > 0 and 0 <= first[0]["saturated_share"] <= 1
    # what fixes each run's arithmetic: its pack (members, position), threads, layout and the code's commit
    packed_runs = [Path(run).name for run in packed_frame["run"]]
    for position, run in enumerate(packed_frame["run"]):
        execution = _summary(run)["execution"]
        assert execution["packed"] and execution["pack"] == packed_runs and execution["position"] == position
        assert execution["threads"] == torch.get_num_threads() and execution["channels_last"] is False
        assert execution["commit"]
    single = _summary(single_frame["run"][0])["execution"]
    assert not single["packed"] and single["pack"] == [] and single["position"] == 0
    assert all(lock.read_text() == "" for lock in tmp_path.rglob(".lock"))  # every lock released
    # finished runs are skipped, and loaded like any other
    again = _table(tmp_path / "packed")
    assert list(again["final"]) == list(packed_frame["final"])


# ----------------------------------------------------------------------------- (b) Ctrl-C and resume


def _interrupt_in_iteration(monkeypatch, module, iteration: int, calls_per_iteration: int,
                            signum: int = signal.SIGINT) -> None:
    """``signum`` in the middle of generator iteration ``iteration`` (between critic forward passes)."""
    calls = {"n": 0}
    original = module.critic_loss

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == (iteration - 1) * calls_per_iteration + 1:
            signal.raise_signal(signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "critic_loss", interrupting)


def test_ctrl_c_checkpoints_every_packed_run_and_resumes_exactly(tmp_path, monkeypatch):
    whole = _table(tmp_path / "whole")
    with monkeypatch.context() as patch, \
            pytest.raises(KeyboardInterrupt, match="iteration 3; the checkpoints of the 2 packed runs"):
        _interrupt_in_iteration(patch, packed, 3, len(CELLS))
        _table(tmp_path / "split")
    runs = sorted(p for p in (tmp_path / "split").rglob("*-s0") if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        assert _checkpoint(run)["iteration"] == 3 and not (run / SUMMARY).exists()
        assert (run / ".lock").read_text() == ""  # released
    split = _table(tmp_path / "split")
    _assert_same_runs(split, whole, exact=True)  # packing and unpacking are a copy: bit for bit


def test_sigterm_checkpoints_every_packed_run_then_hands_the_signal_on(tmp_path, monkeypatch):
    whole = _table(tmp_path / "whole")
    received = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: received.append(number))
    try:
        with monkeypatch.context() as patch, \
                pytest.raises(KeyboardInterrupt, match="SIGTERM at iteration 3; the checkpoints of the 2 packed"):
            _interrupt_in_iteration(patch, packed, 3, len(CELLS), signal.SIGTERM)
            _table(tmp_path / "split")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received == [signal.SIGTERM]
    runs = sorted(p for p in (tmp_path / "split").rglob("*-s0") if p.is_dir())
    assert [_checkpoint(run)["iteration"] for run in runs] == [3, 3]
    _assert_same_runs(_table(tmp_path / "split"), whole, exact=True)


def _configs(folders) -> list:
    return [train.config_from(yaml.safe_load((Path(f) / "config.yaml").read_text())) for f in folders]


def test_a_packed_run_resumes_only_as_its_pack(tmp_path, monkeypatch):
    """A packed run continues bit for bit only in its pack (issue 37): resumed by a table with pack_size=1 it is
    packed again with its recorded pack (exact); resumed alone (pack=False, train) or with part of its pack, it is
    refused with the way to resume it, and nothing of it changes; with inexact=True it continues alone, to
    rounding, and its summary records both arrangements."""
    whole = _table(tmp_path / "whole")
    split = tmp_path / "split"
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        _interrupt_in_iteration(patch, packed, 3, len(CELLS))
        _table(split)
    folders = [split / Path(r).relative_to(tmp_path / "whole") for r in whole["run"]]
    names = [f.name for f in folders]
    kept = {f: (f / CHECKPOINT).read_bytes() for f in folders}
    record = _checkpoint(folders[0])["execution"]  # the checkpoint carries the arrangement
    assert record["packed"] and record["pack"] == names and record["position"] == 0 and record["threads"] == 1
    assert record["from_iteration"] == 0 and record["platform"]["device"] == "cpu"

    with pytest.warns(UserWarning, match="failed: ValueError: .* trained at position 0 of a pack of 2 "
                                         r"\(wgan-q1-ls-s0, hinge-qinf-hinge-s0\), 1 thread\(s\); continued alone .* "
                                         "not bit for bit. Resume its pack instead"):
        alone = _table(split, pack=False)
    assert list(alone["status"]) == ["failed", "failed"] and "--inexact" in alone["error"][0]
    with pytest.raises(ValueError, match="position 1 of a pack of 2.*--inexact"):
        train.train(_configs(folders[1:])[0], folders[1], resume=True, progress=False)
    with pytest.warns(UserWarning, match="its checkpoint \\(iteration 3\\) continues bit for bit only in that pack, "
                                         "but hinge-qinf-hinge-s0 is not among the runs given"):
        part = _table(split, cells=CELLS[:1])
    assert list(part["status"]) == ["failed"]
    assert {f: (f / CHECKPOINT).read_bytes() for f in folders} == kept  # nothing written by the refusals

    _assert_same_runs(_table(split, pack_size=1), whole, exact=True)  # packed again as recorded

    # inexact: the packed run continued alone, to rounding; the record keeps where it trained before
    again = tmp_path / "again"
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        _interrupt_in_iteration(patch, packed, 3, len(CELLS))
        _table(again)
    folders = [again / Path(r).relative_to(tmp_path / "whole") for r in whole["run"]]
    for config, folder in zip(_configs(folders), folders):
        train.train(config, folder, resume=True, progress=False, inexact=True)
    _assert_same_runs(_table(again), whole, exact=False)
    execution = _summary(folders[1])["execution"]
    assert not execution["packed"] and execution["from_iteration"] == 3 and execution["reason"] == "resume"
    assert [(e["packed"], e["pack"], e["position"], e["from_iteration"]) for e in execution["earlier"]] == \
        [(True, names, 1, 0)]


def test_a_single_run_resumes_only_alone(tmp_path, monkeypatch):
    """A run checkpointed by the single-run loop is refused by a packed table (the fresh run beside it trains);
    with inexact=True it continues packed, to rounding, and runs at different iterations train as separate packs."""
    whole = _table(tmp_path / "whole")
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt, match="iteration 5; the checkpoint in"):
        _interrupt_in_iteration(patch, train, 5, 1)  # in the first run: stops the table there
        _table(tmp_path / "mixed", pack=False)
    folders = [tmp_path / "mixed" / Path(r).relative_to(tmp_path / "whole") for r in whole["run"]]
    assert _checkpoint(folders[0])["iteration"] == 5 and not folders[1].exists()
    assert _checkpoint(folders[0])["execution"]["packed"] is False
    with pytest.warns(UserWarning, match="trained at alone \\(plain layers\\), 1 thread\\(s\\); in a pack .* resume it "
                                         "alone"):
        refused = _table(tmp_path / "mixed")
    assert list(refused["status"]) == ["failed", "finished"]
    assert _checkpoint(folders[0])["iteration"] == 5
    shutil.rmtree(folders[1])
    trained = []
    original = packed_training._train_pack

    def recording(states, *args, **kwargs):
        trained.append([s.iteration for s in states])
        return original(states, *args, **kwargs)

    monkeypatch.setattr(packed_training, "_train_pack", recording)
    results = packed_training.train_packed(_configs([folders[0]]) + _configs([Path(whole["run"][1])]), folders,
                                           inexact=True)
    assert not any(isinstance(r, Exception) for r in results)
    assert sorted(trained) == [[0], [5]]  # one pack per iteration
    _assert_same_runs(_table(tmp_path / "mixed"), whole, exact=False)


# ----------------------------------------------------------------------------- (c) a failing run


def _poison_hinge_from(monkeypatch, iteration: int) -> None:
    """From generator iteration ``iteration`` on, the hinge cells' critic loss is NaN (both paths)."""
    current = {"iteration": 0}
    for module, name in ((packed_training, "packed_training_iteration"),
                         (train, "training_iteration")):
        original_step = getattr(module, name)

        def step(state, *args, _original=original_step, **kwargs):
            current["iteration"] = state.iteration + 1
            return _original(state, *args, **kwargs)

        monkeypatch.setattr(module, name, step)
    for module in (packed, train):
        original = module.critic_loss

        def poisoned(loss, *args, _original=original, **kwargs):
            value = _original(loss, *args, **kwargs)
            return value * math.nan if loss == "hinge" and current["iteration"] >= iteration else value

        monkeypatch.setattr(module, "critic_loss", poisoned)


def test_a_diverging_run_fails_alone_as_it_would_alone(tmp_path, monkeypatch):
    clean = _table(tmp_path / "clean")
    _poison_hinge_from(monkeypatch, 3)
    with pytest.warns(UserWarning, match="hinge-qinf-hinge-s0 failed: NonFiniteLoss: critic loss became nan at "
                                         "iteration 3; the checkpoint of iteration 2 in"):
        packed_frame = _table(tmp_path / "packed")
    with pytest.warns(UserWarning, match="hinge-qinf-hinge-s0 failed"):
        single_frame = _table(tmp_path / "single", pack=False)
    assert list(packed_frame["status"]) == list(single_frame["status"]) == ["finished", "failed"]
    error_packed, error_single = packed_frame["error"][1], single_frame["error"][1]
    assert error_packed.replace(str(tmp_path / "packed"), "<root>") == \
        error_single.replace(str(tmp_path / "single"), "<root>")
    assert math.isnan(packed_frame["final"][1])
    failed = Path(packed_frame["run"][1])
    kept = _checkpoint(failed)
    assert kept["iteration"] == 2 and not (failed / SUMMARY).exists()
    assert all(torch.isfinite(v).all() for part in ("generator", "critic") for v in kept[part].values()
               if v.is_floating_point())
    assert max(line["iteration"] for line in _log(failed)) == 2  # nothing logged after the checkpoint kept
    # the other run went on as in the clean table (to rounding: from iteration 4 on it trained in a pack of one,
    # whose convolutions are plain ones, not grouped ones), and as trained alone
    _assert_same_runs(packed_frame.iloc[:1], clean.iloc[:1], exact=False)
    _assert_same_runs(packed_frame.iloc[:1], single_frame.iloc[:1], exact=False)


def test_huge_lambda_fails_one_packed_run_with_the_single_run_error(tmp_path):
    """One run's weights (not its loss) become non-finite; the other run finishes as if trained alone."""
    _, base = gan_tables.table_configs("2", "smoke", **{**SETTINGS, "as_released": False, "checkpoint_every": 1})
    configs = [dataclasses.replace(base, loss="hinge", q="2", g="ls", seed=seed, lam=lam)
               for seed, lam in ((0, 1e38), (1, 20.0))]
    data = load_images("digits", 16, 1)
    results = packed_training.train_packed(configs, [tmp_path / "packed0", tmp_path / "packed1"], data)
    with pytest.raises(train.NonFiniteLoss) as alone:
        train.train(configs[0], tmp_path / "alone0", progress=False, data=data)
    reference = train.train(configs[1], tmp_path / "alone1", progress=False, data=data)
    assert isinstance(results[0], train.NonFiniteLoss)
    assert str(results[0]).replace("packed0", "X") == str(alone.value).replace("alone0", "X")
    assert results[1]["final"] == pytest.approx(reference["final"], rel=METRIC_RTOL)
    if (tmp_path / "packed0" / CHECKPOINT).exists():
        assert all(torch.isfinite(v).all() for part in ("generator", "critic")
                   for v in _checkpoint(tmp_path / "packed0")[part].values() if v.is_floating_point())


def test_unpackable_runs_are_refused_before_any_folder(tmp_path):
    _, base = gan_tables.table_configs("2", "smoke", **{**SETTINGS, "as_released": False})
    other = dataclasses.replace(base, metric_every=3)
    with pytest.raises(ValueError, match="must share metric_every"):
        packed_training.train_packed([base, other], [tmp_path / "a", tmp_path / "b"])
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- no host synchronisation per iteration

#: Tensor operations that hand a value to Python, i.e. wait for the device.
HOST_READS = {"__bool__", "item", "tolist", "__float__", "__int__", "__index__", "nonzero", "numpy", "__array__",
              "equal", "allclose", "is_nonzero"}


class _HostReads(TorchFunctionMode):
    """Records the tensor operations of :data:`HOST_READS` called inside (a CPU test sees no device syncs, so
    it counts what would be one on a GPU), except inside ``Optimizer.step``: Adam keeps its step counts on
    the CPU (unless ``capturable``) and reads them there, which never waits for a device."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.in_step = False
        self._hooks: list = []

    def __enter__(self):
        self._hooks = [register_optimizer_step_pre_hook(lambda *_: self._step(True)),
                       register_optimizer_step_post_hook(lambda *_: self._step(False))]
        return super().__enter__()

    def __exit__(self, *exc):
        for hook in self._hooks:
            hook.remove()
        return super().__exit__(*exc)

    def _step(self, inside: bool) -> None:
        self.in_step = inside

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS and not self.in_step:
            self.names.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("loss", ["hinge", "rphinge"])
def test_an_iteration_with_a_loss_watch_reads_nothing_back(loss):
    _, base = gan_tables.table_configs("2", "smoke", **{**SETTINGS, "as_released": False})
    configs = [dataclasses.replace(base, loss=loss, q=q, seed=seed) for seed, q in enumerate(("1", "inf"))]
    data = load_images("digits", 16, 1)
    cpu = torch.device("cpu")
    state, pack = train.new_state(configs[0], cpu), packed.pack_states([train.new_state(c, cpu) for c in configs])
    with _HostReads() as watched:
        train.training_iteration(state, data, cpu, watch=train.LossWatch(1, cpu))
        packed.packed_training_iteration(pack, data, cpu, watch=train.LossWatch(2, cpu))
    assert watched.names == []
    with _HostReads() as checked:  # without a watch each loss is checked before its update, as before
        train.training_iteration(state, data, cpu)
    assert checked.names == ["__bool__", "__bool__"]


def test_the_loops_read_from_the_device_only_at_their_log_metric_and_checkpoint_points(tmp_path, monkeypatch):
    """The number of host reads of a table does not grow with the number of iterations between those points."""
    reads = {}
    for name, module in (("train_runs", train), ("_train_pack", packed_training)):
        original = getattr(module, name)

        def watched(*args, _original=original, **kwargs):
            with _HostReads() as recorder:
                try:
                    return _original(*args, **kwargs)
                finally:
                    reads.setdefault(_original.__name__, []).append(len(recorder.names))

        monkeypatch.setattr(module, name, watched)
    for iterations in (2, 8):
        every = dict(iterations=iterations, log_every=iterations, metric_every=iterations, checkpoint_every=iterations)
        _table(tmp_path / f"packed{iterations}", **every)
        _table(tmp_path / f"single{iterations}", pack=False, **every)
    short, long = reads["_train_pack"]
    assert short == long > 0
    assert reads["train_runs"][:2] == reads["train_runs"][2:] and reads["train_runs"][0] > 0  # two runs per table


# ----------------------------------------------------------------------------- (e) snapshots along training


@pytest.mark.parametrize("pack", [True, False])
def test_snapshots_keep_the_networks_of_their_iteration(tmp_path, pack):
    frame = _table(tmp_path / "long", pack=pack, snapshot_every=4)
    short = _table(tmp_path / "short", pack=pack, iterations=4)
    for run, run_to_4 in zip(frame["run"], short["run"]):
        kept = sorted(p.name for p in (Path(run) / "snapshots").iterdir())
        assert kept == ["networks-000004.pt"]  # 4 only: 2 and 6 are checkpoints, not multiples of 4
        snapshot = torch.load(Path(run) / "snapshots" / kept[0], weights_only=True)
        assert snapshot.keys() == {"iteration", "generator", "critic"} and snapshot["iteration"] == 4
        reference = _checkpoint(run_to_4)
        for part in ("generator", "critic"):
            for key, value in snapshot[part].items():
                assert torch.equal(value, reference[part][key]), (part, key)
    with pytest.raises(ValueError, match="snapshot_every must be a positive multiple of checkpoint_every=2"):
        _table(tmp_path / "refused", snapshot_every=3)
    assert not (tmp_path / "refused").exists()
