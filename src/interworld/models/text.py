"""Text encoders: umT5-XXL for the full presets, a small built-in one for tiny and small.

Both map prompts to [B, L, text_dim] states; the DiT pads them to text_len with zeros.
"""

from __future__ import annotations

import html
import re
from collections import OrderedDict

import torch
import torch.nn as nn


class BuiltinTextEncoder(nn.Module):
    """Bytes -> embeddings -> a few transformer layers; trained with the world model.

    No tokenizer file and no download: the small model must run out of the box.
    """

    def __init__(self, text_dim: int, text_len: int, layers: int = 2, heads: int = 4):
        super().__init__()
        self.text_len = text_len
        self.embed = nn.Embedding(258, text_dim)  # 256 bytes, padding, and a start token
        self.pos = nn.Parameter(torch.zeros(1, text_len, text_dim))
        heads = max(1, min(heads, text_dim // 8))
        layer = nn.TransformerEncoderLayer(text_dim, heads, 2 * text_dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(text_dim)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """A start token (never masked, so an empty prompt still attends somewhere), then bytes."""
        ids = torch.full((len(prompts), self.text_len), 256, dtype=torch.long)
        ids[:, 0] = 257
        for i, p in enumerate(prompts):
            b = list(p.encode("utf-8"))[: self.text_len - 1]
            ids[i, 1: 1 + len(b)] = torch.tensor(b, dtype=torch.long)
        return ids

    def forward(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenize(prompts).to(self.pos.device)
        h = self.embed(ids) + self.pos
        return self.norm(self.encoder(h, src_key_padding_mask=ids == 256))


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: fix mojibake (if ftfy is installed), unescape HTML twice, and
    collapse whitespace, so prompts tokenize as the official pipeline tokenizes them."""
    try:
        import ftfy
        text = ftfy.fix_text(text)
    except ImportError:
        pass
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text))).strip()


class UMT5TextEncoder:
    """umT5-XXL encoder through `transformers`; embeddings cached per prompt.

    `path` is any of: a transformers UMT5/T5 encoder folder with its tokenizer; a diffusers
    pipeline (`text_encoder/` + `tokenizer/`); or an official Wan2.2 / Matrix-Game-3.0 folder
    (`models_t5_umt5-xxl-enc-bf16.safetensors`, converted once from the .pth, and the
    `google/umt5-xxl` tokenizer), whose weights are mapped onto transformers' UMT5 names.
    """

    def __init__(self, path: str, text_len: int = 512, device: str = "cpu", dtype=torch.bfloat16,
                 cache_size: int = 256):
        from interworld.io.official import find_text_encoder, load_wan_umt5

        src = find_text_encoder(path)  # first: a wrong folder is named before transformers is imported
        try:
            from transformers import AutoTokenizer, UMT5EncoderModel
        except ImportError as e:  # pragma: no cover - depends on the optional extra
            raise RuntimeError("umT5 text encoding needs transformers: pip install 'interworld[text]'") from e
        self.text_len, self.device, self.source = text_len, device, src
        self.tokenizer = AutoTokenizer.from_pretrained(str(src.tokenizer))
        if src.kind == "wan":
            self.model = load_wan_umt5(src.weights, device, dtype)
        else:
            self.model = UMT5EncoderModel.from_pretrained(str(src.weights), torch_dtype=dtype).to(device).eval()
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        out = []
        for p in prompts:
            if p in self._cache:
                self._cache.move_to_end(p)
            else:
                tok = self.tokenizer(clean_prompt(p), max_length=self.text_len, truncation=True, return_tensors="pt")
                h = self.model(input_ids=tok.input_ids.to(self.device),
                               attention_mask=tok.attention_mask.to(self.device)).last_hidden_state[0]
                self._cache[p] = h  # Wan keeps only the real tokens; the DiT zero-pads the rest
                while len(self._cache) > self.cache_size:  # a long session must not grow without bound
                    self._cache.popitem(last=False)
            out.append(self._cache[p])
        n = max(h.shape[0] for h in out)
        return torch.stack([nn.functional.pad(h, (0, 0, 0, n - h.shape[0])) for h in out])
