#!/usr/bin/env python3
"""Summarize benchmark sittings against issue 14's targets.

Usage: python3 results/bench-summary.py DIR
DIR holds sitting-1/, sitting-2/, ... as `results/bench` writes them, each
with redqueen.json, pytorch.json and pytorch-madry-small.txt. A ratio is
redqueen's time over PyTorch's within one sitting (the two sides ran back
to back, so a slow spell of this shared machine hits both); across
sittings the summary reports the median ratio and the range. Standard
library only.
"""
import json
import re
import statistics
import sys
from pathlib import Path

# Required: at most 1.0 of PyTorch's time; aimed for: at most 0.8.
REQUIRED, AIMED = 1.0, 0.8
# Share of the measured FMA peak each item must reach, in percent.
PEAK_TARGETS = {
    "cnn_train_step": 40.0,
    "cnn_pgd_step": 40.0,
    "cnn_small_train_step": 25.0,
    "cnn_small_pgd_step": 25.0,
    "cnn_small_madry_step_b64": 25.0,
}
MADRY = "cnn_small_madry_step_b64"


def torch_madry_ms(path):
    """PyTorch's ms per PGD-training step from torch_madry_small.py's line."""
    if not path.exists():
        return None
    found = re.search(r"\(([\d.]+) ms/step\)", path.read_text())
    return float(found.group(1)) if found else None


def best_peak(ours):
    """The widest FMA unit's probe reading, as `redqueen bench` takes it."""
    peak = ours.get("fma_peak", {})
    return peak.get("fma512_gflops") or peak.get("fma256_gflops")


def load(sitting, peak):
    ours = json.loads((sitting / "redqueen.json").read_text())
    theirs = json.loads((sitting / "pytorch.json").read_text())
    ratios, shares = {}, {}
    for item, value in ours.items():
        if not isinstance(value, dict) or "median_s" not in value:
            continue
        if "gflops" in value and peak:
            shares[item] = 100.0 * value["gflops"] / peak
        if item == MADRY:
            torch_ms = torch_madry_ms(sitting / "pytorch-madry-small.txt")
            if torch_ms:
                ratios[item] = value["median_s"] * 1e3 / torch_ms
            continue
        other = theirs.get(item)
        if isinstance(other, dict) and "median_s" in other:
            ratios[item] = value["median_s"] / other["median_s"]
    return ours, ratios, shares


def verdict(value, ok, aimed=None):
    if not ok(value):
        return "MISSED"
    return "aimed" if aimed is not None and aimed(value) else "met"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    sittings = sorted(root.glob("sitting-*"), key=lambda p: int(p.name.split("-")[1]))
    if not sittings:
        sys.exit(f"{root}: no sitting-N folders (run results/bench first)")
    # Shares of the peak are read against the highest probe reading of all
    # sittings: a low reading means the machine was busy at that moment,
    # and dividing by it would inflate the share (one sitting here read 98
    # GFLOP/s where the others read 172 to 193).
    readings = [best_peak(json.loads((s / "redqueen.json").read_text())) for s in sittings]
    peak = max((r for r in readings if r), default=None)
    loaded = [load(s, peak) for s in sittings]
    first = loaded[0][0]
    width = "512" if first.get("fma_peak", {}).get("fma512_gflops") else "256"
    print(f"{len(sittings)} sitting(s); CPU {first.get('cpu')}, gemm kernels {first.get('kernel_family')}, "
          f"{first.get('threads')} thread(s); {width}-bit FMA peak by sitting (GFLOP/s): "
          + ", ".join("-" if r is None else f"{r:.0f}" for r in readings)
          + ("" if peak is None else f"; shares below are of the highest, {peak:.0f}"))
    print()
    items = sorted({k for _, ratios, _ in loaded for k in ratios})
    head = f"{'item':<26} {'ratio by sitting':<22} {'median':>6}  target (<= {REQUIRED}, aimed <= {AIMED})"
    print(head)
    missed = 0
    for item in items:
        values = [ratios.get(item) for _, ratios, _ in loaded]
        present = [v for v in values if v is not None]
        median = statistics.median(present)
        shown = " ".join("  -  " if v is None else f"{v:.2f}" for v in values)
        mark = verdict(median, lambda v: v <= REQUIRED, lambda v: v <= AIMED)
        missed += mark == "MISSED"
        print(f"{item:<26} {shown:<22} {median:>6.2f}  {mark}")
    print()
    print(f"{'item':<26} {'% of FMA peak by sitting':<26} {'median':>6}  target")
    for item, target in PEAK_TARGETS.items():
        values = [shares.get(item) for _, _, shares in loaded]
        present = [v for v in values if v is not None]
        if not present:
            print(f"{item:<26} missing")
            missed += 1
            continue
        median = statistics.median(present)
        shown = " ".join("  -  " if v is None else f"{v:4.1f}" for v in values)
        mark = verdict(median, lambda v: v >= target)
        missed += mark == "MISSED"
        print(f"{item:<26} {shown:<26} {median:>5.1f}%  >= {target:.0f}%: {mark}")
    print()
    print("every target met" if missed == 0 else f"{missed} target(s) missed")
    print()
    markdown(items, loaded, sittings)


def markdown(items, loaded, sittings):
    """The same medians as a Markdown table, for the docs."""
    def median_of(values):
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def ms(ours, item):
        value = ours.get(item)
        return value["median_s"] * 1e3 if isinstance(value, dict) and "median_s" in value else None

    torch_ms = []
    for sitting in sittings:
        theirs = json.loads((sitting / "pytorch.json").read_text())
        torch_ms.append((theirs, torch_madry_ms(sitting / "pytorch-madry-small.txt")))
    numbers = " | ".join(str(i + 1) for i in range(len(loaded)))
    print(f"| item | ratio in sitting {numbers} | median ratio | redqueen ms | PyTorch ms | redqueen % of FMA peak |")
    print("| --- |" + " ---: |" * (len(loaded) + 4))
    for item in items:
        ratios = [r.get(item) for _, r, _ in loaded]
        ours = median_of([ms(o, item) for o, _, _ in loaded])
        if item == MADRY:
            theirs = median_of([madry for _, madry in torch_ms])
        else:
            theirs = median_of([ms(t, item) for t, _ in torch_ms])
        share = median_of([s.get(item) for _, _, s in loaded])
        cells = " | ".join("" if r is None else f"{r:.2f}" for r in ratios)
        shown = "" if share is None else f"{share:.0f}%"
        print(f"| `{item}` | {cells} | {median_of(ratios):.2f} | {ours:.2f} | {theirs:.2f} | {shown} |")


if __name__ == "__main__":
    main()
