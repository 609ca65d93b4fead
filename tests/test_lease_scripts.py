"""The shell helpers the GPU lease scripts share (scripts/lease_data.sh), run in bash here, and
scripts/fp16_copy.py, which packs what a lease brings back and completes it here."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def lease_bash(cmd: str, detach_dir: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`cmd` in bash with lease_data.sh sourced (detached runs kept in detach_dir)."""
    env = {**os.environ, **({"DETACH_DIR": str(detach_dir)} if detach_dir else {})}
    return subprocess.run(["bash", "-c", f'source "{SCRIPTS}/lease_data.sh" && {cmd}'], capture_output=True,
                          text=True, timeout=timeout, env=env)


def check_return(folder: Path) -> subprocess.CompletedProcess:
    return lease_bash(f'check_return "{folder}"')


def test_check_return_warns_when_a_call_would_leave_files_behind(tmp_path):
    # what one call brings back: 8 files of up to 16 MiB, 64 MiB together (files two folders down count)
    ok = tmp_path / "ok"
    (ok / "e").mkdir(parents=True)
    for i in range(7):
        (ok / f"part{i}").write_bytes(b"x" * 1000)
    (ok / "e" / "eval.tgz").write_bytes(b"x" * 1000)
    r = check_return(ok)
    assert r.returncode == 0 and r.stderr == ""

    (ok / "e" / "one_too_many").write_bytes(b"x")
    r = check_return(ok)
    assert r.returncode == 1 and "9 files" in r.stderr

    big = tmp_path / "big"  # five 15 MB parts: each may come back, together they may not (run 26)
    big.mkdir()
    for i in range(5):
        with open(big / f"world_fp16.part0{i}", "wb") as f:
            f.truncate(15 * 2**20)
    r = check_return(big)
    assert r.returncode == 1 and "75 MiB" in r.stderr

    huge = tmp_path / "huge"
    huge.mkdir()
    with open(huge / "model.safetensors", "wb") as f:
        f.truncate(17 * 2**20)
    r = check_return(huge)
    assert r.returncode == 1 and "1 over 16 MiB" in r.stderr


def test_a_detached_run_outlives_the_call_that_starts_it(tmp_path):
    res, dest = tmp_path / "res", tmp_path / "dest"
    res.mkdir()
    dest.mkdir()
    job = f'sleep 2; echo trained > "{res}/log.txt"; echo step 100; exit 7'
    # the starting shell returns at once; its run goes on in a session of its own
    r = lease_bash(f"detach_start run bash -c '{job}'; echo started", tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "started"
    assert not (tmp_path / "run.rc").exists()
    # a wait that ends first says so and copies nothing
    r = lease_bash(f'detach_wait run 0 "{res}" "{dest}"', tmp_path)
    assert r.returncode == 3 and "still running" in r.stdout and not any(dest.iterdir())
    # the next one finds it done: its exit status, its log's tail, its results copied
    r = lease_bash(f'detach_wait run 20 "{res}" "{dest}"', tmp_path)
    assert r.returncode == 7 and "step 100" in r.stdout
    assert (dest / "log.txt").read_text() == "trained\n" and (tmp_path / "run.rc").read_text() == "7\n"


def train_small_gpu_block(start: str, end: str, before: str, after: str, env: dict | None = None) -> str:
    """Run the lines of train_small_gpu.sh from `start` to `end` as the script runs them (set -euo
    pipefail), after `before` and followed by `after`; returns what they print."""
    text = (SCRIPTS / "train_small_gpu.sh").read_text()
    block = text[text.index(start):]
    block = block[:block.index(end) + len(end)]
    out = subprocess.run(["bash", "-c", f"set -euo pipefail; {before}\n{block}\n{after}"], capture_output=True,
                         text=True, env={**os.environ, **(env or {})}, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("env,want", [({}, []), ({"RAY_ROPE": "1"}, ["--ray-rope"]),
                                      ({"NO_CAMERA": "1", "DIT_DIM": "320"}, ["--dit-dim", "320", "--no-camera"]),
                                      ({"RESUME": "R", "RAY_ROPE": "1"}, [])])
def test_train_small_gpu_shapes_a_new_dit_under_set_e(tmp_path, env, want):
    """train_small_gpu.sh's switches for a new DiT, as the script runs them (set -euo pipefail): a
    run without them must go on (run 29 lost a control run that ended there without a word), and a
    resumed run takes none."""
    out = train_small_gpu_block('new_dit=""\n', "\nfi\n", f'resume="${{RESUME:-}}"; runs="{tmp_path}"',
                                'echo "ARGS $new_dit"', env)
    assert out.split("ARGS", 1)[1].split() == want


@pytest.mark.parametrize("ema", [False, True])
def test_train_small_gpu_distils_the_teachers_average_where_it_has_one(tmp_path, ema):
    if ema:
        (tmp_path / "world" / "ema").mkdir(parents=True)
        (tmp_path / "world" / "ema" / "model.safetensors").write_bytes(b"x")
    out = train_small_gpu_block("  teacher=$runs/world\n", "; fi", f'runs="{tmp_path}"', 'echo "TEACHER $teacher"')
    assert out.split("TEACHER ", 1)[1].strip() == str(tmp_path / "world" / ("ema" if ema else ""))


def test_fp16_copy_completes_a_dit_of_another_depth_without_the_bases_blocks(tmp_path):
    # run 28: a DiT of 8 blocks completed from the shipped model's 10 took its blocks 8 and 9 too
    def ckpt(name, tensors):
        (tmp_path / name).mkdir()
        save_file({k: v.clone() for k, v in tensors.items()}, str(tmp_path / name / "model.safetensors"))
        (tmp_path / name / "config.json").write_text("{}")
        return str(tmp_path / name)

    one = torch.ones(2, 2)
    base = ckpt("base", {"dit.blocks.0.w": 0 * one, "dit.blocks.1.w": 0 * one, "dit.head.w": 0 * one,
                         "vae.encoder.w": 2 * one, "vae.decoder.w": 3 * one, "text.w": 4 * one})
    part = ckpt("part", {"dit.blocks.0.w": one, "dit.head.w": one, "vae.decoder.w": 5 * one})
    for only, want in [("dit.", {"dit.blocks.0.w": 1, "dit.head.w": 1, "vae.encoder.w": 2, "vae.decoder.w": 3,
                                 "text.w": 4}),
                       (None, {"dit.blocks.0.w": 1, "dit.head.w": 1, "vae.encoder.w": 2, "vae.decoder.w": 5,
                               "text.w": 4})]:
        dst = tmp_path / f"out_{only}"
        subprocess.run([sys.executable, str(SCRIPTS / "fp16_copy.py"), part, str(dst), "--base", base,
                        *(["--only", only] if only else [])], check=True, capture_output=True)
        got = load_file(str(dst / "model.safetensors"))
        assert {k: float(v[0, 0]) for k, v in got.items()} == want
        assert all(v.dtype == torch.float16 for v in got.values())


def test_the_slim_vizdoom_wheel_installs_and_records_what_the_full_one_does(tmp_path):
    pytest.importorskip("vizdoom", reason="pip install vizdoom==1.3.2 to compare recordings")
    if not (shutil.which("cc") and shutil.which("readelf") and shutil.which("nm")):
        pytest.skip("scripts/lease_wheel.sh needs a C compiler and binutils")
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    r = subprocess.run(["bash", str(SCRIPTS / "lease_wheel.sh"), str(tmp_path / "whl"), py], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0 and "download" in r.stderr.lower():
        pytest.skip(f"no wheel from PyPI here: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr
    whl, = (tmp_path / "whl").glob("vizdoom-*.whl")
    assert whl.stat().st_size < 20e6  # 39 MB as published
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
                    str(tmp_path / "site"), str(whl)], check=True, timeout=300)  # pip checks RECORD's hashes
    assert not (tmp_path / "site" / "vizdoom" / "freedoom1.wad").exists()
    rec = ("import sys; from interworld.data.vizdoom_rec import record; "
           "record(sys.argv[1], ['freedoom2:MAP19'], 300, workers=1, seed=0, height=64, width=80)")
    for name, path in [("slim", str(tmp_path / "site")), ("full", "")]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [path, os.environ.get("PYTHONPATH", "")] if p)}
        subprocess.run([sys.executable, "-c", rec, str(tmp_path / name)], check=True, env=env, timeout=300,
                       cwd=tmp_path)
    slim, full = sorted((tmp_path / "slim").glob("*.npz")), sorted((tmp_path / "full").glob("*.npz"))
    assert [p.name for p in slim] == [p.name for p in full] and slim
    for a, b in zip(slim, full):
        x, y = np.load(a), np.load(b)
        assert all(np.array_equal(x[k], y[k]) for k in y.files)


@pytest.mark.parametrize("env,want", [({}, []),
                                      ({"VAE_INIT": "I", "VAE_TEMPORAL_DOWN": "1,0"},
                                       ["--init", "I", "--temporal-down", "1,0"])])
def test_train_small_gpu_fine_tunes_a_vae_from_another_where_asked(tmp_path, env, want):
    """VAE_INIT and VAE_TEMPORAL_DOWN reach `train vae` (plan item 2 of docs/TRAINING.md), and a run
    without them is the same command as before (set -u must not stop it)."""
    out = train_small_gpu_block("  iwrun train vae ", "--quiet\n", 'iwrun() { echo "ARGS $*"; }; data=D; runs=R; vae_s=60',
                                "", env)
    args = out.split("ARGS", 1)[1].split()
    assert [a for a in args if a in ("--init", "--temporal-down")] == want[::2]
    for flag, value in zip(want[::2], want[1::2]):
        assert args[args.index(flag) + 1] == value
    assert args[:2] == ["train", "vae"] and args[args.index("--time-limit") + 1] == "60"
