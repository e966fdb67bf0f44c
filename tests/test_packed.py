"""Packed training of K GAN runs (mmgan.gan.packed): packing, forward, penalty, Adam, and K runs trained packed
against the same runs trained one at a time by mmgan.gan.train.training_iteration."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from mmgan.gan import packed, train
from mmgan.gan.config import GANConfig
from mmgan.gan.models import make_gan
from mmgan.penalties import gradient_penalty

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread in this module only: a module-level setting would leak into every later test of the
    session (e.g. the gpu_check test compares a run with a child process that uses the default threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
# float64 (tests/conftest.py): on this CPU the packed runs came out bit-identical; the bound leaves room for
# another summation order (a grouped convolution or a batched matmul may sum differently from a plain one).
RTOL64, ATOL64 = 1e-10, 1e-12
BASE = GANConfig(dataset="digits", image_size=16, channels=1, arch="dcgan", width=8, z_dim=16, batch_size=8,
                 metric="fdd", metric_samples=64, device="cpu")


def _networks(arch: str, size: int, runs: int, critic_batchnorm: bool = True):
    pairs = []
    for seed in range(runs):
        torch.manual_seed(seed)
        pairs.append(make_gan(arch, size, 1, 16, 8, None, critic_batchnorm))
    return [g for g, _ in pairs], [d for _, d in pairs]


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def _assert_state_dicts(a: nn.Module, b: nn.Module, rtol: float = RTOL64, atol: float = ATOL64) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if key.endswith("num_batches_tracked"):
            assert torch.equal(sa[key], sb[key]), key
        else:
            _close(sa[key], sb[key], rtol, atol)


# ----------------------------------------------------------------------------- packing and forward


@pytest.mark.parametrize(("arch", "size", "critic_batchnorm", "dtype", "tol"), [
    ("dcgan", 16, True, torch.float64, 1e-10),
    ("dcgan", 16, True, torch.float32, 1e-5),
    ("standard_cnn", 32, False, torch.float64, 1e-10),
    ("standard_cnn", 32, True, torch.float64, 1e-10),
])
def test_pack_round_trip_and_forward(arch, size, critic_batchnorm, dtype, tol):
    torch.set_default_dtype(dtype)
    runs, batch = 3, 8
    generators, critics = _networks(arch, size, runs, critic_batchnorm)
    for models in (generators, critics):
        pg = packed.pack_modules(models)
        others = [copy.deepcopy(m) for m in models]
        with torch.no_grad():
            for other in others:
                for tensor in other.state_dict().values():
                    tensor.zero_()
        assert packed.unpack_modules(pg, others) == others
        for original, back in zip(models, others):  # exact round trip: a concatenation and a reshape
            for (name, x), (_, y) in zip(original.state_dict().items(), back.state_dict().items()):
                assert torch.equal(x, y), name
    pg, pc = packed.pack_modules(generators), packed.pack_modules(critics)
    for mode in ("train", "eval"):
        for m in (*generators, *critics, pg, pc):
            m.train(mode == "train")
        z = torch.randn(runs, batch, 16)
        images = packed.packed_generate(pg, z)
        alone = torch.stack([g(z[k]) for k, g in enumerate(generators)])
        assert images.shape == (runs, batch, 1, size, size)
        _close(images, alone, tol, tol)
        x = torch.rand(runs, batch, 1, size, size) * 2 - 1
        scores = packed.packed_critic_scores(pc, x)
        assert scores.shape == (runs, batch)
        _close(scores, torch.stack([d(x[k]) for k, d in enumerate(critics)]), tol, tol)
    # the train-mode passes updated every run's BatchNorm statistics as alone
    for pmodel, models in ((pg, generators), (pc, critics)):
        copies = packed.unpack_modules(pmodel, [copy.deepcopy(m) for m in models])
        for model, back in zip(models, copies):
            _assert_state_dicts(model, back, tol, tol)


def test_batchnorm_statistics_of_chosen_runs_only():
    _, critics = _networks("dcgan", 16, 3)
    pc = packed.pack_modules(critics)
    before = [copy.deepcopy(d) for d in critics]
    x = torch.rand(3, 8, 1, 16, 16)
    with packed._statistics_of(pc, [True, False, True]):
        scores = packed.packed_critic_scores(pc, x)
    _close(scores, torch.stack([d(x[k]) for k, d in enumerate(before)]), RTOL64, ATOL64)
    back = packed.unpack_modules(pc, [copy.deepcopy(d) for d in critics])
    _assert_state_dicts(back[0], before[0])
    _assert_state_dicts(back[1], critics[1])  # untouched: as before the pass
    _assert_state_dicts(back[2], before[2])


@pytest.mark.parametrize("as_released", [False, True])
def test_packed_penalty_is_the_single_run_penalty(as_released):
    _, critics = _networks("dcgan", 16, 3)
    pc = packed.pack_modules(critics)
    x_hat = torch.rand(3, 8, 1, 16, 16) * 2 - 1
    qs, gs = [1.0, 2.0, float("inf")], ["ls", "hinge", "ls"]
    released = [False, False, as_released]
    got = packed.packed_gradient_penalty(pc, x_hat, qs, gs, released)
    got.sum().backward()
    for k, critic in enumerate(critics):
        want = gradient_penalty(critic, x_hat[k], x_hat[k], q=qs[k], g=gs[k], at="real", as_released=released[k])
        _close(got[k], want, RTOL64, ATOL64)
        want.backward()
    for name, p in pc.named_parameters():
        per_run = torch.stack([dict(d.named_parameters())[name].grad for d in critics])
        _close(p.grad.reshape(per_run.shape), per_run, RTOL64, ATOL64)


# ----------------------------------------------------------------------------- Adam


@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.1}, {"amsgrad": True}, {"betas": (0.0, 0.9)}])
def test_one_adam_over_packed_parameters_is_k_adams(options):
    runs, shape = 4, (3, 2, 2, 2)
    gen = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(shape, generator=gen)) for _ in range(runs)]
    separate = [torch.optim.Adam([p], lr=1e-2, **options) for p in params]
    together = nn.Parameter(torch.cat([p.detach() for p in params]))
    one = torch.optim.Adam([together], lr=1e-2, **options)
    for _ in range(6):
        grads = [torch.randn(shape, generator=gen) * 10 ** float(torch.randint(-3, 3, (), generator=gen))
                 for _ in range(runs)]
        for p, grad, opt in zip(params, grads, separate):
            p.grad = grad
            opt.step()
        together.grad = torch.cat(grads)
        one.step()
    _close(together.detach(), torch.cat([p.detach() for p in params]), 1e-13, 1e-15)
    for key in one.state[together]:
        if key != "step":
            _close(one.state[together][key], torch.cat([o.state[p][key] for o, p in zip(separate, params)]),
                   1e-13, 1e-15)


def test_pack_and_unpack_adam_state():
    generators, _ = _networks("dcgan", 16, 2)
    opts = [torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999)) for g in generators]
    for g, opt in zip(generators, opts):  # two steps each so the moments are not trivial
        for _ in range(2):
            opt.zero_grad()
            g(torch.randn(4, 16)).pow(2).mean().backward()
            opt.step()
    pg = packed.pack_modules(generators)
    popt = packed.pack_adam(opts, pg, generators)
    copies = [copy.deepcopy(g) for g in generators]
    copy_opts = [torch.optim.Adam(g.parameters(), lr=1.0) for g in copies]
    packed.unpack_adam(popt, copy_opts, copies, pg)
    for opt, back, g, c in zip(opts, copy_opts, generators, copies):
        assert back.param_groups[0]["lr"] == 1e-3 and back.param_groups[0]["betas"] == (0.5, 0.999)
        for p, q in zip(g.parameters(), c.parameters()):
            assert opt.state[p].keys() == back.state[q].keys()
            for key in opt.state[p]:
                assert torch.equal(opt.state[p][key], back.state[q][key]), key


# ----------------------------------------------------------------------------- packed training = single runs


SCENARIOS = {
    # the cells of Tables 2-3: plain and relativistic hinge / WGAN, q ∈ {1, 2, inf}, g ∈ {ls, hinge}
    "dcgan": (dict(), [dict(loss="wgan", q="1", g="ls", seed=0, lam=10.0),
                       dict(loss="hinge", q="2", g="hinge", seed=1),
                       dict(loss="rahinge", q="inf", g="ls", seed=2, lam=5.0),
                       dict(loss="rphinge", q="2", g="ls", seed=3)]),
    # the released signed max / pooled smooth max, two critic steps, reused and i.i.d. real batches
    "dcgan-released": (dict(critic_steps=2), [
        dict(loss="rphinge", q="inf", g="hinge", seed=4, as_released=True, paired_critic_scale=1.0),
        dict(loss="sgan", q="smax", g="ls", seed=5, as_released=True, real_sampling="with_replacement"),
        dict(loss="rahinge", q="1", g="hinge", seed=6, generator_real_batch="reuse"),
        dict(loss="lsgan", q="2", g="squared_hinge", seed=7, penalty_at="real")]),
    # the relativistic GANs of the paper's other losses (every registered loss trains, packed as alone)
    "other-losses": (dict(), [dict(loss="rplsgan", q="2", g="ls", seed=0),
                              dict(loss="rasgan", q="inf", g="hinge", seed=1),
                              dict(loss="ralsgan", q="1", g="ls", seed=2)]),
    # Tables 5-6: the standard CNN without critic BatchNorm
    "standard_cnn": (dict(arch="standard_cnn", image_size=32, width=4, critic_batchnorm=False), [
        dict(loss="wgan", q="2", g="ls", seed=0), dict(loss="hinge", q="inf", g="hinge", seed=1)]),
}


@pytest.mark.parametrize(("scenario", "dtype"), [(name, torch.float64) for name in sorted(SCENARIOS)]
                         + [("dcgan", torch.float32)])
def test_packed_training_equals_single_runs(scenario, dtype):
    """5 iterations of K runs, packed and one at a time: weights, BatchNorm statistics, Adam moments,
    losses and random streams agree (float64: 1e-10 relative; float32, the engine's default: 1e-4)."""
    torch.set_default_dtype(dtype)  # mmgan.gan.train builds its networks and draws its noise in the default dtype
    rtol, atol = (RTOL64, ATOL64) if dtype == torch.float64 else (1e-4, 1e-5)
    shared, per_run = SCENARIOS[scenario]
    configs = [dataclasses.replace(BASE, **shared, **r).validate() for r in per_run]
    size = configs[0].image_size
    data = torch.rand(40, 1, size, size, generator=torch.Generator().manual_seed(11)) * 2 - 1
    iterations = 5
    alone, alone_losses = [], []
    for config in configs:
        state = train.new_state(config, CPU)
        losses = []
        for _ in range(iterations):
            c_loss, penalty, g_loss, _, _ = train.training_iteration(state, data, CPU)
            state.iteration += 1
            losses.append(torch.stack([c_loss.detach(), penalty.detach(), g_loss.detach()]))
        alone.append(state)
        alone_losses.append(torch.stack(losses))
    states = [train.new_state(config, CPU) for config in configs]
    pack = packed.pack_states(states)
    losses = []
    for _ in range(iterations):
        result = packed.packed_training_iteration(pack, data)
        pack.iteration += 1
        losses.append(torch.stack([result.critic_loss, result.penalty, result.generator_loss], 1))
    packed.unpack_state(pack, states)
    for k, (single, state) in enumerate(zip(alone, states)):
        assert state.iteration == single.iteration == iterations
        # the same random draws, in the same number and order
        assert torch.equal(state.rng.get_state(), single.rng.get_state()), k
        _assert_state_dicts(single.generator, state.generator, rtol, atol)
        _assert_state_dicts(single.critic, state.critic, rtol, atol)
        for name in ("opt_g", "opt_c"):
            a, b = getattr(single, name).state_dict()["state"], getattr(state, name).state_dict()["state"]
            assert a.keys() == b.keys()
            for i in a:
                for key in a[i]:
                    _close(a[i][key], b[i][key], rtol, atol)
        _close(torch.stack([step[k] for step in losses]), alone_losses[k], rtol, atol)
    fresh = train.new_state(configs[0], CPU)  # the runs did move
    assert not torch.allclose(fresh.critic[0].weight, states[0].critic[0].weight)


def test_non_finite_loss_stops_the_pack_before_any_update(monkeypatch):
    configs = [dataclasses.replace(BASE, loss=loss, seed=s).validate() for s, loss in enumerate(("wgan", "hinge"))]
    states = [train.new_state(c, CPU) for c in configs]
    pack = packed.pack_states(states)
    before = copy.deepcopy(pack.critic.state_dict())
    original = packed.critic_loss
    monkeypatch.setattr(packed, "critic_loss",
                        lambda name, *a, **k: original(name, *a, **k) * (float("nan") if name == "hinge" else 1.0))
    data = torch.rand(16, 1, 16, 16) * 2 - 1
    with pytest.raises(packed.PackedNonFiniteLoss, match=r"critic loss became non-finite at iteration 1 in run 1 "
                                                         r"\(hinge") as error:
        packed.packed_training_iteration(pack, data)
    assert error.value.runs == [1] and isinstance(error.value, train.NonFiniteLoss)
    for key, value in pack.critic.state_dict().items():
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(value, before[key]), key


def test_with_a_loss_watch_a_nan_run_is_recorded_and_reaches_no_other_run(monkeypatch):
    """The packed loop's mode: no check before the update, the NaN recorded on the device; the run that did not
    diverge still equals its single run (so dropping the failed run later loses nothing)."""
    configs = [dataclasses.replace(BASE, loss=loss, seed=s).validate() for s, loss in enumerate(("wgan", "hinge"))]
    data = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    alone = train.new_state(configs[0], CPU)
    for _ in range(3):
        train.training_iteration(alone, data, CPU)
        alone.iteration += 1
    original = packed.critic_loss
    monkeypatch.setattr(packed, "critic_loss",
                        lambda name, *a, **k: original(name, *a, **k) * (float("nan") if name == "hinge" else 1.0))
    states = [train.new_state(c, CPU) for c in configs]
    pack = packed.pack_states(states)
    watch = train.LossWatch(2, CPU)
    for _ in range(3):
        packed.packed_training_iteration(pack, data, watch=watch)
        pack.iteration += 1
    packed.unpack_state(pack, states)
    errors = watch.errors(states, ["out0", "out1"])
    assert list(errors) == [1]
    assert str(errors[1]) == "critic loss became nan at iteration 1; no checkpoint has been written to out1 yet " \
                             "(lower lr or lam)"
    assert not all(torch.isfinite(p).all() for p in states[1].critic.parameters())  # the updates were made
    _assert_state_dicts(alone.generator, states[0].generator)
    _assert_state_dicts(alone.critic, states[0].critic)
    kept = watch.select([1])
    assert kept.at.tolist() == [1] and watch.select([0]).errors(states[:1], ["out0"]) == {}


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("models", "message"), [
    (lambda: [nn.Sequential(nn.Conv2d(1, 2, 3), nn.GroupNorm(1, 2))] * 2, r"layer 1 \(GroupNorm\) is not supported"),
    (lambda: [nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout())], r"layer 1 \(Dropout\) is not supported"),
    (lambda: [nn.Conv2d(1, 2, 3)], "packs nn.Sequential networks, got Conv2d"),
    (lambda: [nn.Sequential(nn.Conv2d(1, 2, 3)), nn.Sequential(nn.Conv2d(1, 3, 3))], "layer 0 differs"),
    (lambda: [nn.Sequential(nn.BatchNorm2d(2, momentum=None))], "momentum"),
    (lambda: [], "at least one"),
])
def test_unsupported_networks_are_refused(models, message):
    with pytest.raises(ValueError, match=message):
        packed.pack_modules(models())


@pytest.mark.parametrize(("changes", "message"), [
    ([dict(loss="gan"), dict()], "invalid loss='gan'"),
    ([dict(), dict(lr=1e-3)], r"must share lr; got \[0.0002, 0.001\]"),
    ([dict(), dict(width=4)], "must share width"),
    ([dict(), dict(critic_steps=2)], "must share critic_steps"),
    ([dict(penalty_at="data"), dict()], "cannot mix penalty_at='data'"),
])
def test_unpackable_configurations_are_refused(changes, message):
    configs = [dataclasses.replace(BASE, **c) for c in changes]  # not validated: check_packable does it
    with pytest.raises(ValueError, match=message):
        packed.check_packable(configs)


def test_mismatched_optimisers_are_refused():
    generators, _ = _networks("dcgan", 16, 2)
    pg = packed.pack_modules(generators)
    with pytest.raises(ValueError, match="Adam lr differ"):
        packed.pack_adam([torch.optim.Adam(g.parameters(), lr=lr) for g, lr in zip(generators, (1e-3, 2e-3))],
                         pg, generators)
    with pytest.raises(ValueError, match="supports torch.optim.Adam only"):
        packed.pack_adam([torch.optim.SGD(g.parameters(), lr=1e-3) for g in generators], pg, generators)
