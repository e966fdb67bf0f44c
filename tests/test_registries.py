"""Registries (issue 38, item 1): each extension is one registry entry, every unknown name an error naming the
valid ones (no fallback), and a new norm, metric and table run through ``smoke`` end to end from a fixture alone."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from mmgan import losses, norms, penalties
from mmgan.base.registry import Registry, format_choices
from mmgan.chapters import gan_tables as gan_chapter
from mmgan.gan import data, metrics, models, table_specs
from mmgan.gan import tables as gan_tables
from mmgan.gan.config import config_from
from mmgan.gan.data import load_images

REGISTRIES = {"gradient norm q": norms.NORMS, "metric": metrics.METRICS, "table": gan_tables.TABLES,
              "arch": models.ARCHITECTURES, "g": penalties.PENALTY_SHAPES, "loss": losses.MARGIN_LOSSES,
              "dataset": data.DATASETS}


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_every_registry_refuses_an_unknown_name_naming_the_valid_ones(kind):
    registry = REGISTRIES[kind]
    assert isinstance(registry, Registry) and registry.kind == kind
    with pytest.raises(ValueError, match=f"unknown {kind}='nope'; valid choices: {format_choices(registry)}$"):
        registry["nope"]


@pytest.mark.parametrize(("call", "kind"), [
    (lambda: norms.grad_norm(torch.ones(2, 3), 4), "gradient norm"),  # was: an L^2 norm for any unknown q
    (lambda: metrics.make_extractor("clean-fid", 16, 1), "metric"),  # was: the digits extractor
    (lambda: gan_tables.table_configs("q4", "smoke"), "table"),
    (lambda: models.make_gan("vgg", 32), "arch"),
    (lambda: penalties.penalty_shape("abs"), "g"),
    (lambda: losses.margin_loss("logistic"), "loss"),
    (lambda: data.load_images("mnist", 16, 1), "dataset"),
])
def test_public_functions_have_no_fallback_for_unknown_names(call, kind):
    with pytest.raises(ValueError, match=f"unknown {kind}.*valid choices"):
        call()


def test_entries_are_checked_when_registered():
    with pytest.raises(TypeError, match=r"data set 'mnist' lacks the keyword arguments \['root'\]"):
        data.DATASETS.register("mnist", lambda image_size, channels: torch.zeros(1))
    with pytest.raises(ValueError, match="already registered"):
        norms.NORMS.register("2", norms.NORMS["2"])
    with pytest.raises(TypeError, match="must be a GradNorm"):
        norms.NORMS.register("3", lambda flat, beta: flat)
    with pytest.raises(ValueError, match="must be registered as 3"):
        norms.NORMS.register("l3", norms.GradNorm("l3", 3.0, lambda flat, beta: flat))
    with pytest.raises(ValueError, match="q of table bad.*valid choices: '1', '2', 'inf', 'smax'"):
        gan_tables.TABLES.register("bad", table_specs.TableSpec("x", "cifar10", "dcgan", 32, ("hinge",),
                                                                (("3", "ls"),)))
    with pytest.raises(ValueError, match="unknown table='99'"):
        gan_tables.TABLES.register("bad", table_specs.TableSpec("x", "cifar10", "dcgan", 32, ("hinge",),
                                                                (("2", "ls"),), paper="99"))
    assert "bad" not in gan_tables.TABLES and "3" not in norms.NORMS


def test_q_has_one_spelling_and_committed_keys_do_not_move():
    """Numbers given for q are read once as the norm's registered name, which run folders, keys and cells hold."""
    assert [norms.order_text(q) for q in (1, 2.0, math.inf, "smax", "inf")] == ["1", "2", "inf", "smax", "inf"]
    assert config_from({"q": math.inf, "dataset": "digits", "channels": 1, "metric": "fdd"}).q == "inf"
    _, base = gan_tables.table_configs("2", "cpu", seeds=list(range(8)))
    assert gan_tables.table_folder("2", "cpu", base, "r").name == "cpu-c001dc6bbf3d"  # the committed study's


@pytest.fixture
def extensions():
    """A gradient norm (q = 4), a stateful metric (it keeps every feature vector, not their mean and covariance:
    the squared distance of the digits features' means, from the kept features) and a table beyond the paper using
    the norm, each one registry entry: what they compute is recorded, so a fallback would show."""
    calls = {"norm": 0, "distance": [], "sizes": []}

    def l4(flat: torch.Tensor, beta: float) -> torch.Tensor:
        calls["norm"] += 1
        return torch.linalg.vector_norm(flat, ord=4.0, dim=1)

    @dataclass
    class Kept:
        features: np.ndarray

        @property
        def n(self) -> int:
            return len(self.features)

        def arrays(self) -> dict[str, np.ndarray]:
            return {"features": self.features}

    class KeepEveryFeature:
        def __init__(self) -> None:
            self.rows: list[torch.Tensor] = []
            self.n = 0

        def update(self, features: torch.Tensor) -> None:
            self.rows.append(features.double().cpu())
            self.n += len(features)

        def result(self) -> Kept:
            return Kept(torch.cat(self.rows).numpy())

    class KeptDigitsFeatures(metrics.DigitsExtractor):
        def accumulator(self, device: torch.device | str) -> KeepEveryFeature:
            return KeepEveryFeature()

        def summary_from(self, arrays) -> Kept:
            return Kept(arrays["features"])

    def mean_distance(generated: Kept, reference: Kept) -> float:
        calls["sizes"].append((generated.n, reference.n))
        calls["distance"].append(float(((generated.features.mean(0) - reference.features.mean(0)) ** 2).sum()))
        return calls["distance"][-1]

    with norms.NORMS.registered("4", norms.GradNorm("4", 4.0, l4)), \
            metrics.METRICS.registered("mean-digits", metrics.Metric("squared distance of the digits CNN's mean "
                                                                     "features", KeptDigitsFeatures,
                                                                     mean_distance, datasets=("digits",))), \
            gan_tables.TABLES.registered("q4", table_specs.TableSpec("DCGAN, L^4 hinge penalty (a test)", "cifar10",
                                                                    "dcgan", 32, ("hinge",), (("4", "hinge"),))):
        yield calls


def test_a_new_norm_metric_and_table_run_through_smoke_end_to_end(extensions, tmp_path):
    torch.set_default_dtype(torch.float32)  # the GAN engine trains in float32, as its chapters do
    page = gan_chapter.chapter("q4", "smoke", iterations=4, results_root=str(tmp_path), metric="mean-digits")
    results = page.run.results
    assert results[["q", "g", "status"]].values.tolist() == [["4", "hinge", "finished"]]
    summary = json.loads((Path(results["run"].iloc[0]) / "summary.json").read_text())
    assert summary["config"]["q"] == "4" and summary["metric"] == "mean-digits"
    assert extensions["norm"] > 0 and summary["final"] == extensions["distance"][-1]
    # the metric compared every kept feature vector: the run's samples against the whole data set
    config = summary["config"]
    data = load_images(config["dataset"], config["image_size"], config["channels"])
    assert extensions["sizes"][-1] == (config["metric_samples"], len(data))
    assert "q4" in results["run"].iloc[0] and "hinge-q4-hinge-s0" in results["run"].iloc[0]
    shown = page.run_tables()[0]
    assert list(shown.index) == [("hinge", "4", "hinge")] and not any("paper" in c for c in shown.columns)
    assert "not a table of the paper" in page.paper_table().data
    assert page.setting().loc["paper: metric", "value"] == "(beyond the paper)"
    protocol = page.run_protocol()
    assert protocol.loc["metric", "this run"].startswith("squared distance of the digits CNN's mean features")
    assert page.glue()["run_failed"] == 0


def test_a_new_margin_loss_brings_its_gan_losses():
    """One entry: the loss, its generator loss and its relativistic GANs (no generator form guessed from the name)."""
    exp = losses.MarginLoss(lambda z: torch.exp(-z), lambda fake: torch.exp(-fake).mean(), True, "exp: $e^{-z}$")
    with losses.MARGIN_LOSSES.registered("exp", exp):
        assert losses.gan_losses()[-1] == "raexp" and {"exp", "rpexp"} <= set(losses.gan_losses())
        real, fake = torch.zeros(3), torch.full((3,), math.log(2.0))
        assert losses.critic_loss("rpexp", real, fake).item() == pytest.approx(2.0)
        assert losses.generator_loss("exp", None, fake).item() == pytest.approx(0.5)
        # and a GAN trains with it: the configuration accepts every registered loss (no list of its own)
        assert config_from({"loss": "raexp", "dataset": "digits", "channels": 1, "metric": "fdd"}).loss == "raexp"
    assert "rpexp" not in losses.gan_losses()
    with pytest.raises(ValueError, match="invalid loss='raexp'; valid choices: 'sgan'"):
        config_from({"loss": "raexp", "dataset": "digits", "channels": 1, "metric": "fdd"})
    with pytest.raises(ValueError, match="names starting with"):
        losses.MARGIN_LOSSES.register("rpx", exp)


def test_a_study_beyond_the_paper_uses_the_table_chapters_facade(tmp_path):
    """Item 4: a table without the paper's numbers (TableSpec.paper None) is a chapter like Tables 2-8: its own runs,
    its committed study's parts and summary, no paper column anywhere."""
    torch.set_default_dtype(torch.float32)
    assert gan_tables.TABLES["r1"].paper is None and gan_tables.TABLES["2"].paper == "2"
    page = gan_chapter.chapter("r1", "smoke", iterations=2, results_root=str(tmp_path))
    assert not any("paper" in c for c in page.run_tables()[0].columns)
    assert set(page.study_parts) >= {"propositions", "tables", "curves", "protocol"}
    assert "a study beyond the paper" in page.study.summary().data
