"""INT8 weight-only (torchao) computes the same function as the float model, within a stated tolerance."""

import numpy as np
import pytest
import torch

pytest.importorskip("torchao", reason="pip install torchao for quantization")

from interworld.config import get_preset  # noqa: E402
from interworld.engine.quantize import quantize  # noqa: E402
from interworld.models.dit import Step, build_dit  # noqa: E402


def test_int8_dit_matches_float_within_two_percent():
    cfg = get_preset("small")
    torch.manual_seed(0)
    dit = build_dit(cfg).eval()
    for blk in dit.blocks:  # weight on the zero-initialised paths, as a trained model has
        torch.nn.init.normal_(blk.cam_scale_layer.weight, std=0.02)
    c, _, h, w = cfg.latent_shape(1)
    x = torch.randn(1, c, 3, h, w)
    t = torch.tensor([[0.0, 500.0, 500.0]])
    ctx = torch.randn(1, 4, cfg.text_dim)
    step = Step(frame_pos=torch.arange(3))
    with torch.no_grad():
        ref = dit(x, t, ctx, step)[0]
        quantize(dit, "int8")
        assert type(dit.blocks[0].self_attn.q.weight).__module__.startswith("torchao")  # an int8 tensor now
        out = dit(x, t, ctx, step)[0]
    rel = float((out - ref).norm() / ref.norm())
    print(f"int8 relative L2 error: {rel:.4f}")
    assert 0 < rel < 0.02, rel  # quantized (not a no-op), and within 2% relative L2 of the float output


def test_generate_cli_runs_quantized(tmp_path):
    from PIL import Image

    from interworld.cli.main import main

    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / "s.png")
    (tmp_path / "a.json").write_text('[{"keys": ["w"], "frames": 6}]')
    assert main(["generate", "--image", str(tmp_path / "s.png"), "--actions", str(tmp_path / "a.json"),
                 "--out", str(tmp_path / "o.mp4"), "--preset", "tiny", "--random-init", "--quiet",
                 "--quantize", "int8"]) == 0
    assert (tmp_path / "o.mp4").stat().st_size > 0
