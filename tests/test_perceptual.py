"""LPIPS and FVD (eval/lpips.py, eval/fvd.py): the official key layouts, known values, clear
errors for files that do not fit, and `interworld eval` with and without the weight files."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from interworld.eval.fvd import I3D, frechet_distance, fvd
from interworld.eval.lpips import LPIPS, lpips_per_frame
from interworld.io.checkpoint import CheckpointError

# torchvision's vgg16().features: the 13 convolutions (ReLUs and max pools in between)
VGG_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG_KEYS = {f"features.{i}.{p}" for i in VGG_CONVS for p in ("weight", "bias")}
LIN_KEYS = {f"lin{i}.model.1.weight" for i in range(5)}  # lpips weights/v0.1/vgg.pth
# piergiaj/pytorch-i3d InceptionI3d: three stem units and nine Inception modules of six units
I3D_UNITS = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"] + [
    f"Mixed_{m}.{b}" for m in ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")
    for b in ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")]
I3D_KEYS = {f"{u}.{p}" for u in I3D_UNITS
            for p in ("conv3d.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")}


def _video(seed, t=4, h=32, w=48):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _lpips_state():
    torch.manual_seed(0)
    sd = LPIPS().state_dict()
    return {k: v.abs() if k.startswith("lin") else v for k, v in sd.items()}  # the official heads are >= 0


@pytest.fixture
def lpips_files(tmp_path):
    """Two files as the official ones convert: the VGG16 (with its classifier) and the heads."""
    sd = _lpips_state()
    vgg, lin = tmp_path / "vgg16.safetensors", tmp_path / "lpips_vgg.safetensors"
    save_file({**{k: v for k, v in sd.items() if k.startswith("features.")},
               "classifier.0.weight": torch.zeros(4, 4)}, str(vgg))
    save_file({k: v for k, v in sd.items() if k.startswith("lin")}, str(lin))
    return [str(vgg), str(lin)]


@pytest.fixture
def i3d_file(tmp_path):
    """piergiaj's layout as rgb_imagenet.pt has it: no num_batches_tracked, with the logits."""
    torch.manual_seed(0)
    sd = {k: v for k, v in I3D().state_dict().items() if not k.endswith("num_batches_tracked")}
    sd.update({"logits.conv3d.weight": torch.zeros(400, 1024, 1, 1, 1), "logits.conv3d.bias": torch.zeros(400)})
    f = tmp_path / "rgb_imagenet.safetensors"
    save_file(sd, str(f))
    return str(f)


def test_the_modules_have_the_official_key_names_and_shapes():
    sd = LPIPS().state_dict()
    assert set(sd) == VGG_KEYS | LIN_KEYS
    assert sd["features.0.weight"].shape == (64, 3, 3, 3) and sd["features.28.weight"].shape == (512, 512, 3, 3)
    assert [tuple(sd[f"lin{i}.model.1.weight"].shape) for i in range(5)] == [(1, c, 1, 1) for c in
                                                                              (64, 128, 256, 512, 512)]
    si = I3D().state_dict()
    assert {k for k in si if not k.endswith("num_batches_tracked")} == I3D_KEYS
    assert si["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert si["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert si["Mixed_5c.b3b.conv3d.weight"].shape == (128, 832, 1, 1, 1)


def test_lpips_is_zero_for_the_same_video_positive_otherwise_and_symmetric(lpips_files, tmp_path):
    m = LPIPS.from_files(lpips_files)
    a, b = _video(1), _video(2)
    assert np.allclose(lpips_per_frame(m, a, a), 0, atol=1e-6)
    d = lpips_per_frame(m, a, b, batch=3)  # batches of 3 frames: 3 + 1
    assert d.shape == (4,) and (d > 0).all()
    assert np.allclose(d, lpips_per_frame(m, b, a), rtol=1e-5)
    near = np.clip(a.astype(int) + 8, 0, 255).astype(np.uint8)
    assert (lpips_per_frame(m, near, a) < d).all()  # a small shift is nearer than another video
    # one frame against a video: the same as that frame repeated
    one = m.against(a, [b[:1]])[0]
    assert np.allclose(one, lpips_per_frame(m, np.repeat(b[:1], 4, 0), a), rtol=1e-5)
    # one combined file does as well as two
    both = tmp_path / "lpips_all.safetensors"
    save_file(_lpips_state(), str(both))
    assert np.allclose(lpips_per_frame(LPIPS.from_files(str(both)), a, b), d, rtol=1e-5)


def test_weight_files_that_do_not_fit_are_named_with_their_keys(lpips_files, i3d_file, tmp_path):
    sd = _lpips_state()
    bad = tmp_path / "renamed.safetensors"
    sd["features.29.weight"] = sd.pop("features.28.weight")
    save_file(sd, str(bad))
    with pytest.raises(CheckpointError, match=r"renamed\.safetensors: unexpected 1 keys: features\.29\.weight") as e:
        LPIPS.from_files([bad])
    assert "missing 1 keys: features.28.weight" in str(e.value)
    with pytest.raises(CheckpointError, match=r"missing 5 keys: lin0\.model\.1\.weight"):
        LPIPS.from_files(lpips_files[:1])  # the heads' file forgotten
    with pytest.raises(CheckpointError, match="given twice"):
        LPIPS.from_files(lpips_files + lpips_files[1:])
    wrong = tmp_path / "wrong.safetensors"
    save_file({"Conv3d_1a_7x7.conv3d.weight": torch.zeros(64, 3, 3, 3, 3)}, str(wrong))
    with pytest.raises(CheckpointError, match=r"wrong\.safetensors: misshapen 1 keys: Conv3d_1a_7x7\.conv3d\.weight: "
                                              r"file \(64, 3, 3, 3, 3\) vs expected \(64, 3, 7, 7, 7\)"):
        I3D.from_file(wrong)
    pth = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, pth)
    with pytest.raises(CheckpointError, match="not a safetensors file.*pth_to_safetensors"):
        LPIPS.from_files([pth, lpips_files[1]])


def test_frechet_distance_is_zero_for_the_same_set_and_a_mean_shift_squared():
    a = np.random.default_rng(0).normal(size=(300, 8)) @ np.random.default_rng(1).normal(size=(8, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.arange(8) / 4.0
    assert fvd(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-8)  # equal covariances
    assert frechet_distance(a, 2 * a) > frechet_distance(a, 1.1 * a) > 0  # a wider spread too
    assert np.isnan(fvd(a[:1], a))  # one clip is no distribution
    b = np.random.default_rng(2).normal(size=(250, 8)) + 0.5
    wide = lambda x: np.pad(x, ((0, 0), (0, 400)))  # noqa: E731  more dimensions than rows: the N x M route
    assert frechet_distance(wide(a), wide(b)) == pytest.approx(frechet_distance(a, b), rel=1e-9)
    few = np.random.default_rng(3).normal(size=(20, 1024))  # singular covariances, as with few clips
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(few, few + 0.1) == pytest.approx(1024 * 0.01, rel=1e-9)


def test_frechet_distance_matches_the_matrix_square_root_recipe():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(200, 16)), rng.normal(size=(150, 16)) @ rng.normal(size=(16, 16)) + 1
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu = a.mean(0) - b.mean(0)
    want = mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.trace(np.real(scipy_linalg.sqrtm(sa @ sb)))
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)


def test_i3d_gives_one_1024_feature_per_16_frame_clip(i3d_file):
    m = I3D.from_file(i3d_file)
    f = m.features(_video(3, t=33, h=32, w=40))  # clips at 0 and 16; the last frame left over
    assert f.shape == (2, 1024) and np.isfinite(f).all() and not np.allclose(f[0], f[1])
    assert m.features(_video(3, t=15, h=32, w=40)).shape == (0, 1024)


vizdoom = pytest.importorskip("vizdoom", reason="pip install vizdoom==1.3.2 for engine replays")


def test_eval_reports_lpips_and_fvd_only_when_given_the_weights(lpips_files, i3d_file, tmp_path, monkeypatch):
    from interworld.cli.main import main
    from interworld.config import get_preset
    from interworld.engine.world import World
    from interworld.io.checkpoint import save_checkpoint

    monkeypatch.setattr("interworld.eval.fvd.SIZE", 64)  # I3D inputs smaller than 224 here, for time
    w = World.from_config(get_preset("tiny"), seed=0)
    ck = save_checkpoint(tmp_path / "ck", w.cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})
    common = ["eval", "--checkpoint", str(ck), "--maps", "freedoom2:MAP19", "--no-revisits", "--quiet"]
    # tiny: 10 fps, so 34 frames, 33 after the given one: 2 clips of 16
    assert main(common + ["--seconds", "3.4", "--out", str(tmp_path / "with"), "--lpips-weights", *lpips_files,
                          "--fvd-weights", i3d_file]) == 0
    m = json.loads((tmp_path / "with" / "metrics.json").read_text())
    s = m["summary"]
    for k in ("rollout_lpips", "repeat_last_rollout_lpips", "fvd", "repeat_last_fvd"):
        assert np.isfinite(s[k]) and s[k] >= -1e-6, k
    assert s["rollout_lpips"] > 0 and s["fvd_clips"] == m["fvd"]["clips"] == 2 and m["fvd"]["clip_frames"] == 16
    assert len(m["cases"][0]["rollout"]["lpips_per_s"]) == 4
    md = (tmp_path / "with" / "summary.md").read_text()
    assert "| rollout LPIPS" in md and "| FVD (I3D, 2 clips of 16 frames" in md

    floor = ["--baseline", "repeat-last", "--seconds", "3.4", "--out", str(tmp_path / "floor")]
    assert main(common + floor + ["--lpips-weights", *lpips_files, "--fvd-weights", i3d_file]) == 0
    f = json.loads((tmp_path / "floor" / "metrics.json").read_text())["summary"]
    assert "rollout_lpips" not in f and "fvd" not in f  # no model: the floor's alone, the same as beside it
    assert f["repeat_last_rollout_lpips"] == pytest.approx(s["repeat_last_rollout_lpips"], rel=1e-5)
    assert f["repeat_last_fvd"] == pytest.approx(s["repeat_last_fvd"], rel=1e-5)

    assert main(common + ["--seconds", "1", "--out", str(tmp_path / "without")]) == 0
    m = json.loads((tmp_path / "without" / "metrics.json").read_text())
    assert "fvd" not in m and not [k for k in m["summary"] if "lpips" in k or "fvd" in k]
    assert "lpips" not in m["cases"][0]["rollout"] and "lpips" not in m["cases"][0]["repeat_last"]
    md = (tmp_path / "without" / "summary.md").read_text()
    assert "LPIPS" not in md and "FVD" not in md
    assert main(common + ["--out", str(tmp_path / "x"), "--fvd-weights", str(tmp_path / "nope.safetensors")]) == 2
    assert main(common + ["--out", str(tmp_path / "x"), "--lpips-weights", str(tmp_path / "nope.safetensors")]) == 2
