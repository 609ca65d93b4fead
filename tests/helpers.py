"""Shared by several test files (not collected as tests): a tiny umT5 tokenizer, and a spy on
safetensors' safe_open for the streaming loaders."""

from pathlib import Path

import pytest


def tiny_tokenizer(folder: Path) -> int:
    """A word-level tokenizer saved in the transformers layout; returns its vocabulary size."""
    transformers, tokenizers = pytest.importorskip("transformers"), pytest.importorskip("tokenizers")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate("a dark stone corridor hall".split())}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                                unk_token="<unk>")
    fast.save_pretrained(folder)
    return len(vocab)


class SafeOpenSpy:
    """Stands in for safe_open and records the files opened (in order), the tensors read from
    each (by file name), the keys read, and the most files open at once."""

    def __init__(self, real):
        self.real, self.opened, self.reads, self.keys_read = real, [], {}, []
        self.live = self.max_live = 0

    def __call__(self, path, **kw):
        spy = self

        class Handle:
            def __init__(self):
                self.path, self.h = Path(path).name, spy.real(path, **kw)

            def __enter__(self):
                spy.live += 1
                spy.max_live = max(spy.max_live, spy.live)
                spy.opened.append(self.path)
                self.inner = self.h.__enter__()
                return self

            def __exit__(self, *a):
                spy.live -= 1
                return self.h.__exit__(*a)

            def keys(self):
                return self.inner.keys()

            def get_slice(self, k):
                return self.inner.get_slice(k)

            def get_tensor(self, k):
                spy.reads[self.path] = spy.reads.get(self.path, 0) + 1
                spy.keys_read.append(k)
                return self.inner.get_tensor(k)

        return Handle()
