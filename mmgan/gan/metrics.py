"""Fréchet distances between real and generated images: FID and an offline stand-in.

Pure stages, as in pytorch-fid and torch-fidelity: features → statistics (mean,
covariance) → Fréchet distance, with dataset statistics cached on disk.

* **FID** (Heusel et al., 2017) uses pytorch-fid's InceptionV3 (pool3, 2048
  features). Its weights are read from ``$TORCH_HOME/hub/checkpoints/`` as
  pytorch-fid expects, once the file's SHA-256 matches the one pytorch-fid
  published, and weights-only (nothing in the file can run code); when they are
  absent or differ we stop with a message naming the file and where to get it
  (no download attempt, no random weights). The paper
  used TensorFlow's TTUR implementation with 50k samples against CIFAR-10
  *training* statistics; pytorch-fid reproduces those features closely but not
  bit for bit, so FIDs are comparable only within one implementation.
* **FDD, the Fréchet digits distance**: the same Fréchet distance in the
  64-dimensional penultimate layer of a small CNN that this project trains on
  scikit-learn's digits. It works offline, is meaningful only for digit images,
  and is *not* FID: its values are on a different scale.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from unittest import mock

import numpy as np
import torch
from torch import nn

from mmgan.base.randomness import normal
from mmgan.base.registry import Registry, check_int
from mmgan.base.results import atomic_savez, atomic_torch_save, file_digest, read_torch

#: pytorch-fid's Inception weights, as torch hub names them in ``$TORCH_HOME/hub/checkpoints/`` (the 8 hex digits
#: are the start of the file's SHA-256).
INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
#: Where pytorch-fid publishes :data:`INCEPTION_WEIGHTS`.
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_WEIGHTS}"
#: The SHA-256 of the file pytorch-fid publishes (95,628,359 bytes).
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


def cache_dir() -> Path:
    """Where statistics and the digits classifier are cached: ``$MMGAN_CACHE`` or ``~/.cache/mmgan``."""
    return Path(os.environ.get("MMGAN_CACHE", Path.home() / ".cache" / "mmgan"))


# ----------------------------------------------------------------------------- the distance


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ‖mu1 − mu2‖² + tr(sigma1) + tr(sigma2) − 2 tr((sigma1 sigma2)^{1/2}).

    The trace of the square root comes from eigenvalues, not from an iterative matrix square root:
    with S = sigma1^{1/2} (symmetric, from an eigendecomposition), sigma1 sigma2 = S (S sigma2 S) S^{-1} is
    similar to the symmetric positive semi-definite S sigma2 S, whose eigenvalues are real and ≥ 0, so
    tr((sigma1 sigma2)^{1/2}) is the sum of their square roots. This holds for singular covariances too
    (fewer samples than dimensions), needs no ``eps`` offset and leaves no imaginary residue; it agrees with
    pytorch-fid's ``scipy.linalg.sqrtm`` route (``calculate_frechet_distance``) to float64 rounding and is about
    3x faster than it on 2048-d statistics (2.6–3.6x on one CPU thread, ``benchmarks/fid.py``). Computed in
    float64 with torch, on the device of ``sigma1`` when it is a tensor. ``ValueError`` when sigma1, or
    S sigma2 S, has an eigenvalue below −1e-6 times its largest: not covariances.
    """
    def as64(value) -> torch.Tensor:
        return torch.as_tensor(value, dtype=torch.float64)

    mu1, mu2 = torch.atleast_1d(as64(mu1)), torch.atleast_1d(as64(mu2)).to(as64(mu1).device)
    sigma1, sigma2 = torch.atleast_2d(as64(sigma1)), torch.atleast_2d(as64(sigma2)).to(as64(sigma1).device)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics have different shapes: {tuple(mu1.shape)}/{tuple(sigma1.shape)} vs "
                         f"{tuple(mu2.shape)}/{tuple(sigma2.shape)}")
    w1, v1 = torch.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v1 * w1.clamp(min=0).sqrt()) @ v1.T
    inner = torch.linalg.eigvalsh(root1 @ ((sigma2 + sigma2.T) / 2) @ root1)
    # sigma1 directly; sigma2 through S sigma2 S, which is PSD when sigma2 is (two eigendecompositions, not three)
    for name, w in (("sigma1", w1), ("sigma2", inner)):
        if not bool(torch.isfinite(w).all()) or float(w.min()) < -1e-6 * max(float(w.abs().max()), 1e-30):
            raise ValueError(f"{name} is not a covariance matrix (eigenvalue {float(w.min()):.3g}): it must be "
                             "symmetric positive semi-definite")
    trace_root = float(inner.clamp(min=0).sqrt().sum())
    diff = mu1 - mu2
    return float(diff @ diff) + float(sigma1.trace()) + float(sigma2.trace()) - 2 * trace_root


class Summary(Protocol):
    """What a metric keeps of the features of a set of images (its accumulator's result, what its distance compares
    and what the cache stores as named arrays): :class:`Statistics` for the Fréchet distances."""

    n: int

    def arrays(self) -> dict[str, np.ndarray]: ...


class Accumulator(Protocol):
    """Builds a :class:`Summary` batch by batch of features (``n``: the rows seen so far)."""

    n: int

    def update(self, features: torch.Tensor) -> None: ...

    def result(self) -> Summary: ...


@dataclass
class Statistics:
    """Mean and covariance of ``n`` feature vectors: what a Fréchet distance (FID, FDD) compares."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mu": self.mu, "sigma": self.sigma, "n": np.asarray(self.n)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Statistics:
        return cls(arrays["mu"], arrays["sigma"], int(arrays["n"]))


#: Columns per slab of the upper-triangular accumulation of XᵀX (:class:`RunningStatistics`).
SLAB = 256


class RunningStatistics:
    """Mean and covariance accumulated batch by batch in float64 on the features' device: no feature matrix is
    kept and nothing is read back to the host until :meth:`result`.

    The sums are of the features minus a shift, the mean of the first batch (the shifted-data algorithm),
    because a covariance from raw sums, (XᵀX − n μμᵀ)/(n − 1), subtracts two numbers of the size of μ² to
    leave one of the size of the spread: features whose mean lies far from zero lose digits to the
    cancellation (at a mean 1e5 times their spread, covariance entries off by about 2e-5 of the variance;
    with 1,000 samples of 2048 dimensions, already at 1e4 the result was not positive semi-definite and the
    distance refused it). Shifted,
    the features are centred up to the first batch's sampling error, nothing large cancels, and the
    statistics agree with NumPy's two-pass ``np.mean`` and ``np.cov`` to float64 rounding. The shift is
    computed and kept on the features' device (no read-back).

    XᵀX is symmetric, so each batch adds only its upper triangle, slab by slab of :data:`SLAB` rows
    (X[:, i:i+s]ᵀ X[:, i:]): 56% of the products of the full matrix at 2048 dimensions, every one in float64.
    """

    def __init__(self, dim: int, device: torch.device | str = "cpu") -> None:
        self.n = 0
        self.shift: torch.Tensor | None = None  # the first batch's mean, subtracted from every feature
        self.total = torch.zeros(dim, dtype=torch.float64, device=device)  # of the shifted features
        self.outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)  # upper slabs only, shifted

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        features = torch.as_tensor(features).to(self.total.device, torch.float64)
        if not features.shape[0]:
            return
        if self.shift is None:
            self.shift = features.mean(0)
        features = features - self.shift
        self.n += features.shape[0]
        self.total += features.sum(0)
        for start in range(0, features.shape[1], SLAB):
            self.outer[start:start + SLAB, start:].addmm_(features[:, start:start + SLAB].T, features[:, start:])

    def result(self) -> Statistics:
        if self.n < 2:
            raise ValueError("need at least 2 samples for a covariance")
        offset = self.total / self.n  # the shifted features' mean: small, so nothing large cancels below
        upper = torch.triu(self.outer)
        outer = upper + torch.triu(upper, 1).T
        sigma = (outer - self.n * torch.outer(offset, offset)) / (self.n - 1)
        return Statistics((self.shift + offset).cpu().numpy(), sigma.cpu().numpy(), self.n)


# ----------------------------------------------------------------------------- feature extractors


class Extractor(nn.Module):
    """Maps images in [−1, 1], (B, C, H, W), to features (B, dim), and says what its metric keeps of them.

    The default keeps their mean and covariance (:class:`RunningStatistics`, for the Fréchet distances); a metric
    that needs more (a sample of the features for a kernel distance, say) overrides :meth:`accumulator` and
    :meth:`summary_from` in its extractor, and everything else (streaming, caching the data set's summary, the
    training loop) is unchanged."""

    name: str
    dim: int
    recommended_samples: int

    def accumulator(self, device: torch.device | str) -> Accumulator:
        """An empty accumulator of this metric's summary, on ``device``."""
        return RunningStatistics(self.dim, device)

    def summary_from(self, arrays: Mapping[str, np.ndarray]) -> Summary:
        """The summary stored as ``arrays`` (:meth:`Summary.arrays`), read back from the cache."""
        return Statistics.from_arrays(arrays)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Disable TF32 matmuls and convolutions (they change Inception features on recent GPUs)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def inception_state(path: Path) -> dict[str, torch.Tensor]:
    """pytorch-fid's Inception weights from ``path``: its SHA-256 is checked against :data:`INCEPTION_SHA256`
    before the file is read as torch at all, and it is then read weights-only
    (:func:`~mmgan.base.results.read_torch`), so a damaged, replaced or malicious file is refused and runs
    nothing (``ValueError`` naming the file, both digests and where to get the right one)."""
    found = file_digest(path)
    again = f"delete it and download {INCEPTION_WEIGHTS} again from {INCEPTION_URL}"
    if found != INCEPTION_SHA256:
        raise ValueError(f"{path} is not pytorch-fid's Inception weights file (its SHA-256 is {found}, expected "
                         f"{INCEPTION_SHA256}), so it was not read: {again}")
    return read_torch(path, remedy=again)


class InceptionExtractor(Extractor):
    """pytorch-fid's FID InceptionV3, pool3 features (2048-d).

    The network is pytorch-fid's own; only the weights come from :func:`inception_state` instead of pytorch-fid's
    loader (``torch.hub``'s, which neither checks the file's digest nor loads it weights-only)."""

    name = "inception-pool3"
    dim = 2048
    recommended_samples = 2048

    def __init__(self) -> None:
        super().__init__()
        weights = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
        if not weights.is_file():
            raise FileNotFoundError(
                f"FID needs pytorch-fid's Inception weights at {weights} (TORCH_HOME="
                f"{os.environ.get('TORCH_HOME', '<unset>')}). Download {INCEPTION_URL} on a machine with "
                "network access and copy it there, or set TORCH_HOME to the folder holding hub/checkpoints/.")
        from pytorch_fid import inception

        state = inception_state(weights)

        def verified(url: str, **_: Any) -> dict[str, torch.Tensor]:
            """Stands in for pytorch-fid's download-and-load: the weights checked above."""
            if url.rsplit("/", 1)[-1] != INCEPTION_WEIGHTS:
                raise ValueError(f"pytorch-fid asks for the weights {url}, not the {INCEPTION_WEIGHTS} this project "
                                 "checks: install the pytorch-fid version of requirements-lock.txt")
            return state

        with mock.patch.object(inception, "load_state_dict_from_url", verified):
            self.net = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                             normalize_input=True)
        self.net.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.net((images + 1) / 2)[0].flatten(1)  # pytorch-fid takes [0, 1]


class DigitsClassifier(nn.Module):
    """A small CNN for scikit-learn's digits; its 64-d penultimate layer defines the FDD."""

    def __init__(self, channels: int, image_size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * 16, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DigitsExtractor(Extractor):
    """Penultimate features of :class:`DigitsClassifier`, trained once and cached."""

    dim = 64
    recommended_samples = 128

    def __init__(self, image_size: int, channels: int) -> None:
        super().__init__()
        self.name = f"digits-cnn-{image_size}px-{channels}ch"
        self.classifier, self.test_accuracy = train_digits_classifier(image_size, channels)
        self.classifier.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images)


def seeded_classifier(channels: int, image_size: int, seed: int) -> DigitsClassifier:
    """A :class:`DigitsClassifier` with initial weights drawn from ``seed`` (the global random state is left as
    it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitsClassifier(channels, image_size)


def cached_classifier(path: Path, channels: int, image_size: int, seed: int) -> DigitsClassifier | None:
    """The digits classifier cached in ``path``, or None when there is none or it cannot be used: damaged,
    holding other weights, or needing pickle (read weights-only, so nothing in it runs). An unusable file is
    reported with a warning naming it and the reason, and is to be rebuilt."""
    if not path.is_file():
        return None
    model = seeded_classifier(channels, image_size, seed)
    try:
        model.load_state_dict(read_torch(path, remedy="it is retrained and replaced"))
    except ValueError as error:  # read_torch: the message names the file, the reason and the remedy
        warnings.warn(str(error), stacklevel=3)
        return None
    except (RuntimeError, TypeError) as error:  # load_state_dict: other keys or shapes, not a mapping
        warnings.warn(f"{path} does not hold a digits classifier of this shape ({' '.join(str(error).split())}) — "
                      "it is retrained and replaced", stacklevel=3)
        return None
    return model


def train_digits_classifier(image_size: int, channels: int, epochs: int = 12,
                            seed: int = 0) -> tuple[DigitsClassifier, float]:
    """Train (or load from the cache) the digits classifier; returns it and its held-out accuracy.

    The training is a function of ``seed`` alone: initial weights and batch order come from it
    (not from whatever used the global random state before) and it runs on one thread, so every
    machine gets the same classifier up to its kernels' rounding. (Until version 2 the initial
    weights were drawn before seeding: the FDD extractor of a fresh cache was a random one.)
    A cache file that cannot be used (:func:`cached_classifier`) is retrained, which gives the classifier a
    fresh cache would hold, and atomically replaced.
    """
    from sklearn.datasets import load_digits

    from mmgan.gan.data import digits

    path = cache_dir() / f"digits_classifier_v2_{image_size}px_{channels}ch_seed{seed}_e{epochs}.pt"
    images = digits(image_size, channels)
    labels = torch.as_tensor(load_digits().target)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=gen)
    test, train = order[:297], order[297:]
    model = cached_classifier(path, channels, image_size, seed)
    if model is None:
        model = seeded_classifier(channels, image_size, seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for _ in range(epochs):
                for batch in train[torch.randperm(len(train), generator=gen)].split(64):
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
                    optimizer.step()
        finally:
            torch.set_num_threads(threads)
        atomic_torch_save(model.state_dict(), path)
    with torch.no_grad():
        accuracy = float((model(images[test]).argmax(1) == labels[test]).float().mean())
    return model, accuracy


@dataclass(frozen=True)
class Metric:
    """A metric of generated images, as registered in :data:`METRICS`: lower is better.

    Attributes:
        label: how the protocol tables name it.
        extractor: ``(image_size, channels) -> Extractor``, its feature network, built once per run (a module:
            whatever state the metric needs beside its weights lives there).
        distance: ``(generated, reference) -> value`` between the feature summaries (:class:`Summary`: the
            :class:`Statistics` of a Fréchet distance, whatever its extractor keeps otherwise) of the generated
            images and of the data set.
        datasets: the data sets it means something for (None: any).
    """

    label: str
    extractor: Callable[[int, int], Extractor]
    distance: Callable[[Summary, Summary], float]
    datasets: tuple[str, ...] | None = None


def _check_metric(name: str, metric: Metric) -> None:
    """A metric builds its extractor and measures a distance (both callables); its data sets, if given, a tuple."""
    for what in ("extractor", "distance"):
        if not callable(getattr(metric, what)):
            raise TypeError(f"metric {name!r}: {what} must be callable")
    if metric.datasets is not None and not (isinstance(metric.datasets, tuple) and metric.datasets):
        raise ValueError(f"metric {name!r}: datasets must be a non-empty tuple of data set names or None")


def frechet(generated: Statistics, reference: Statistics) -> float:
    """:func:`frechet_distance` between two :class:`Statistics`."""
    return frechet_distance(generated.mu, generated.sigma, reference.mu, reference.sigma)


#: The metrics by name: FID (pytorch-fid's Inception) and the offline FDD (a new one: one entry).
METRICS: Registry[Metric] = Registry("metric", Metric, _check_metric, {
    "fid": Metric("FID, pytorch-fid InceptionV3", lambda image_size, channels: InceptionExtractor(), frechet),
    "fdd": Metric("FDD (Fréchet digits distance, not FID)", DigitsExtractor, frechet, datasets=("digits", "shapes")),
})


def make_extractor(metric: str, image_size: int, channels: int, device: torch.device | str = "cpu") -> Extractor:
    """The feature extractor of the registered ``metric`` (:data:`METRICS`) for images of this size, on ``device``."""
    return METRICS[metric].extractor(image_size, channels).to(device)


# ----------------------------------------------------------------------------- statistics


#: Images the feature extractor takes at once, whatever the batches they are generated in.
EXTRACT_BATCH = 500


def rebatched(batches: Iterator[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """The rows of ``batches`` regrouped into tensors of ``size`` rows (the last may be smaller), in order."""
    check_int(size, "size", minimum=1)
    waiting: list[torch.Tensor] = []
    count = 0
    for batch in batches:
        waiting.append(batch)
        count += batch.shape[0]
        if count >= size:
            joined = torch.cat(waiting)
            full = (count // size) * size
            yield from joined[:full].split(size)
            waiting, count = ([joined[full:]] if count > full else []), count - full
    if count:
        yield torch.cat(waiting)


@torch.no_grad()
def batch_statistics(extractor: Extractor, batches: Iterator[torch.Tensor], device: torch.device | str,
                     extract_batch: int = EXTRACT_BATCH) -> Summary:
    """The metric's summary (:meth:`Extractor.accumulator`) of every image of ``batches``, fed to the extractor
    ``extract_batch`` at a time and accumulated on ``device`` (one read-back at the end)."""
    running = extractor.accumulator(device)
    with no_tf32():
        for batch in rebatched((b.to(device) for b in batches), extract_batch):
            running.update(extractor(batch))
    if running.n < extractor.recommended_samples:
        warnings.warn(f"{extractor.name}: {running.n} samples is below the {extractor.recommended_samples} "
                      "recommended for a full-rank covariance; the distance is biased and may be unstable",
                      stacklevel=2)
    return running.result()


def images_fingerprint(images: torch.Tensor, chunk_bytes: int = 1 << 26) -> str:
    """SHA-256 of every image's values as contiguous float32 CPU bytes, with the shape and dtype.

    All of the data is hashed (no sampling), so changing any pixel of any image changes
    the fingerprint. Images are converted chunk by chunk (``chunk_bytes`` of float32 at a
    time), so a GPU or float64 tensor needs no second full copy. With SHA-NI, 50k CIFAR-10
    images (614 MB as float32) take about 0.4 s on one CPU core.
    """
    images = images.detach()
    digest = hashlib.sha256(f"{tuple(images.shape)}|{images.dtype}|".encode())
    rows = images.reshape(1, -1) if images.dim() == 0 else images
    per_row = max(1, int(np.prod(rows.shape[1:])))
    for chunk in rows.split(max(1, chunk_bytes // (4 * per_row))):
        digest.update(chunk.to("cpu", torch.float32).contiguous().reshape(-1).numpy().data)
    return digest.hexdigest()


def extractor_fingerprint(extractor: nn.Module) -> str:
    """SHA-256 of an extractor's weights: the name, dtype, shape and bytes of every state_dict tensor.

    Computed once per extractor and remembered on it, until one of its parameters or buffers
    is replaced or modified in place (tracked by the tensors' storage and version counters, so
    ``load_state_dict``, optimiser steps and ``p.add_(…)`` under ``no_grad`` all count; writes
    through ``p.data`` bypass the version counter and are not seen).
    """
    tensors = [*extractor.named_parameters(), *extractor.named_buffers()]
    token = tuple((name, t.data_ptr(), t._version, t.dtype, tuple(t.shape), str(t.device)) for name, t in tensors)
    memo = extractor.__dict__.get("_mmgan_weights_fingerprint")
    if memo is not None and memo[0] == token:
        return memo[1]
    digest = hashlib.sha256(type(extractor).__qualname__.encode())
    for name, tensor in extractor.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            digest.update(f"|{name}={tensor!r}".encode())
            continue
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"|{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    extractor.__dict__["_mmgan_weights_fingerprint"] = (token, digest.hexdigest())
    return digest.hexdigest()


def dataset_statistics(extractor: Extractor, images: torch.Tensor, dataset_key: str,
                       device: torch.device | str = "cpu", batch_size: int = EXTRACT_BATCH) -> Summary:
    """The metric's summary (:meth:`Extractor.accumulator`) of a whole data set, cached as npz in
    ``cache_dir()/stats/``.

    The cache file is named ``<dataset_key>-<extractor name>-<digest>.npz``; the digest covers
    the images' content (:func:`images_fingerprint`: any changed image, even of the same shape
    and under the same ``dataset_key``, gets its own entry), the extractor's weights
    (:func:`extractor_fingerprint`) and the kind of summary kept (the extractor's own :meth:`Extractor.accumulator`,
    where it overrides the mean and covariance). An unreadable cache file is recomputed and replaced.
    """
    from mmgan.base.results import read_npz

    content = images_fingerprint(images)
    weights = extractor_fingerprint(extractor)
    kept = type(extractor).accumulator  # the mean and covariance unless the extractor keeps another summary
    summary = "" if kept is Extractor.accumulator else f"|summary={kept.__module__}.{kept.__qualname__}"
    digest = hashlib.sha256(f"{dataset_key}|{extractor.name}|images={content}|weights={weights}{summary}".encode())
    path = cache_dir() / "stats" / f"{dataset_key}-{extractor.name}-{digest.hexdigest()[:16]}.npz"
    if path.is_file():
        try:
            return extractor.summary_from(read_npz(path, remedy="it is recomputed"))
        except (ValueError, KeyError) as error:
            warnings.warn(f"ignoring the unreadable cached statistics {path}: {error}", stacklevel=2)
    stats = batch_statistics(extractor, iter(images.split(batch_size)), device, extract_batch=batch_size)
    atomic_savez(path, **stats.arrays())
    return stats


def quantize_8bit(images: torch.Tensor) -> torch.Tensor:
    """Round images in [−1, 1] to the 256 grey levels of an 8-bit PNG, as saving them would.

    The released code writes its 50k samples as PNGs (``x·0.5 + 0.5``, times 255,
    plus 0.5, clamped, truncated to uint8) and the TF FID reads those files.
    """
    levels = torch.clamp((images * 0.5 + 0.5) * 255 + 0.5, 0, 255).floor()
    return levels / 255 * 2 - 1


def generator_statistics(generator: Callable[[torch.Tensor], torch.Tensor], extractor: Extractor, n: int,
                         z_dim: int, device: torch.device | str = "cpu", batch_size: int = 250,
                         seed: int = 0, quantize: bool = False) -> Summary:
    """The metric's summary of n generated samples, streamed in batches of ``batch_size`` (no images are kept).

    The noise is drawn from a CPU generator seeded with ``seed`` and moved to
    ``device`` (the same samples on any device; see :mod:`mmgan.base.randomness`).
    With ``quantize`` the samples are rounded to 8 bit first (:func:`quantize_8bit`).
    The caller chooses the generator's BatchNorm mode (``mmgan.gan.models.sampling_mode``);
    with batch statistics, ``batch_size`` is part of the protocol (the released code: 100).
    """
    check_int(n, "n", minimum=2)
    check_int(batch_size, "batch_size", minimum=1)
    gen = torch.Generator().manual_seed(seed)

    def batches() -> Iterator[torch.Tensor]:
        done = 0
        while done < n:
            size = min(batch_size, n - done)
            done += size
            images = generator(normal((size, z_dim), gen, device))
            yield quantize_8bit(images) if quantize else images

    return batch_statistics(extractor, batches(), device)
