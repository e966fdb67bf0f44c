"""The protocol table of a GAN chapter: each setting as the paper states it, as the released code ran it
(``Code/GAN.py`` with the flags of ``Code/experiments.sh``), and as a given run has it.

Every GAN chapter shows :func:`protocol_table` for the configuration it ran, so a reader sees at once
where a rerun follows the released protocol, where it only changes the scale (data, width, length,
metric), and where the paper and the released code disagree.
"""

from __future__ import annotations

import pandas as pd

from mmgan.gan.config import GANConfig
from mmgan.gan.metrics import METRICS
from mmgan.gan.models import ARCHITECTURES
from mmgan.losses import needs_real_scores

YES, NO, UNKNOWN = "yes", "no", "unknown"


def _flag(same: bool) -> str:
    return YES if same else NO


def protocol_table(config: GANConfig, losses: tuple[str, ...] = ("wgan", "hinge"),
                   seeds: tuple[int, ...] = (1,), norms: tuple[str, ...] = ("1", "2", "inf", "smax")) -> pd.DataFrame:
    """One row per setting: ``paper``, ``released code``, ``this run`` and ``as released`` (yes / no / unknown).

    ``config`` is the shared configuration of a table's runs (``mmgan.gan.tables.table_configs``); ``losses``
    the table's losses (the relativistic rows appear only for relativistic tables); ``seeds`` its seeds;
    ``norms`` the gradient norms of its cells (the L^∞ and smooth-maximum rows appear only where they are used).
    """
    arch = ARCHITECTURES[config.arch]
    width = config.width if config.width is not None else arch.widths[config.image_size]
    slope = config.leaky_slope if config.leaky_slope is not None else arch.slope
    standard_cnn = config.arch == "standard_cnn"
    metric = METRICS[config.metric].label
    rows = [
        ("data set", "CIFAR-10 training set (50k images) or CAT faces", "the same, [−1, 1]",
         f"{config.dataset}, {config.image_size} px, {config.channels} channel(s)",
         _flag(config.dataset in ("cifar10", "cat") and config.channels == 3)),
        ("networks", "DCGAN (App. E.1, E.2) or standard CNN (App. E.3)",
         "128 feature maps at 32 px, 64 at 64 px", f"{config.arch}, width {width}",
         _flag(width == arch.widths[config.image_size])),
        ("LeakyReLU slope of the critic", "0.2 (DCGAN), 0.1 (standard CNN)", "0.02 (DCGAN), 0.1 (standard CNN)",
         f"{slope:g}", _flag(slope == arch.slope)),
        ("BatchNorm in the critic", "DCGAN: yes; standard CNN: none",
         "DCGAN: yes; standard CNN: after convolutions 1–6 unless --no_batch_norm_D (its commands are not "
         "published)", "yes" if config.critic_batchnorm else "no",
         UNKNOWN if standard_cnn else _flag(config.critic_batchnorm)),
    ]
    if standard_cnn:
        rows.append(("standard CNN: activation after the 7th convolution", "none listed", "LeakyReLU",
                     "LeakyReLU", YES))
    rows += [
        ("gradient penalty", "λ = 20 at random interpolates u·x_real + (1 − u)·x_fake",
         "λ = 20 at random interpolates", f"λ = {config.lam:g} at {config.penalty_at}",
         _flag(config.lam == 20 and config.penalty_at == "interpolates")),
    ]
    if "inf" in norms:
        rows.append(("L^∞ gradient norm (q = inf cells)", "max_i |g_i|",
                     "signed max_i g_i (inverted --l1_margin_no_abs)",
                     "signed max_i g_i" if config.as_released else "max_i |g_i|", _flag(config.as_released)))
    if "smax" in norms:
        rows.append(("smooth maximum (q = smax cells)", "per sample, App. B (β = 1)",
                     "one value pooled over the batch of signed gradients, β = 1",
                     "pooled over the batch, signed" if config.as_released else "per sample of |g|",
                     _flag(config.as_released)))
    if any(needs_real_scores(loss) for loss in losses):
        rows += [
            ("relativistic paired critic loss", "E[L(C(x_r) − C(x_f))] (App. C)", "2 · E[L(C(x_r) − C(x_f))]",
             f"{config.paired_critic_scale:g} · E[L(C(x_r) − C(x_f))]", _flag(config.paired_critic_scale == 2)),
            ("relativistic generator step: real batch", "not stated", "a fresh real batch (--resample 1)",
             f"{config.generator_real_batch} real batch", _flag(config.generator_real_batch == "fresh")),
        ]
    rows += [
        ("optimiser", "Adam, lr 2e-4, betas (.5, .999) (Table 4: (0, .9)), batch 32",
         "the same, one critic step per generator step, no lr decay",
         f"Adam, lr {config.lr:g}, betas ({config.beta1:g}, {config.beta2:g}), batch {config.batch_size}, "
         f"{config.critic_steps} critic step(s)",
         _flag(config.lr == 2e-4 and config.batch_size == 32 and config.critic_steps == 1)),
        ("real batches", "not stated", "distinct images within a batch (numpy choice without replacement)",
         config.real_sampling.replace("_", " "), _flag(config.real_sampling == "without_replacement")),
        ("length and seeds", "100k generator iterations, seed 1", "100,001 iterations, seed 1",
         f"{config.iterations:,} iterations, seed(s) {', '.join(map(str, seeds))}",
         _flag(config.iterations >= 100_000 and tuple(seeds) == (1,))),
        ("metric", "FID of 50k samples vs CIFAR-10 training statistics, every 10k iterations",
         "TensorFlow (TTUR) FID of 50k PNG files, every 10k iterations",
         f"{metric} of {config.metric_samples_text} every {config.metric_every:,} iterations",
         NO),  # never the TensorFlow implementation
        ("metric samples: BatchNorm of the generator", "not stated",
         "training mode (never .eval()), batches of 100",
         f"{config.sample_mode} mode, batches of {config.sample_batch_size}",
         _flag(config.sample_mode == "train" and config.sample_batch_size == 100)),
        ("metric samples: 8-bit rounding", "not stated", "yes (written as PNG files)",
         "yes" if config.quantize_samples else "no", _flag(config.quantize_samples)),
        ("how the device computes", "a single GPU, not stated further",
         "float32 (PyTorch of 2019: no TF32), cuDNN autotuning and deterministic mode on",
         f"{'TF32' if config.tf32 else 'float32'} products on CUDA, cuDNN autotuning "
         f"{'on' if config.cudnn_benchmark else 'off'}, {'channels_last' if config.channels_last else 'NCHW'} "
         f"memory (the metric's extractor without TF32)", _flag(not config.tf32)),
    ]
    return pd.DataFrame(rows, columns=["setting", "paper", "released code", "this run", "as released"])


def differences(table: pd.DataFrame) -> list[str]:
    """The settings of a :func:`protocol_table` in which the run does not follow the released code."""
    return table.loc[table["as released"] != YES, "setting"].tolist()
