"""One markdown table from several `interworld bench --json` results (one row each).

Usage: python benchmarks/bench_table.py RESULT.json [...]
"""

import json
import sys


def row(d: dict) -> str:
    lat = sorted(d["latency_s"])
    p50 = lat[len(lat) // 2] if lat else float("nan")
    steps = [v for k, v in d["stages"].items() if k.startswith("denoise step") and v is not None]
    step = sum(steps) / len(steps) if steps else float("nan")
    dec = next((v for k, v in d["stages"].items() if k.startswith("VAE decode")), float("nan"))
    gpus = f"{d.get('gpus', 1)}" + (f" ({d.get('decode')})" if d.get("gpus", 1) > 1 or d.get("decode") == "overlap" else "")
    return (f"| {d['preset']} | {d['scheme']} | {d.get('speed', 'eager')} | {gpus} | {d['new_latents']} | {step:.3f} | "
            f"{dec:.3f} | {d['fps']:.1f} | {d['fps_no_decode']:.1f} | {p50:.2f} | {d['peak_mem_gb']:.1f} |")


def main(paths: list[str]) -> None:
    print("| preset | scheme | speed-ups | GPUs | new latents | denoise step (s) | VAE decode (s) | fps | "
          "fps, decode excluded | latency p50 (s) | peak memory (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for p in paths:
        with open(p) as f:
            print(row(json.load(f)))


if __name__ == "__main__":
    main(sys.argv[1:])
