"""What every training job shares: devices and torchrun, logs, resumable checkpoints.

GPU time comes in short leases, so every job takes a wall-clock budget, checkpoints
before it runs out, and resumes from the last checkpoint (weights, optimizer state,
step, RNG) when started again on the same folder. Optimizer state is stored with
safetensors too (never pickle), keyed by parameter name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from safetensors.torch import load_file, save_file


# ------------------------------------------------------------------------ distributed
def setup_distributed(device: str | None = None) -> tuple[torch.device, int, int]:
    """(device, rank, world size); under torchrun, one process per GPU with NCCL."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", 0))
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
            dist.init_process_group("nccl")
            return torch.device("cuda", local), rank, world
        dist.init_process_group("gloo")
        return torch.device("cpu"), rank, world
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return dev, 0, 1


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        x = x.detach().clone()
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


def autocast(device: torch.device, precision: str = "bf16"):
    """bf16 autocast on a GPU, nothing on a CPU; one object, reusable for every step.
    precision "fp32" turns it off on a GPU too, with TF32 matmuls and convolutions instead."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision {precision!r}: use bf16 or fp32")
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return contextlib.nullcontext()


def agree(flag: bool, device) -> bool:
    """True on every rank if it is true on any (a stop decision all ranks share)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor(float(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def simple_step(opt: torch.optim.Optimizer, loss: torch.Tensor, step: int, log: "Logger", log_every: int,
                total: int, progress=None) -> int:
    """One optimizer step of the small single-process trainers (pose, decoder); logs the loss and
    reports progress every `log_every` steps. Returns the new step count."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    step += 1
    if step % log_every == 0:
        log.log(step, loss=float(loss.detach()))
        if progress:
            progress(step, total, float(loss.detach()))
    return step


# ------------------------------------------------------------------------ logging
class Logger:
    """JSON lines in `run_dir/log.jsonl`, and TensorBoard when it is installed."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "log.jsonl"
        self.tb = None
        if is_main():
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except Exception:  # tensorboard is optional
                self.tb = None

    def log(self, step: int, **metrics) -> None:
        if not is_main():
            return
        rec = {"step": step, "time": time.time(), **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, float(v), step)


def read_log(run_dir: Path) -> list[dict]:
    p = Path(run_dir) / "log.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


# ------------------------------------------------------------------------ optimizer state
def optimizer_tensors(opt: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, torch.Tensor]:
    """Flatten an optimizer's per-parameter state into named tensors."""
    out = {}
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                t = v if torch.is_tensor(v) else torch.tensor(float(v))
                out[f"{names[id(p)]}::{k}"] = t.detach().cpu().contiguous()
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, names: dict[int, str], tensors: dict[str, torch.Tensor]) -> None:
    for group in opt.param_groups:
        for p in group["params"]:
            prefix = names[id(p)] + "::"
            st = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if st:
                opt.state[p] = {k: (v.to(p.device) if v.dim() > 0 else v.clone()) for k, v in st.items()}


def param_names(modules: dict[str, nn.Module]) -> dict[int, str]:
    return {id(p): f"{prefix}.{n}" for prefix, m in modules.items() for n, p in m.named_parameters()}


def save_training_state(run_dir: Path, step: int, opt: torch.optim.Optimizer, names: dict[int, str],
                        extra: dict | None = None) -> None:
    """optimizer.safetensors + state.json, each written to a temp name and renamed."""
    run_dir = Path(run_dir)
    tmp = run_dir / "optimizer.safetensors.tmp"
    save_file(optimizer_tensors(opt, names), str(tmp))
    os.replace(tmp, run_dir / "optimizer.safetensors")
    state = {"step": step, **(extra or {})}
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, run_dir / "state.json")


def load_training_state(run_dir: Path) -> dict | None:
    p = Path(run_dir) / "state.json"
    return json.loads(p.read_text()) if p.exists() else None


def load_optimizer(run_dir: Path, opt: torch.optim.Optimizer, names: dict[int, str]) -> bool:
    """Restore the optimizer state if the run folder has it; returns whether it did."""
    p = Path(run_dir) / "optimizer.safetensors"
    if p.exists():
        load_optimizer_tensors(opt, names, load_file(str(p)))
    return p.exists()


class Budget:
    """A wall-clock budget: `done()` once `seconds` minus a safety margin have passed (20 s, or a
    tenth of a budget under 200 s)."""

    def __init__(self, seconds: float | None, margin: float | None = None):
        self.t0, self.seconds = time.time(), seconds
        self.margin = margin if margin is not None else min(20.0, (seconds or 0.0) / 10)

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        """Seconds until done() (inf without a budget)."""
        return math.inf if self.seconds is None else self.seconds - self.margin - self.elapsed()

    def done(self) -> bool:
        return self.left() < 0


def steps_for_time(step: int, rate: float, seconds_left: float, cap: int) -> int:
    """Where a schedule should end for it to end when the time does: `step` plus the steps that
    `rate` a second make in `seconds_left`; at least the next step, at most `cap`."""
    return max(step + 1, min(cap, step + int(rate * max(0.0, seconds_left))))


def cosine_lr(step: int, base: float, warmup: int, total: int, floor: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    if total <= warmup:
        return base
    p = min(1.0, (step - warmup) / (total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))
