"""Issue 36: the thresholds a loss defines (population estimates with standard errors, the level a loss pins or
leaves undetermined), the critic as trained (train-mode BatchNorm with each image's batch held fixed) and the
soundness check of the certificates (a flip search inside each uncapped certified ball)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mmgan.critics import certify, report, soundness, views
from mmgan.critics import measure as cm
from mmgan.critics import thresholds as th
from mmgan.critics.held_batch import HeldBatchCritic, class_batches, critic_view
from mmgan.gan.models import Flatten, kept_statistics
from mmgan.gan.trained import load_run
from mmgan.margins import MARGIN_ORDERS, boundary_distances
from mmgan.verdicts import Verdict

# ----------------------------------------------------------------------------- thresholds and their standard errors


def test_population_thresholds_and_their_standard_errors():
    real = torch.tensor([1.0, 2.0, 3.0, 4.0])
    fake = torch.tensor([-1.0, -3.0, 0.0, -2.0, -4.0, 1.0])
    se_real, se_fake = float(real.std()) / 2, float(fake.std()) / math.sqrt(6)
    relativistic = th.estimate("relativistic", "rahinge", real, fake)
    assert relativistic.real == pytest.approx(-1.5) and relativistic.fake == pytest.approx(2.5)
    assert relativistic.real_se == pytest.approx(se_fake) and relativistic.fake_se == pytest.approx(se_real)
    assert relativistic.level == "relative" and relativistic.score_gap == pytest.approx(4.0)
    assert relativistic.accuracy == 1.0  # every real above the mean fake score, every fake below the mean real one
    midpoint = th.estimate("midpoint", "wgan", real, fake)
    assert midpoint.real == midpoint.fake == pytest.approx(0.5)
    assert midpoint.real_se == pytest.approx(0.5 * math.hypot(se_real, se_fake))
    assert midpoint.accuracy == pytest.approx(9 / 10)  # the fake scoring 1 lies above 0.5
    zero = th.estimate("zero", "lsgan", real, fake)
    assert zero.real == 0.0 and zero.real_se == 0.0 and zero.level == "pinned"
    with pytest.raises(ValueError, match="valid choices: 'relativistic', 'zero', 'midpoint'"):
        th.estimate("median", "hinge", real, fake)


def test_train_mode_standard_errors_take_the_batch_as_the_unit():
    scores = torch.tensor([1.0, 1.2, 3.0, 3.4, 2.0, 2.2])  # three batches of two: means 1.1, 3.2, 2.1
    batches = torch.tensor([0, 0, 1, 1, 2, 2])
    mean, se = th.mean_and_se(scores, batches)
    means = torch.tensor([1.1, 3.2, 2.1], dtype=torch.float64)
    assert mean == pytest.approx(float(scores.mean())) and se == pytest.approx(float(means.std()) / math.sqrt(3))
    assert th.mean_and_se(scores)[1] == pytest.approx(float(scores.std()) / math.sqrt(6))
    with pytest.raises(ValueError, match="at least 2 batches of equal size"):
        th.mean_and_se(scores, torch.tensor([0, 0, 0, 1, 1, 2]))


def test_a_critic_whose_loss_does_not_pin_its_level_gets_undetermined_instead_of_an_accuracy():
    generator = torch.Generator().manual_seed(0)
    # HingeGAN critic with every score on the hinges' linear parts (reals below 1, fakes above -1): any shift in
    # (-1 - min fake, 1 - max real) leaves the loss unchanged, a set ~1.1 wide against a score gap of 0.3
    flat_real = 0.6 + 0.4 * torch.rand(1000, generator=generator)
    flat_fake = 0.3 + 0.4 * torch.rand(1000, generator=generator)
    flat = th.estimate("zero", "hinge", flat_real, flat_fake)
    assert flat.level == "undetermined" and flat.accuracy is None and flat.accuracy_text() == "undetermined"
    width = (1 - float(flat_real.max())) + (1 + float(flat_fake.min()))
    assert flat.level_width == pytest.approx(width, rel=1e-4)
    # a hinge critic whose scores straddle +1 and -1: the loss has one minimising shift, f = 0 is its boundary
    real = 1.0 + torch.randn(1000, generator=generator)
    fake = -1.0 + torch.randn(1000, generator=generator)
    pinned = th.estimate("zero", "hinge", real, fake)
    assert pinned.level == "pinned" and pinned.level_width < 0.01
    assert pinned.accuracy == pytest.approx(float(((real > 0).sum() + (fake < 0).sum()) / 2000))
    assert th.estimate("zero", "lsgan", flat_real, flat_fake).level == "pinned"  # strictly convex in the shift
    for loss in ("wgan", "rahinge", "rpsgan"):  # score differences only: never pinned
        estimate = th.estimate("zero", loss, real, fake)
        assert estimate.level == "undetermined" and estimate.level_width == math.inf and estimate.accuracy is None
        assert th.estimate("relativistic", loss, real, fake).accuracy is not None  # this boundary moves with f


# ----------------------------------------------------------------------------- the critic as trained


def conv_critic(batchnorms=1, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 4, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True), nn.Conv2d(4, 6, 4, 2, 1, bias=False),
              nn.BatchNorm2d(6), nn.LeakyReLU(0.2, True)]
    if batchnorms == 2:
        layers += [nn.Conv2d(6, 6, 1), nn.BatchNorm2d(6), nn.LeakyReLU(0.2, True)]
    critic = nn.Sequential(*layers, nn.Conv2d(6, 1, 2, 1, 0, bias=False), Flatten())
    for layer in critic:
        if isinstance(layer, nn.BatchNorm2d):
            layer.weight.data.uniform_(-2, 2)
            layer.bias.data.uniform_(-1, 1)
            layer.running_var.uniform_(0.5, 2.0)
    return critic.eval()


@pytest.mark.parametrize("batchnorms", [1, 2])
def test_train_mode_scores_with_a_held_batch_are_the_critics_train_forward_on_that_batch(batchnorms):
    critic = conv_critic(batchnorms)
    x, pool = torch.randn(10, 1, 8, 8), torch.randn(5, 1, 8, 8)
    mates, batch = class_batches(x, 4, pool)
    assert batch.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    blocks = torch.cat([x, pool[:2]]).reshape(3, 4, 1, 8, 8)  # the last batch filled from the pool
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    with kept_statistics(critic):
        critic.train()
        expected = torch.cat([critic(block) for block in blocks])[:10]
        critic.eval()
    held = HeldBatchCritic(critic, mates)
    assert torch.allclose(held(x), expected, atol=1e-12)
    assert torch.allclose(held(torch.cat([x, x, x])), expected.repeat(3), atol=1e-12)  # k·B rows, row r is r mod B
    scores, batches = cm.view_scores(critic, torch.cat([x, pool[:2]]), "train", 4)
    assert torch.allclose(scores[:10], expected, atol=1e-12) and batches.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert not critic.training and all(torch.equal(before[k], v) for k, v in critic.state_dict().items())
    # the batch statistics move with x: its gradient is not that of the frozen-statistics network
    z = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(held(z).sum(), z)
    assert torch.isfinite(grad).all()
    with pytest.raises(ValueError, match="multiple of 10 rows"):
        held(x[:3])
    with pytest.raises(ValueError, match="valid choices: 'train', 'eval'"):
        critic_view(critic, "both")


def test_train_mode_certificate_bounds_the_held_batch_critic_on_the_whole_ball():
    """The batch statistics are bounded, not frozen: the certificate is of the held-batch function itself."""
    from test_certify import points_in_ball

    critic = conv_critic(seed=3)
    x, pool = torch.randn(3, 1, 8, 8), torch.randn(8, 1, 8, 8)
    mates, _ = class_batches(x, 4, pool)
    steps = certify.affine_steps(critic, (1, 8, 8), mates)
    held = HeldBatchCritic(critic, mates)
    assert torch.allclose(certify.evaluate(steps, x), held(x).detach(), atol=1e-10)
    generator = torch.Generator().manual_seed(0)
    for p in MARGIN_ORDERS:
        radius = torch.tensor([0.0, 0.2, 1.0]) * (4.0 if p == 1.0 else 1.0)
        low, high = certify.output_bounds(steps, x.flatten(1), radius, p)
        assert torch.allclose(low[0], high[0], atol=1e-9)  # radius 0: exact, the statistics included
        for i in (1, 2):
            inside = points_in_ball(x[i:i + 1], float(radius[i]), p, 1500, generator).reshape(-1, 1, 8, 8)
            one = [step.select(torch.full((len(inside),), i)) if isinstance(step, certify.BatchStatistics) else step
                   for step in steps]
            values = certify.evaluate(one, inside)
            assert float(values.min()) >= float(low[i]) - 1e-9 and float(values.max()) <= float(high[i]) + 1e-9
    with pytest.raises(TypeError, match="one BatchNorm layer"):
        certify.affine_steps(conv_critic(2), (1, 8, 8), mates)


# ----------------------------------------------------------------------------- soundness on a committed critic


def committed_critic():
    """Table 3's first run, its critic in float32 as the measurements run it (the tests' default is float64, whose
    convolutions have no fast CPU kernel)."""
    run = load_run(cm.study_runs("3")["folder"].iloc[0])
    run.critic.float()
    return run


def test_the_flip_search_catches_an_inflated_certificate_and_not_the_real_one():
    """Table 3's first critic (the one measured first), train mode, one real and one generated image."""
    run = committed_critic()
    images = cm.measurement_set(run, 1)
    x = torch.cat([images.reals, images.fakes])
    mates, _ = images.mates(run.config.batch_size)
    held = HeldBatchCritic(run.critic, mates)
    with torch.no_grad():
        t = float(held(x).mean())  # a boundary between the two images
    f64 = soundness.float64_view(held)
    for p in MARGIN_ORDERS:
        found = boundary_distances(lambda z: held(z) - t, x, (p,), max_steps=10, restarts=1, polish_steps=1)[p]
        upper = found.distance.double()
        real = certify.certified_radius(run.critic, x, t, p, upper, steps=6, mates=mates, expand=True)
        assert (real > 0).all()
        assert not soundness.violations(run.critic, x, t, p, real, points=found.point, mates=mates, steps=40).any()
        inflated = 1.5 * upper  # a ball that reaches past a known boundary point: the search alone must find it
        flipped, lowest = soundness.flip_search(f64, x, t, p, inflated, steps=40)
        assert flipped.all() and (lowest <= 0).all()


def test_projection_onto_the_l1_ball():
    delta = torch.tensor([[3.0, -1.0, 0.5], [0.1, 0.1, 0.1]])
    projected = soundness.project_l1(delta, torch.tensor([2.0, 1.0]))
    assert torch.allclose(projected, torch.tensor([[2.0, 0.0, 0.0], [0.1, 0.1, 0.1]]))
    rng = torch.Generator().manual_seed(0)
    big = torch.randn(20, 30, generator=rng)
    radius = torch.rand(20, generator=rng) * 5
    out = soundness.project_l1(big, radius)
    assert torch.allclose(out.abs().sum(1), torch.minimum(radius, big.abs().sum(1)))
    assert ((out * big) >= 0).all()  # signs kept, entries only shrunk


# ----------------------------------------------------------------------------- rows, the loader and the CLI


def test_old_measurements_read_as_eval_mode_and_new_ones_as_train_first(tmp_path):
    rows = pd.DataFrame({"cell": "c", "seed": 0, "p": 1.0, "image": "real", "upper": 1.0, "lower": 0.1,
                         "taylor": 1.0, "fmn": 1.0, "threshold_rule": "zero"}, index=[0])
    cm.save_measurements(rows, "9", {}, tmp_path)
    frame, _ = cm.load_measurements("9", tmp_path)
    assert frame["mode"].tolist() == ["eval"]
    with pytest.raises(ValueError, match="no train-mode rows; measure them with `mmgan critic-margins 9 --mode train`"):
        cm.load_measurements("9", tmp_path, mode="train")
    both = pd.concat([rows.assign(mode="eval"), rows.assign(mode="train", upper=2.0)], ignore_index=True)
    cm.save_measurements(both, "9", {}, tmp_path)
    assert cm.load_measurements("9", tmp_path)[0]["upper"].tolist() == [2.0]  # primary: the critic as trained
    assert len(cm.load_measurements("9", tmp_path, mode="all")[0]) == 2
    with pytest.raises(ValueError, match="valid choices: 'primary', 'train', 'eval', 'all'"):
        cm.load_measurements("9", tmp_path, mode="both")


@pytest.mark.parametrize(("args", "expected"), [
    (["--mode", "batch"], "invalid choice: 'batch' (choose from 'train', 'eval', 'both')"),
    (["--population", "1"], "--population must be >= 2, got 1"),
    (["--soundness", "-1"], "--soundness must be >= 0, got -1"),
])
def test_the_new_options_are_checked(args, expected, capsys):
    from mmgan import cli

    try:
        code = cli.main(["critic-margins", "3", *args])
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    assert code == 2 and expected in capsys.readouterr().err


def test_population_and_soundness_arguments_are_checked():
    run = committed_critic()
    with pytest.raises(ValueError, match="population=2000 exceeds the 1797 images"):
        cm.population_scores(run, 2000, "eval")
    with pytest.raises(ValueError, match="multiple of the batch size 32"):
        cm.population_scores(run, 100, "train")
    assert cm.soundness_sample(10, 3) == cm.soundness_sample(10, 3) and len(cm.soundness_sample(10, 3)) == 3
    assert cm.soundness_sample(2, 5) == {0, 1}
    summary = cm.soundness_summary(pd.DataFrame({"cell": ["a", "a", "b"], "seed": 0, "iteration": 1,
                                                 "mode": ["train", "eval", "train"],
                                                 "certified_uncapped": [1.0, 2.0, np.nan],
                                                 "violation": [False, True, np.nan]}))
    assert summary == {"critics": 1, "balls": 2, "violations": 1, "by_mode": {"eval": 1, "train": 0}}


def test_the_threshold_table_states_each_critics_boundary_and_says_undetermined_instead_of_an_accuracy():
    rows = []
    for cell, level, accuracy in (("flat", "undetermined", np.nan), ("pinned", "pinned", 0.9)):
        for image, t, se, in_sample in (("real", 0.0, 0.0, 0.1), ("fake", 0.0, 0.0, 0.1)):
            for p in MARGIN_ORDERS:
                rows.append({"cell": cell, "seed": 0, "iteration": 10, "mode": "train", "threshold_rule": "zero",
                             "image": image, "p": p, "threshold": t, "threshold_se": se,
                             "threshold_in_sample": in_sample, "level": level, "level_width": 1.0,
                             "population": 1024, "population_accuracy": accuracy})
    table = cm.thresholds_per_critic(pd.DataFrame(rows)).set_index("cell")
    assert table.loc["flat", "accuracy"] == "undetermined" and table.loc["pinned", "accuracy"] == 0.9
    assert table.loc["flat", "t real"] == 0.0 and table.loc["flat", "in-sample fake"] == 0.1


# ------------------------------------------------------------------- which measurement and view a verdict is from


def test_a_first_measurement_is_named_as_such_and_a_remeasured_one_with_its_views():
    first = {"images": 8, "fmn_steps": 1000}
    assert views.provenance(first) is views.Provenance.FIRST
    assert "first measurement: 8 + 8 images" in views.measurement_text(first)
    assert "not re-measured" in views.measurement_text(first)
    new = {"images": 64, "modes": ["train", "eval"], "population": 1024, "seeds": [0, 1]}
    assert views.provenance(new) is views.Provenance.REMEASURED
    text = views.measurement_text(new)
    assert "64 + 64 images" in text and "train-mode critic" in text and "1,024 images per class" in text
    assert "seeds 0, 1" in text


def test_view_verdicts_state_the_train_view_first_and_whether_eval_agrees():
    def judged(verdicts):
        return pd.DataFrame({"proposition": ["a", "b"], "verdict": verdicts, "ratio": [1.5, 0.9],
                             "lower": [1.1, 0.5], "upper": [2.0, 1.6], "seeds": [3, 3]})

    table = views.view_verdicts(judged([Verdict.HOLDS, Verdict.CANNOT_TELL]),
                                judged([Verdict.CANNOT_TELL, Verdict.CANNOT_TELL]))
    assert table.loc["a", "train-mode critic (primary)"] == "holds (1.50 [1.10, 2.00])"
    assert table.loc["a", "views"] == "the eval view differs" and table.loc["b", "views"] == "the eval view agrees"
    assert table.loc["b", "eval-mode critic (second view)"] == "cannot tell at this noise (0.90 [0.50, 1.60])"
    # cannot tell keeps its interval, or says why it has none
    assert views.verdict_text(Verdict.CANNOT_TELL, 1.2, math.nan, math.nan) == \
        "cannot tell at this noise (1.20, no interval: fewer than 2 seeds)"
    assert views.verdict_text(Verdict.NOT_COMPARABLE, math.nan, math.nan, math.nan) == "not comparable"


def test_the_threshold_summary_gives_no_accuracy_where_the_loss_leaves_the_level_free():
    rows = pd.DataFrame({"cell": "c", "mode": "train", "rule": "zero", "real": 0.0, "fake": 0.0, "real_se": 0.0,
                         "fake_se": 0.0, "level": ["undetermined", "pinned", "pinned"],
                         "accuracy": [math.nan, 0.8, 0.9], "seed": [0, 1, 2], "loss": "hinge"}, index=range(3))
    summary = views.threshold_summary(rows).iloc[0]
    assert summary["level"] == "undetermined for 1 of 3"
    assert summary["accuracy (population)"] == f"0.850 over 2 critics (1: {views.UNDETERMINED})"
    free = views.threshold_summary(rows.assign(level="undetermined")).iloc[0]
    assert free["accuracy (population)"] == views.UNDETERMINED
    assert views.undetermined_text(rows) == "1 of 3 critics in at least one view (losses: hinge)"
    assert views.soundness_text({}) == "not run on this measurement"
    assert views.soundness_text({"soundness": {"critics": 1, "balls": 768, "violations": 0,
                                               "by_mode": {"train": 0, "eval": 0}}}) == \
        "0 violations in 768 certified balls of 1 critic(s) (train mode 0, eval mode 0)"


def test_seeds_keep_a_paired_subset_and_name_the_valid_ones():
    plan = cm.study_plan("3", seeds=[1, 2])
    assert set(plan["seed"]) == {1, 2} and (plan.groupby("cell").size() == 2).all()  # the same seeds in every cell
    assert len(cm.study_plan("3", seeds=[1], runs=2)) == 2
    with pytest.raises(ValueError, match=r"seeds \[99\] are not in Table 3's study; valid: \[0, 1, 2"):
        cm.measure_study("3", seeds=[0, 99])


def test_a_critic_whose_loss_leaves_its_level_free_has_no_accuracy_at_f_zero_and_does_not_pass_the_gate():
    rows = pd.DataFrame({"cell": "c", "loss": "hinge", "q": "2", "g": "hinge", "seed": 0, "p": 2.0,
                         "image": ["real", "fake"], "score": [0.5, 0.2], "threshold": 0.0, "upper": 1.0,
                         "fmn": 1.0, "lower": 0.1, "taylor": 1.0, "sign_change": True, "converged": True,
                         "final_fdd": 5.0, "lowest_fdd": 5.0, "first_fdd": 50.0})
    pinned = report.per_critic(rows.assign(threshold_rule="zero", level="pinned"))
    assert pinned["accuracy"].iloc[0] == 0.5 and not pinned["separates"].iloc[0]  # the fake scores above 0
    free = report.per_critic(rows.assign(threshold_rule="zero", level="undetermined"))
    assert math.isnan(free["accuracy"].iloc[0]) and not free["separates"].iloc[0]
    assert report.per_critic(rows.assign(threshold_rule="zero"))["accuracy"].iloc[0] == 0.5  # a first measurement


def test_each_rule_gives_the_boundary_values_of_its_definition_and_an_unknown_one_is_refused():
    from mmgan.critics.thresholds import boundary_values

    assert boundary_values("relativistic", 2.0, -1.0) == (-1.0, 2.0)  # App. C.1: a real image against E f(fake)
    assert boundary_values("midpoint", 2.0, -1.0) == (0.5, 0.5)
    assert boundary_values("zero", 2.0, -1.0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="valid choices"):
        boundary_values("median", 2.0, -1.0)
