"""Text encoders: the umT5 path through transformers (on a tiny model written here) and the built-in one."""

import pytest
import torch

from interworld.config import get_preset
from interworld.models.dit import Step, WanDiT

transformers = pytest.importorskip("transformers", reason="pip install 'interworld[text]' for umT5 encoding")
tokenizers = pytest.importorskip("tokenizers")

from helpers import tiny_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tiny_umt5(tmp_path_factory):
    """A UMT5 encoder folder in the transformers layout, shrunk: what users point --text-encoder at."""
    d = tmp_path_factory.mktemp("umt5")
    cfg = transformers.UMT5Config(vocab_size=tiny_tokenizer(d), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4)
    torch.manual_seed(0)
    transformers.UMT5EncoderModel(cfg).save_pretrained(d)
    return d


def test_umt5_encoder_from_a_local_folder(tiny_umt5):
    from interworld.models.text import UMT5TextEncoder

    enc = UMT5TextEncoder(str(tiny_umt5), text_len=8, dtype=torch.float32)
    a = enc(["a dark corridor", "hall"])
    assert a.shape == (2, 3, 16) and torch.isfinite(a).all()
    assert torch.equal(a[1, 1:], torch.zeros(2, 16))  # shorter prompts are zero-padded, as Wan pads
    assert "hall" in enc._cache and torch.equal(enc(["hall"])[0], a[1, :1])  # cached per prompt
    # the states feed the DiT as they are (text_dim = the encoder's width)
    cfg = get_preset("tiny").replace(text_dim=16, action=None, camera=False)
    dit = WanDiT(cfg)
    c, _, h, w = cfg.latent_shape(1)
    v, _ = dit(torch.randn(2, c, 2, h, w), torch.full((2, 2), 500.0), a, Step(frame_pos=torch.arange(2)))
    assert torch.isfinite(v).all()


def test_missing_folder_is_a_clear_error(tmp_path):
    from interworld.models.text import UMT5TextEncoder

    with pytest.raises(FileNotFoundError, match="does not exist"):
        UMT5TextEncoder(str(tmp_path / "nope"))
