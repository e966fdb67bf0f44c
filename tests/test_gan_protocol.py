"""Issue: GAN reruns that run on any device, follow the released protocol, and never lose work."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
from pathlib import Path

import pytest
import torch
import yaml

from mmgan import losses, norms
from mmgan.base import randomness
from mmgan.base.run_folder import RunFolderBusy, RunLock, Stopped
from mmgan.gan import data as images
from mmgan.gan import metrics as fid
from mmgan.gan import models, protocol, table_specs, train
from mmgan.gan import tables as gan_tables
from mmgan.gan.config import config_from, resolve_device

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)


@pytest.fixture(scope="module")
def digits16():
    return images.load_images("digits", 16, 1)


def tiny(**changes) -> train.GANConfig:
    base = dict(dataset="digits", image_size=16, channels=1, arch="dcgan", width=4, metric="fdd",
                metric_samples=64, sample_batch_size=32, metric_every=1000, iterations=4, checkpoint_every=2,
                log_every=2, batch_size=8, device="cpu", seed=0)
    base.update(changes)
    return config_from(base)


# ----------------------------------------------------------------------------- 1. device-correct draws


@pytest.fixture
def cuda_generator_rule(monkeypatch):
    """Emulate on the CPU what CUDA enforces: a random draw may ask for a device together with a generator only
    if it is the generator's (with a CPU generator and device='cuda', torch raises "Expected a 'cuda' device type
    for generator")."""
    calls = []
    for name in ("rand", "randn", "randint", "randperm"):
        original = getattr(torch, name)

        def strict(*args, _original=original, _name=name, **kwargs):
            generator, device = kwargs.get("generator"), kwargs.get("device")
            if generator is not None and device is not None and torch.device(device) != generator.device:
                raise RuntimeError(f"torch.{_name}: generator and device= together fail on CUDA")
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch, name, strict)
    return calls


@pytest.mark.parametrize("loss", ["hinge", "rphinge", "rahinge"])
def test_training_iteration_never_pairs_a_generator_with_a_device(cuda_generator_rule, loss, digits16):
    state = train.new_state(tiny(loss=loss, q="inf", g="hinge"), torch.device("cpu"))
    c_loss, penalty, g_loss, real, fake = train.training_iteration(state, digits16, torch.device("cpu"))
    assert math.isfinite(float(c_loss)) and math.isfinite(float(g_loss))
    norms_logged = train.gradient_norms(state, real, fake.detach())
    assert set(norms_logged) == {"grad_norm_real", "grad_norm_fake", "grad_norm_interpolates", "generator_grad_norm",
                                 "saturated_share", *(f"grad_{n}_{p}" for n in ("l1", "l2", "linf")
                                                      for p in ("real", "fake"))}
    assert {"randn", "randperm", "rand"} <= set(cuda_generator_rule)


def test_generator_statistics_never_pairs_a_generator_with_a_device(cuda_generator_rule):
    class FirstTwo(fid.Extractor):
        name, dim, recommended_samples = "first-two", 2, 2

        def forward(self, x):
            return x[:, :2]

    stats = fid.generator_statistics(lambda z: z, FirstTwo(), n=50, z_dim=3, batch_size=16)
    assert stats.n == 50 and "randn" in cuda_generator_rule


def test_draws_are_the_same_stream_whatever_the_target_device():
    a = randomness.normal((4, 3), torch.Generator().manual_seed(5), "cpu")
    b = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    distinct = randomness.indices(10, 10, torch.Generator().manual_seed(0), replacement=False)
    assert sorted(distinct.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="cannot draw 11 distinct"):
        randomness.indices(10, 11, torch.Generator(), replacement=False)


# ----------------------------------------------------------------------------- 2. the released protocol


def test_released_smooth_max_pools_signed_gradients_over_the_batch():
    grad = torch.tensor([[1.0, -2.0], [0.5, -3.0]])
    entries = [1.0, -2.0, 0.5, -3.0]  # the released formula: sum g exp(g) / sum exp(g) over the whole batch
    expected = sum(g * math.exp(g) for g in entries) / sum(math.exp(g) for g in entries)
    released = norms.grad_norm(grad, "smax", as_released=True)
    assert released.tolist() == pytest.approx([expected, expected], rel=1e-6)
    abs_pooled = sum(abs(g) * math.exp(abs(g)) for g in entries) / sum(math.exp(abs(g)) for g in entries)
    assert abs(expected - abs_pooled) > 1  # pooling |g| (our earlier reading) gives a different penalty
    assert norms.grad_norm(grad, math.inf, as_released=True).tolist() == [1.0, 0.5]  # signed max


def test_paired_critic_loss_carries_the_released_factor_two():
    real, fake = torch.tensor([0.3, -0.2, 1.5]), torch.tensor([0.1, 0.4, -0.9])
    plain = torch.relu(1 - (real - fake)).mean()
    assert float(losses.critic_loss("rphinge", real, fake)) == pytest.approx(float(plain))
    assert float(losses.critic_loss("rphinge", real, fake, paired_scale=2.0)) == pytest.approx(2 * float(plain))
    assert float(losses.critic_loss("hinge", real, fake, paired_scale=2.0)) == pytest.approx(
        float(losses.critic_loss("hinge", real, fake)))
    assert train.GANConfig().paired_critic_scale == 2.0


@pytest.mark.parametrize(("loss", "choice", "real_batches"), [
    ("rphinge", "fresh", 2), ("rphinge", "reuse", 1), ("hinge", "fresh", 1)])
def test_relativistic_generator_step_draws_a_fresh_real_batch(monkeypatch, digits16, loss, choice, real_batches):
    drawn = []
    original = train.real_batch
    monkeypatch.setattr(train, "real_batch", lambda *a: drawn.append(1) or original(*a))
    state = train.new_state(tiny(loss=loss, generator_real_batch=choice), torch.device("cpu"))
    train.training_iteration(state, digits16, torch.device("cpu"))
    assert len(drawn) == real_batches


def test_real_batches_hold_distinct_images_as_released(digits16):
    small = torch.arange(8.0).reshape(8, 1, 1, 1)
    config = tiny(batch_size=8)
    for seed in range(5):
        batch = train.real_batch(small, config, torch.Generator().manual_seed(seed), None)
        assert sorted(batch.flatten().tolist()) == list(range(8))
    iid = dataclasses.replace(config, real_sampling="with_replacement")
    repeats = [len(set(train.real_batch(small, iid, torch.Generator().manual_seed(s), None).flatten().tolist())) < 8
               for s in range(5)]
    assert any(repeats)


def test_standard_cnn_critic_as_released():
    _, critic = models.make_gan("standard_cnn", 32, critic_batchnorm=False)
    layers = list(critic)
    last_conv = max(i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Conv2d))
    assert isinstance(layers[last_conv + 1], torch.nn.LeakyReLU) and layers[last_conv + 1].negative_slope == 0.1
    _, with_bn = models.make_gan("standard_cnn", 32, critic_batchnorm=True)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn) == 6  # after convolutions 1-6, not the 7th
    assert models.parameter_count(with_bn) - models.parameter_count(critic) == 2 * (64 + 64 + 128 + 128 + 256 + 256)
    _, dcgan = models.make_gan("dcgan", 32)
    assert {m.negative_slope for m in dcgan if isinstance(m, torch.nn.LeakyReLU)} == {0.02}


def test_train_mode_sampling_uses_batch_statistics_and_leaves_the_model_unchanged():
    generator, _ = models.make_gan("dcgan", 16, channels=1, width=4)
    generator.train()
    for _ in range(3):  # move the running statistics away from their initial values
        generator(torch.randn(16, 128))
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    z = torch.randn(8, 128)
    with models.sampling_mode(generator, "train") as g:
        batch_mode = g(z)
    with models.sampling_mode(generator, "eval") as g:
        eval_mode = g(z)
    assert generator.training
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert not torch.allclose(batch_mode, eval_mode)
    with pytest.raises(ValueError, match="valid choices: 'train', 'eval'"):
        with models.sampling_mode(generator, "test"):
            pass


def test_samples_are_rounded_to_8_bit_like_png_files():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.3, 1.0, 1.2])
    q = fid.quantize_8bit(x)
    levels = (q + 1) / 2 * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert q[0] == -1 and q[-1] == 1 and q[-2] == 1
    assert float(q[2]) == pytest.approx(128 / 255 * 2 - 1, abs=1e-6)  # 127.5 + 0.5 truncates to 128, as save_image does


def test_protocol_table_of_the_paper_preset_differs_only_in_the_fid_implementation_and_tf32():
    """The paper preset follows the released protocol but for the FID implementation and, by default, TF32 on
    the GPU (a parameter turns it off; then only the FID implementation differs)."""
    for table in gan_tables.TABLES:
        spec = gan_tables.TABLES[table]
        unknown = {"BatchNorm in the critic"} if spec.arch == "standard_cnn" else set()
        if table in table_specs.ZERO_CENTRED_TABLES:  # beyond the paper: its penalty is not the released one
            unknown |= {"gradient penalty"} | ({"relativistic paired critic loss"} if table == "r3gan" else set())
        for tf32, expected in ((None, {"metric", "how the device computes"}), (False, {"metric"})):
            runs, base = gan_tables.table_configs(table, "paper", tf32=tf32)
            frame = protocol.protocol_table(base, spec.losses, (1,))
            assert set(protocol.differences(frame)) == expected | unknown, (table, tf32)
    _, cpu = gan_tables.table_configs("2", "cpu")
    differences = protocol.differences(protocol.protocol_table(cpu, seeds=(0, 1, 2)))
    assert {"LeakyReLU slope of the critic", "real batches", "metric samples: 8-bit rounding",
            "L^∞ gradient norm (q = inf cells)", "data set", "networks"} <= set(differences)
    _, table3 = gan_tables.table_configs("3", "smoke")
    assert "relativistic paired critic loss" in set(protocol.protocol_table(table3, ("rphinge", "rahinge"))["setting"])


# ----------------------------------------------------------------------------- 3. configs users type


def test_yaml_values_are_coerced_to_their_declared_types():
    config = config_from(yaml.safe_load("lr: 2e-4\niterations: 1e5\nas_released: 'true'\nq: inf\nlam: 20\n"
                                        "seed: '3'\n"))
    assert (config.lr, config.iterations, config.as_released, config.q, config.lam, config.seed) == (
        2e-4, 100_000, True, "inf", 20.0, 3)
    assert isinstance(config.lam, float) and isinstance(config.iterations, int)
    for values, message in [({"lr": "fast"}, "config field lr: expected float"),
                            ({"iterations": 2.5}, "config field iterations: expected int"),
                            ({"as_released": "maybe"}, "config field as_released: expected bool"),
                            ({"batch_size": True}, "config field batch_size: expected int"),
                            ({"metric_samples": 1}, "metric_samples must be >= 2")]:
        with pytest.raises(ValueError, match=message):
            config_from(values)


def test_the_readme_paper_yaml_is_accepted_as_written():
    text = (ROOT / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = config_from(yaml.safe_load(block))
    assert (config.lr, config.iterations, config.metric_samples, config.as_released) == (2e-4, 100_000, 50_000, True)


def test_fid_below_2048_samples_warns_naming_the_parameter():
    with pytest.warns(UserWarning, match="metric_samples=1000 is below 2048"):
        config_from({"metric": "fid", "metric_samples": 1000})


def test_devices_users_type_and_unusable_ones_refused_before_any_folder(tmp_path, digits16):
    assert config_from({"device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(ValueError, match=r"invalid device='gpu'; valid choices: 'auto', 'cpu', 'cuda'"):
        config_from({"device": "gpu"})
    if not torch.cuda.is_available():
        out = tmp_path / "never-created"
        with pytest.raises(ValueError, match="no CUDA device is available"):
            train.train(tiny(device="cuda:1"), out, progress=False, data=digits16)
        assert not out.exists()
        with pytest.raises(ValueError, match="no CUDA device"):
            gan_tables.run_table("2", "smoke", tmp_path / "runs", device="cuda")
        assert not (tmp_path / "runs").exists()
    assert resolve_device("cpu") == torch.device("cpu")


# ----------------------------------------------------------------------------- 4. never lose or mix up work


def test_a_second_writer_is_refused(tmp_path, digits16):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunFolderBusy, match=r"being written by .*pid"):
            train.train(tiny(), tmp_path / "run", progress=False, data=digits16)
    train.train(tiny(), tmp_path / "run", progress=False, data=digits16)  # free again once released


def test_a_fresh_run_refuses_a_folder_that_holds_one(tmp_path, digits16):
    train.train(tiny(), tmp_path, progress=False, data=digits16)
    with pytest.raises(FileExistsError, match="already holds a finished run.*--resume.*--overwrite"):
        train.train(tiny(), tmp_path, progress=False, data=digits16)
    (tmp_path / "summary.json").unlink()
    with pytest.raises(FileExistsError, match="already holds a partial run"):
        train.train(tiny(), tmp_path, progress=False, data=digits16)
    summary = train.train(tiny(), tmp_path, overwrite=True, progress=False, data=digits16)
    assert summary["iterations"] == 4


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(folder / "checkpoint.pt", weights_only=True)
    return {f"{part}.{k}": v for part in ("generator", "critic") for k, v in payload[part].items()}


def test_ctrl_c_stops_at_an_iteration_boundary_and_resumes_exactly(tmp_path, digits16, monkeypatch):
    config = tiny(iterations=6, checkpoint_every=100, loss="rphinge", q="inf", g="hinge")
    train.train(config, tmp_path / "whole", progress=False, data=digits16)
    calls = {"n": 0}
    original = train.critic_loss

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # in the middle of iteration 3, between forward passes
            signal.raise_signal(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(train, "critic_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train.train(config, tmp_path / "split", progress=False, data=digits16)
    monkeypatch.setattr(train, "critic_loss", original)
    assert torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["iteration"] == 3
    train.train(config, tmp_path / "split", resume=True, progress=False, data=digits16)
    whole, split = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert all(torch.equal(whole[k], split[k]) for k in whole)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2])
def test_sigterm_checkpoints_at_the_boundary_hands_the_signal_on_and_resumes_exactly(tmp_path, digits16,
                                                                                     monkeypatch, signum):
    """What a scheduler sends before SIGKILL (SIGTERM) or at pre-emption (SLURM's SIGUSR2): the run saves at the
    next iteration boundary, then the signal goes to the handler that was there before (here a recorder; by
    default it ends the process with status 143, in a submitit job it requeues)."""
    config = tiny(iterations=6, checkpoint_every=100)
    train.train(config, tmp_path / "whole", progress=False, data=digits16)
    received = []

    def recorder(number, frame):
        received.append(torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["iteration"])

    previous = signal.signal(signum, recorder)
    interrupt = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under `nohup ... &`
    try:
        calls = {"n": 0}
        original = train.critic_loss

        def interrupting(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:  # in the middle of iteration 3
                signal.raise_signal(signum)
            return original(*args, **kwargs)

        monkeypatch.setattr(train, "critic_loss", interrupting)
        with pytest.raises(Stopped, match=f"stopped by {signal.Signals(signum).name} at iteration 3") as info:
            train.train(config, tmp_path / "split", progress=False, data=digits16)
        assert info.value.signum == signum
        assert received == [3]  # handed on once, after the checkpoint of iteration 3 was written
        assert signal.getsignal(signum) is recorder  # the handlers are restored
        assert signal.getsignal(signal.SIGINT) is interrupt
    finally:
        signal.signal(signum, previous)
    monkeypatch.setattr(train, "critic_loss", original)
    assert (tmp_path / "split" / ".lock").read_text() == ""  # released (the file stays, empty)
    train.train(config, tmp_path / "split", resume=True, progress=False, data=digits16)
    whole, split = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert all(torch.equal(whole[k], split[k]) for k in whole)


def test_resume_cuts_the_log_back_to_the_checkpoint(tmp_path, digits16):
    config = tiny(iterations=4, checkpoint_every=2, log_every=1)
    train.train(dataclasses.replace(config, iterations=2), tmp_path, progress=False, data=digits16)
    kept = (tmp_path / "checkpoint.pt").read_bytes()
    train.train(config, tmp_path, resume=True, progress=False, data=digits16)
    (tmp_path / "checkpoint.pt").write_bytes(kept)  # as if killed after logging 3-4 but before their checkpoint
    (tmp_path / "summary.json").unlink()
    with (tmp_path / "log.jsonl").open("a") as log:
        log.write('{"iteration": 4, "critic_lo')  # a line cut short by the kill
    train.train(config, tmp_path, resume=True, progress=False, data=digits16)
    iterations = [json.loads(line)["iteration"] for line in (tmp_path / "log.jsonl").read_text().splitlines()
                  if "critic_loss" in line]
    assert iterations == [1, 2, 3, 4]


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_an_unreadable_checkpoint_is_named_before_any_data_is_loaded(tmp_path, content):
    (tmp_path / "checkpoint.pt").write_bytes(content)
    config = dataclasses.replace(tiny(), dataset="cifar10", metric="fid", metric_samples=2048,
                                 data_root=str(tmp_path / "no-data"))
    with pytest.raises(ValueError, match=r"checkpoint\.pt is not a readable checkpoint.*--overwrite"):
        train.train(config, tmp_path, resume=True, progress=False)


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, digits16, monkeypatch):
    train.train(tiny(iterations=2), tmp_path, progress=False, data=digits16)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        train.train(tiny(iterations=4), tmp_path, resume=True, progress=False, data=digits16)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_non_finite_errors_say_truthfully_whether_a_checkpoint_exists(tmp_path, digits16, monkeypatch):
    original = train.critic_loss
    monkeypatch.setattr(train, "critic_loss", lambda *a, **k: original(*a, **k) * float("nan"))
    with pytest.raises(train.NonFiniteLoss, match="no checkpoint has been written"):
        train.train(tiny(), tmp_path, progress=False, data=digits16)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_huge_lambda_never_leaves_non_finite_weights_in_a_checkpoint(tmp_path, digits16):
    with pytest.raises(train.NonFiniteLoss):
        train.train(tiny(lam=1e38, iterations=3, checkpoint_every=1), tmp_path, progress=False, data=digits16)
    if (tmp_path / "checkpoint.pt").exists():
        assert all(torch.isfinite(v).all() for v in _weights(tmp_path).values() if v.is_floating_point())


def test_one_failing_cell_does_not_stop_the_table(tmp_path, monkeypatch):
    """The one-at-a-time path (pack=False); the packed path is tested in test_packed_table."""
    original = gan_tables.train

    def flaky(config, out, **kwargs):
        if config.q == "inf" and config.g == "ls":
            raise RuntimeError("simulated failure")
        return original(config, out, **kwargs)

    monkeypatch.setattr(gan_tables, "train", flaky)
    with pytest.warns(UserWarning, match="simulated failure"):
        frame = gan_tables.run_table("2", "smoke", tmp_path, cells=["wgan-qinf-ls", "wgan-q2-hinge"],
                                     iterations=2, metric_samples=16, pack=False)
    assert frame.set_index("q")["status"].to_dict() == {"inf": "failed", "2": "finished"}
    assert "simulated failure" in frame.loc[frame["q"] == "inf", "error"].item()
    assert len(gan_tables.finished(frame)) == 1 and len(gan_tables.metric_curves(frame)) == 1


def test_table_parameters_in_the_forms_users_type():
    runs, _ = gan_tables.table_configs("2", "smoke", seeds="[0, 1]", cells='["hinge-qinf-hinge"]')
    assert runs == [("hinge", "inf", "hinge", 0), ("hinge", "inf", "hinge", 1)]
    runs, _ = gan_tables.table_configs("2", "smoke", seeds=3, cells="hinge-qinf-hinge")
    assert runs == [("hinge", "inf", "hinge", 3)]
    with pytest.raises(ValueError, match="seeds"):
        gan_tables.table_configs("2", "smoke", seeds=[0, 0])
    _, paper = gan_tables.table_configs("2", "paper")
    assert paper.as_released and not gan_tables.table_configs("2", "paper", as_released="False")[1].as_released


def test_gpu_check_runs_end_to_end_at_toy_size(tmp_path, capsys):
    """The GPU check's steps (smoke tables, a run killed with SIGKILL in a child process and resumed, speeds)
    on the CPU at toy size; on the CPU the resume is bit-exact."""
    from mmgan.gan import gpu_check

    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    report = json.loads(lines[-1])
    assert report["ok"] and report["paper_width_run"]["resume"] == "bit-exact"
    assert report["paper_width_run"]["killed_after_iteration"] > report["paper_width_run"]["iterations"] // 2
    assert lines[0].startswith("gpu_check") and "OK" in lines[0]
    assert report["fid_seconds_per_sample"] > 0 and set(report["table_costs"]) == set(gan_tables.TABLES)
    assert all(cost["hours"] > 0 for cost in report["table_costs"].values())
    assert any(line.startswith("- estimated hours per table") for line in lines)
    assert "TOY WIDTHS" in report["cost_assumptions"]


def test_stand_in_studies_are_the_runs_their_table_would_train(monkeypatch):
    for table, stand_in in gan_tables.STAND_INS.items():
        source, overrides = gan_tables.study_source(table)
        assert source == stand_in.runs_of and source in gan_tables.STUDIES
        runs, base = gan_tables.table_configs(source, "cpu", **overrides)
        assert runs == gan_tables.table_configs(table, "cpu", **overrides)[0]
        assert gan_tables.table_folder(source, "cpu", base, "r").name == gan_tables.table_folder(
            table, "cpu", gan_tables.table_configs(table, "cpu", **overrides)[1], "r").name
    # the DCGAN runs of Table 2 are not what Table 6 (standard CNN) trains: refused
    monkeypatch.setitem(gan_tables.STAND_INS, "6", table_specs.StandIn("2", "", ""))
    monkeypatch.setitem(gan_tables.STUDIES, "6", {"cells": ["hinge-q2-hinge"]})
    with pytest.raises(ValueError, match="Table 6's stand-in, the study of Table 2, is not what Table 6 trains"):
        gan_tables.study_source("6")
    with pytest.raises(ValueError, match="valid choices"):
        gan_tables.study_source("1")


@pytest.mark.parametrize("packed_runs", [False, True])
def test_logging_does_not_change_the_critic(tmp_path, digits16, packed_runs):
    """The gradient norms of a log line run the critic in train mode; its BatchNorm running statistics (used by
    an eval-mode critic) must stay those of training alone: a run logging every iteration ends with the same
    critic, buffers included, as one that never logs."""
    from mmgan.gan.packed_training import train_packed

    def run(log_every: int, name: str) -> dict[str, torch.Tensor]:
        config = tiny(iterations=4, checkpoint_every=4, log_every=log_every)
        if packed_runs:
            train_packed([config, dataclasses.replace(config, seed=1)], [tmp_path / name, tmp_path / f"{name}1"],
                         digits16)
        else:
            train.train(config, tmp_path / name, progress=False, data=digits16)
        return torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["critic"]

    quiet, chatty = run(100, "quiet"), run(1, "chatty")
    assert any("running_mean" in k for k in quiet)
    differ = [k for k in quiet if not torch.equal(quiet[k], chatty[k])]
    assert not differ, differ


def test_execution_settings_change_how_not_what(tmp_path, digits16):
    """channels_last computes the same run up to float rounding; TF32, autotuning and the memory format are not
    part of a table's key and may change when a run resumes."""
    plain = train.train(tiny(iterations=4, metric_every=2), tmp_path / "nchw", progress=False, data=digits16)
    nhwc = train.train(tiny(iterations=4, metric_every=2, channels_last=True), tmp_path / "nhwc", progress=False,
                       data=digits16)
    for (_, a), (_, b) in zip(plain["history"], nhwc["history"]):
        assert b == pytest.approx(a, rel=1e-4)
    assert nhwc["environment"]["device"] == "cpu" and nhwc["config"]["channels_last"] is True
    _, first = gan_tables.table_configs("2", "paper")
    _, second = gan_tables.table_configs("2", "paper", tf32=False, cudnn_benchmark=False, channels_last=True)
    assert gan_tables.table_folder("2", "paper", first, "r") == gan_tables.table_folder("2", "paper", second, "r")
    more = tiny(iterations=6, metric_every=2, channels_last=False)
    resumed = train.train(more, tmp_path / "nhwc", resume=True, progress=False, data=digits16)
    assert resumed["iterations"] == 6


def test_packed_runs_in_channels_last_match_single_runs(tmp_path, digits16):
    from mmgan.gan.packed_training import train_packed

    configs = [tiny(iterations=3, metric_every=3, channels_last=True, seed=s) for s in (0, 1)]
    packed = train_packed(configs, [tmp_path / "p0", tmp_path / "p1"], digits16)
    alone = [train.train(c, tmp_path / f"s{c.seed}", progress=False, data=digits16) for c in configs]
    for p, a in zip(packed, alone):
        assert p["final"] == pytest.approx(a["final"], rel=1e-4)


def _contend(folder: str, marker: str, attempts: int) -> int:
    """Take the run lock again and again; inside it, create ``marker`` exclusively (a second holder would find
    it there). Returns how often this process held the lock; raises if it ever met another holder."""
    import os

    from mmgan.base.run_folder import RunFolderBusy, RunLock

    held = 0
    for _ in range(attempts):
        try:
            with RunLock(folder):
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # FileExistsError: two holders
                os.close(fd)
                held += 1
                os.unlink(marker)
        except RunFolderBusy:
            continue
    return held


def test_three_processes_never_hold_one_lock_together(tmp_path):
    from mmgan.base.processes import run_tasks

    folder, marker = tmp_path / "run", tmp_path / "inside"
    held = run_tasks([(_contend, (str(folder), str(marker), 300))] * 3, workers=3, threads=1)
    assert sum(held) > 0 and not marker.exists()
