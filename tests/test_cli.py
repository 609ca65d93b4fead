"""`interworld generate` end to end on the tiny preset, and its clean errors."""

import json
import subprocess
import sys

import numpy as np
import torch
import pytest
from PIL import Image

from interworld.cli.main import main
from interworld.io.video import read_video


@pytest.fixture()
def image(tmp_path):
    p = tmp_path / "start.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(p)
    return p


@pytest.fixture()
def script(tmp_path):
    p = tmp_path / "actions.json"
    p.write_text(json.dumps({"actions": [{"keys": ["w"], "frames": 5}, {"keys": [], "mouse": [2, 0], "frames": 4}]}))
    return p


def _gen(image, script, out, *extra):
    return main(["generate", "--image", str(image), "--actions", str(script), "--out", str(out), "--preset", "tiny",
                 "--random-init", "--quiet", *extra])


@pytest.mark.parametrize("scheme", ["causal", "segment"])
def test_generate_writes_decodable_mp4(tmp_path, image, script, scheme):
    out = tmp_path / f"{scheme}.mp4"
    assert _gen(image, script, out, "--scheme", scheme, "--seed", "3") == 0
    frames, fps = read_video(out)
    assert frames.shape == (1 + 9, 32, 32, 3)  # the start frame + one per scripted action frame
    assert fps == pytest.approx(10)
    assert not list(tmp_path.glob("*.part"))


def test_same_seed_same_frames_different_seed_different(tmp_path, image, script, monkeypatch):
    """The frames handed to the MP4 writer are bit-identical for a seed (the MP4 then holds them up to
    codec noise: x264 does not always give the same bytes for the same frames, see io/video.py)."""
    import interworld.io.video as video

    written, real_write = [], video.VideoWriter.write
    monkeypatch.setattr(video.VideoWriter, "write", lambda self, f: (written.append(np.array(f)), real_write(self, f)))
    # one math thread: earlier tests' threads sharing the pool must not change the order of sums
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vids, decoded = [], []
        for i, seed in enumerate([1, 1, 2]):
            out = tmp_path / f"v{i}.mp4"
            written.clear()
            assert _gen(image, script, out, "--seed", str(seed)) == 0
            vids.append(np.concatenate(written))
            decoded.append(read_video(out)[0])
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(vids[0], vids[1])
    assert np.abs(vids[0].astype(int) - vids[2].astype(int)).mean() > 1.0  # another seed, another video
    assert all(d.shape == v.shape for d, v in zip(decoded, vids))


def test_video_colour_conversion_round_trips(tmp_path):
    from interworld.io.video import VideoWriter, rgb_to_yuv420p, yuv420p_to_rgb

    rng = np.random.default_rng(0)
    flat = np.broadcast_to(rng.integers(16, 235, (1, 1, 3), dtype=np.uint8), (8, 8, 3))  # one colour: no chroma loss
    assert np.abs(yuv420p_to_rgb(rgb_to_yuv420p(flat)).astype(int) - flat).max() <= 1
    img = rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)
    planes = rgb_to_yuv420p(img)
    assert planes.shape == (24, 24) and yuv420p_to_rgb(planes).shape == img.shape
    # through the codec: smooth frames (as the model makes) come back within 35 dB
    frames = np.repeat(np.repeat(rng.integers(0, 255, (6, 4, 5, 3), dtype=np.uint8), 8, 1), 8, 2)
    with VideoWriter(tmp_path / "v.mp4", 10, 40, 32) as w:
        w.write(frames)
    back = read_video(tmp_path / "v.mp4")[0]
    assert 10 * np.log10(255 ** 2 / ((back.astype(float) - frames) ** 2).mean()) > 35


def _expect_clean_error(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert needle in err, err


def test_bad_inputs_give_one_line_errors(tmp_path, capsys, image, script):
    base = ["generate", "--preset", "tiny", "--random-init", "--quiet", "--out", str(tmp_path / "o.mp4")]
    _expect_clean_error(capsys, base + ["--image", str(tmp_path / "nope.png"), "--actions", str(script)], "nope.png")
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    _expect_clean_error(capsys, base + ["--image", str(fake), "--actions", str(script)], "fake.png")
    broken = tmp_path / "broken.json"
    broken.write_text("{\"actions\": [")
    _expect_clean_error(capsys, base + ["--image", str(image), "--actions", str(broken)], "not valid JSON")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps([{"keys": ["q"], "frames": 2}]))
    _expect_clean_error(capsys, base + ["--image", str(image), "--actions", str(unknown)], "unknown key 'q'")
    _expect_clean_error(capsys, base + ["--image", str(image), "--actions", str(tmp_path / "none.json")], "none.json")
    wild = tmp_path / "wild.json"
    wild.write_text(json.dumps([{"mouse": [1e9, 0]}]))
    _expect_clean_error(capsys, base + ["--image", str(image), "--actions", str(wild)], "out of range")
    _expect_clean_error(capsys, ["record", "--out", str(tmp_path / "rec"), "--mouse-rest", "1.5", "--quiet"],
                        "--mouse-rest")


def test_console_script_help_and_info():
    r = subprocess.run([sys.executable, "-m", "interworld.cli.main", "generate", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "--actions" in r.stdout and "mouse" in r.stdout
    r = subprocess.run([sys.executable, "-m", "interworld.cli.main", "info", "--preset", "mg3-5b"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "6.47" in r.stdout, r.stdout + r.stderr


def test_bench_runs_on_cpu(tmp_path):
    out = tmp_path / "b.json"
    assert main(["bench", "--preset", "tiny", "--scheme", "causal", "--iters", "2", "--warmup", "1",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["fps"] > 0 and r["fps_no_decode"] >= r["fps"]
    assert any(k.startswith("denoise step") for k in r["stages"]) and "VAE decode" in r["stages"]
    assert "kv-cache update" in r["stages"]


def test_bench_prices_a_dit_of_another_size(tmp_path, capsys):
    """--dit-dim / --dit-layers / --dit-patch: the preset with a wider, deeper or finer DiT, so a
    size is priced before a lease trains it; the shape shows in the result and in the title."""
    runs = {}
    for name, extra in (("plain", []), ("wide", ["--dit-dim", "64", "--dit-layers", "3"]),
                        ("fine", ["--dit-patch", "1"])):
        out = tmp_path / f"{name}.json"
        assert main(["bench", "--preset", "tiny", "--iters", "1", "--warmup", "1", "--json", str(out), *extra]) == 0
        runs[name] = json.loads(out.read_text())
    assert (runs["plain"]["dit"], runs["wide"]["dit"], runs["fine"]["dit"]) == ("", "64x3", "32x2/p1")
    assert "tiny (DiT 64x3)" in capsys.readouterr().out
    # tiny's DiT is 32 wide and 2 deep: 64 x 3 does more than twice its linear work per step
    assert runs["wide"]["flops"]["linear_per_step"] > 2 * runs["plain"]["flops"]["linear_per_step"]
    # patch 1: four times the tokens, so about three times tiny's linear work (its cross-attention keys
    # do not grow) and four times four its self-attention's (the keys and the queries)
    f, p = runs["fine"]["flops"], runs["plain"]["flops"]
    assert f["linear_per_step"] > 3 * p["linear_per_step"] and f["attn_per_step"] > 12 * p["attn_per_step"]
    _expect_clean_error(capsys, ["bench", "--preset", "tiny", "--dit-dim", "100"], "multiple of 64")
    _expect_clean_error(capsys, ["bench", "--preset", "tiny", "--dit-dim", "0"], "multiple of 64")
