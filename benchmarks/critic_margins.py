"""The cost of measuring one critic's margins (``mmgan critic-margins``), and what re-measuring the committed studies
would cost.

One critic of a committed study (default: Table 3's first run) is measured as the command measures it, at one
boundary (the study's primary one), with the FMN cross-check and the soundness check
(:func:`mmgan.critics.measure.measure_run`, which reports the seconds of each part), four times in one process
(:data:`CONFIGURATIONS`): 8 + 8 images in eval mode (the committed measurements' setting: the baseline), 8 + 8 in
train mode, ``--images`` + ``--images`` (default 64 + 64) in eval and in train mode. Printed per configuration and
part: CPU seconds, and the ratio of the measurement (soundness check aside) to the baseline's.

The projection multiplies those per-critic costs by what each committed measurement covers (its JSON beside the
CSV in ``results/critic_margins``: its thresholds, its FMN steps; the CSV: its critics, one per cell, seed and
iteration): a study's CPU hours = critics × Σ over views (population + boundaries × (search + FMN +
certificate)), at the benchmark's image count, for both views and for each view alone; the soundness check
is shown per critic checked. The population forward passes are counted once per view (they serve every boundary).

    python benchmarks/critic_margins.py [--table 3] [--images 64] [--fmn-steps 1000] [--threads 1]

``--threads`` caps PyTorch's threads (default 1: the command's workers each run one critic; on a shared machine
more threads than free cores only spin). CPU seconds are this process's (all its threads); they are the figure
to project with, wall seconds depend on the machine's load, which is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import pandas as pd
import torch

from mmgan.base.results import results_root
from mmgan.critics import measure as cm
from mmgan.critics.report import primary_threshold

PARTS = ("population", "search", "fmn", "certificate", "soundness")


def committed_measurements(root: Path) -> pd.DataFrame:
    """Per committed measurement: critics (cell, seed, iteration), thresholds, FMN steps, images."""
    rows = []
    for meta_path in sorted(root.glob("table*.json")):
        if meta_path.stem.endswith(cm.THRESHOLDS_ONLY):  # no margins measured there
            continue
        meta = json.loads(meta_path.read_text())
        frame = pd.read_csv(meta_path.with_suffix(".csv"), usecols=["cell", "seed", "iteration"])
        rows.append({"measurement": meta_path.stem, "critics": frame.drop_duplicates().shape[0],
                     "thresholds": len(meta["thresholds"]), "fmn_steps": int(meta["fmn_steps"]),
                     "images then": int(meta["images"]), "hours then": meta["seconds"] / 3600,
                     "workers then": meta.get("workers")})
    return pd.DataFrame(rows)


#: The configurations timed, (images per class, view); the first is the baseline: the committed measurements' own
#: setting (8 + 8 images, eval mode).
CONFIGURATIONS: tuple[tuple[int, str], ...] = ((8, "eval"), (8, "train"), (None, "eval"), (None, "train"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default="3", help="the study whose first run is measured (default 3)")
    parser.add_argument("--images", type=int, default=cm.IMAGES, help=f"the larger image count (default {cm.IMAGES})")
    parser.add_argument("--fmn-steps", type=int, default=1000)
    parser.add_argument("--population", type=int, default=cm.POPULATION)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    plan = cm.study_runs(args.table)
    folder = plan["folder"].iloc[0]
    rule = primary_threshold(list(plan["loss"].unique()))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s); load average before: {os.getloadavg()[0]:.1f}")
    print(f"critic: {folder} ({plan['cell'].iloc[0]}, seed {plan['seed'].iloc[0]}), boundary {rule!r}, FMN "
          f"{args.fmn_steps} steps, population {args.population} per class, soundness check on", flush=True)
    rows = []
    for count, mode in CONFIGURATIONS:
        images = args.images if count is None else count
        timings: dict[str, list[float]] = {}
        frame = cm.measure_run(folder, images, (rule,), args.fmn_steps, modes=(mode,), population=args.population,
                               soundness_check=True, timings=timings)
        row = {"images": images, "mode": mode, **{part: timings[f"{mode} {part}"][1] for part in PARTS},
               "wall s": sum(timings[f"{mode} {part}"][0] for part in PARTS),
               "violations": int(frame["violation"].astype(bool).sum()), "balls": len(frame)}
        rows.append(row)
        print(f"{images} + {images} images, {mode} mode: " + ", ".join(f"{part} {row[part]:.0f}" for part in PARTS)
              + f" s CPU; {row['wall s']:.0f} s wall; load average {os.getloadavg()[0]:.1f}", flush=True)
    table = pd.DataFrame(rows)
    table["measured CPU s"] = table[["search", "fmn", "certificate"]].sum(axis=1) + table["population"]
    table["x baseline"] = table["measured CPU s"] / table["measured CPU s"].iloc[0]
    table["soundness x baseline"] = table["soundness"] / table["measured CPU s"].iloc[0]
    print("\nCPU seconds per part (one critic, one boundary); ratios against the first row (the committed setting):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    cpu = table.set_index(["images", "mode"])

    def per_critic(mode: str, thresholds: int, fmn: bool) -> float:
        row = cpu.loc[(args.images, mode)]
        return float(row["population"] + thresholds * sum(row[part] for part in
                                                          ["search", "certificate"] + (["fmn"] if fmn else [])))

    studies = committed_measurements(results_root() / cm.MEASUREMENTS)
    for label, modes in (("both views", cm.MODES), ("train only", ("train",)), ("eval only", ("eval",))):
        studies[f"CPU h, {label}"] = [
            row["critics"] * sum(per_critic(mode, row["thresholds"], row["fmn_steps"] > 0) for mode in modes) / 3600
            for _, row in studies.iterrows()]
    print(f"\nprojected CPU hours (one thread each) at {args.images} + {args.images} images per critic, each study "
          "with its committed thresholds and FMN setting:")
    print(studies.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    total = studies[[c for c in studies if c.startswith("CPU h")]].sum()
    print("total: " + ", ".join(f"{name} {value:.1f}" for name, value in total.items()))
    big = cpu.xs(args.images, level="images")["soundness"].sum()
    print(f"soundness check: {big / 3600:.2f} CPU h per critic checked (both views, one boundary), {args.images} + "
          f"{args.images} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
