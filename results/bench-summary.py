#!/usr/bin/env python3
"""Summarize benchmark sittings against issue 14's targets.

Usage: python3 results/bench-summary.py DIR
DIR holds sitting-1/, sitting-2/, ... as `results/bench` writes them, each
with redqueen.json, pytorch.json and pytorch-madry-small.txt. A ratio is
redqueen's time over PyTorch's within one sitting (the two sides ran back
to back, so a slow spell of this shared machine hits both); across
sittings the summary reports the median ratio and the range. Exits 1 when
a target is missed or an item is missing from every sitting. A last table
reads the same sittings by each side's fastest repetition (`min_s`) for
comparison; it decides nothing. Standard library only.
"""
import json
import re
import statistics
import sys
from pathlib import Path

# Required: at most 1.0 of PyTorch's time; aimed for: at most 0.8.
REQUIRED, AIMED = 1.0, 0.8
MADRY = "cnn_small_madry_step_b64"
# Every item the targets apply to, in the docs' order.
RATIO_ITEMS = [
    "mlp_train_step",
    "mlp_pgd_step",
    "mlp_hand_pgd10_attack",
    "mlp_advtrain_epoch",
    "cnn_train_step",
    "cnn_pgd_step",
    "cnn_small_train_step",
    "cnn_small_pgd_step",
    MADRY,
]
# Share of the measured FMA peak each item must reach, in percent.
PEAK_TARGETS = {
    "cnn_train_step": 40.0,
    "cnn_pgd_step": 40.0,
    "cnn_small_train_step": 25.0,
    "cnn_small_pgd_step": 25.0,
    MADRY: 25.0,
}


def torch_madry_ms(path):
    """PyTorch's ms per PGD-training step from torch_madry_small.py's line."""
    if not path.exists():
        return None
    found = re.search(r"\(([\d.]+) ms/step\)", path.read_text())
    return float(found.group(1)) if found else None


def best_peak(ours):
    """The widest FMA unit's probe reading, as `redqueen bench` takes it."""
    peak = ours.get("fma_peak", {})
    for key in ("fma512_gflops", "fma256_gflops"):
        if peak.get(key) is not None:
            return peak[key]
    return None


def timed(side, item):
    value = side.get(item)
    return value if isinstance(value, dict) and "median_s" in value else None


class Sitting:
    def __init__(self, folder):
        self.name = folder.name
        self.ours = json.loads((folder / "redqueen.json").read_text())
        self.theirs = json.loads((folder / "pytorch.json").read_text())
        self.torch_madry_ms = torch_madry_ms(folder / "pytorch-madry-small.txt")

    def ours_ms(self, item, statistic="median_s"):
        value = timed(self.ours, item)
        return None if value is None or value.get(statistic) is None else value[statistic] * 1e3

    def theirs_ms(self, item, statistic="median_s"):
        if item == MADRY:
            # torch_madry_small.py prints one figure per run, no repetitions.
            return self.torch_madry_ms if statistic == "median_s" else None
        value = timed(self.theirs, item)
        return None if value is None or value.get(statistic) is None else value[statistic] * 1e3

    def ratio(self, item, statistic="median_s"):
        ours, theirs = self.ours_ms(item, statistic), self.theirs_ms(item, statistic)
        return None if ours is None or not theirs else ours / theirs

    def share(self, item, peak):
        value = timed(self.ours, item)
        if value is None or value.get("gflops") is None or not peak:
            return None
        return 100.0 * value["gflops"] / peak


def sittings_in(root):
    """The readable sitting-N folders, in order; the others are named on stderr."""
    found = []
    for folder in root.iterdir():
        number = re.fullmatch(r"sitting-(\d+)", folder.name)
        if not (number and folder.is_dir()):
            continue
        try:
            found.append((int(number.group(1)), Sitting(folder)))
        except (OSError, ValueError) as e:
            print(f"skipping {folder}: {e}", file=sys.stderr)
    return [s for _, s in sorted(found, key=lambda pair: pair[0])]


def median_of(values):
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def shown(values, decimals):
    return " ".join("   -" if v is None else f"{v:4.{decimals}f}" for v in values)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    if not root.is_dir():
        sys.exit(f"{root}: not a folder (run results/bench first)")
    sittings = sittings_in(root)
    if not sittings:
        sys.exit(f"{root}: no readable sitting-N folders (run results/bench first)")
    # Shares of the peak are read against the highest probe reading of all
    # sittings: a low reading means the machine was busy at that moment,
    # and dividing by it would inflate the share (one sitting here read 98
    # GFLOP/s where the others read 172 to 193).
    readings = [best_peak(s.ours) for s in sittings]
    peak = max((r for r in readings if r), default=None)
    first = sittings[0].ours
    width = "512" if any(s.ours.get("fma_peak", {}).get("fma512_gflops") for s in sittings) else "256"
    print(f"{len(sittings)} sitting(s) ({', '.join(s.name for s in sittings)}); CPU {first.get('cpu')}, "
          f"gemm kernels {first.get('kernel_family')}"
          f"{'' if first.get('avx512_build', True) else ' (redqueen built without AVX-512)'}, "
          f"{first.get('threads')} thread(s); "
          f"{width}-bit FMA peak by sitting (GFLOP/s, redqueen's probe): "
          + ", ".join("-" if r is None else f"{r:.0f}" for r in readings)
          + ("" if peak is None else f"; shares below are of the highest, {peak:.0f}"))
    print()
    missed = 0
    print(f"{'item':<26} {'ratio by sitting':<{5 * len(sittings)}} {'median':>6}  target (<= {REQUIRED}, aimed <= {AIMED})")
    for item in RATIO_ITEMS:
        ratios = [s.ratio(item) for s in sittings]
        median = median_of(ratios)
        if median is None:
            mark = "MISSED (missing from every sitting)"
        else:
            mark = "aimed" if median <= AIMED else "met" if median <= REQUIRED else "MISSED"
        missed += mark.startswith("MISSED")
        median_text = "-" if median is None else f"{median:.2f}"
        print(f"{item:<26} {shown(ratios, 2):<{5 * len(sittings)}} {median_text:>6}  {mark}")
    print()
    print(f"{'item':<26} {'% of FMA peak by sitting':<{5 * len(sittings)}} {'median':>6}  target")
    for item, target in PEAK_TARGETS.items():
        shares = [s.share(item, peak) for s in sittings]
        median = median_of(shares)
        if median is None:
            mark = "MISSED (missing from every sitting)"
        else:
            mark = "met" if median >= target else "MISSED"
        missed += mark.startswith("MISSED")
        median_text = "-" if median is None else f"{median:.1f}%"
        print(f"{item:<26} {shown(shares, 1):<{5 * len(sittings)}} {median_text:>6}  >= {target:.0f}%: {mark}")
    print()
    print("every target met" if missed == 0 else f"{missed} target(s) missed")
    print()
    fastest(sittings)
    print()
    markdown(sittings, peak)
    sys.exit(1 if missed else 0)


def fastest(sittings):
    """The ratios read by each side's fastest repetition: informational (a
    rule for noisy machines is the planners' call); the targets above use
    medians. The PyTorch side of the batch-64 step has no repetitions."""
    print(f"{'item':<26} {'fastest, by sitting':<{5 * len(sittings)}} {'median':>6}  (min_s; not a target)")
    for item in RATIO_ITEMS:
        ratios = [s.ratio(item, "min_s") for s in sittings]
        median = median_of(ratios)
        median_text = "-" if median is None else f"{median:.2f}"
        print(f"{item:<26} {shown(ratios, 2):<{5 * len(sittings)}} {median_text:>6}")


def markdown(sittings, peak):
    """The same medians as a Markdown table, for the docs."""
    numbers = " | ".join(str(i + 1) for i in range(len(sittings)))
    print(f"| item | ratio in sitting {numbers} | median ratio | redqueen ms | PyTorch ms | redqueen % of FMA peak |")
    print("| --- |" + " ---: |" * (len(sittings) + 4))

    def cell(value, form):
        return "" if value is None else format(value, form)

    for item in RATIO_ITEMS:
        ratios = [cell(s.ratio(item), ".2f") for s in sittings]
        share = median_of([s.share(item, peak) for s in sittings])
        print(
            f"| `{item}` | {' | '.join(ratios)} | {cell(median_of([s.ratio(item) for s in sittings]), '.2f')} "
            f"| {cell(median_of([s.ours_ms(item) for s in sittings]), '.2f')} "
            f"| {cell(median_of([s.theirs_ms(item) for s in sittings]), '.2f')} "
            f"| {cell(share, '.0f')}{'%' if share is not None else ''} |"
        )


if __name__ == "__main__":
    main()
