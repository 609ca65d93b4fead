"""Loading the official Wan2.2 and Matrix-Game-3.0 releases, as they are downloaded.

Layouts understood (`detect`):
- Wan2.2 native: a WanModel `config.json` + `diffusion_pytorch_model.safetensors` or its
  shards with `diffusion_pytorch_model.safetensors.index.json` (Wan-AI/Wan2.2-TI2V-5B), next to
  `Wan2.2_VAE` and `models_t5_umt5-xxl-enc-bf16` weights and the `google/umt5-xxl` tokenizer.
- Wan2.2-A14B native: the same per expert in `high_noise_model/` and `low_noise_model/`.
- diffusers: `model_index.json` with `transformer/` (+ `transformer_2/`, the low-noise expert),
  `vae/`, `text_encoder/`, `tokenizer/` (Wan-AI/Wan2.2-TI2V-5B-Diffusers); or one `transformer/`.
- Matrix-Game-3.0: `base_distilled_model/` and/or `base_model/` (native WanModel configs with an
  `action_config`), `Wan2.2_VAE`, `MG-LightVAE[_v2]`, the umT5 weights and tokenizer.

Loading never holds two copies of the weights: the model is built on the meta device, every
key of every shard is checked against it from the safetensors headers alone (so a misfit is
reported before anything is read), then each shard is opened in turn and each tensor read,
cast to the target dtype, moved to the target device and put in place. Modules the source
does not have (the action and camera modules, for a Wan base) are created on the target
device, zero-initialised where that keeps the model equal to the base.

Pickled `.pth` files are never opened: convert them once with `scripts/pth_to_safetensors.py`
(the error says so, with the command).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn
from safetensors import safe_open

from interworld.config import ActionConfig, ModelConfig, VAEConfig, get_preset
from interworld.io import official_keys as K
from interworld.io.checkpoint import CONFIG, WEIGHTS, CheckpointError, mismatch, save_checkpoint
from interworld.models.norms import RMSNorm

DIT_STEM = "diffusion_pytorch_model"
T5_STEM = "models_t5_umt5-xxl-enc-bf16"
TOKENIZER_DIR = "google/umt5-xxl"
WAN22_VAE = "Wan2.2_VAE"
WAN21_VAE = "Wan2.1_VAE"
LIGHT_VAES = {"lightvae": "MG-LightVAE", "lightvae_v2": "MG-LightVAE_v2"}
MG3_VARIANTS = {"distilled": "base_distilled_model", "base": "base_model"}
EXPERTS = ("high_noise_model", "low_noise_model")  # MoEDiT's attribute names, and the A14B folders

EXPECTED = ("an interworld checkpoint (config.json with a 'model' section + model.safetensors); "
            "Wan2.2 native (a WanModel config.json + diffusion_pytorch_model*.safetensors, as Wan-AI/Wan2.2-TI2V-5B); "
            "Wan2.2-A14B native (high_noise_model/ + low_noise_model/); "
            "diffusers (model_index.json + transformer/ [+ transformer_2/] + vae/, as Wan-AI/Wan2.2-TI2V-5B-Diffusers, "
            "or a transformer/ folder alone); "
            "Matrix-Game-3.0 (base_distilled_model/ or base_model/ + Wan2.2_VAE, as Skywork/Matrix-Game-3.0)")
PTH_HINT = "python scripts/pth_to_safetensors.py {src} {dst}"


# ============================================================================ detection
@dataclass
class Layout:
    name: str  # human name, used in every message
    root: Path
    dit_format: str = "native"  # "native" | "diffusers"
    experts: list[Path] = field(default_factory=list)  # one folder, or [high-noise, low-noise]
    vae_format: str | None = None  # "native" | "diffusers" | None (no loadable VAE)
    vae_dir: Path | None = None  # folder holding Wan2.2_VAE.* (native) or the diffusers vae/
    text_dir: Path | None = None  # where the umT5 weights and tokenizer live
    notes: list[str] = field(default_factory=list)

    @property
    def is_interworld(self) -> bool:
        return self.name == "interworld"


def _json(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _is_native_cfg(cfg: dict | None) -> bool:
    return bool(cfg) and (cfg.get("_class_name") == "WanModel" or {"dim", "num_layers", "num_heads"} <= set(cfg))


def _is_diffusers_cfg(cfg: dict | None) -> bool:
    return bool(cfg) and cfg.get("_class_name") == "WanTransformer3DModel"


def _first_with(dirs: Iterable[Path], stem: str) -> Path | None:
    for d in dirs:
        if any((d / f"{stem}{ext}").is_file() for ext in (".safetensors", ".pth")):
            return d
    return None


def detect(path: str | Path, variant: str | None = None) -> Layout:
    """What kind of checkpoint folder `path` is; raises naming what was expected if none."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CheckpointError(f"{str(root)!r} is not a folder")
    cfg = _json(root / CONFIG)
    if cfg is not None and "model" in cfg:
        return Layout("interworld", root)

    mg3 = {k: root / d for k, d in MG3_VARIANTS.items() if _is_native_cfg(_json(root / d / CONFIG))}
    if mg3:
        if variant is not None and variant not in mg3:
            raise CheckpointError(f"{str(root)!r} (Matrix-Game-3.0) has no {MG3_VARIANTS.get(variant, variant)}/; "
                                  f"found: {', '.join(MG3_VARIANTS[k] for k in mg3)}")
        chosen = variant or ("distilled" if "distilled" in mg3 else "base")
        vae_dir = _first_with([root], WAN22_VAE)
        return Layout("Matrix-Game-3.0", root, "native", [mg3[chosen]], "native" if vae_dir else None, vae_dir, root)

    if (root / "model_index.json").is_file() or _is_diffusers_cfg(_json(root / "transformer" / CONFIG)):
        experts = [root / d for d in ("transformer", "transformer_2") if _is_diffusers_cfg(_json(root / d / CONFIG))]
        if not experts:
            raise CheckpointError(f"{str(root)!r} has a model_index.json but no WanTransformer3DModel in transformer/; "
                                  f"expected {EXPECTED}")
        vcfg = _json(root / "vae" / CONFIG)
        vae_ok = bool(vcfg) and vcfg.get("_class_name") == "AutoencoderKLWan"
        text = root if (root / "text_encoder").is_dir() else None
        name = "diffusers (2 experts)" if len(experts) == 2 else "diffusers"
        return Layout(name, root, "diffusers", experts, "diffusers" if vae_ok else None, root / "vae" if vae_ok else None,
                      text)

    if all(_is_native_cfg(_json(root / d / CONFIG)) for d in EXPERTS):
        notes = []
        if _first_with([root], WAN21_VAE):
            notes.append(f"{WAN21_VAE} is not loaded: interworld's VAE does not have the Wan2.1 VAE's structure "
                         f"(the DiT experts load; a World gets a VAE at random init)")
        return Layout("Wan2.2-A14B native", root, "native", [root / d for d in EXPERTS], None, None, root, notes)

    if _is_native_cfg(cfg):
        # the root of Wan2.2-TI2V-5B, or a Matrix-Game-3.0 model folder given directly (its
        # VAE and text encoder then live one level up)
        mg = "action_config" in cfg or bool(cfg.get("use_memory"))
        vae_dir = _first_with([root, root.parent], WAN22_VAE)
        text_dir = _first_with([root, root.parent], T5_STEM) or root
        return Layout("Matrix-Game-3.0" if mg else "Wan2.2 native", root, "native", [root],
                      "native" if vae_dir else None, vae_dir, text_dir)

    if _is_diffusers_cfg(cfg):
        return Layout("diffusers", root, "diffusers", [root])

    found = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    shown = ", ".join(found[:10]) + (f" (+{len(found) - 10} more)" if len(found) > 10 else "") if found else "nothing"
    raise CheckpointError(f"{str(root)!r} is not a checkpoint folder interworld knows (found: {shown}); "
                          f"expected {EXPECTED}")


def is_official(path: str | Path) -> bool:
    try:
        return not detect(path).is_interworld
    except CheckpointError:
        return False


# ============================================================================ files
def shard_files(folder: Path, stem: str) -> list[Path]:
    """The safetensors files of one model: the index's shards in order, or the single file."""
    index = folder / f"{stem}.safetensors.index.json"
    if index.is_file():
        meta = _json(index)
        if not meta or "weight_map" not in meta:
            raise CheckpointError(f"{index} is not a safetensors index (no weight_map)")
        names = list(dict.fromkeys(meta["weight_map"].values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(f"{index} lists shards that are not there: {', '.join(missing)}")
        return [folder / n for n in names]
    single = folder / f"{stem}.safetensors"
    if single.is_file():
        return [single]
    shards = sorted(folder.glob(f"{stem}-*-of-*.safetensors"))
    if shards:
        return shards
    pth = [p.name for p in folder.glob(f"{stem}*") if p.suffix in (".pth", ".bin", ".pt")]
    if pth:
        raise CheckpointError(f"{folder / pth[0]} is a pickle; interworld reads safetensors only: "
                              + PTH_HINT.format(src=folder / pth[0], dst=folder / f"{stem}.safetensors"))
    raise CheckpointError(f"no {stem}.safetensors (or its shards and index) in {str(folder)!r}")


def weights_file(folder: Path, stem: str) -> Path:
    """A single-file component (VAE, umT5): `stem.safetensors`, or a clear error if only the .pth is there."""
    st, pth = folder / f"{stem}.safetensors", folder / f"{stem}.pth"
    if st.is_file():
        return st
    if pth.is_file():
        raise CheckpointError(f"{pth} is a pickle; interworld reads safetensors only. Convert it once: "
                              + PTH_HINT.format(src=pth, dst=st))
    raise CheckpointError(f"no {stem}.safetensors in {str(folder)!r}")


def _header(files: list[Path]) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """key -> (file, shape) from the safetensors headers alone (no tensor is read)."""
    out = {}
    for f in files:
        with safe_open(str(f), framework="pt", device="cpu") as h:
            for k in h.keys():
                out[k] = (f, tuple(h.get_slice(k).get_shape()))
    return out


# ============================================================================ streaming
@dataclass
class Source:
    """One model's files and how their keys map onto the target module (None drops a key)."""
    files: list[Path]
    key_map: Callable[[str], str | None]
    prefix: str = ""  # prepended to mapped keys (an expert's attribute in MoEDiT)
    only: Callable[[str], bool] | None = None  # read only these source keys (a VAE's decoder half)


@dataclass
class LoadReport:
    layout: str
    files: list[str] = field(default_factory=list)  # in the order they were read
    loaded: int = 0
    dropped: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)  # created fresh (absent from the source)
    notes: list[str] = field(default_factory=list)


def _few(xs: list[str], n: int = 8) -> str:
    return ", ".join(xs[:n]) + (f" (+{len(xs) - n} more)" if len(xs) > n else "")


def _fits(src: tuple[int, ...], want: tuple[int, ...], key: str) -> bool:
    # Wan keeps the attention norm's gain as (c, 1, 1); interworld's is (c, 1, 1, 1)
    if src == want:
        return True
    return key.endswith("gamma") and math.prod(src) == math.prod(want) and \
        [d for d in src if d != 1] == [d for d in want if d != 1]


def _assign(root: nn.Module, name: str, t: torch.Tensor) -> None:
    mod_name, _, attr = name.rpartition(".")
    mod = root.get_submodule(mod_name) if mod_name else root
    if attr in mod._parameters:
        mod._parameters[attr] = nn.Parameter(t, requires_grad=mod._parameters[attr].requires_grad)
    else:
        mod._buffers[attr] = t


def _init_new(root: nn.Module, names: list[str], device, dtype) -> None:
    """Create the modules a base checkpoint lacks, so that they change nothing at first."""
    owners = sorted({n.rpartition(".")[0] for n in names})
    for owner in owners:
        mod = root.get_submodule(owner)
        if not all(t.is_meta for t in mod.parameters(recurse=False)):  # never wipe half-loaded layers
            raise CheckpointError(f"{owner} is partly in the checkpoint and partly missing")
        mod.to_empty(device=device, recurse=False)
        if isinstance(mod, nn.Linear) and owner.rsplit(".", 1)[-1] in K.ZERO_INIT:
            nn.init.zeros_(mod.weight)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, (nn.Linear, nn.LayerNorm)):
            mod.reset_parameters()
        elif isinstance(mod, RMSNorm):
            nn.init.ones_(mod.weight)
        else:
            raise CheckpointError(f"do not know how to initialise a new {type(mod).__name__} at {owner}")
        mod.to(dtype=dtype)


def stream_load(module: nn.Module, sources: list[Source], *, device, dtype, where: str, layout: str,
                allow_new: Callable[[str], bool] | None = None, extra: dict[str, torch.Tensor] | None = None,
                tied: Iterable[str] = (), report: LoadReport | None = None) -> LoadReport:
    """Fill `module` (built on the meta device) from `sources`, one shard at a time.

    Every source key must land on a module key of the same shape, and every module key must be
    covered, by the sources, by `extra` (tensors the loader supplies, e.g. VAE statistics) or by
    `allow_new` (modules the source lacks); otherwise nothing is read and the error names the
    layout and each key that does not fit.
    """
    report = report or LoadReport(layout)
    want = {k: tuple(v.shape) for k, v in module.state_dict(keep_vars=True).items()}
    extra = dict(extra or {})
    plan: dict[Path, list[tuple[str, str]]] = {}
    bad_extra = [f"{k}: given {tuple(t.shape)} vs model {want.get(k)}" for k, t in extra.items()
                 if tuple(t.shape) != want.get(k)]
    if bad_extra:
        raise CheckpointError(f"{where} ({layout} layout): {'; '.join(bad_extra)}")
    covered: dict[str, str] = {}
    unexpected, misshapen, twice, named = [], [], [], set(tied)  # tied: filled through the module they share
    for src in sources:
        for key, (file, shape) in _header(src.files).items():
            tgt = src.key_map(key)
            if tgt is None:
                report.dropped.append(key)
                continue
            if src.only is not None and not src.only(key):
                continue
            tgt = src.prefix + tgt
            shown = key if tgt == key else f"{key} (as {tgt})"
            if tgt not in want:
                unexpected.append(shown)
            elif not _fits(shape, want[tgt], tgt):
                misshapen.append(f"{shown}: checkpoint {shape} vs model {want[tgt]}")
                named.add(tgt)  # reported once, as misshapen, not again as missing
            elif tgt in covered:
                twice.append(f"{tgt} (from {covered[tgt]} and {key})")
            else:
                covered[tgt] = key
                plan.setdefault(file, []).append((key, tgt))
    new = [k for k in want if k not in covered and k not in extra and allow_new is not None and allow_new(k)]
    missing = [k for k in want if k not in covered and k not in extra and k not in new and k not in named]
    if unexpected or misshapen or missing or twice:
        raise CheckpointError(f"{where} ({layout} layout) does not fit the model: "
                              + mismatch(missing, unexpected, misshapen, twice))

    for file, items in plan.items():  # one shard open at a time, one tensor read at a time
        report.files.append(str(file))
        with safe_open(str(file), framework="pt", device="cpu") as h:
            for key, tgt in items:
                t = h.get_tensor(key)
                if tuple(t.shape) != want[tgt]:
                    t = t.reshape(want[tgt])
                _assign(module, tgt, t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype))
                report.loaded += 1
                del t
    for name, t in extra.items():
        _assign(module, name, t.to(device=device, dtype=torch.float32 if t.is_floating_point() else t.dtype))
    if new:
        _init_new(module, new, device, dtype)
        report.new.extend(new)
    left = [k for k, v in module.state_dict(keep_vars=True).items() if v.is_meta]
    if left:
        raise CheckpointError(f"{where}: internal error, {len(left)} tensors were never filled: {_few(left)}")
    return report


# ============================================================================ configs
def _dit_fields(cfg: dict, fmt: str, where: Path) -> dict:
    """The DiT shape of an official config.json, checked against what interworld can build."""
    def need(k):
        if k not in cfg:
            raise CheckpointError(f"{where / CONFIG} has no '{k}'")
        return cfg[k]

    if fmt == "diffusers":
        bad = {k: cfg[k] for k in ("image_dim", "added_kv_proj_dim", "pos_embed_seq_len") if cfg.get(k) is not None}
        if bad:
            raise CheckpointError(f"{where / CONFIG}: image-conditioned Wan transformers are not supported ({bad})")
        if cfg.get("qk_norm", "rms_norm_across_heads") != "rms_norm_across_heads" or not cfg.get("cross_attn_norm", True):
            raise CheckpointError(f"{where / CONFIG}: qk_norm={cfg.get('qk_norm')!r} cross_attn_norm="
                                  f"{cfg.get('cross_attn_norm')!r}; interworld builds rms_norm_across_heads + True")
        f = dict(dim=need("num_attention_heads") * need("attention_head_dim"), num_heads=need("num_attention_heads"),
                 ffn_dim=need("ffn_dim"), num_layers=need("num_layers"), freq_dim=cfg.get("freq_dim", 256),
                 text_dim=cfg.get("text_dim", 4096), eps=cfg.get("eps", 1e-6), text_len=512,
                 in_dim=need("in_channels"), out_dim=cfg.get("out_channels", cfg["in_channels"]),
                 patch=tuple(cfg.get("patch_size", (1, 2, 2))))
    else:
        # patch_size, qk_norm, cross_attn_norm and text_dim are not saved by WanModel
        # (ignore_for_config), so they are its defaults: (1, 2, 2), True, True, 4096
        f = dict(dim=need("dim"), num_heads=need("num_heads"), ffn_dim=need("ffn_dim"), num_layers=need("num_layers"),
                 freq_dim=cfg.get("freq_dim", 256), text_dim=cfg.get("text_dim", 4096), eps=cfg.get("eps", 1e-6),
                 text_len=cfg.get("text_len", 512), in_dim=need("in_dim"), out_dim=cfg.get("out_dim", cfg["in_dim"]),
                 patch=tuple(cfg.get("patch_size", (1, 2, 2))))
    if f["in_dim"] != f["out_dim"]:
        raise CheckpointError(f"{where / CONFIG}: in_dim {f['in_dim']} != out_dim {f['out_dim']}: image-to-video "
                              f"checkpoints (latents + mask + image channels) are not supported; use T2V or TI2V")
    if f["patch"] != (1, 2, 2):
        raise CheckpointError(f"{where / CONFIG}: patch_size {f['patch']} is not supported (interworld: 1x2x2)")
    return f


def _action_config(ac: dict, dim: int, temporal: int, where: Path) -> ActionConfig:
    blocks = list(ac.get("blocks", []))
    checks = {"blocks": (blocks, list(range(len(blocks)))), "img_hidden_size": (ac.get("img_hidden_size", dim), dim),
              "vae_time_compression_ratio": (ac.get("vae_time_compression_ratio", temporal), temporal),
              "qk_norm": (ac.get("qk_norm", True), True), "qkv_bias": (ac.get("qkv_bias", False), False),
              "enable_mouse": (ac.get("enable_mouse", True), True),
              "enable_keyboard": (ac.get("enable_keyboard", True), True),
              "patch_size": (list(ac.get("patch_size", [1, 2, 2])), [1, 2, 2])}
    bad = [f"{k}={got!r} (interworld builds {exp!r})" for k, (got, exp) in checks.items() if got != exp]
    if bad:
        raise CheckpointError(f"{where / CONFIG}: action_config does not fit interworld's action module: {'; '.join(bad)}")
    d = ActionConfig()
    return ActionConfig(num_blocks=len(blocks), keyboard_dim=ac.get("keyboard_dim_in", d.keyboard_dim),
                        mouse_dim=ac.get("mouse_dim_in", d.mouse_dim), hidden=ac.get("hidden_size", d.hidden),
                        keyboard_hidden=ac.get("keyboard_hidden_dim", d.keyboard_hidden),
                        mouse_hidden=ac.get("mouse_hidden_dim", d.mouse_hidden), heads=ac.get("heads_num", d.heads),
                        windows=ac.get("windows_size", d.windows), rope_theta=float(ac.get("rope_theta", d.rope_theta)),
                        rope_dims=int(list(ac.get("rope_dim_list", [8, 28, 28]))[0]))


def vae_config_from_keys(shapes: dict[str, tuple[int, ...]], full: VAEConfig | None = None) -> VAEConfig:
    """A Wan2.2-layout VAEConfig read off native key shapes (the .pth carries no config).

    `shapes` maps native Wan VAE keys to shapes. When `full` is given (the teacher VAE of an
    MG-LightVAE), the decoder width is expressed as its `dec_dim` times a pruning scale.
    """
    def shape(k):
        if k not in shapes:
            raise CheckpointError(f"a Wan2.2 VAE needs '{k}', which is not in the file")
        return shapes[k]

    dim, cin = shape("encoder.conv1.weight")[:2]
    groups = sorted({int(m.group(1)) for k in shapes if (m := re.match(r"^encoder\.downsamples\.(\d+)\.", k))})
    n_res = len({m.group(1) for k in shapes if (m := re.match(r"^encoder\.downsamples\.0\.downsamples\.(\d+)\.residual", k))})
    if not groups or not n_res:
        raise CheckpointError("this does not look like a Wan2.2 VAE: no encoder.downsamples.N.downsamples.M.residual keys")
    mult = tuple(shape(f"encoder.downsamples.{i}.downsamples.0.residual.2.weight")[0] // dim for i in groups)
    tdown = tuple(f"encoder.downsamples.{i}.downsamples.{n_res}.time_conv.weight" in shapes for i in groups[:-1])
    z = shape("conv2.weight")[0]
    dec_base = shape("decoder.conv1.weight")[0] // mult[-1]
    cfg = VAEConfig(arch="wan2.2", z_dim=z, dim=dim, dec_dim=dec_base, dim_mult=mult, num_res_blocks=n_res,
                    temporal_down=tdown, patch=int(round(math.sqrt(cin / 3))),
                    attn_mid="encoder.middle.1.to_qkv.weight" in shapes)
    if full is not None:
        cfg = dataclasses.replace(cfg, dec_dim=full.dec_dim, dec_width_scale=dec_base / full.dec_dim)
    return cfg


def _vae_config_diffusers(c: dict, where: Path) -> VAEConfig:
    if not c.get("is_residual", False):
        raise CheckpointError(f"{where / CONFIG}: a Wan2.1 VAE (is_residual false) is not supported; "
                              f"interworld loads the Wan2.2 VAE")
    return VAEConfig(arch="wan2.2", z_dim=c["z_dim"], dim=c["base_dim"], dec_dim=c.get("decoder_base_dim") or c["base_dim"],
                     dim_mult=tuple(c.get("dim_mult", (1, 2, 4, 4))), num_res_blocks=c.get("num_res_blocks", 2),
                     temporal_down=tuple(c.get("temperal_downsample", (False, True, True))),
                     patch=c.get("patch_size") or 1, attn_mid=True)


# ============================================================================ loading
@dataclass
class Loaded:
    cfg: ModelConfig
    dit: nn.Module
    vae: nn.Module | None  # None when the folder has no loadable VAE (or vae="none")
    layout: Layout
    report: LoadReport


def _vae_file_map(file: Path) -> tuple[Callable[[str], str | None], dict[str, tuple[int, ...]]]:
    """Key map and native-named shapes of one Wan2.2-style VAE file. Native files (Wan2.2_VAE)
    and diffusers-style ones (MG-LightVAE) are both accepted, as Matrix-Game-3.0's loader does."""
    head = _header([file])
    resnets = {m.group(1) for k in head if (m := re.match(r"^encoder\.down_blocks\.0\.resnets\.(\d+)\.", k))}
    n = len(resnets) or 2  # only needed for diffusers-style names (where the resampler index comes from)

    def to_native(k: str) -> str | None:
        return K.vae_diffusers_to_native(k, n)

    shapes = {nk: s for k, (_, s) in head.items() if (nk := to_native(k)) is not None}
    return to_native, shapes


def _plan_vae(layout: Layout, vae: str) -> tuple[VAEConfig | None, list[Source], dict, list[str]]:
    """The VAE config, its sources and the statistics to fill, for the chosen VAE."""
    notes = []
    if vae not in ("auto", "wan", "none", *LIGHT_VAES):
        raise CheckpointError(f"unknown VAE choice {vae!r}: use auto, wan, lightvae, lightvae_v2 or none")
    if vae == "none" or (layout.vae_format is None and vae == "auto"):
        return None, [], {}, notes
    if layout.vae_format is None:
        raise CheckpointError(f"{layout.root} ({layout.name}) has no Wan2.2 VAE to load for --vae {vae}")
    stats = {"latents_mean": torch.tensor(K.WAN22_LATENTS_MEAN), "latents_std": torch.tensor(K.WAN22_LATENTS_STD)}
    if layout.vae_format == "diffusers":
        if vae in LIGHT_VAES:
            raise CheckpointError(f"--vae {vae} needs the Matrix-Game-3.0 release; {layout.root} is {layout.name}")
        c = _json(layout.vae_dir / CONFIG)
        vcfg = _vae_config_diffusers(c, layout.vae_dir)
        n = vcfg.num_res_blocks
        if c.get("latents_mean") and c.get("latents_std"):
            stats = {"latents_mean": torch.tensor(c["latents_mean"]), "latents_std": torch.tensor(c["latents_std"])}
        return vcfg, [Source(shard_files(layout.vae_dir, DIT_STEM), lambda k: K.vae_diffusers(k, n))], stats, notes

    teacher = weights_file(layout.vae_dir, WAN22_VAE)
    tmap, tshapes = _vae_file_map(teacher)
    vcfg = vae_config_from_keys(tshapes)
    if vcfg.z_dim != len(K.WAN22_LATENTS_MEAN):  # the statistics are those of the 48-channel Wan2.2 VAE
        stats = {"latents_mean": torch.zeros(vcfg.z_dim), "latents_std": torch.ones(vcfg.z_dim)}
        notes.append(f"a {vcfg.z_dim}-channel VAE has no published latent statistics: latents are not normalised")

    def full_map(k):
        nk = tmap(k)
        return None if nk is None else K.vae_native(nk)

    if vae not in LIGHT_VAES:
        return vcfg, [Source([teacher], full_map)], stats, notes
    # MG-LightVAE: Matrix-Game-3.0 encodes with the full Wan2.2 encoder and decodes with the
    # pruned decoder of the light file (its encoder half is not used)
    lfile = weights_file(layout.vae_dir, LIGHT_VAES[vae])
    lmap, lshapes = _vae_file_map(lfile)

    def is_dec(native: str | None) -> bool:
        return native is not None and native.startswith(("decoder.", "conv2."))

    dec = {k: s for k, s in lshapes.items() if is_dec(k)}
    lcfg = vae_config_from_keys({**{k: s for k, s in tshapes.items() if not is_dec(k)}, **dec}, full=vcfg)
    notes.append(f"decoder from {lfile.name} (widths x{lcfg.dec_width_scale:g}), encoder from {teacher.name}")

    def light_map(k):
        nk = lmap(k)
        return None if nk is None else K.vae_native(nk)

    return lcfg, [Source([teacher], full_map, only=lambda k: not is_dec(tmap(k))),
                  Source([lfile], light_map, only=lambda k: is_dec(lmap(k)))], stats, notes


def official_config(layout: Layout, with_actions: bool = False, vae_cfg: VAEConfig | None = None) -> ModelConfig:
    """interworld's ModelConfig for an official folder (shapes from its config.json)."""
    fmt = layout.dit_format
    raw = [_json(e / CONFIG) for e in layout.experts]
    fields = [_dit_fields(c, fmt, e) for c, e in zip(raw, layout.experts)]
    if len(fields) == 2 and fields[0] != fields[1]:
        raise CheckpointError(f"{layout.root}: the two experts differ in shape ({fields[0]} vs {fields[1]})")
    f, c0 = fields[0], raw[0]
    ac = c0.get("action_config") or None
    is_mg3 = bool(ac) or bool(c0.get("use_memory"))
    moe = len(layout.experts) == 2
    base = get_preset("a14b-moe" if moe else ("mg3-5b" if (is_mg3 or with_actions) else "ti2v-5b"))
    if vae_cfg is None:
        vae_cfg = base.vae if base.vae.z_dim == f["in_dim"] else dataclasses.replace(base.vae, z_dim=f["in_dim"])
    if vae_cfg.z_dim != f["in_dim"]:
        raise CheckpointError(f"{layout.root}: the VAE has {vae_cfg.z_dim} latent channels, the DiT takes {f['in_dim']}")
    kw = {k: f[k] for k in ("dim", "num_heads", "ffn_dim", "num_layers", "freq_dim", "text_dim", "eps", "text_len")}
    kw.update(vae=vae_cfg, text_encoder="umt5-xxl", patch=(1, 2, 2), qk_norm=True, cross_attn_norm=True)
    temporal = vae_cfg.temporal
    if is_mg3:
        kw.update(action=_action_config(ac, f["dim"], temporal, layout.experts[0]) if ac else None,
                  camera=bool(c0.get("use_memory", True)), rope_sigma=float(c0.get("sigma_theta", 0.0)),
                  cross_attn_residual_from_norm=True)
        if layout.experts[0].name == MG3_VARIANTS["base"]:
            kw.update(steps=50)  # the undistilled model: 50 steps (Matrix-Game-3 generate.py default)
    elif with_actions:
        # a Wan base fine-tuned into an action model: the new modules start at zero and the base's
        # own computation is kept (plain RoPE, cross-attention residual from x), so the
        # model starts exactly as the base; change these in the config before training if wanted
        act = base.action
        n = min(act.num_blocks, f["num_layers"]) if act else 0
        kw.update(action=dataclasses.replace(act, num_blocks=n) if act else None, camera=base.camera,
                  rope_sigma=0.0, cross_attn_residual_from_norm=False)
        if not moe:  # sample as the base does until fine-tuned (50 steps, 24 fps), not as the distilled MG3
            plain = get_preset("ti2v-5b")
            kw.update(steps=plain.steps, fps=plain.fps)
    else:
        kw.update(action=None, camera=False, rope_sigma=0.0, cross_attn_residual_from_norm=False)
    if moe:
        if not with_actions:
            kw.update(action=None)
        ratio = (_json(layout.root / "model_index.json") or {}).get("boundary_ratio")
        if ratio:  # diffusers pipelines record the switch (0.875 T2V, 0.9 I2V); native folders: the preset's
            kw.update(moe_boundary=float(ratio) * 1000.0)
    name = base.name if (is_mg3 or moe or not with_actions) else "ti2v-5b+actions"
    return base.replace(name=name, **kw)


def load_official(path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16,
                  vae_dtype: torch.dtype | None = None, variant: str | None = None, vae: str = "auto",
                  with_actions: bool = False) -> Loaded:
    """Build interworld's DiT and VAE from an official folder, streaming the weights.

    variant: Matrix-Game-3.0 "distilled" (default) or "base". vae: "auto" (the Wan2.2 VAE where
    there is one), "wan", "lightvae" / "lightvae_v2" (MG-LightVAE decoder), or "none".
    with_actions: for a Wan base, add the Matrix-Game action and camera modules, initialised so
    the model starts as the base (zero outputs), ready for `interworld train world --init`.
    """
    from interworld.models.dit import build_dit
    from interworld.models.vae import CausalVAE

    layout = detect(path, variant)
    if layout.is_interworld:
        raise CheckpointError(f"{layout.root} is an interworld checkpoint already: load it with World.from_pretrained")
    report = LoadReport(layout.name, notes=list(layout.notes))
    vcfg, vsources, stats, vnotes = _plan_vae(layout, vae)
    report.notes += vnotes
    cfg = official_config(layout, with_actions, vcfg)
    if vcfg is None and vae != "none":
        report.notes.append("no loadable VAE in this folder: the DiT only")
    with torch.device("meta"):
        dit = build_dit(cfg)
        vae_mod = CausalVAE(cfg.vae) if vcfg is not None else None
    key_map = K.dit_diffusers if layout.dit_format == "diffusers" else K.dit_native
    moe = len(layout.experts) == 2
    sources = [Source(shard_files(e, DIT_STEM), key_map, prefix=(f"{name}." if moe else ""))
               for e, name in zip(layout.experts, EXPERTS)]
    source_has_actions = bool((_json(layout.experts[0] / CONFIG) or {}).get("action_config"))
    allow = K.is_new_module_key if (with_actions and not source_has_actions) else None
    stream_load(dit, sources, device=device, dtype=dtype, where=str(layout.root), layout=layout.name,
                allow_new=allow, report=report)
    vdt = vae_dtype or (dtype if torch.device(device).type == "cuda" else torch.float32)
    if vcfg is not None:
        stream_load(vae_mod, vsources, device=device, dtype=vdt, where=str(layout.vae_dir), layout=layout.name,
                    extra=stats, report=report)
    return Loaded(cfg, dit.eval(), vae_mod.eval() if vcfg is not None else None, layout, report)


# ============================================================================ text encoder
@dataclass
class TextSource:
    kind: str  # "transformers" (a UMT5 folder) or "wan" (Wan's umT5 weights + tokenizer)
    weights: Path  # folder (transformers) or safetensors file (wan)
    tokenizer: Path


def find_text_encoder(path: str | Path) -> TextSource:
    """Where the umT5 encoder of a folder is: a transformers folder, a diffusers pipeline
    (text_encoder/ + tokenizer/), or an official Wan / Matrix-Game folder (converted weights)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"text encoder folder {str(p)!r} does not exist")
    cfg = _json(p / CONFIG)
    if cfg and cfg.get("model_type") in ("umt5", "t5", "mt5"):
        return TextSource("transformers", p, p)
    if (p / "text_encoder").is_dir():
        return TextSource("transformers", p / "text_encoder", p / "tokenizer" if (p / "tokenizer").is_dir() else p)
    for d in (p, p.parent):
        if any((d / f"{T5_STEM}{e}").is_file() for e in (".safetensors", ".pth")):
            tok = d / TOKENIZER_DIR
            if not tok.is_dir():
                raise CheckpointError(f"{d} has {T5_STEM} but no {TOKENIZER_DIR}/ tokenizer folder")
            return TextSource("wan", weights_file(d, T5_STEM), tok)
    raise CheckpointError(f"no umT5 text encoder in {str(p)!r}: expected a transformers UMT5 folder, a diffusers "
                          f"text_encoder/ + tokenizer/, or {T5_STEM}.safetensors + {TOKENIZER_DIR}/")


def load_wan_umt5(file: Path, device="cpu", dtype=torch.bfloat16):
    """transformers' UMT5EncoderModel with Wan's umT5 weights (shapes read off the file)."""
    from transformers import UMT5Config, UMT5EncoderModel

    shapes = {K.t5_native(k): s for k, (_, s) in _header([file]).items()}
    try:
        vocab, d_model = shapes["shared.weight"]
        n_layers = 1 + max(int(m.group(1)) for k in shapes if (m := re.match(r"^encoder\.block\.(\d+)\.", k)))
        d_ff = shapes["encoder.block.0.layer.1.DenseReluDense.wi_1.weight"][0]
        buckets, heads = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        d_attn = shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0]
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{file} does not look like Wan's umT5 encoder (missing {e})") from None
    # facts of Wan's umT5 (wan/modules/t5.py): gated tanh-GELU feed-forward, RMS norms with
    # eps 1e-6, relative positions bucketed up to distance 128, one table per layer
    tcfg = UMT5Config(vocab_size=vocab, d_model=d_model, d_kv=d_attn // heads, d_ff=d_ff, num_layers=n_layers,
                      num_heads=heads, relative_attention_num_buckets=buckets, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
                      tie_word_embeddings=True)
    with torch.device("meta"):
        model = UMT5EncoderModel(tcfg)
    model.encoder.embed_tokens = model.shared  # one table for both names, read once
    stream_load(model, [Source([file], K.t5_native)], device=device, dtype=dtype, where=str(file), layout="Wan umT5",
                tied=["encoder.embed_tokens.weight"])
    return model.eval()


# ============================================================================ convert
def convert(src: str | Path, dst: str | Path, *, device="cpu", dtype=torch.bfloat16, variant: str | None = None,
            vae: str = "auto", with_actions: bool = False, text_encoder: bool = False) -> LoadReport:
    """Write an official folder in interworld's layout (config.json + model.safetensors)."""
    loaded = load_official(src, device=device, dtype=dtype, vae_dtype=torch.float32, variant=variant, vae=vae,
                           with_actions=with_actions)
    rep = loaded.report
    dst = Path(dst)
    if (dst / WEIGHTS).exists() or (dst / CONFIG).exists():
        raise CheckpointError(f"{str(dst)!r} already holds a checkpoint; choose an empty folder")
    extra = {"converted_from": {"layout": rep.layout, "path": str(Path(src).resolve()), "files": rep.files,
                                "new_modules": len(rep.new), "notes": rep.notes}}
    parts = {"dit": loaded.dit} if loaded.vae is None else {"dit": loaded.dit, "vae": loaded.vae}
    save_checkpoint(dst, loaded.cfg, parts, extra=extra)
    if text_encoder:
        from interworld.models.text import UMT5TextEncoder

        enc = UMT5TextEncoder(str(src), loaded.cfg.text_len, device)
        enc.model.save_pretrained(dst / "text_encoder")
        enc.tokenizer.save_pretrained(dst / "text_encoder")
        rep.notes.append(f"umT5 encoder written to {dst / 'text_encoder'} (pass it as --text-encoder)")
    return rep
