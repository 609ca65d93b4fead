"""scripts/eval_pairs.py: models compared on the cases they share, paired."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _metrics(folder: Path, drifts: dict, turns: dict, psnr: float = 20.0, yaws: dict | None = None) -> str:
    folder.mkdir(parents=True)
    cases = [{"map": "m", "seed": s, "teacher_forced": {"psnr": 24.0}, "engine_drift": {"drift": 0.5},
              "rollout": {"psnr": psnr + s, "ssim": (psnr + s) / 40, "sharpness": 10.0, "drift": {"drift": d}}}
             for s, d in drifts.items()]
    for c in cases if yaws else []:
        c["action_following"] = {"model_yaw_mae_deg": yaws[c["seed"]], "model_yaw_gain": 0.1 * yaws[c["seed"]]}
    revisits = [{"script": "turn_360", "map": "m", "seed": s, "model_psnr": p, "engine_psnr": 25.0}
                for s, p in turns.items()]
    (folder / "metrics.json").write_text(json.dumps({"cases": cases, "revisits": revisits}))
    return str(folder)


def test_pairs_only_shared_cases(tmp_path):
    a = _metrics(tmp_path / "a", {0: 0.1, 1: 0.4, 2: 0.9}, {0: 22.0, 1: 23.0})
    b = _metrics(tmp_path / "b", {0: 0.2, 1: 0.2}, {0: 21.0, 1: 21.0})
    out = subprocess.run([sys.executable, str(ROOT / "scripts/eval_pairs.py"), f"a={a}", f"b={b}"],
                         capture_output=True, text=True, check=True).stdout
    assert "2 rollouts common to all models" in out  # seed 2 of a has no twin in b
    assert "a: TF PSNR 24.00, rollout PSNR 20.50, sharpness 10.00, drift 0.250" in out
    assert "a - b: +0.050 (standard error 0.150; a lower in 1 of 2)" in out  # differences -0.1 and +0.2
    assert "turn_360, return-frame PSNR over 2 cases: a 22.50, b 21.00 (engine 25.00)" in out
    assert "a - b: +1.500 (standard error 0.500; a higher in 2 of 2)" in out
    assert "yaw error" not in out  # no pose estimator measured it


def test_pairs_rollout_psnr_and_yaw_error(tmp_path):
    a = _metrics(tmp_path / "a", {0: 0.1, 1: 0.4}, {}, psnr=21.0, yaws={0: 10.0, 1: 12.0})
    b = _metrics(tmp_path / "b", {0: 0.2, 1: 0.2}, {}, psnr=20.0, yaws={0: 11.0, 1: 14.0})
    out = subprocess.run([sys.executable, str(ROOT / "scripts/eval_pairs.py"), f"a={a}", f"b={b}"],
                         capture_output=True, text=True, check=True).stdout
    assert "a: TF PSNR 24.00, rollout PSNR 21.50" in out and "; yaw error 11.00, yaw gain 1.10" in out
    sections = out.split("paired:")
    assert sections[0].endswith("rollout PSNR, ")
    assert "a - b: +1.000 (standard error 0.000; a higher in 2 of 2)" in sections[1]
    yaw = out.split("yaw error (deg per gap), paired:")[1].split("paired:")[0]
    assert "a - b: -1.500 (standard error 0.500; a lower in 2 of 2)" in yaw


def test_notes_rollouts_that_drew_different_noise(tmp_path):
    """eval seeds each batch by its first case: seeds 0-5 as one batch of 6 and as two evals
    of 3 are the same cases with different noise, which the pairing must not pass off as equal."""
    def with_setup(folder, seed, cases, batch, **more):
        m = json.loads((Path(folder) / "metrics.json").read_text())
        m["setup"] = {"maps": ["m"], "seed": seed, "cases": cases, "batch": batch, **more}
        (Path(folder) / "metrics.json").write_text(json.dumps(m))
        return folder

    run = [sys.executable, str(ROOT / "scripts/eval_pairs.py")]
    a0 = with_setup(_metrics(tmp_path / "a0", {0: 0.1, 1: 0.2, 2: 0.3}, {}), 0, 3, 3)
    a3 = with_setup(_metrics(tmp_path / "a3", {3: 0.1, 4: 0.2, 5: 0.3}, {}), 3, 3, 3)
    b0 = with_setup(_metrics(tmp_path / "b0", {0: 0.1, 1: 0.2, 2: 0.3}, {}), 0, 3, 3)
    b3 = with_setup(_metrics(tmp_path / "b3", {3: 0.1, 4: 0.2, 5: 0.3}, {}), 3, 3, 3)
    c = with_setup(_metrics(tmp_path / "c", {s: 0.1 for s in range(6)}, {}), 0, 6, 6)
    same = subprocess.run(run + [f"a={a0},{a3}", f"b={b0},{b3}"], capture_output=True, text=True, check=True).stdout
    assert "6 rollouts common" in same and "different noise" not in same
    mixed = subprocess.run(run + [f"a={a0},{a3}", f"c={c}"], capture_output=True, text=True, check=True).stdout
    assert "note: 6 of these rollouts drew different noise" in mixed  # a batch of 3 or 6: every draw differs
    # evals that draw each case's noise from its own seed match across splits, and match a batch of one
    p0 = with_setup(_metrics(tmp_path / "p0", {0: 0.1, 1: 0.2, 2: 0.3}, {}), 0, 3, 3, noise="per case")
    p3 = with_setup(_metrics(tmp_path / "p3", {3: 0.1, 4: 0.2, 5: 0.3}, {}), 3, 3, 3, noise="per case")
    p6 = with_setup(_metrics(tmp_path / "p6", {s: 0.1 for s in range(6)}, {}), 0, 6, 6, noise="per case")
    one = with_setup(_metrics(tmp_path / "one", {s: 0.1 for s in range(6)}, {}), 0, 6, 1)
    out = subprocess.run(run + [f"p={p0},{p3}", f"q={p6}", f"o={one}"], capture_output=True, text=True,
                         check=True).stdout
    assert "6 rollouts common" in out and "different noise" not in out


def test_base_pairs_each_model_with_it_only_and_spans_are_printed(tmp_path):
    def with_curves(folder, curve):
        m = json.loads((Path(folder) / "metrics.json").read_text())
        for c in m["cases"]:
            c["rollout"]["psnr_per_s"] = [v + c["seed"] for v in curve]
        (Path(folder) / "metrics.json").write_text(json.dumps(m))
        return folder

    yaws = {0: 10.0, 1: 12.0}
    t = with_curves(_metrics(tmp_path / "t", {0: 0.1, 1: 0.4}, {}, yaws=yaws), [24.0] + [20.0] * 44)
    a = with_curves(_metrics(tmp_path / "a", {0: 0.1, 1: 0.4}, {}, psnr=21.0, yaws={0: 9.0, 1: 11.0}),
                    [25.0] * 5 + [21.0] * 40)
    b = with_curves(_metrics(tmp_path / "b", {0: 0.2, 1: 0.2}, {}, psnr=19.0, yaws=yaws), [23.0] * 45)
    run = [sys.executable, str(ROOT / "scripts/eval_pairs.py")]
    out = subprocess.run(run + ["--base", "t", f"t={t}", f"a={a}", f"b={b}"], capture_output=True, text=True,
                         check=True).stdout
    assert "a - b" not in out  # only pairs with the base
    assert "t - a: -1.000 (standard error 0.000; t higher in 0 of 2)" in out  # rollout PSNR
    assert "rollout PSNR over seconds 0-1, 1-5, 5-20, 20-40, 40-45:" in out
    # seeds 0 and 1 add 0 and 1 to every bin: the span means are the curves' plus 0.5
    assert "  t: 24.50 / 20.50 / 20.50 / 20.50 / 20.50" in out
    assert "  a: 25.50 / 25.50 / 21.50 / 21.50 / 21.50" in out
    assert "yaw gain, paired:\n  t - a: +0.100 (standard error 0.000; t higher in 2 of 2)\n  t - b: +0.000" in out
    assert "rollout sharpness, paired:" in out and "rollout SSIM, paired:\n  t - a: -0.025" in out
    everyone = subprocess.run(run + [f"t={t}", f"a={a}", f"b={b}"], capture_output=True, text=True,
                              check=True).stdout
    assert "a - b: +2.000" in everyone  # without --base, every pair
    bad = subprocess.run(run + ["--base", "x", f"t={t}", f"a={a}"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--base x: no model of that name" in bad.stderr


def test_pool_averages_one_change_over_seeds_case_by_case(tmp_path):
    """--pool e1:b1,e2:b2: per case, the mean of the two differences; then mean, standard error
    and sign count over the cases (the seeds' differences are not counted as separate cases)."""
    b1 = _metrics(tmp_path / "b1", {0: 0.3, 1: 0.3}, {})
    e1 = _metrics(tmp_path / "e1", {0: 0.1, 1: 0.2}, {})  # drift -0.2, -0.1
    b2 = _metrics(tmp_path / "b2", {0: 0.3, 1: 0.3}, {})
    e2 = _metrics(tmp_path / "e2", {0: 0.3, 1: 0.6}, {})  # drift 0, +0.3
    run = [sys.executable, str(ROOT / "scripts/eval_pairs.py")]
    out = subprocess.run(run + ["--base", "b1", "--pool", "e1:b1,e2:b2", f"b1={b1}", f"e1={e1}", f"b2={b2}",
                                f"e2={e2}"], capture_output=True, text=True, check=True).stdout
    pooled = out.split("pooled e1:b1,e2:b2, the per-case mean of e1 - b1 and e2 - b2:\n")[1]
    # per case: (-0.2 + 0) / 2 = -0.1 and (-0.1 + 0.3) / 2 = +0.1
    assert "  drift: +0.000 (standard error 0.100; lower in 1 of 2)" in pooled
    assert "  rollout PSNR: +0.000 (standard error 0.000; higher in 0 of 2)" in pooled
    bad = subprocess.run(run + ["--pool", "e1:x", f"b1={b1}", f"e1={e1}"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--pool x: no model of that name" in bad.stderr


def test_pairs_teacher_forcing_on_the_frames_both_chunks_hold(tmp_path):
    """A model of 2-frame chunks against one of 4: teacher forcing is paired on frames 1-2 ahead,
    and evals without frame-by-frame PSNR leave the row out."""
    a = _metrics(tmp_path / "a", {0: 0.1, 1: 0.4}, {})
    b = _metrics(tmp_path / "b", {0: 0.2, 1: 0.2}, {})
    run = [sys.executable, str(ROOT / "scripts/eval_pairs.py"), f"a={a}", f"b={b}"]
    assert "frames 1-2 ahead" not in subprocess.run(run, capture_output=True, text=True, check=True).stdout
    for folder, rows in ((a, [[26.0, 24.0], [25.0, 23.0]]), (b, [[25.0, 23.0, 99.0, 99.0], [25.0, 22.0, 0.0, 0.0]])):
        m = json.loads((Path(folder) / "metrics.json").read_text())
        for c, r in zip(m["cases"], rows):
            c["teacher_forced"]["psnr_by_frame"] = r
        (Path(folder) / "metrics.json").write_text(json.dumps(m))
    out = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    first = out.split("teacher-forced PSNR, frames 1-2 ahead, paired:")[1].split("paired:")[0]
    # case 0: 25 - 24, case 1: 24 - 23.5; b's frames 3-4 (99 and 0) are not compared
    assert "a - b: +0.750 (standard error 0.250; a higher in 2 of 2)" in first
