"""Margins of GAN critics: brackets that contain the truth, certified Lipschitz bounds, the report's rules."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mmgan.critics import instruments, report, soundness
from mmgan.critics import measure as cm
from mmgan.gan import trained
from mmgan.gan.models import Flatten
from mmgan.gan.tables import run_table
from mmgan.margins import MARGIN_ORDERS
from mmgan.norms import dual
from mmgan.verdicts import Verdict


@pytest.fixture
def linear_critic():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 1), Flatten()).eval()


def exact_linear_distance(critic, x, t, p):
    w, b = critic[1].weight[0], critic[1].bias[0]
    with torch.no_grad():
        return (x.flatten(1) @ w + b - t).abs() / torch.linalg.vector_norm(w, ord=dual(p))


def test_bracket_contains_the_exact_distance_of_a_linear_critic(linear_critic):
    x = torch.randn(12, 1, 4, 4)
    frame = instruments.measure_critic(linear_critic, x[:6], x[6:], "midpoint")
    t = float(frame["threshold"].iloc[0])
    for p in MARGIN_ORDERS:
        rows = frame[frame["p"] == p]
        exact = exact_linear_distance(linear_critic, x, t, p).double().numpy()
        assert np.all(rows["lower"].to_numpy() <= exact * (1 + 1e-6))
        assert np.all(rows["upper"].to_numpy() >= exact * (1 - 1e-4))
        np.testing.assert_allclose(rows["upper"], exact, rtol=1e-3)
        np.testing.assert_allclose(rows["taylor"], exact, rtol=1e-4)  # f is affine: Taylor is exact
        assert rows["sign_change"].all()


def test_lipschitz_bound_of_a_linear_critic_is_the_dual_norm(linear_critic):
    w = linear_critic[1].weight[0].detach().double()
    assert instruments.lipschitz_bound(linear_critic, (1, 4, 4), 1.0) == pytest.approx(float(w.abs().max()))
    assert instruments.lipschitz_bound(linear_critic, (1, 4, 4), math.inf) == pytest.approx(float(w.abs().sum()))
    assert instruments.lipschitz_bound(linear_critic, (1, 4, 4), 2.0) >= float(w.norm()) * (1 - 1e-12)


def small_conv_critic(seed=0):
    torch.manual_seed(seed)
    critic = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.BatchNorm2d(4), nn.LeakyReLU(0.2),
                           nn.Conv2d(4, 1, 4, 1, 0), Flatten())
    critic[1].running_var.uniform_(0.5, 2.0)
    critic[1].weight.data.uniform_(-2, 2)
    return critic.eval()


def test_conv_operator_norms_match_the_dense_matrix():
    conv = nn.Conv2d(2, 3, 4, 2, 1, bias=False)
    matrix = torch.autograd.functional.jacobian(lambda z: conv(z).flatten(), torch.zeros(1, 2, 6, 6)).reshape(-1, 72)
    abs_matrix = matrix.abs().double()
    norm_1, _ = instruments._layer_norm(conv, (2, 6, 6), 1.0)
    norm_inf, _ = instruments._layer_norm(conv, (2, 6, 6), math.inf)
    assert norm_1 == pytest.approx(float(abs_matrix.sum(0).max()))
    assert norm_inf == pytest.approx(float(abs_matrix.sum(1).max()))
    spectral = float(torch.linalg.matrix_norm(matrix.double(), 2))
    assert instruments._layer_norm(conv, (2, 6, 6), 2.0)[0] >= spectral - 1e-9


@pytest.mark.parametrize("p", MARGIN_ORDERS)
def test_lipschitz_bound_is_certified_on_a_relu_conv_critic(p):
    critic = small_conv_critic()
    bound = instruments.lipschitz_bound(critic, (1, 8, 8), p)
    x = torch.randn(64, 1, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    assert float(torch.linalg.vector_norm(grad.flatten(1), ord=dual(p), dim=1).max()) <= bound * (1 + 1e-6)
    y = x.detach() + 0.3 * torch.randn_like(x)
    with torch.no_grad():
        ratio = (critic(x) - critic(y)).abs() / torch.linalg.vector_norm((x - y).flatten(1), ord=p, dim=1)
    assert float(ratio.max()) <= bound * (1 + 1e-6)


def test_bracket_is_ordered_and_checked_on_a_relu_conv_critic():
    critic = small_conv_critic(1)
    x = torch.randn(10, 1, 8, 8)
    frame = instruments.measure_critic(critic, x[:5], x[5:], "midpoint", search=dict(max_steps=60))
    assert frame["sign_change"].all()
    assert (frame["lower"] <= frame["upper"]).all()
    for p in MARGIN_ORDERS:  # any boundary point is at least the certified distance away
        assert (frame.loc[frame.p == p, "lower"] > 0).all()


@pytest.mark.parametrize("p", MARGIN_ORDERS)
def test_fmn_attack_finds_the_exact_distance_of_a_linear_critic(linear_critic, p):
    x = torch.randn(8, 1, 4, 4)
    found = instruments.minimum_norm_attack(linear_critic, x, 0.0, p, steps=200)
    exact = exact_linear_distance(linear_critic, x, 0.0, p)
    assert torch.all(found >= exact * (1 - 1e-4))
    np.testing.assert_allclose(found.numpy(), exact.numpy(), rtol=0.02)


def test_foolbox_l2_fmn_needs_its_projection_repaired(linear_critic):
    """foolbox 3.3.4's own L2 FMN never projects back into its epsilon ball and stops far from the boundary."""
    import foolbox

    x = torch.randn(8, 1, 4, 4)
    exact = exact_linear_distance(linear_critic, x, 0.0, 2.0)

    class TwoLogits(nn.Module):
        def forward(self, z):
            s = linear_critic(z)
            return torch.stack([-s, s], 1)

    model = foolbox.PyTorchModel(TwoLogits().eval(), bounds=(-20.0, 20.0))
    labels = (linear_critic(x) > 0).long()
    _, released, _ = foolbox.attacks.L2FMNAttack(steps=200)(model, x, labels, epsilons=None)
    assert float(((released - x).flatten(1).norm(dim=1) / exact).median()) > 1.2


def test_thresholds_are_checked(linear_critic):
    x = torch.randn(4, 1, 4, 4)
    with pytest.raises(ValueError, match="valid choices: 'relativistic', 'zero', 'midpoint'"):
        instruments.measure_critic(linear_critic, x[:2], x[2:], "mean")


def test_the_relativistic_boundary_measures_each_class_against_the_other_classes_mean(linear_critic):
    """App. C.1: a real image against the mean score of the fakes, a fake against the mean score of the reals."""
    x = torch.randn(12, 1, 4, 4)
    frame = instruments.measure_critic(linear_critic, x[:6], x[6:], "relativistic")
    with torch.no_grad():
        scores = linear_critic(x)
    reals, fakes = frame[frame["image"] == "real"], frame[frame["image"] == "fake"]
    assert np.allclose(reals["threshold"], float(scores[6:].mean())) and np.allclose(fakes["threshold"],
                                                                                     float(scores[:6].mean()))
    for p in MARGIN_ORDERS:
        for part, offset in ((reals, 0), (fakes, 6)):
            rows = part[part["p"] == p].sort_values("index")
            exact = exact_linear_distance(linear_critic, x[offset:offset + 6], float(rows["threshold"].iloc[0]), p)
            np.testing.assert_allclose(rows["upper"], exact.double().numpy(), rtol=1e-3)
    assert list(frame["p"].unique()) == list(MARGIN_ORDERS)  # rows in the order measured: p, reals, fakes
    assert (frame.groupby("p")["image"].apply(lambda s: list(s) == ["real"] * 6 + ["fake"] * 6)).all()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan")
    table = run_table("8", "smoke", root=root, cells=["hinge-qsmax-hinge"], iterations=40,
                      snapshot_every=20)
    return table["run"].iloc[0]


def test_a_finished_run_is_measured_end_to_end(smoke_run, monkeypatch):
    torch.set_default_dtype(torch.float32)  # the critic as the command measures it (float64 convolutions are slow)
    monkeypatch.setitem(soundness.FLIP_SEARCH, "steps", 20)
    timings = {}
    frame = cm.measure_run(smoke_run, 2, ("zero", "midpoint"), fmn_steps=10, search=dict(max_steps=20),
                           population=64, soundness_check=True, timings=timings)
    assert len(frame) == 2 * 2 * 3 * 4  # modes × thresholds × orders × images
    assert frame["mode"].tolist() == ["train"] * 24 + ["eval"] * 24  # the critic as trained first
    assert frame["sign_change"].all() and (frame["lower"].isna() == (frame["mode"] == "train")).all()
    assert (frame["lower"].dropna() <= frame["upper"][frame["mode"] == "eval"]).all()
    assert np.isfinite(frame["final_fdd"]).all() and frame["fmn"].notna().all()
    best_upper = np.minimum(frame["upper"], frame["fmn"])
    assert (frame["certified"] > 0).all() and (frame["certified"] <= best_upper).all()
    assert not frame["violation"].astype(bool).any() and (frame["certified_uncapped"] >= frame["certified"]).all()
    assert set(timings) == {f"{mode} {part}" for mode in ("train", "eval")
                            for part in ("population", "search", "fmn", "certificate", "soundness")}
    # thresholds from the population, with their standard errors; the level is the loss's (hinge) to pin or not
    midpoint = frame[frame["threshold_rule"] == "midpoint"]
    assert (midpoint["threshold_se"] > 0).all() and (midpoint["population"] == 64).all()
    assert (midpoint["level"] == "relative").all() and midpoint["population_accuracy"].between(0, 1).all()
    zero = frame[frame["threshold_rule"] == "zero"]
    assert (zero["threshold"] == 0).all() and (zero["threshold_se"] == 0).all()
    assert zero["level"].isin(["pinned", "undetermined"]).all()
    assert (zero["population_accuracy"].isna() == (zero["level"] == "undetermined")).all()
    table = cm.thresholds_per_critic(frame)
    assert len(table) == 4 and set(table["mode"]) == {"train", "eval"}  # 2 views × 2 rules, one critic
    for _, row in table.iterrows():
        assert (row["accuracy"] == "undetermined") == (row["level"] == "undetermined")
        assert row["level"] != "undetermined" or row["threshold_rule"] == "zero"
    train = frame[frame["mode"] == "train"]
    assert train["batch"].eq(0).all() and frame.loc[frame["mode"] == "eval", "batch"].isna().all()
    assert (frame.loc[frame["image"] == "fake", "dataset_index"] == -1).all()
    run = trained.load_run(smoke_run)
    reals, fakes = cm.measurement_images(run, 2)
    x = torch.cat([reals, fakes])
    rows = frame[(frame["threshold_rule"] == "midpoint") & (frame["mode"] == "eval")].reset_index(drop=True)
    assert np.array_equal(instruments.certify_rows(run.critic, x, rows), rows["certified"])
    with pytest.raises(ValueError, match="not those measured"):
        instruments.certify_rows(run.critic, torch.cat([fakes, reals]), rows)
    mates, _ = cm.measurement_set(run, 2).mates(run.config.batch_size)
    rows = frame[(frame["threshold_rule"] == "midpoint") & (frame["mode"] == "train")].reset_index(drop=True)
    assert np.array_equal(instruments.certify_rows(run.critic, x, rows, mates=mates), rows["certified"])
    with pytest.raises(ValueError, match="not those measured"):  # the eval-mode critic is not the one measured
        instruments.certify_rows(run.critic, x, rows)


def test_every_rule_of_a_critic_is_estimated_in_both_views_without_margins(smoke_run):
    frame = cm.critic_thresholds(smoke_run, population=64)
    assert list(zip(frame["mode"], frame["rule"])) == [(mode, rule) for mode in ("train", "eval")
                                                        for rule in cm.THRESHOLDS]
    assert (frame["population"] == 64).all() and (frame.loc[frame["rule"] != "zero", "real_se"] > 0).all()
    assert (frame["accuracy"].isna() == (frame["level"] == "undetermined")).all()


def test_the_real_images_are_shared_by_every_critic_of_a_data_set(smoke_run):
    run = trained.load_run(smoke_run)
    other = trained.load_run(cm.study_runs("3")["folder"].iloc[0])
    first, second = cm.measurement_set(run, 5), cm.measurement_set(other, 5)
    assert torch.equal(first.real_index, second.real_index) and torch.allclose(first.reals, second.reals)
    assert not torch.allclose(first.fakes, second.fakes)  # each generator's own images, from the same noise


def test_a_snapshot_along_training_is_measured_with_the_fdd_of_its_iteration(smoke_run):
    frame = cm.measure_run(smoke_run, 2, ("midpoint",), fmn_steps=0, search=dict(max_steps=20), iteration=20,
                           modes=("eval",), population=64)
    history = dict(map(tuple, trained.load_run(smoke_run).summary["history"]))
    assert (frame["iteration"] == 20).all() and (frame["fdd_at_iteration"] == history[20]).all()
    final = cm.measure_run(smoke_run, 2, ("midpoint",), fmn_steps=0, search=dict(max_steps=20), modes=("eval",),
                           population=64)
    assert (final["iteration"] == 40).all() and (final["fdd_at_iteration"] == history[40]).all()
    assert not np.allclose(frame["score"], final["score"])  # other weights
    with pytest.raises(FileNotFoundError, match="no snapshot of iteration 30.*--snapshot-every 30"):
        trained.load_run(smoke_run, 30)


def test_committed_networks_replace_the_checkpoint_and_must_match_the_run(smoke_run, tmp_path):
    import shutil
    folder = tmp_path / "run"
    shutil.copytree(smoke_run, folder)
    trained.export_networks(folder)
    (folder / "checkpoint.pt").unlink()
    run = trained.load_run(folder)
    assert not run.critic.training
    payload = torch.load(folder / trained.NETWORKS)
    payload["iteration"] = 3
    torch.save(payload, folder / trained.NETWORKS)
    with pytest.raises(ValueError, match="weights are from iteration 3"):
        trained.load_run(folder)
    (folder / trained.NETWORKS).unlink()
    with pytest.raises(FileNotFoundError, match="neither networks.pt nor checkpoint.pt"):
        trained.load_run(folder)


def critics_frame(margins_a, margins_b, accuracy=0.9, p=1.0, fdd=(10.0, 10.0)):
    """Per-critic rows of two cells (q = inf and q = 2, same loss and g), one value per seed."""
    rows = []
    for cell, q, margins, final in (("hinge-qinf-hinge", "inf", margins_a, fdd[0]),
                                    ("hinge-q2-hinge", "2", margins_b, fdd[1])):
        for seed, margin in enumerate(margins):
            rows.append({"cell": cell, "loss": "hinge", "q": q, "g": "hinge", "seed": seed, "threshold_rule": "zero",
                         "p": p, "margin": margin, "accuracy": accuracy, "final_fdd": final + seed,
                         "lowest_fdd": final, "first_fdd": 100.0, "learnt": True, "separates": accuracy >= 0.6})
    return pd.DataFrame(rows)


def test_margins_along_training_are_summarised_per_cell_and_iteration():
    early = critics_frame([1.0, 1.05, 0.98], [2.0, 2.2, 1.9]).assign(iteration=500, fdd_at_iteration=80.0)
    late = critics_frame([2.0, 2.2, 1.9], [1.0, 1.05, 0.98]).assign(iteration=10_000, fdd_at_iteration=12.0)
    critics = pd.concat([late, early], ignore_index=True).assign(signed=lambda f: f["margin"], score_gap=1.5,
                                                                  normalised=lambda f: f["margin"] / 4)
    summary = report.along_training(critics)
    row = summary[(summary["cell"] == "hinge-qinf-hinge") & (summary["iteration"] == 500)].iloc[0]
    assert row["seeds"] == 3 and row["margin"] == pytest.approx(np.mean([1.0, 1.05, 0.98]))
    assert row["margin CI low"] < row["margin"] < row["margin CI high"] and row["FDD"] == 80.0
    assert row["normalised"] == pytest.approx(row["margin"] / 4) and row["score gap"] == 1.5


def test_the_primary_boundary_follows_the_loss():
    assert report.primary_threshold(["rahinge"]) == "relativistic"
    assert report.primary_threshold(["hinge"]) == "zero"
    assert report.primary_threshold(["wgan", "hinge"]) == "midpoint"
    assert report.primary_threshold(["rpsgan"]) == "midpoint"  # a paired loss sees score differences only


def test_certificate_gap_is_the_median_ratio_per_order():
    frame = pd.DataFrame({"p": [1.0, 1.0, 1.0, math.inf], "margin": [2.0, 3.0, 10.0, 1.0],
                          "certified": [1.0, 1.0, 1.0, 0.5]})
    gap = report.certificate_gap(frame)
    assert gap[1.0] == 3.0 and gap[math.inf] == 2.0


def test_fdd_correlation_verdicts():
    frame = critics_frame([3.0, 3.1, 3.2], [1.0, 1.1, 1.2])
    frame["final_fdd"] = 50 - 10 * frame["margin"]  # larger margin, lower FDD
    assert report.fdd_correlation(frame, "zero", 1.0)["verdict"] is Verdict.HOLDS
    frame["final_fdd"] = 10 * frame["margin"]
    assert report.fdd_correlation(frame, "zero", 1.0)["verdict"] is Verdict.DOES_NOT_HOLD
    frame["final_fdd"] = [20.0, 10.0, 30.0, 10.0, 30.0, 20.0]  # no relation
    assert report.fdd_correlation(frame, "zero", 1.0)["verdict"] is Verdict.CANNOT_TELL


def test_per_critic_takes_the_shorter_of_estimator_and_fmn():
    rows = [{"cell": "c", "loss": "hinge", "q": "2", "g": "ls", "seed": 0, "threshold_rule": "zero", "p": 1.0,
             "image": image, "score": score, "threshold": 0.0, "upper": upper, "fmn": fmn, "lower": 0.1,
             "taylor": 1.0, "sign_change": True, "converged": True, "final_fdd": 5.0, "lowest_fdd": 5.0,
             "first_fdd": 50.0}
            for image, score, upper, fmn in (("real", 1.0, 2.0, 1.0), ("fake", 1.0, 1.0, float("nan")))]
    critics = report.per_critic(pd.DataFrame(rows))
    assert critics["margin"].iloc[0] == pytest.approx(1.0)  # mean of min(2, 1) and min(1, nan → inf)
    assert critics["fmn_shorter_share"].iloc[0] == pytest.approx(0.5)
    assert critics["accuracy"].iloc[0] == pytest.approx(0.5)  # the fake scored above the threshold
    assert bool(critics["learnt"].iloc[0])


def synthetic_measurements(rng):
    """Raw rows as measure_study writes them: 2 cells × 3 seeds × 2 thresholds × 3 orders × 2 images each side."""
    rows = []
    for cell, q, scale in (("hinge-qinf-hinge", "inf", 2.0), ("hinge-q2-hinge", "2", 1.0)):
        for seed in range(3):
            for rule in ("zero", "midpoint"):
                for p in MARGIN_ORDERS:
                    for image in ("real", "fake"):
                        for index in range(2):
                            upper = scale * (1 + 0.05 * seed + 0.01 * rng.random())
                            rows.append({"cell": cell, "loss": "hinge", "q": q, "g": "hinge", "seed": seed,
                                         "threshold_rule": rule, "p": p, "image": image, "index": index,
                                         "score": 1.0 if image == "real" else -1.0, "threshold": 0.0,
                                         "side": "above", "upper": upper, "fmn": upper * 1.01,
                                         "lower": upper / 100, "taylor": upper * 0.9, "sign_change": True,
                                         "converged": True, "final_fdd": 10.0 / scale - 0.1 * seed,
                                         "lowest_fdd": 10.0 / scale, "first_fdd": 1000.0,
                                         "certified": upper / 2, "nn_distance": 3.0 if image == "fake" else np.nan,
                                         "grad_norm_eval": 1.2, "grad_norm_train": 0.9, "score_gap_eval": 0.5,
                                         "score_gap_train": 0.9})
    return pd.DataFrame(rows)


def test_the_chapter_reads_committed_measurements_and_judges_them(tmp_path):
    from mmgan.chapters import critic_margins as critic_margins_chapter

    cm.save_measurements(synthetic_measurements(np.random.default_rng(0)), "9", {
        "images": 2, "fmn_steps": 10, "seconds": 60.0, "workers": 2}, tmp_path / "critic_margins")
    page = critic_margins_chapter.chapter("9", check_runs=0, results_root=tmp_path)
    values = page.glue()
    assert values["cm_critics"] == 6 and values["cm_check_critics"] == 0 and page.primary == "zero"
    verdicts = page.verdicts()  # the q = inf critics are 2x larger in every order, by construction
    assert verdicts["q = ∞ gives larger L¹ margins than q = 2"] is Verdict.HOLDS
    assert verdicts["q = 2 gives larger L² margins than q = ∞"] is Verdict.DOES_NOT_HOLD
    assert verdicts["q = ∞ gives a larger L¹ / L² margin ratio than q = 2"] is Verdict.NO_LARGE_EFFECT
    assert values["cm_fdd_zero"].endswith("over 6 of 6 critics: holds")  # larger margins, lower FDD by construction
    assert "zero (the hinge loss's) boundary, signed margins: q = ∞ gives larger L¹ margins" in values["cm_status"]
    shown = page.propositions_table()
    assert len(shown) == 6 and (shown.reset_index()["boundary"].iloc[0]).startswith("zero")
    assert "—" not in page.correlations_table().to_string() and "nan" not in shown.to_string()
    assert page.margins_table().shape[0] == 4 and len(page.bracket_table()) == 6
    assert page.bracket_table()["FMN shorter than the estimator"].eq("0 of 24").all()  # 2 cells x 3 seeds x 4
    assert page.modes_table().loc["hinge-q2-hinge", "‖∇f‖₂ at interpolates, train mode"] == 0.9
    with pytest.raises(ValueError, match=r"valid choices: '9'"):
        critic_margins_chapter.chapter("2", check_runs=0, results_root=tmp_path)


def test_the_chapter_judges_the_train_mode_critic_with_the_eval_view_beside(tmp_path):
    """Issue 36, item 3: a measurement of both views draws its verdicts on the train-mode critic and states the eval
    view's beside (here the eval critics are all the same size, so the eval view differs on the first proposition);
    along training, the scale control of each view is a proposition of the same table."""
    from mmgan.chapters import critic_margins as critic_margins_chapter

    train = synthetic_measurements(np.random.default_rng(0)).assign(mode="train")
    evaluated = train.assign(mode="eval", upper=lambda f: f["upper"] / np.where(f["q"] == "inf", 2.0, 1.0),
                             fmn=lambda f: f["upper"] * 1.01, certified=lambda f: f["upper"] / 2,
                             lower=lambda f: f["upper"] / 100)
    both = pd.concat([train, evaluated], ignore_index=True)
    meta = {"images": 2, "fmn_steps": 10, "seconds": 60.0, "workers": 1, "modes": ["train", "eval"],
            "population": 64}
    cm.save_measurements(both, "9", meta, tmp_path / "critic_margins")
    early = both.assign(iteration=500, fdd_at_iteration=80.0)
    late = both.assign(iteration=10_000, fdd_at_iteration=10.0,
                       upper=lambda f: f["upper"] * np.where(f["mode"] == "train", 0.5, 1.0))
    along = pd.concat([early, late], ignore_index=True).assign(fmn=lambda f: f["upper"] * 1.01,
                                                               certified=lambda f: f["upper"] / 2,
                                                               lower=lambda f: f["upper"] / 100)
    cm.save_measurements(along, "9", {**meta, "iterations": [500, None]}, tmp_path / "critic_margins",
                         cm.ALONG_TRAINING)
    page = critic_margins_chapter.chapter("9", check_runs=0, results_root=tmp_path)
    assert page.view().startswith("the train-mode critic") and set(page.critics["mode"]) == {"train"}
    assert set(page.second["mode"]) == {"eval"} and "(6, train-mode)" in page.status_note()
    shown = page.views_table()
    larger_l1 = shown.loc["q = ∞ gives larger L¹ margins than q = 2"]
    assert larger_l1["train-mode critic (primary)"].startswith("holds (2.0")
    assert larger_l1["eval-mode critic (second view)"].startswith("no effect larger than")
    assert larger_l1["views"] == "the eval view differs"
    shrink = shown.loc["the signed L¹ margins of the fixed real images grow along training"]
    assert shrink["train-mode critic (primary)"].startswith("does not hold (0.50")  # train margins halve
    assert shrink["eval-mode critic (second view)"].startswith("no effect larger than")  # eval ones stay
    assert "eval-mode critic (second view): within-cell ρ, verdict" in page.correlations_table()
    values = page.glue()
    assert values["cm_view"] == page.view()
    assert values["cm_training_verdicts"].startswith("at 500: q = ∞: larger L¹ margins → holds, q = 2: larger L² "
                                                     "margins → does not hold, q = ∞: a larger L¹ / L² margin ratio")


def test_the_introduction_computes_this_chapters_status():
    """The status note of the critic-margin row is computed from the chapter's verdicts, not typed."""
    from mmgan.book.status import reproduction_status

    row = reproduction_status().set_index("chapter").loc["critic_margins"]
    assert row["status"] == "per proposition" and row["scope"] == "beyond"
    assert not any(word in row["note"] for word in ("holds", "does not hold", "cannot tell", "shrink"))


def test_vectorised_rank_correlation_equals_scipy():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, (50, 7)).astype(float), rng.normal(size=(50, 7))  # ties in a
    spread = a.std(1) > 0
    expected = [stats.spearmanr(x, y).statistic for x, y in zip(a[spread], b[spread])]
    np.testing.assert_allclose(report._rank_correlations(a, b), expected, rtol=1e-12)


# ----------------------------------------------------------------------------- issue 26: signed, pooled, normalised


def test_signed_margins_count_misclassified_images_as_negative(linear_critic):
    """A real image below its boundary (or a fake above it) is on the wrong side: its signed margin is negative."""
    x = torch.randn(12, 1, 4, 4)
    frame = instruments.measure_critic(linear_critic, x[:6], x[6:], "zero").assign(
        fmn=np.nan, cell="c", loss="hinge", q="2", g="hinge", seed=0, threshold_rule="zero", final_fdd=1.0,
        lowest_fdd=1.0, first_fdd=10.0)
    critic = report.per_critic(frame)
    wrong = np.where(frame["image"] == "real", frame["score"] < 0, frame["score"] > 0)
    assert wrong.any() and not wrong.all()
    for p, row in critic.set_index("p").iterrows():
        at = frame[frame["p"] == p]
        bad = np.where(at["image"] == "real", at["score"] < 0, at["score"] > 0)
        assert row["signed"] == pytest.approx(at["upper"].where(~bad, -at["upper"]).mean())
        assert row["signed"] < row["margin"] and row["accuracy"] == pytest.approx(1 - bad.mean())
    assert critic["score_gap"].iloc[0] == pytest.approx(frame[frame["image"] == "real"]["score"].mean()
                                                        - frame[frame["image"] == "fake"]["score"].mean())


def test_nearest_training_distance_on_constructed_images():
    training = torch.zeros(5, 1, 2, 2)
    training[1] += 1.0
    images = torch.stack([training[1] + torch.tensor([[[0.1, 0.0], [0.0, -0.2]]]), training[0] + 0.3])
    assert torch.allclose(instruments.nearest_training_distance(images, training, 1.0), torch.tensor([0.3, 1.2],
                                                                                            dtype=torch.float64))
    assert torch.allclose(instruments.nearest_training_distance(images, training, 2.0),
                          torch.tensor([math.hypot(0.1, 0.2), 0.6], dtype=torch.float64))
    assert torch.allclose(instruments.nearest_training_distance(images, training, math.inf, chunk=2),
                          torch.tensor([0.2, 0.3], dtype=torch.float64))


def per_critic_rows(values, rule="relativistic", accuracy=0.9):
    """Per-critic rows: ``values[(q, seed)] = (L1, L2)`` margins of a cell pair (same loss and g)."""
    rows = []
    for (q, seed), (l1, l2) in values.items():
        for p, margin in ((1.0, l1), (2.0, l2)):
            rows.append({"threshold_rule": rule, "cell": f"rahinge-q{q}-hinge", "loss": "rahinge", "q": q,
                         "g": "hinge", "seed": seed, "p": p, "signed": margin, "margin": margin,
                         "learnt": True, "separates": accuracy >= report.SEPARATION_BAR})
    return pd.DataFrame(rows)


def test_critic_propositions_pool_over_seeds_and_test_the_shape():
    # q = inf critics 2x smaller in every order: the dual-norm claims disagree, the shape test sees no difference
    smaller = {("inf", s): (1.0 * k, 0.5 * k) for s, k in enumerate((1.0, 1.3, 0.8, 1.1))}
    smaller.update({("2", s): (2.0 * k, k * (1 + 0.02 * (-1) ** s)) for s, k in enumerate((1.02, 1.25, 0.83, 1.1))})
    judged = report.critic_propositions(per_critic_rows(smaller), "relativistic").set_index("proposition")
    assert judged.loc["q = ∞ gives larger L¹ margins than q = 2", "verdict"] is Verdict.DOES_NOT_HOLD
    assert judged.loc["q = 2 gives larger L² margins than q = ∞", "verdict"] is Verdict.HOLDS
    shape = judged.loc["q = ∞ gives a larger L¹ / L² margin ratio than q = 2"]
    assert shape["verdict"] is Verdict.NO_LARGE_EFFECT and shape["lower"] < 1 < shape["upper"]
    assert shape["seeds"] == 4 and shape["level"] == 1 - 0.05 / 3
    # a critic with a negative mean signed margin (its images on the wrong side): not comparable
    wrong = {**smaller, ("inf", 0): (-0.1, 0.5)}
    assert (report.critic_propositions(per_critic_rows(wrong), "relativistic")["verdict"].iloc[0]
            is Verdict.NOT_COMPARABLE)
    gated = report.critic_propositions(per_critic_rows(smaller, accuracy=0.5), "relativistic")
    assert (gated["verdict"] == Verdict.NOT_COMPARABLE).all()


def test_growth_takes_the_seed_as_the_unit_and_reads_normalised_margins():
    rows = []
    for iteration, factor, scale in ((500, 1.0, 2.0), (10_000, 0.5, 1.0)):  # margins halve, so do the NN distances
        for cell in ("a", "b", "c"):
            for seed in range(4):
                margin = factor * (1 + 0.1 * seed + 0.05 * (cell == "b"))
                rows.append({"threshold_rule": "relativistic", "p": 1.0, "cell": cell, "seed": seed,
                             "iteration": iteration, "margin": margin, "normalised": margin / scale,
                             "separates": True, "learnt": True})
    critics = pd.DataFrame(rows)
    raw = report.seed_growth(critics, "margin").iloc[0]
    assert raw["verdict"] is Verdict.DOES_NOT_HOLD and raw["ratio"] == pytest.approx(0.5)
    assert raw["seeds"] == 4 and raw["critics"] == 12 and raw["of"] == 12  # 12 critics, 4 independent units
    scaled = report.seed_growth(critics, "normalised").iloc[0]
    assert scaled["ratio"] == pytest.approx(1.0) and scaled["verdict"] is Verdict.NO_LARGE_EFFECT
    with pytest.raises(ValueError, match="measure='volume' is not measured"):
        report.seed_growth(critics, "volume")


def test_batchnorm_views_report_both_modes_and_leave_the_critic_as_it_was():
    critic = small_conv_critic()
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    x = torch.randn(8, 1, 8, 8)
    views = instruments.batchnorm_views(critic, x[:4], x[4:])
    assert set(views) == {"grad_norm_eval", "grad_norm_train", "score_gap_eval", "score_gap_train"}
    assert views["grad_norm_eval"] != views["grad_norm_train"]
    assert not critic.training and all(torch.equal(before[k], v) for k, v in critic.state_dict().items())
