"""A table of training throughput from benchmarks/train_scaling.sh logs (train_NGPU.jsonl):
medians over the logged intervals after the first two (start-up), and the speed-up over one GPU.

Usage: python benchmarks/train_table.py OUT_DIR
"""

import json
import re
import statistics
import sys
from pathlib import Path


def summary(path: Path) -> dict:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    timed = [r for r in recs if "steps_per_s" in r][2:]
    if not timed:
        raise SystemExit(f"{path}: fewer than three timed log lines; train longer")
    gpus = int(next((r["world_size"] for r in recs if "world_size" in r), re.search(r"(\d+)gpu", path.name)[1]))
    return {"gpus": gpus, "steps": timed[-1]["step"], "steps_per_s": statistics.median(r["steps_per_s"] for r in timed),
            "clips_per_s": statistics.median(r["clips_per_s"] for r in timed),
            "peak_mem_gb": max(r.get("peak_mem_gb", float("nan")) for r in timed)}


def main(folder: str) -> None:
    rows = sorted((summary(p) for p in Path(folder).glob("train_*gpu.jsonl")), key=lambda r: r["gpus"])
    one = next((r for r in rows if r["gpus"] == 1), None)
    print("| GPUs | steps done | steps/s | clips/s | peak memory, GPU 0 (GiB) | speed-up (clips/s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        up = f"{r['clips_per_s'] / one['clips_per_s']:.2f}x" if one else "-"
        print(f"| {r['gpus']} | {r['steps']} | {r['steps_per_s']:.2f} | {r['clips_per_s']:.0f} | {r['peak_mem_gb']:.2f} | {up} |")


if __name__ == "__main__":
    main(sys.argv[1])
