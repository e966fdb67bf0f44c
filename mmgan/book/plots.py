"""Figures of the chapters. Each function returns a closed matplotlib Figure.

Kept apart from the math so the chapters stay thin; nothing here computes a
number that the book reports.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from mmgan.book.figure_text import BookFigure, record_text_sizes_in_outputs
from mmgan.exact import parameter_dtype
from mmgan.losses import MARGIN_LOSSES
from mmgan.penalties import PENALTY_SHAPES

record_text_sizes_in_outputs()

ORDER_LABELS = {1.0: "$p=1$", 2.0: "$p=2$", math.inf: r"$p=\infty$"}
ORDER_COLORS = {1.0: "tab:blue", 2.0: "tab:orange", math.inf: "tab:green"}


def _figure(width: float = 6.0, height: float = 3.6, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    """A new figure that pyplot does not keep open (so a notebook shows it exactly once)."""
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False,
                             layout="constrained", FigureClass=BookFigure)
    plt.close(fig)
    return fig, axes[0]


#: The widest figure (inches) drawn: a page's column on a desktop; wider sets of panels wrap onto more rows.
MAX_FIGURE_WIDTH = 9.0


def _panels(count: int, panel_width: float, panel_height: float) -> tuple[Figure, list]:
    """A figure of ``count`` panels of the given size, as many per row as :data:`MAX_FIGURE_WIDTH` allows (the
    rest wrap onto further rows; unused cells of the last row are hidden), not kept open by pyplot."""
    columns = max(1, min(count, int(MAX_FIGURE_WIDTH // panel_width)))
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(panel_width * columns, panel_height * rows), squeeze=False,
                             layout="constrained", FigureClass=BookFigure)
    plt.close(fig)
    for ax in axes.flat[count:]:
        ax.set_axis_off()
    return fig, list(axes.flat[:count])


def margin_losses(z_min: float = -2.5, z_max: float = 2.5) -> Figure:
    """The margin losses L(z) of eq. 6 against the functional margin z = y·f(x)."""
    fig, (ax,) = _figure()
    z = torch.linspace(z_min, z_max, 501)
    for loss in MARGIN_LOSSES.values():
        ax.plot(z, loss.L(z), label=loss.label)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xlabel="functional margin $z = y\\,f(x)$", ylabel="$L(z)$", ylim=(-2.5, 6))
    ax.legend(frameon=False)
    return fig


def penalty_shapes(z_max: float = 2.5) -> Figure:
    """The penalty shapes g(z) of eq. 6 against the gradient norm z = ‖∇f‖_q."""
    fig, (ax,) = _figure()
    z = torch.linspace(0, z_max, 501)
    for shape in PENALTY_SHAPES.values():
        ax.plot(z, shape.g(z), label=shape.label)
    ax.axvline(1, color="0.6", lw=0.8, ls="--")
    ax.set(xlabel="gradient norm $z = \\|\\nabla_x f(x)\\|_q$", ylabel="$g(z)$", ylim=(-1.2, 3))
    ax.legend(frameon=False, fontsize=8)
    return fig


def lp_ball(p: float, radius: float = 1.0, n: int = 721) -> np.ndarray:
    """Points (n, 2) on the 2-D L^p sphere of a given radius."""
    t = np.linspace(0, 2 * np.pi, n)
    c, s = np.cos(t), np.sin(t)
    if math.isinf(p):
        scale = np.maximum(np.abs(c), np.abs(s))
    else:
        scale = (np.abs(c) ** p + np.abs(s) ** p) ** (1 / p)
    return radius * np.stack([c, s], 1) / scale[:, None]


def closest_points_to_line(
    x: np.ndarray, w: np.ndarray, b: float, closest: Mapping[float, np.ndarray], distance: Mapping[float, float]
) -> Figure:
    """A point, the line w·z + b = 0, and for each p the L^p ball that touches it."""
    fig, (ax,) = _figure(5.0, 5.0)
    span = np.linspace(-3, 3, 2)
    if abs(w[1]) > 1e-12:
        ax.plot(span, -(w[0] * span + b) / w[1], color="k", lw=1.5, label="boundary $f=0$")
    for p, point in closest.items():
        ball = x + lp_ball(p, distance[p])
        ax.plot(ball[:, 0], ball[:, 1], color=ORDER_COLORS[p], lw=1.2,
                label=f"{ORDER_LABELS[p]}: distance {distance[p]:.3f}")
        ax.plot(*point, "o", color=ORDER_COLORS[p], ms=6)
    ax.plot(*x, "k*", ms=10)
    ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xlabel="$x_{(1)}$", ylabel="$x_{(2)}$")
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    return fig


def relative_error_vs_distance(distance: np.ndarray, errors: Mapping[float, np.ndarray]) -> Figure:
    """Relative error of the Taylor margin against the exact distance (log-log)."""
    fig, (ax,) = _figure()
    for p, err in errors.items():
        ax.loglog(distance, err, ".", ms=3, alpha=0.6, color=ORDER_COLORS[p], label=ORDER_LABELS[p])
    ax.set(xlabel="exact $L^p$ distance to the boundary", ylabel="relative error of the Taylor margin")
    ax.legend(frameon=False)
    return fig


def lipschitz_check(table: Sequence[Mapping[str, float]]) -> Figure:
    """Empirical Lipschitz constants against the largest gradient norms, per order p."""
    fig, (ax,) = _figure(6.5, 3.6)
    labels = [ORDER_LABELS[row["p"]] for row in table]
    pos = np.arange(len(table))
    ax.bar(pos - 0.25, [row["K_hat"] for row in table], 0.25, label="largest sampled ratio $\\hat K_p$")
    ax.bar(pos, [row["max_dual"] for row in table], 0.25, label="max $\\|\\nabla f\\|_q$ (dual norm)")
    ax.bar(pos + 0.25, [row["max_same"] for row in table], 0.25, label="max $\\|\\nabla f\\|_p$ (same norm)")
    ax.set_xticks(pos, labels)
    ax.set(ylabel="value")
    ax.legend(frameon=False, fontsize=8)
    return fig


ROW_TITLES = {
    "none": "no penalty",
    "ls-q2": r"LS, $q=2$", "ls-qinf": r"LS, $q=\infty$", "ls-q1": r"LS, $q=1$",
    "hinge-q2": r"hinge, $q=2$", "hinge-qinf": r"hinge, $q=\infty$", "hinge-q1": r"hinge, $q=1$",
}


def decision_boundaries(nets: Sequence[tuple[str, torch.nn.Module]], x: np.ndarray, y: np.ndarray,
                        closest: Sequence[np.ndarray], accuracy: Sequence[float], resolution: int = 400) -> Figure:
    """Each classifier's boundary {f = 0} over the data, with the L² closest points of a few samples."""
    n = len(nets)
    cols = min(n, int(MAX_FIGURE_WIDTH // 3.0))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows), squeeze=False,
                             layout="constrained", FigureClass=BookFigure)
    plt.close(fig)
    pad = 0.15 * np.abs(x).max()
    lo, hi = x.min(0) - pad, x.max(0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    show = np.linspace(0, len(x) - 1, 24).astype(int)
    for ax, (label, net), points, acc in zip(axes.ravel(), nets, closest, accuracy):
        with torch.no_grad():
            z = net(grid).reshape(resolution, resolution).numpy()
        ax.contourf(gx, gy, z > 0, levels=[-0.5, 0.5, 1.5], colors=["#f4d6d6", "#d6e4f4"], alpha=0.8)
        ax.contour(gx, gy, z, levels=[0.0], colors="k", linewidths=0.8)
        ax.scatter(*x[y > 0].T, s=2, c="tab:blue")
        ax.scatter(*x[y < 0].T, s=2, c="tab:red")
        for i in show:
            ax.plot([x[i, 0], points[i, 0]], [x[i, 1], points[i, 1]], color="tab:green", lw=0.8)
        ax.set_title(f"{ROW_TITLES.get(label, label)} (acc. {acc:.0%})", fontsize=9)
        ax.set(xticks=[], yticks=[], aspect="equal")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig


def margin_distributions(distances: Mapping[str, np.ndarray], xlabel: str) -> Figure:
    """Box plots of per-sample signed margins, one box per row of Table 1."""
    fig, (ax,) = _figure(7.5, 3.4)
    labels = list(distances)
    ax.boxplot([distances[k] for k in labels], showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), [ROW_TITLES.get(k, k) for k in labels], rotation=30, fontsize=8)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(ylabel=xlabel)
    return fig


def training_curves(curves, metrics: Sequence[str] = ("loss", "penalty", "accuracy", "grad_norm")) -> Figure:
    """Mean over seeds of each logged metric against the iteration, one line per row of Table 1.

    The penalty panel leaves out the unpenalised row: it logs g(‖∇f‖) but is trained with λ = 0.
    """
    fig, axes = _panels(len(metrics), 3.2, 3.0)
    mean = curves.groupby(["row", "iteration"])[list(metrics)].mean().reset_index()
    for ax, metric in zip(axes, metrics):
        for label, part in mean.groupby("row", sort=False):
            if metric == "penalty" and label == "none":
                ax.plot([], [])  # keep each row's colour the same in every panel
                continue
            ax.plot(part["iteration"], part[metric], label=ROW_TITLES.get(label, label), lw=1)
        ax.set(xlabel="iteration", title=metric.replace("_", " "))
        if metric == "penalty":
            ax.set_yscale("symlog", linthresh=1e-3)
    axes[0].legend(frameon=False, fontsize=9)
    return fig


def sigmoid_example_figure(cases: Mapping[str, tuple[float, float]]) -> Figure:
    """Figure 1 of the paper: (a) the two segments and the boundaries; (b) ‖∇f‖ along x₁."""
    fig, (ax_a, ax_b) = _figure(9.0, 3.8, ncols=2)
    colors = ["tab:blue", "tab:red", "tab:green"]
    ax_a.plot([1, 1], [-1, 1], color="k", lw=3, label="real (class 1)")
    ax_a.plot([-1, -1], [-1, 1], color="0.6", lw=3, label="fake (class 2)")
    x1 = np.linspace(-2, 2, 801)
    for (name, (w1, w0)), color in zip(cases.items(), colors):
        position = -w0 / w1
        ax_a.axvline(position, color=color, ls="--" if "K = 2" in name else "-", lw=1.2, label=name)
        z = w1 * x1 + w0
        sig = 1 / (1 + np.exp(-z))
        ax_b.plot(x1, np.abs(w1) * sig * (1 - sig), color=color, label=name)
    ax_a.set(xlim=(-2, 2), ylim=(-1.5, 1.5), xlabel="$x_{(1)}$", ylabel="$x_{(2)}$", title="(a) data and boundaries")
    ax_a.legend(frameon=False, fontsize=8, loc="lower center")
    for x in (-1, 1):
        ax_b.axvline(x, color="0.7", lw=0.8)
    ax_b.set(xlabel="$x_{(1)}$", ylabel=r"$\|\nabla_x f(x)\|$", title=r"(b) gradient of sigmoid$(w_1x_{(1)}+w_0)$")
    ax_b.legend(frameon=False, fontsize=8)
    return fig


def line_gan_curves(curves) -> Figure:
    """Toy GAN: distance to the real line and discriminator gradient at fakes, per (loss, λ) and seed."""
    fig, (ax_d, ax_g) = _figure(MAX_FIGURE_WIDTH, 3.6, ncols=2)
    settings = list(curves.groupby(["generator_loss", "lam"]).groups)
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for (loss, lam), color in zip(settings, palette):
        part = curves[(curves.generator_loss == loss) & (curves.lam == lam)]
        label = f"{loss}, λ = {lam:g}"
        for k, (_, run) in enumerate(part.groupby("seed")):
            ax_d.plot(run.iteration, run.distance, color=color, lw=0.8, label=label if k == 0 else None)
            ax_g.semilogy(run.iteration, run.fake_disc_grad, color=color, lw=0.8, label=label if k == 0 else None)
    ax_d.set(xlabel="iteration", ylabel=r"$|\theta - 1|$", title="generator's distance to the real line")
    ax_g.set(xlabel="iteration", ylabel=r"$\|\nabla_x D\|$ at fakes", title="discriminator gradient at the fakes")
    ax_d.legend(frameon=False, fontsize=8)
    return fig


def relativistic_boundaries(nets: Sequence[torch.nn.Module], titles: Sequence[str], real: torch.Tensor,
                            fake: torch.Tensor, levels: Sequence[tuple[float, float]], resolution: int = 300) -> Figure:
    """For each critic: the RaGAN level sets C = E_Q C (real side) and C = E_P C (fake side), and C = 0
    (three panels a row, so the figure fits a page column at its drawn size)."""
    cols = min(3, len(nets))
    rows = -(-len(nets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.1 * rows), squeeze=False,
                             layout="constrained", FigureClass=BookFigure)
    plt.close(fig)
    for ax in axes.ravel()[len(nets):]:
        ax.set_visible(False)
    gx, gy = np.meshgrid(np.linspace(-3, 3, resolution), np.linspace(-3, 3, resolution))
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    for ax, net, title, (mean_real, mean_fake) in zip(axes.ravel(), nets, titles, levels):
        with torch.no_grad():
            z = net(grid.to(parameter_dtype(net))).reshape(resolution, resolution).numpy()
        ax.scatter(*real.T, s=2, c="tab:blue")
        ax.scatter(*fake.T, s=2, c="tab:red")
        ax.contour(gx, gy, z, levels=[mean_fake], colors="tab:blue", linewidths=1.2)
        ax.contour(gx, gy, z, levels=[mean_real], colors="tab:red", linewidths=1.2)
        if z.min() < 0 < z.max():
            ax.contour(gx, gy, z, levels=[0.0], colors="0.5", linestyles="--", linewidths=1)
        ax.set_title(title, fontsize=9)
        ax.set(xticks=[], yticks=[], aspect="equal", xlim=(-3, 3), ylim=(-3, 3))
    return fig


def gan_metric_curves(curves, ylabel: str) -> Figure:
    """Metric against generator iterations, one panel per loss, mean over seeds per (q, g) cell.

    Raises ``ValueError`` when no run has two evaluations: such a figure would be an empty plot.
    """
    points = curves.groupby(["loss", "q", "g", "seed"]).size() if len(curves) else []
    if not len(points) or max(points) < 2:
        raise ValueError("no run has two metric evaluations: nothing to draw "
                         "(lengthen the runs or evaluate more often)")
    losses = list(dict.fromkeys(curves["loss"]))
    fig, axes = _panels(len(losses), 4.2, 3.4)
    mean = curves.groupby(["loss", "q", "g", "iteration"])["value"].agg(["mean", "min", "max"]).reset_index()
    styles = {"ls": "--", "hinge": "-", "R1": ":", "R2": "-.", "R1 + R2": "-"}
    # colour by q; the zero-centred penalties (all q = 2) by their own colour
    colors = {"1": "tab:blue", "2": "tab:orange", "inf": "tab:green", "smax": "tab:purple", "R1": "tab:red",
              "R2": "tab:brown", "R1 + R2": "black"}
    for ax, loss in zip(axes, losses):
        for (q, g), part in mean[mean["loss"] == loss].groupby(["q", "g"]):
            color = colors.get(g, colors.get(q, "k"))
            ax.plot(part["iteration"], part["mean"], ls=styles.get(g, "-"), color=color, label=f"q={q}, g={g}")
            ax.fill_between(part["iteration"], part["min"], part["max"], color=color, alpha=0.12)
        ax.set(xlabel="generator iteration", ylabel=ylabel, title=loss, yscale="log")
    axes[0].legend(frameon=False, fontsize=9)
    return fig


#: Grey level (in [−1, 1]) of the gaps between sample images, so that neighbouring digits do not run together.
SAMPLE_GAP_LEVEL = 0.0
#: Cells per row of :func:`sample_grids` (a wider figure would not fit a page's column).
SAMPLE_COLUMNS = 4


def _strips(rows: Sequence[torch.Tensor], gap: int = 2) -> np.ndarray:
    """Images (one (N, C, H, W) tensor in [−1, 1] per row) laid out row by row with ``gap`` pixels of
    :data:`SAMPLE_GAP_LEVEL` between them, as an (H', W', C) array in [0, 1]."""
    n = max(len(images) for images in rows)
    _, c, h, w = rows[0].shape
    canvas = torch.full((c, len(rows) * (h + gap) - gap, n * (w + gap) - gap), SAMPLE_GAP_LEVEL)
    for r, images in enumerate(rows):
        for k, image in enumerate(images.detach().float().clamp(-1, 1)):
            canvas[:, r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = image
    return ((canvas.permute(1, 2, 0) + 1) / 2).numpy()


def sample_grids(samples: Mapping[str, Sequence[tuple[str, bool, torch.Tensor]]], title: str) -> Figure:
    """One panel per cell, at most :data:`SAMPLE_COLUMNS` panels per row: one row of images per run (its label,
    e.g. ``"seed 3"``, at the left; in red when the run did not learn), the images (N, C, H, W in [−1, 1]) separated
    by gaps so that each is seen on its own.

    ``samples`` maps a cell's name to its runs as (label, learnt, images). Raises ``ValueError`` when there is
    nothing to draw."""
    if not samples or not all(samples.values()):
        raise ValueError("no samples to draw")
    panels = len(samples)
    columns = min(SAMPLE_COLUMNS, panels)
    rows = math.ceil(panels / columns)
    runs = max(len(r) for r in samples.values())
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, (0.25 * runs + 0.6) * rows + 0.5),
                             squeeze=False, layout="constrained", FigureClass=BookFigure)
    plt.close(fig)
    for ax, (name, cell) in zip(axes.flat, samples.items()):
        grid = _strips([images for _, _, images in cell])
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray" if grid.shape[-1] == 1 else None,
                  vmin=0, vmax=1, interpolation="nearest")
        height = grid.shape[0] / len(cell)
        ax.set_yticks([height * (k + 0.5) for k in range(len(cell))], [label for label, _, _ in cell], fontsize=9)
        for tick, (_, learnt, _) in zip(ax.get_yticklabels(), cell):
            tick.set_color("k" if learnt else "tab:red")
        ax.set_xticks([])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[panels:]:
        ax.set_axis_off()
    fig.suptitle(title + " (a red label: the run did not learn)", fontsize=10)
    return fig


VERDICT_COLORS = {"holds": "tab:green", "does not hold": "tab:red"}
#: The colour of every other verdict (cannot tell, no effect larger than the band).
OTHER_VERDICT_COLOR = "0.45"
#: The forest plot shows ratios within [1/FOREST_SPAN, FOREST_SPAN]; wider intervals end in an arrow at the edge.
FOREST_SPAN = 10.0


def proposition_forest(overview, xlabel: str) -> Figure:
    """One row per (table, proposition) of :func:`mmgan.chapters.gan_tables.propositions_overview`: the pooled ratio
    other / better (dot) with its interval (line) on a log axis, coloured by verdict (a colour key says which), and
    the paper's own ratio (open diamond: its FIDs, one run per cell) where its table has one. The paper's
    propositions and the book's own (``paper claim`` false) are drawn in separate panels; the axis label says on
    which side the paper's prediction holds.

    Rows without an interval or judged ``not comparable`` are not drawn (their interval would say nothing);
    raises ``ValueError`` when no row is left (an empty figure)."""
    from matplotlib.lines import Line2D

    drawable = (np.isfinite(overview["lower"].astype(float)) & np.isfinite(overview["upper"].astype(float))
                & ~overview["verdict"].str.startswith("not comparable"))
    rows = overview[drawable]
    if rows.empty:
        raise ValueError("no proposition has an interval and a verdict: nothing to draw")
    panels = [(title, part.iloc[::-1]) for title, part in (("the paper's propositions", rows[rows["paper claim"]]),
                                                            ("the book's own propositions", rows[~rows["paper claim"]]))
              if not part.empty]
    heights = [len(part) + 1.2 for _, part in panels]
    fig = plt.figure(figsize=(6.0, 0.32 * sum(heights) + 2.0), layout="constrained", FigureClass=BookFigure)
    plt.close(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (title, part) in zip(axes, panels):
        y = np.arange(len(part))
        colors = [VERDICT_COLORS.get(v, OTHER_VERDICT_COLOR) for v in part["verdict"]]
        # an interval beyond [1/FOREST_SPAN, FOREST_SPAN] (a study with two seeds) is drawn up to the edge, arrowed
        lower = part["lower"].astype(float).clip(1 / FOREST_SPAN, FOREST_SPAN)
        upper = part["upper"].astype(float).clip(1 / FOREST_SPAN, FOREST_SPAN)
        ax.hlines(y, lower, upper, colors=colors, lw=2.2)
        for marker, side, edge in (("<", part["lower"].astype(float) < 1 / FOREST_SPAN, 1 / FOREST_SPAN),
                                   (">", part["upper"].astype(float) > FOREST_SPAN, FOREST_SPAN)):
            if side.any():
                ax.scatter(np.full(int(side.sum()), edge), y[side.to_numpy()], marker=marker, c=OTHER_VERDICT_COLOR,
                           s=34, zorder=3)
        ax.scatter(part["ratio"], y, c=colors, s=30, zorder=3)
        ax.scatter(part["paper ratio"].astype(float), y, marker="D", facecolors="none", edgecolors="k", s=34,
                   zorder=4)
        ax.axvline(1, color="0.5", lw=0.9, ls="--")
        ax.set_xscale("log")
        ax.set_xlim(1 / FOREST_SPAN / 1.15, FOREST_SPAN * 1.15)
        labels = [f"{t}: {p}".replace("L^∞", r"$L^\infty$") for t, p in zip(part["table"], part["proposition"])]
        ax.set_yticks(y, labels, fontsize=10)
        ax.set_ylim(-0.7, len(part) - 0.3)
        ax.set_title(title, fontsize=10, loc="left")
    ticks = [0.1, 0.2, 0.5, 1, 2, 5, 10]
    axes[-1].set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=10)
    axes[-1].xaxis.set_minor_formatter(NullFormatter())
    axes[-1].set_xlabel(textwrap.fill(xlabel, 45) + "\n← the other level better  |  as the paper predicts →",
                        fontsize=10)
    key = [Line2D([], [], color=color, marker="o", lw=2.2, label=verdict)
           for verdict, color in (*VERDICT_COLORS.items(), ("cannot tell / no effect larger than the band",
                                                               OTHER_VERDICT_COLOR))]
    key.append(Line2D([], [], color="k", marker="D", markerfacecolor="none", lw=0,
                      label="the paper: FID ratio over the same pairs of cells, one run (seed) per cell"))
    fig.legend(handles=key, loc="outside lower center", ncols=1, frameon=False, fontsize=10)
    return fig


def critic_margin_scatter(critics) -> Figure:
    """Each critic's margin against its run's final FDD: one panel per (threshold rule, order p).

    ``critics`` is :func:`mmgan.critics.report.per_critic`; raises ``ValueError`` when empty.
    """
    if not len(critics):
        raise ValueError("no critic to draw")
    rules, orders = list(dict.fromkeys(critics["threshold_rule"])), sorted(critics["p"].unique())
    fig, axes = plt.subplots(len(rules), len(orders), figsize=(2.9 * len(orders), 2.8 * len(rules)), squeeze=False,
                             layout="constrained", FigureClass=BookFigure)
    plt.close(fig)  # shown once, by the notebook's display of the returned figure
    cells = list(dict.fromkeys(critics["cell"]))
    colors = dict(zip(cells, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for i, rule in enumerate(rules):
        for j, p in enumerate(orders):
            ax = axes[i, j]
            part = critics[(critics["threshold_rule"] == rule) & (critics["p"] == p)]
            for cell, points in part.groupby("cell", sort=False):
                ax.scatter(points["margin"], points["final_fdd"], s=18, color=colors[cell], label=cell)
            order = "∞" if math.isinf(p) else f"{p:g}"
            ax.set(xscale="log", yscale="log", title=f"threshold {rule}, L{order}", xlabel=f"L{order} margin",
                   ylabel="final FDD" if j == 0 else None)
    axes[0, 0].legend(frameon=False, fontsize=8)
    return fig


def critic_margins_along_training(summary) -> Figure:
    """Mean margin (95% interval over seeds) of each cell against the training iteration, one panel per order p,
    and the FDD at the same iterations. ``summary`` is :func:`mmgan.critics.report.along_training`."""
    if not len(summary):
        raise ValueError("no margin along training to draw")
    orders = sorted(summary["p"].unique())
    fig, axes = _panels(len(orders) + 1, 3.0, 2.8)
    cells = list(dict.fromkeys(summary["cell"]))
    colors = dict(zip(cells, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, p in zip(axes, orders):
        for cell, part in summary[summary["p"] == p].groupby("cell", sort=False):
            ax.plot(part["iteration"], part["margin"], marker="o", ms=3, color=colors[cell], label=cell)
            ax.fill_between(part["iteration"], part["margin CI low"], part["margin CI high"], color=colors[cell],
                            alpha=0.15, lw=0)
        order = "∞" if math.isinf(p) else f"{p:g}"
        ax.set(xscale="log", yscale="log", title=f"L{order} margin", xlabel="generator iteration")
    fdd = summary.drop_duplicates(["cell", "iteration"])
    for cell, part in fdd.groupby("cell", sort=False):
        axes[-1].plot(part["iteration"], part["FDD"], marker="o", ms=3, color=colors[cell], label=cell)
    axes[-1].set(xscale="log", yscale="log", title="FDD (mean over seeds)", xlabel="generator iteration")
    axes[0].legend(frameon=False, fontsize=9)
    return fig


#: Tick labels of a log axis as plain numbers (0.6, 2) instead of powers of ten.
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")


def verdicts_over_training(over, xlabel: str, columns: int = 3) -> Figure:
    """Per proposition, its pooled ratio other / better (log scale) and simultaneous interval read at every metric
    evaluation (``over``: :meth:`mmgan.chapters.gan_runs.Run.over_training`), the line at 1 (no effect) dashed;
    above 1 goes the way the paper predicts; propositions without a ratio (not comparable: fewer than two seeds of
    pairs of runs that both learnt) are left out, and ``ValueError`` when none is left (an empty figure)."""
    drawable = over.dropna(subset=["ratio"])
    names = list(dict.fromkeys(drawable["proposition"]))
    if not names:
        raise ValueError("no proposition has a ratio at any evaluation: nothing to draw")
    cols = min(columns, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.95 * cols, 2.6 * rows), squeeze=False,
                             layout="constrained", FigureClass=BookFigure)
    plt.close(fig)  # pyplot does not keep it open, so a notebook shows it exactly once
    for ax, name in zip(axes.flat, names):
        part = drawable[drawable["proposition"] == name].sort_values("iteration")
        ax.fill_between(part["iteration"], part["lower"], part["upper"], color="tab:blue", alpha=0.25, lw=0,
                        label="interval")
        ax.plot(part["iteration"], part["ratio"], color="tab:blue", lw=1.5, label="pooled ratio")
        ax.axhline(1.0, color="black", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("ratio other / better (log)", fontsize=8)
    axes.flat[0].legend(fontsize=8, loc="best")
    return fig


def start_curves(outcomes, iterations: int) -> Figure:
    """Per cell (one line each, by loss in panels): the share of its runs that have not yet left their starting
    level, against generator iterations (``outcomes``: :func:`mmgan.gan.outcomes.run_outcomes`; a run that never
    started stays in the share to the end, marked by a cross there): a survival curve of the time to start."""
    losses = list(dict.fromkeys(outcomes["loss"]))
    fig, axes = _panels(len(losses), 4.2, 4.2)
    for ax, loss in zip(axes, losses):
        for (norm, g), runs in outcomes[outcomes["loss"] == loss].groupby(["norm", "g"], sort=False):
            times = np.sort(runs.loc[~runs["censored"], "time"].to_numpy(dtype=float))
            steps = np.concatenate([[0.0], times, [float(iterations)]])
            waiting = 1 - np.concatenate([[0.0], np.arange(1, len(times) + 1), [len(times)]]) / len(runs)
            line, = ax.step(steps, waiting, where="post", label=f"q = {norm}, {g} ({len(runs)} runs)")
            if runs["censored"].any():
                ax.scatter([iterations], [waiting[-1]], marker="x", color=line.get_color(), zorder=3)
        ax.set_title(loss, fontsize=9)
        ax.set_xlabel("generator iterations", fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, frameon=False)
    axes[0].set_ylabel("share of runs not yet started", fontsize=8)
    return fig
