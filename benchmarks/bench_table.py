"""One markdown table from several `interworld bench --json` results (one row each), with the
speed-up of each multi-GPU row over the one-GPU row of the same preset, scheme, chunk and
speed-ups (frames per second, decode included / the denoising step alone).

Usage: python benchmarks/bench_table.py RESULT.json [...]
"""

import json
import sys


def _step(d: dict) -> float:
    steps = [v for k, v in d["stages"].items() if k.startswith("denoise step") and v is not None]
    return sum(steps) / len(steps) if steps else float("nan")


def _key(d: dict) -> tuple:
    return d["preset"], d["scheme"], d["new_latents"], d.get("speed", "eager")


def fps(d: dict) -> float:
    # decode on another GPU or thread: the pipeline runs no faster than its generator alone
    # (results written before engine/bench.py's pipelined_iteration could read faster)
    return min(d["fps"], d["fps_no_decode"]) if d.get("decode") in ("separate", "overlap") else d["fps"]


def row(d: dict, base: dict | None) -> str:
    lat = sorted(d["latency_s"])
    p50 = lat[len(lat) // 2] if lat else float("nan")
    dec = next((v for k, v in d["stages"].items() if k.startswith("VAE decode")), float("nan"))
    n = d.get("gpus", 1)
    gpus = f"{n}" + (f" ({d.get('decode')})" if n > 1 or d.get("decode") == "overlap" else "")
    mem = d.get("rank_peak_mem_gb") or [d["peak_mem_gb"]]
    up = f"{fps(d) / fps(base):.2f}x / {_step(base) / _step(d):.2f}x" if base and n > 1 else "-"
    return (f"| {d['preset']} | {d['scheme']} | {d.get('speed', 'eager')} | {gpus} | {d['new_latents']} | "
            f"{_step(d):.3f} | {dec:.3f} | {fps(d):.2f} | {d['fps_no_decode']:.2f} | {p50:.2f} | "
            f"{', '.join(f'{m:.1f}' for m in mem)} | {up} |")


def main(paths: list[str]) -> None:
    results = []
    for p in paths:
        with open(p) as f:
            results.append(json.load(f))
    one = {_key(d): d for d in results if d.get("gpus", 1) == 1 and d.get("decode", "inline") == "inline"}
    print("| preset | scheme | speed-ups | GPUs | new latents | denoise step (s) | VAE decode (s) | fps | "
          "fps, decode excluded | latency p50 (s) | peak memory per GPU (GiB) | speed-up: fps / step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for d in sorted(results, key=lambda d: (_key(d), d.get("gpus", 1), d.get("decode", ""))):
        print(row(d, one.get(_key(d))))


if __name__ == "__main__":
    main(sys.argv[1:])
