"""Pool several `interworld eval` folders per model and compare models case by case.

    python scripts/eval_pairs.py [--base NAME] [--pool A:B,C:D ...] teacher=ev/t0,ev/t3 student=ev/s0,ev/s3 [...]

Each NAME=DIR[,DIR...] gathers the metrics.json of those folders (e.g. one per --seed; an eval's
cases take the seeds SEED to SEED+CASES-1, so `--seed 0` and `--seed 3` of 3 cases are seeds 0-5,
where `--seed 1` or `--seed 2` would add none). Only the cases every model has are used, so the
models are compared on the same rollouts: means of teacher-forced PSNR, rollout PSNR, rollout
sharpness and the drift score, and the rollout PSNR over spans of the rollout; then, for each
pair of models (or each model against --base only), the mean paired difference of the rollout
PSNR (also at 1/4 size, where evals have it) and SSIM, the drift score, the teacher-forced PSNR
(also at 1/4 size, and of the first 2 frames after the context alone, which compares models whose
chunks hold 2 and 4 frames), the rollout sharpness (also at 1/4 size, where evals have it) and,
where a pose estimator measured them, the yaw error and the yaw gain of action following (how
far the world turns against the engine), with its standard error and how often the first is
better. Revisit
cases (360-degree turn, out and back) are compared the same way on their return-frame PSNR
(e.g. memory on against off). `--pool e1:b1,e2:b2` pools one change made at several training
seeds: for each case the mean of e1 - b1 and e2 - b2, then their mean, standard error and sign
count over the cases, for every measure (run 24's error buffer on against off at seeds 1 and
2). Single rollouts vary widely (drift 0.05-0.84), so the pairing and
the standard error say what a difference is worth. Until run 21 a rollout's noise depended on
the batch it ran in (`eval --seed/--cases/--batch`); where the models' common rollouts drew
different noise, a note says so: one model evaluated twice that way differed by 0.24 dB of
rollout PSNR (docs/TRAINING.md, runs 20-21). Evals since then draw each case's noise from its
own seed, as a batch of one did.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np


def _draws(setup: dict | None) -> dict:
    """(map, seed) -> the rollout's noise draw, as `interworld eval` makes it: the cases listed
    map by map, run in groups of `batch`; each case seeded by its own seed (`noise: per case`,
    the same draw as a batch of one), or before that each group by its first case's seed."""
    if not setup or "batch" not in setup:
        return {}
    listed = [(m, setup["seed"] + i) for m in setup["maps"] for i in range(setup["cases"])]
    b = 1 if setup.get("noise") == "per case" else setup["batch"]
    return {c: (listed[k - k % b][1], min(b, len(listed) - (k - k % b)), k % b) for k, c in enumerate(listed)}


# teacher forcing compared on the first FIRST frames after the context alone: a chunk of 2-frame
# latents holds 2, one of 4-frame latents 4 (docs/TRAINING.md, plan item 1 after run 31)
FIRST = 2


def _load(dirs: list[str]) -> tuple[dict, dict, dict]:
    rollouts, revisits, draws = {}, {}, {}
    for d in dirs:
        m = json.loads((Path(d) / "metrics.json").read_text())
        draws.update(_draws(m.get("setup")))
        if m.get("complete") is False:  # an eval stopped early leaves its finished cases
            print(f"{d}: stopped early, {len(m['cases'])} case(s)", file=sys.stderr)
        for c in m["cases"]:
            r = c["rollout"]
            rollouts[(c["map"], c["seed"])] = {"tf_psnr": c["teacher_forced"]["psnr"], "rollout_psnr": r["psnr"],
                                               "sharpness": r["sharpness"], "drift": r["drift"]["drift"],
                                               "engine_drift": c["engine_drift"]["drift"],
                                               "psnr_per_s": r.get("psnr_per_s")}
            if "ssim" in r:
                rollouts[(c["map"], c["seed"])]["rollout_ssim"] = r["ssim"]
            if "coarse_psnr" in r:  # evals before run 30 lack it
                rollouts[(c["map"], c["seed"])]["rollout_coarse_psnr"] = r["coarse_psnr"]
                rollouts[(c["map"], c["seed"])]["tf_coarse_psnr"] = c["teacher_forced"]["coarse_psnr"]
            if "coarse_sharpness" in r:  # evals before run 32 lack it
                rollouts[(c["map"], c["seed"])]["coarse_sharpness"] = r["coarse_sharpness"]
            ahead = c["teacher_forced"].get("psnr_by_frame", [])  # evals before run 31 lack it
            if len(ahead) >= FIRST:
                rollouts[(c["map"], c["seed"])]["tf_psnr_first"] = float(np.mean(ahead[:FIRST]))
            if "action_following" in c:  # only with a pose estimator (eval --pose-model)
                af = c["action_following"]
                rollouts[(c["map"], c["seed"])]["yaw_error"] = af["model_yaw_mae_deg"]
                if "model_yaw_gain" in af:  # evals before it lack it
                    rollouts[(c["map"], c["seed"])]["yaw_gain"] = af["model_yaw_gain"]
        for r in m.get("revisits", []):
            revisits[(r["script"], r["map"], r["seed"])] = {"psnr": r["model_psnr"], "engine": r["engine_psnr"]}
    return rollouts, revisits, draws


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


# spans of a rollout, in bins of round(fps) frames (about seconds): the first second, the next
# four, then the long run
SPANS = ((0, 1), (1, 5), (5, 20), (20, 40), (40, None))


def _spans(curves: list) -> str:
    c = np.array(curves)
    return " / ".join(f"{c[:, a:b].mean():.2f}" for a, b in SPANS if c.shape[1] > a)


def _differences(d: np.ndarray, better: str, who: str = "") -> str:
    """Paired differences d summed up: mean, standard error, and in how many cases `who` is `better`."""
    n = int((d < 0).sum() if better == "lower" else (d > 0).sum())
    return f"{d.mean():+.3f} (standard error {_se(d):.3f}; {who}{better} in {n} of {len(d)})"


def _pairs(models: dict, key: str, lower_is: str, base: str | None = None) -> None:
    cases = sorted(set.intersection(*(set(m) for m in models.values())))
    pairs = [(base, m) for m in models if m != base] if base else itertools.combinations(models, 2)
    for a, b in pairs:
        d = np.array([models[a][c][key] - models[b][c][key] for c in cases])
        print(f"  {a} - {b}: {_differences(d, lower_is, f'{a} ')}")


MEASURES = (("rollout_psnr", "rollout PSNR", "higher"), ("rollout_ssim", "rollout SSIM", "higher"),
            ("rollout_coarse_psnr", "rollout PSNR at 1/4 size", "higher"),
            ("tf_coarse_psnr", "teacher-forced PSNR at 1/4 size", "higher"),
            ("drift", "drift", "lower"), ("tf_psnr", "teacher-forced PSNR", "higher"),
            ("tf_psnr_first", f"teacher-forced PSNR, frames 1-{FIRST} ahead", "higher"),
            ("sharpness", "rollout sharpness", "higher"),
            ("coarse_sharpness", "rollout sharpness at 1/4 size", "higher"),
            ("yaw_error", "yaw error (deg per gap)", "lower"),
            ("yaw_gain", "yaw gain", "higher"))


def _pooled(rollouts: dict, pairs: list[tuple[str, str]], cases: list) -> None:
    label = ",".join(f"{a}:{b}" for a, b in pairs)
    print(f"pooled {label}, the per-case mean of {' and '.join(f'{a} - {b}' for a, b in pairs)}:")
    for key, name, better in MEASURES:
        if not all(key in rollouts[m][c] for p in pairs for m in p for c in cases):
            continue
        d = np.array([np.mean([rollouts[a][c][key] - rollouts[b][c][key] for a, b in pairs]) for c in cases])
        print(f"  {name}: {_differences(d, better)}")


def main(specs: list[str]) -> None:
    base, pools = None, []
    while specs[:1] in (["--base"], ["--pool"]) and len(specs) > 1:
        if specs[0] == "--base":
            base = specs[1]
        else:
            pools.append([tuple(p.split(":", 1)) for p in specs[1].split(",")])
        specs = specs[2:]
    if len(specs) < 1 or any("=" not in s for s in specs) or any(len(p) != 2 for q in pools for p in q):
        sys.exit(__doc__)
    named = dict(s.split("=", 1) for s in specs)
    for flag, name in [("--base", base)] * (base is not None) + [("--pool", m) for q in pools for p in q for m in p]:
        if name not in named:
            sys.exit(f"{flag} {name}: no model of that name among {list(named)}")
    loaded = {name: _load(dirs.split(",")) for name, dirs in named.items()}
    rollouts = {k: v[0] for k, v in loaded.items()}
    cases = sorted(set.intersection(*(set(m) for m in rollouts.values())))
    if cases:
        print(f"{len(cases)} rollouts common to all models (seeds {sorted({c[1] for c in cases})})")
        differ = [c for c in cases if len({v[2][c] for v in loaded.values() if c in v[2]}) > 1]
        if differ:
            print(f"note: {len(differ)} of these rollouts drew different noise in different models (batched "
                  f"evals before run 21 with other --seed, --cases or --batch), so their differences hold the "
                  f"noise's too: evaluate them again (each case now draws its own noise)")
        for name, m in rollouts.items():
            col = {k: np.array([m[c].get(k, np.nan) for c in cases]) for k in m[cases[0]] if k != "psnr_per_s"}
            print(f"{name}: TF PSNR {col['tf_psnr'].mean():.2f}, rollout PSNR {col['rollout_psnr'].mean():.2f}, "
                  f"sharpness {col['sharpness'].mean():.2f}, drift {col['drift'].mean():.3f} "
                  f"(median {np.median(col['drift']):.3f}, standard error {_se(col['drift']):.3f}); "
                  f"engine drift {col['engine_drift'].mean():.3f}"
                  + (f"; yaw error {col['yaw_error'].mean():.2f}" if "yaw_error" in col else "")
                  + (f", yaw gain {np.nanmean(col['yaw_gain']):.2f}" if "yaw_gain" in col else ""))
        curves = [m[c]["psnr_per_s"] for c in cases for m in rollouts.values()]
        if all(curves) and len({len(c) for c in curves}) == 1:
            n = len(curves[0])
            spans = ", ".join(f"{a}-{min(b or n, n)}" for a, b in SPANS if n > a)
            print(f"rollout PSNR over seconds {spans}:")
            for name, m in rollouts.items():
                print(f"  {name}: {_spans([m[c]['psnr_per_s'] for c in cases])}")
        common = {k: {c: m[c] for c in cases} for k, m in rollouts.items()}
        for key, label, better in MEASURES:
            if all(key in c for m in common.values() for c in m.values()):
                print(f"{label}, paired:")
                _pairs(common, key, better, base)
        for pairs in pools:
            _pooled(rollouts, pairs, cases)
    revisits = {k: v[1] for k, v in loaded.items()}
    for script in sorted({c[0] for m in revisits.values() for c in m}):
        models = {k: {c: v for c, v in m.items() if c[0] == script} for k, m in revisits.items()}
        common = sorted(set.intersection(*(set(m) for m in models.values())))
        if not common:
            continue
        means = ", ".join(f"{k} {np.mean([m[c]['psnr'] for c in common]):.2f}" for k, m in models.items())
        engine = np.mean([next(iter(models.values()))[c]["engine"] for c in common])
        print(f"{script}, return-frame PSNR over {len(common)} cases: {means} (engine {engine:.2f}); paired:")
        _pairs({k: {c: m[c] for c in common} for k, m in models.items()}, "psnr", "higher", base)


if __name__ == "__main__":
    main(sys.argv[1:])
