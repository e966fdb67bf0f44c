"""The configuration of one GAN run (§6, Tables 2–8): fields, defaults, types and checks.

Defaults are the paper's CIFAR-10 protocol *as the released code ran it*
(``Code/GAN.py`` with the flags of ``Code/experiments.sh``): where the paper's text
and the released code differ, the field is documented here and listed in every
GAN chapter's protocol table (:func:`mmgan.gan.tables.protocol_table`).

Values coming from YAML, the command line or papermill are coerced to each
field's declared type (PyYAML reads ``lr: 2e-4`` as the *string* '2e-4'), and
every error names the field and, for choices, the valid values.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from mmgan.base.registry import check_choice, check_int
from mmgan.gan.data import DATASETS
from mmgan.gan.metrics import METRICS
from mmgan.gan.models import ARCHITECTURES, SAMPLING_MODES
from mmgan.losses import gan_losses
from mmgan.norms import NORMS, gradient_norm, released_norms
from mmgan.penalties import PENALTY_POINTS, PENALTY_SHAPES

REAL_SAMPLING: tuple[str, ...] = ("without_replacement", "with_replacement")
GENERATOR_REAL_BATCH: tuple[str, ...] = ("fresh", "reuse")
#: Accepted device names: 'auto', 'cpu', 'cuda' or 'cuda:<index>'.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
#: Fields that say how a run computes, not what: not part of a table's key, free to change when a run resumes.
EXECUTION_FIELDS: tuple[str, ...] = ("device", "tf32", "cudnn_benchmark", "channels_last")
#: Below this many samples the 2048-d Inception covariance is rank-deficient and FID is biased.
FID_MIN_SAMPLES = 2048
#: The last share of training whose evaluations the ``end`` statistic averages (:mod:`mmgan.gan.report`): the
#: evaluations after ``(1 − END_SHARE) · iterations``, the last one (``final``) among them.
END_SHARE = 0.10


@dataclass(frozen=True)
class GANConfig:
    """One GAN run. Defaults are the paper's CIFAR-10 protocol as released (§6, Table 2)."""

    dataset: str = "cifar10"
    data_root: str | None = None
    image_size: int = 32
    channels: int = 3
    arch: str = "dcgan"
    width: int | None = None
    z_dim: int = 128
    #: None: the released code's slope (0.02 DCGAN, 0.1 standard CNN); the appendix says 0.2 for DCGAN.
    leaky_slope: float | None = None
    critic_batchnorm: bool = True
    loss: str = "hinge"
    #: the gradient norm's name in :data:`mmgan.norms.NORMS` (a number given for it is read as its name)
    q: str = "2"
    g: str = "ls"
    as_released: bool = False
    lam: float = 20.0
    penalty_at: str = "interpolates"
    #: factor on the rp* critic loss: 2 in the released code, 1 in App. C's formula.
    paired_critic_scale: float = 2.0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 32
    critic_steps: int = 1
    #: real batches: distinct images within a batch (released: numpy choice without replacement) or i.i.d.
    real_sampling: str = "without_replacement"
    #: relativistic generator step: a fresh real batch (released, --resample 1) or the critic step's last one.
    generator_real_batch: str = "fresh"
    iterations: int = 100_000
    seed: int = 1
    device: str = "auto"
    metric: str = "fid"
    metric_every: int = 10_000
    metric_samples: int = 50_000
    #: samples of the evaluations that neither ``final`` nor ``end`` reads, those at iterations up to
    #: (1 − :data:`END_SHARE`) · ``iterations``; None: every evaluation uses ``metric_samples``. The log and the
    #: summary give each evaluation's count (:meth:`metric_samples_at`).
    early_metric_samples: int | None = None
    #: BatchNorm of the generator while drawing metric samples: 'train' (released: never .eval()) or 'eval'.
    sample_mode: str = "train"
    #: samples per generator call when drawing metric samples (released: 100; matters in 'train' mode).
    sample_batch_size: int = 100
    #: round samples to 8 bit before the feature extractor (released: PNG files read by the TF FID).
    quantize_samples: bool = True
    checkpoint_every: int = 1000
    log_every: int = 100
    #: How the device computes, not what (like ``device``: not part of a table's key, may change on resume;
    #: recorded in every summary). TF32 matmuls and convolutions on CUDA (Ampere and later): about 10 mantissa
    #: bits instead of 23 inside the products, faster, and results no longer bit-comparable with float32 runs;
    #: the metric's feature extractor always runs without it.
    tf32: bool = False
    #: cuDNN autotuning of convolution algorithms (the released code sets it): faster, not bit-reproducible.
    cudnn_benchmark: bool = False
    #: NHWC memory format for the networks and images: the same sums in another order (1.2x on this CPU for
    #: packed runs, ``benchmarks/cpu_run.py``). Off unless set; on a GPU it is expected to help only together
    #: with ``tf32`` (tensor cores), which no measurement here has checked.
    channels_last: bool = False

    def validate(self) -> GANConfig:
        """Check every field; raise ``ValueError`` naming the field and the valid values."""
        check_choice(self.dataset, tuple(DATASETS), "dataset")
        check_choice(self.arch, tuple(ARCHITECTURES), "arch")
        check_choice(self.image_size, ARCHITECTURES[self.arch].sizes, f"image_size for arch={self.arch!r}")
        check_choice(self.loss, gan_losses(), "loss")  # every registered loss trains (mmgan.losses)
        check_choice(self.q, tuple(NORMS), "q")
        check_choice(self.g, tuple(PENALTY_SHAPES), "g")
        check_choice(self.penalty_at, PENALTY_POINTS, "penalty_at")
        check_choice(self.metric, tuple(METRICS), "metric")
        check_choice(self.channels, (1, 3), "channels")
        check_choice(self.real_sampling, REAL_SAMPLING, "real_sampling")
        check_choice(self.generator_real_batch, GENERATOR_REAL_BATCH, "generator_real_batch")
        check_choice(self.sample_mode, SAMPLING_MODES, "sample_mode")
        check_device_name(self.device)
        for name in ("z_dim", "batch_size", "critic_steps", "iterations", "metric_every", "sample_batch_size",
                     "checkpoint_every", "log_every"):
            check_int(getattr(self, name), name, minimum=1)
        check_int(self.metric_samples, "metric_samples", minimum=2)
        if self.early_metric_samples is not None:
            check_int(self.early_metric_samples, "early_metric_samples", minimum=2)
            if self.early_metric_samples > self.metric_samples:
                raise ValueError(f"invalid early_metric_samples={self.early_metric_samples}: at most metric_samples="
                                 f"{self.metric_samples} (or None: every evaluation uses metric_samples)")
        check_int(self.seed, "seed", minimum=0)
        meaningful = METRICS[self.metric].datasets
        if meaningful is not None and self.dataset not in meaningful:
            raise ValueError(f"metric={self.metric!r} ({METRICS[self.metric].label}) means nothing for "
                             f"dataset={self.dataset!r}; it is meant for {meaningful}: use another metric "
                             f"({', '.join(repr(m) for m, e in METRICS.items() if e.datasets is None)})")
        if self.as_released and self.q not in released_norms():
            raise ValueError(f"as_released only applies to q in {released_norms()}, got q={self.q!r}")
        for name, rule, ok in (("lam", "> 0 (0 turns the penalty the run is named for off)", self.lam > 0),
                               ("lr", "> 0", self.lr > 0), ("beta1", "in [0, 1)", 0 <= self.beta1 < 1),
                               ("beta2", "in [0, 1)", 0 <= self.beta2 < 1),
                               ("paired_critic_scale", "> 0", self.paired_critic_scale > 0)):
            if not (ok and math.isfinite(getattr(self, name))):
                raise ValueError(f"invalid {name}={getattr(self, name)!r}: {name} must be a finite number {rule}")
        for name in ("metric_samples", "early_metric_samples"):
            count = getattr(self, name)
            if self.metric == "fid" and count is not None and count < FID_MIN_SAMPLES:
                warnings.warn(f"{name}={count} is below {FID_MIN_SAMPLES}: the Inception covariance is "
                              "rank-deficient and the FID is biased (the paper used 50,000)", stacklevel=2)
        return self

    def metric_samples_at(self, iteration: int) -> int:
        """Samples of the metric evaluation at generator iteration ``iteration``: ``metric_samples`` after
        (1 − :data:`END_SHARE`) · ``iterations`` (where ``final`` and ``end`` read), else
        ``early_metric_samples`` when it is set."""
        if self.early_metric_samples is None or iteration > self.iterations * (1 - END_SHARE):
            return self.metric_samples
        return self.early_metric_samples

    @property
    def metric_samples_text(self) -> str:
        """The metric's sample counts in words (e.g. for a protocol table)."""
        if self.early_metric_samples is None:
            return f"{self.metric_samples:,} samples"
        return (f"{self.metric_samples:,} samples in the last {END_SHARE:.0%} of training, "
                f"{self.early_metric_samples:,} before")

    @property
    def memory_format(self) -> torch.memory_format:
        """The memory format of the networks and images (:attr:`channels_last`)."""
        return torch.channels_last if self.channels_last else torch.contiguous_format



_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(GANConfig)


def coerce_field(name: str, value: Any) -> Any:
    """``value`` converted to the declared type of field ``name`` (ValueError naming the field otherwise)."""
    declared = _FIELD_TYPES[name]
    args = typing.get_args(declared)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), declared) if args else declared
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} may not be empty (None); expected {base.__name__}")
    if name == "q" and not isinstance(value, bool) and isinstance(value, (int, float)):
        value = gradient_norm(value).name
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.strip().lower() in ("true", "yes", "1")
            raise TypeError
        if base is int:
            if isinstance(value, bool):
                raise TypeError
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float):
                if not number.is_integer():
                    raise TypeError
                number = int(number)
            if not isinstance(number, int):
                raise TypeError
            return number
        if base is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if base is str:
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        pass
    else:
        raise AssertionError(f"unhandled field type {declared!r}")
    raise ValueError(f"config field {name}: expected {base.__name__}{' or null' if optional else ''}, "
                     f"got {value!r} ({type(value).__name__})")


#: γ, the weight of the zero-centred penalties in the literature (Mescheder et al., 2018: R1 = γ/2 · E‖∇ₓf(x)‖₂²
#: at the real data; R2 the same at the fakes): the λ of eq. 6 it means, per ``penalty_at``. With ``data``, one
#: mean over the real and fake points together, λ = γ gives γ/2 · (R1 + R2). Nowhere else is γ defined.
GAMMA_TO_LAM: dict[str, float] = {"real": 0.5, "fake": 0.5, "data": 1.0}


def gamma_as_lam(values: dict[str, Any], shapes: Any, penalty_at: str) -> dict[str, Any]:
    """``values`` with ``gamma``, the zero-centred penalty weight, replaced by the ``lam`` it means
    (:data:`GAMMA_TO_LAM`) for runs whose penalty shapes are ``shapes`` and whose penalty is taken at
    ``penalty_at`` (``values`` itself when it holds no ``gamma``); ``ValueError`` naming what is wrong when both
    are given, when γ is not defined there (another shape, the interpolates) or is not a positive number."""
    if "gamma" not in values:
        return values
    gamma = values["gamma"]
    if "lam" in values:
        raise ValueError(f"both gamma={gamma!r} and lam={values['lam']!r} were given: give one "
                         "(lam = γ/2 for R1 or R2)")
    shapes = sorted(set(shapes))
    if shapes != ["zero_centered"] or penalty_at not in GAMMA_TO_LAM:
        raise ValueError(f"gamma is the weight of the zero-centred penalties R1/R2 (g='zero_centered' with "
                         f"penalty_at in {sorted(GAMMA_TO_LAM)}); here g={shapes} and penalty_at={penalty_at!r}: "
                         "set lam, the λ of the paper's eq. 6, instead")
    value = coerce_field("lam", gamma)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"invalid gamma={gamma!r}: γ must be a finite number > 0 (γ = 0 is no penalty at all, "
                         "which no run here is named for)")
    return {**{k: v for k, v in values.items() if k != "gamma"}, "lam": GAMMA_TO_LAM[penalty_at] * value}


def config_from(values: dict[str, Any]) -> GANConfig:
    """A validated config from a mapping (YAML, flags, papermill): unknown keys raise ``ValueError`` listing the
    valid ones; each value is coerced to its field's type (``'2e-4'`` → 2e-4, ``'1e5'`` → 100000 for an int).
    ``gamma`` may stand for ``lam`` with a zero-centred penalty (:func:`gamma_as_lam`; not both)."""
    known = {f.name for f in dataclasses.fields(GANConfig)}
    unknown = sorted(set(values) - known - {"gamma"})
    if unknown:
        raise ValueError(f"unknown GAN config key(s) {unknown}; valid keys: {sorted(known | {'gamma'})}")
    values = gamma_as_lam(values, [values.get("g", GANConfig.g)], values.get("penalty_at", GANConfig.penalty_at))
    return GANConfig(**{name: coerce_field(name, value) for name, value in values.items()}).validate()


def check_device_name(name: object) -> str:
    """``name`` if it is 'auto', 'cpu', 'cuda' or 'cuda:<index>', else ``ValueError`` naming the choices."""
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name):
        raise ValueError(f"invalid device={name!r}; valid choices: 'auto', 'cpu', 'cuda', 'cuda:<index>'")
    return name


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``, refused (``ValueError``) when it is not usable on this machine.

    Called before any data is loaded or any folder is written.
    """
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} was requested but no CUDA device is available; "
                             "valid choices here: 'cpu', 'auto'")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device={name!r} was requested but this machine has {count} CUDA device(s): "
                             f"valid choices: {', '.join(repr(f'cuda:{i}') for i in range(count))}")
    return device
