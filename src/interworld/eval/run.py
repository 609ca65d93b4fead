"""`interworld eval`: judge a world model against the real engine on held-out maps.

For each map and case seed the engine plays the seeded exploring policy (ground truth),
and the model is run from the same first frame on the same keys and mouse. Measured:

- teacher-forced next chunk: real context latents, the next chunk sampled, PSNR/SSIM
  against the engine (and the repeat-last-frame floor);
- rollout: the whole run generated on the model's own output, PSNR/SSIM per second, and
  the drift score (eval/drift.py) of its last 10 s against its first 10 s;
- revisits: a 360-degree turn in place and a walk out and back; the return frame against
  the first-visit frame, for the engine and for the model;
- action following: with a pose estimator (`interworld train pose`), the yaw change and
  displacement between frames `gap` apart, estimated on the generated and on the real
  video, against the engine's true motion for the same actions;
- speed: frames per second of the rollout and the time of each chunk (the latency from an
  action to the first frame that shows it, on this device);
- only with backbone weight files from the user: LPIPS per rollout frame against the engine
  (eval/lpips.py) and FVD of all rollout clips against all engine clips (eval/fvd.py).

The repeat-last baseline (the first real frame repeated) is measured beside every model
figure; `baseline="repeat-last"` measures it alone, with no model at all.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from interworld.eval.drift import drift_score, sharpness
from interworld.eval.metrics import coarse_psnr, psnr, ssim
from interworld.eval.plots import line_plot
from interworld.eval.replay import EpisodeEnded, replay
from interworld.eval.scripts import script
from interworld.eval.strips import save_strip
from interworld.train.world import DEFAULT_PROMPT as PROMPT  # the prompt every training clip had
from interworld.train.world import WorldBatch, teacher_forced_prediction


@dataclass
class EvalArgs:
    out: str
    maps: list[str] = field(default_factory=lambda: ["freedoom2:MAP19", "freedoom2:MAP20"])
    checkpoint: str | None = None  # a folder, or a preset name (the shipped weights)
    random_init: bool = False
    baseline: str | None = None  # "repeat-last": evaluate the floor alone
    cases: int = 1  # seeds per map
    seconds: float = 60.0
    warmup: int = 60  # policy frames before each case starts (the same place for the same seed)
    context_latents: int = 7  # teacher forcing
    tf_windows: int = 4  # teacher-forced windows per case
    steps: int | None = None
    device: str = "cpu"
    seed: int = 0
    revisits: bool = True
    pose_model: str | None = None  # a folder from `interworld train pose`
    memory: bool | None = None  # memory retrieval; None: the model's default (on if it was trained with it)
    lpips_weights: list[str] | None = None  # safetensors: VGG16 trunk + LPIPS v0.1 heads (eval/lpips.py)
    fvd_weights: str | None = None  # safetensors: piergiaj's Inception-I3D (eval/fvd.py)
    batch: int = 1  # rollouts generated at once (per-item action streams); 1: each on its own, as `play` runs
    camera: str = "actions"  # the rollouts' camera poses: integrated from the actions, as a player's are, or "engine"
    mouse_rest: float = 0.0  # the cases' policy rests the mouse on this share of spans (0: as the training data)


def _mean(xs) -> float:
    xs = [float(x) for x in xs]
    return float(np.mean(xs)) if xs else float("nan")


def _per_second(v: np.ndarray, fps: float) -> list[float]:
    n = max(1, int(round(fps)))
    return [float(np.mean(v[i:i + n])) for i in range(0, len(v), n)]


def _finite(x: float) -> float | str:
    return float(x) if np.isfinite(x) else ("inf" if x > 0 else "-inf")


def teacher_forced(world, clip: dict, context_latents: int, windows: int, steps: int, seed: int, cfg=None,
                   scheme: str | None = None, lead: int = 12) -> dict:
    """Next-chunk PSNR/SSIM with real context, at `windows` places along the clip, beside the
    repeat-last floor (world None: the floor alone, for `cfg` and `scheme`). Up to `lead` latents
    of the frames before a window are encoded and decoded first (`stream_latents`)."""
    from interworld.engine.world import to_uint8

    cfg = world.cfg if world is not None else cfg
    scheme = world.scheme if world is not None else (scheme or cfg.scheme)
    tr = cfg.vae.temporal
    chunk = cfg.chunk_latents if scheme == "causal" else cfg.new_latents
    T = 1 + (context_latents + chunk - 1) * tr
    n = len(clip["frames"])
    # window starts on latent boundaries, so that the frames before one (up to `lead` latents of
    # them) put the encoder and decoder in a long stream's state, as in training and generation
    starts = (np.linspace(0, n - T, num=max(1, windows)) // tr * tr).astype(int) if n >= T else []
    out = {"psnr": [], "ssim": [], "coarse_psnr": [], "repeat_psnr": [], "repeat_ssim": [], "repeat_coarse_psnr": [],
           "sharpness": [], "real_sharpness": []}
    by_frame = {"psnr_by_frame": [], "repeat_psnr_by_frame": []}  # PSNR of the k-th frame after the context
    for s in starts:
        s = int(s)
        k = min(s, lead * tr)
        keys = torch.cat([torch.zeros(1, clip["keys"].shape[1]), clip["keys"][s:s + T - 1]])
        mouse = torch.cat([torch.zeros(1, 2), clip["mouse"][s:s + T - 1]])
        frames = clip["frames"][s:s + T]
        real = frames[1 + (context_latents - 1) * tr:]
        rep = np.repeat(frames[(context_latents - 1) * tr][None], len(real), 0)
        if world is not None:
            b = WorldBatch(torch.from_numpy(frames)[None], keys[None], mouse[None],
                           torch.from_numpy(clip["pose"][s:s + T])[None], [PROMPT])
            pred, _ = teacher_forced_prediction(world.dit, world.vae, world.text_encoder, b, cfg, scheme,
                                                world.device, context_latents=context_latents, steps=steps, seed=seed,
                                                lead=torch.from_numpy(clip["frames"][s - k:s])[None] if k else None)
            p = to_uint8(pred)
            frame_psnr = psnr(p, real)
            by_frame["psnr_by_frame"].append(frame_psnr)
            out["psnr"].append(frame_psnr.mean())
            out["ssim"].append(ssim(p, real).mean())
            out["coarse_psnr"].append(coarse_psnr(p, real).mean())
            out["sharpness"].append(sharpness(p))
        out["real_sharpness"].append(sharpness(real))
        repeat_psnr = psnr(rep, real)
        by_frame["repeat_psnr_by_frame"].append(repeat_psnr)
        out["repeat_psnr"].append(repeat_psnr.mean())
        out["repeat_ssim"].append(ssim(rep, real).mean())
        out["repeat_coarse_psnr"].append(coarse_psnr(rep, real).mean())
    return {**{k: _mean(v) for k, v in out.items()}, **{k: _by_frame(v) for k, v in by_frame.items()}}


def _by_frame(rows) -> list[float]:
    """Per position, the mean over windows or cases of equal length (a model's chunk)."""
    return [float(x) for x in np.mean(np.stack([np.asarray(r, dtype=np.float64) for r in rows]), 0)] if rows else []


def evaluate(a: EvalArgs, progress=None) -> dict:
    """Run everything; write metrics.json, plots, strips and summary.md under `a.out`."""
    from interworld.engine.world import World
    from interworld.eval.rollout import rollout, rollouts

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    world = None
    if a.baseline is None:
        world = World.from_pretrained(a.checkpoint or "small", device=a.device, random_init=a.random_init,
                                      steps=a.steps, seed=a.seed, memory=a.memory)
        cfg = world.cfg
    else:
        from interworld.config import get_preset
        from interworld.io.checkpoint import read_config

        cfg = read_config(a.checkpoint)[0] if a.checkpoint and Path(a.checkpoint).is_dir() else get_preset("small")
    pose_net = None
    if a.pose_model:
        from interworld.train.pose import load_pose

        pose_net = load_pose(a.pose_model)
    lp = i3d = None  # the perceptual backbones, only from the user's files
    if a.lpips_weights:
        from interworld.eval.lpips import LPIPS

        lp = LPIPS.from_files(a.lpips_weights, device=a.device)
    if a.fvd_weights:
        from interworld.eval.fvd import CLIP, I3D

        i3d = I3D.from_file(a.fvd_weights, device=a.device)
    clip_features = {"engine": [], "model": [], "repeat_last": []}
    fps, H, W = cfg.fps, cfg.height, cfg.width
    n_frames = int(round(a.seconds * fps))
    window = max(1, min(int(round(10 * fps)), n_frames // 2))
    steps = a.steps or cfg.steps
    cases = [(m, a.seed + i) for m in a.maps for i in range(a.cases)]
    total = len(cases) * (1 + (2 if a.revisits else 0))
    done = 0

    def tick(what):  # a case or revisit is done: on disk before it is reported
        nonlocal done
        done += 1
        save_metrics(complete=False)
        if progress:
            progress(done, total, what)

    results = {"cases": [], "revisits": []}

    def save_metrics(complete: bool):
        """metrics.json over the cases done so far, written whole (temp file, then rename), so that
        an eval stopped early (a lease's time limit, Ctrl-C) leaves every finished case behind."""
        results["complete"] = complete
        results["summary"] = summarize(results, world is not None)
        results["setup"] = {**asdict(a), "fps": fps, "height": H, "width": W, "steps": steps,
                            "model": cfg.name, "scheme": world.scheme if world else None,
                            "memory": world.memory if world else None, "noise": "per case",
                            "torch": torch.__version__, "threads": torch.get_num_threads()}
        tmp = out / "metrics.json.tmp"
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, out / "metrics.json")

    curves_model, curves_repeat = [], []

    def ground_truth(map_id: str, seed: int) -> tuple[str, int, dict]:
        for _ in range(5):  # a seed whose player dies in a damaging floor is replaced by the next
            try:
                return map_id, seed, replay(map_id, None, None, seed=seed, warmup=a.warmup, height=H, width=W,
                                            policy_frames=n_frames, mouse_rest=a.mouse_rest)
            except EpisodeEnded:
                seed += 1000
        raise RuntimeError(f"five seeds in a row ended early on {map_id}: use shorter --seconds")

    for g0 in range(0, len(cases), a.batch):
        group = [ground_truth(*c) for c in cases[g0:g0 + a.batch]]
        gens, wall = [None] * len(group), 0.0
        if world is not None:
            t0 = time.perf_counter()  # the group's rollouts as one batch (per-item action streams)
            gens = rollouts(world, [gt["frames"][0] for *_, gt in group], [gt["keys"] for *_, gt in group],
                            [gt["mouse"] for *_, gt in group], PROMPT, seed=[seed for _, seed, _ in group],
                            camera=[gt["pose"] for *_, gt in group] if a.camera == "engine" else None)
            wall = time.perf_counter() - t0
        for (map_id, seed, gt), gen in zip(group, gens):
            real = gt["frames"]
            rep = np.repeat(real[:1], len(real), 0)
            case = {"map": map_id, "seed": seed, "frames": int(n_frames)}
            rp, rs = psnr(rep[1:], real[1:]), ssim(rep[1:], real[1:])
            case["repeat_last"] = {"psnr": _mean(rp), "ssim": _mean(rs), "psnr_per_s": _per_second(rp, fps),
                                   "coarse_psnr": _mean(coarse_psnr(rep[1:], real[1:]))}
            curves_repeat.append(rp)
            case["engine_drift"] = drift_score(real, window)
            case["engine_sharpness"] = sharpness(real[1:])
            case["engine_coarse_sharpness"] = sharpness(real[1:], 4)
            case["teacher_forced"] = teacher_forced(world, gt, a.context_latents, a.tf_windows, steps, seed, cfg=cfg)
            if world is not None:
                g = gen["frames"]
                gp, gs = psnr(g[1:], real[1:]), ssim(g[1:], real[1:])
                curves_model.append(gp)
                case["rollout"] = {"psnr": _mean(gp), "ssim": _mean(gs), "psnr_per_s": _per_second(gp, fps),
                                   "coarse_psnr": _mean(coarse_psnr(g[1:], real[1:])),
                                   "ssim_per_s": _per_second(gs, fps), "drift": drift_score(g, window),
                                   "sharpness": sharpness(g[1:]), "coarse_sharpness": sharpness(g[1:], 4),
                                   "sharpness_per_s": [sharpness(g[i:i + int(fps)])
                                                       for i in range(0, len(g), int(fps))]}
                case["camera"] = camera_error(gen["poses"], gt["pose"], cfg.vae.temporal)
                if pose_net is not None:
                    case["action_following"] = action_following(pose_net, real, g, gt["pose"])
                cs = np.array(gen["chunk_s"][1:] or gen["chunk_s"])  # the first chunk warms caches up
                case["speed"] = {"fps": float(n_frames / wall), "chunk_s_p50": float(np.median(cs)),
                                 "chunk_s_p99": float(np.percentile(cs, 99)),
                                 "frames_per_chunk": world.frames_per_step, "streams": len(group)}
                marks = [t for t in (0, 4, 8, int(fps), int(2 * fps), int(5 * fps), int(10 * fps), int(30 * fps),
                                     n_frames) if t <= n_frames]
                marks = sorted(set(marks))
                save_strip(out / f"strip_{map_id.replace(':', '-')}_s{seed}.png",
                           {"engine": real[marks], "model": g[marks]}, every=1,
                           labels=[f"{t / fps:.1f}s" for t in marks])
            if lp is not None:  # the engine frames' features once, for the model and the floor
                d = lp.against(real[1:], [rep[:1]] + ([g[1:]] if world is not None else []))
                for part, v in zip(("repeat_last", "rollout"), d):
                    case[part].update(lpips=_mean(v), lpips_per_s=_per_second(v, fps))
            if i3d is not None:
                clip_features["engine"].append(i3d.features(real[1:]))
                f = i3d.features(rep[1:1 + CLIP])  # every repeat-last clip is the same clip
                clip_features["repeat_last"].append(np.repeat(f, len(clip_features["engine"][-1]), 0))
                if world is not None:
                    clip_features["model"].append(i3d.features(g[1:]))
            results["cases"].append(case)
            tick(f"{map_id} seed {seed}")

            if a.revisits:
                for name in ("turn_360", "out_and_back"):
                    k, m = script(name)
                    try:
                        rv = replay(map_id, k, m, seed=seed, warmup=a.warmup, height=H, width=W)
                    except EpisodeEnded:
                        tick(name)
                        continue
                    first, back = rv["frames"][:1], rv["frames"][-1:]
                    r = {"map": map_id, "seed": seed, "script": name,
                         "engine_psnr": _finite(psnr(back, first)[0]), "engine_ssim": float(ssim(back, first)[0])}
                    if world is not None:
                        g = rollout(world, first[0], k, m, PROMPT, seed=seed,
                                    camera=rv["pose"] if a.camera == "engine" else None)["frames"]
                        r["model_psnr"] = _finite(psnr(g[-1:], first)[0])
                        r["model_ssim"] = float(ssim(g[-1:], first)[0])
                        save_strip(out / f"revisit_{name}_{map_id.replace(':', '-')}_s{seed}.png",
                                   {"engine": rv["frames"], "model": g}, every=max(1, len(g) // 12))
                    results["revisits"].append(r)
                    tick(name)

    if i3d is not None:
        results["fvd"] = fvd_results(clip_features)
    if curves_model or curves_repeat:
        series = {}
        if curves_model:
            series["model"] = _per_second(np.mean([c for c in curves_model], 0), fps)
        series["repeat-last"] = _per_second(np.mean([c for c in curves_repeat], 0), fps)
        line_plot(out / "psnr_over_time.png", series, "rollout PSNR against the engine", "seconds", "dB")
    if world is not None:
        sh = {f"{c['map']} s{c['seed']}": c["rollout"]["sharpness_per_s"] for c in results["cases"]}
        line_plot(out / "drift_sharpness.png", sh, "sharpness of the generated video", "seconds", "Laplacian var")
    save_metrics(complete=True)
    (out / "summary.md").write_text(markdown(results))
    return results


def fvd_results(feats: dict[str, list[np.ndarray]]) -> dict:
    """FVD of the model's and the floor's clips (all cases together) against the engine's."""
    from interworld.eval.fvd import CLIP, SIZE, STRIDE, fvd

    cat = {k: np.concatenate(v) for k, v in feats.items() if v}
    r = {"clips": len(cat["engine"]), "clip_frames": CLIP, "stride": STRIDE, "size": SIZE,
         "repeat_last": fvd(cat["engine"], cat["repeat_last"])}
    if "model" in cat:
        r["model"] = fvd(cat["engine"], cat["model"])
    return r


def action_following(net, real: np.ndarray, gen: np.ndarray, pose: np.ndarray) -> dict:
    """Estimated motion on generated and real video against the engine's true motion."""
    from interworld.models.pose import move_error, relative_motion, yaw_error

    g = net.cfg.gap
    p = torch.from_numpy(pose).double()
    true = relative_motion(p[:-g], p[g:]).float()
    est_gen, est_real = net.along(gen), net.along(real)
    moving = true[:, 0].abs() > 2.0  # where the view turned, did it turn the right way?
    sign = lambda e: float((torch.sign(e[moving, 0]) == torch.sign(true[moving, 0])).float().mean()) if moving.any() else float("nan")  # noqa: E731
    return {"model_yaw_mae_deg": yaw_error(est_gen, true), "model_move_mae": move_error(est_gen, true),
            "model_yaw_sign_agreement": sign(est_gen), "model_yaw_gain": yaw_gain(est_gen[moving, 0], true[moving, 0]),
            "estimator_on_real_yaw_mae_deg": yaw_error(est_real, true), "estimator_on_real_move_mae": move_error(est_real, true),
            "estimator_on_real_yaw_sign_agreement": sign(est_real),
            "estimator_on_real_yaw_gain": yaw_gain(est_real[moving, 0], true[moving, 0]), "gap_frames": g}


def yaw_gain(est: torch.Tensor, true: torch.Tensor) -> float:
    """Least-squares slope through the origin of the estimated turn on the engine's: 1 turns as far
    as the engine, below 1 too little. The yaw error alone cannot tell a world that turns too little
    from one that turns by the right amount with noise."""
    den = float((true * true).sum())
    return float((est * true).sum()) / den if den > 0 else float("nan")


def camera_error(used: torch.Tensor, engine: np.ndarray, temporal: int) -> dict:
    """The camera poses a rollout's model was given (one per latent frame: the start frame's, then
    the last of each group of `temporal`) against the engine's: the error of the displacement from
    one latent frame to the next, in map units, beside the engine's displacement. The model is
    conditioned on these frame-to-frame motions, so a pose estimate is judged on them."""
    true = torch.as_tensor(np.asarray(engine), dtype=torch.float32)[::temporal][: used.shape[0]]
    used = used[: true.shape[0]].float()
    d_used, d_true = used[1:, :2] - used[:-1, :2], true[1:, :2] - true[:-1, :2]
    return {"displacement_error": float((d_used - d_true).norm(dim=1).mean()),
            "engine_displacement": float(d_true.norm(dim=1).mean())}


def summarize(r: dict, has_model: bool) -> dict:
    cs = r["cases"]
    s = {"repeat_last_rollout_psnr": _mean(c["repeat_last"]["psnr"] for c in cs),
         "repeat_last_rollout_ssim": _mean(c["repeat_last"]["ssim"] for c in cs),
         "engine_drift": _mean(c["engine_drift"]["drift"] for c in cs),
         "engine_sharpness": _mean(c["engine_sharpness"] for c in cs),
         "engine_coarse_sharpness": _mean(c["engine_coarse_sharpness"] for c in cs),
         "tf_real_sharpness": _mean(c["teacher_forced"]["real_sharpness"] for c in cs),
         "tf_repeat_psnr": _mean(c["teacher_forced"]["repeat_psnr"] for c in cs),
         "tf_repeat_ssim": _mean(c["teacher_forced"]["repeat_ssim"] for c in cs),
         "tf_repeat_coarse_psnr": _mean(c["teacher_forced"]["repeat_coarse_psnr"] for c in cs),
         # how far ahead a frame is decides most of its error (docs/TRAINING.md, run 31)
         "tf_repeat_psnr_by_frame": _by_frame([c["teacher_forced"]["repeat_psnr_by_frame"] for c in cs]),
         "repeat_last_rollout_coarse_psnr": _mean(c["repeat_last"]["coarse_psnr"] for c in cs)}
    if has_model:
        s.update(
            tf_psnr=_mean(c["teacher_forced"]["psnr"] for c in cs),
            tf_ssim=_mean(c["teacher_forced"]["ssim"] for c in cs),
            rollout_psnr=_mean(c["rollout"]["psnr"] for c in cs),
            rollout_ssim=_mean(c["rollout"]["ssim"] for c in cs),
            tf_coarse_psnr=_mean(c["teacher_forced"]["coarse_psnr"] for c in cs),
            tf_psnr_by_frame=_by_frame([c["teacher_forced"]["psnr_by_frame"] for c in cs]),
            rollout_coarse_psnr=_mean(c["rollout"]["coarse_psnr"] for c in cs),
            drift=_mean(c["rollout"]["drift"]["drift"] for c in cs),
            tf_sharpness=_mean(c["teacher_forced"]["sharpness"] for c in cs),
            rollout_sharpness=_mean(c["rollout"]["sharpness"] for c in cs),
            rollout_coarse_sharpness=_mean(c["rollout"]["coarse_sharpness"] for c in cs),
            camera_displacement_error=_mean(c["camera"]["displacement_error"] for c in cs if "camera" in c),
            engine_displacement=_mean(c["camera"]["engine_displacement"] for c in cs if "camera" in c),
            fps=_mean(c["speed"]["fps"] for c in cs),
            chunk_s_p50=_mean(c["speed"]["chunk_s_p50"] for c in cs))
    if "lpips" in cs[0]["repeat_last"]:
        s["repeat_last_rollout_lpips"] = _mean(c["repeat_last"]["lpips"] for c in cs)
        if has_model:
            s["rollout_lpips"] = _mean(c["rollout"]["lpips"] for c in cs)
    if "fvd" in r:
        s["repeat_last_fvd"], s["fvd_clips"] = r["fvd"]["repeat_last"], r["fvd"]["clips"]
        if has_model:
            s["fvd"] = r["fvd"]["model"]
    af = [c["action_following"] for c in cs if "action_following" in c]
    if af:
        for k in af[0]:
            s[f"af_{k}"] = _mean(x[k] for x in af)
    for name in ("turn_360", "out_and_back"):
        rv = [x for x in r["revisits"] if x["script"] == name]
        if rv:
            s[f"{name}_engine_psnr"] = _mean(float(x["engine_psnr"]) for x in rv)
            if has_model:
                s[f"{name}_model_psnr"] = _mean(float(x["model_psnr"]) for x in rv)
                s[f"{name}_model_ssim"] = _mean(x["model_ssim"] for x in rv)
    return s


def markdown(r: dict) -> str:
    s, st = r["summary"], r["setup"]
    f = lambda x: "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}" if abs(x) < 10 else f"{x:.2f}"  # noqa: E731
    lines = [f"# interworld eval: {st['model']} ({st['checkpoint'] or 'shipped'}), {', '.join(st['maps'])}", "",
             f"{st['height']}x{st['width']} at {st['fps']} fps, {st['seconds']} s rollouts, {st['steps']} steps, "
             f"{st['cases']} case(s) per map, memory {'on' if st.get('memory') else 'off'}, "
             f"camera poses from the {'engine' if st.get('camera') == 'engine' else 'actions'}, "
             f"mouse at rest in {st.get('mouse_rest', 0.0):g} of the policy's spans, device {st['device']}, "
             f"torch {st['torch']}", "",
             "| metric | model | repeat-last |", "|---|---|---|"]
    perceptual = []  # only where the user passed the backbones' weights
    if "repeat_last_rollout_lpips" in s:
        perceptual.append(("rollout LPIPS (VGG16, v0.1; lower is better)", s.get("rollout_lpips"),
                           s["repeat_last_rollout_lpips"]))
    if "fvd" in r:
        fv = r["fvd"]
        perceptual.append((f"FVD (I3D, {fv['clips']} clips of {fv['clip_frames']} frames a side; lower is better)",
                           s.get("fvd"), s["repeat_last_fvd"]))
    tf = f"teacher-forced next chunk after {st['context_latents']} real latents,"
    rows = [(f"{tf} PSNR (dB)", s.get("tf_psnr"), s.get("tf_repeat_psnr")),
            (f"{tf} SSIM", s.get("tf_ssim"), s.get("tf_repeat_ssim")),
            ("rollout PSNR (dB)", s.get("rollout_psnr"), s["repeat_last_rollout_psnr"]),
            ("rollout SSIM", s.get("rollout_ssim"), s["repeat_last_rollout_ssim"]),
            # at full size PSNR prefers a haze to sharp texture a pixel off; at 1/4 size it judges the layout
            (f"{tf} PSNR at 1/4 size (dB)", s.get("tf_coarse_psnr"), s.get("tf_repeat_coarse_psnr")),
            ("rollout PSNR at 1/4 size (dB)", s.get("rollout_coarse_psnr"), s.get("repeat_last_rollout_coarse_psnr")),
            *perceptual,
            ("drift score, last 10 s vs first 10 s (engine: %s)" % f(s["engine_drift"]), s.get("drift"), 0.0),
            # PSNR rewards a blurred mean; the variance of the Laplacian shows the blur (docs/TRAINING.md, run 9)
            ("teacher-forced sharpness (engine's frames: %s)" % f(s["tf_real_sharpness"]), s.get("tf_sharpness"), None),
            ("rollout sharpness (engine's frames: %s)" % f(s["engine_sharpness"]), s.get("rollout_sharpness"), None),
            ("rollout sharpness at 1/4 size (engine's frames: %s)" % f(s["engine_coarse_sharpness"]),
             s.get("rollout_coarse_sharpness"), None),
            ("360 turn: return frame PSNR (engine: %s)" % f(s.get("turn_360_engine_psnr")), s.get("turn_360_model_psnr"),
             None),
            ("out and back: return frame PSNR (engine: %s)" % f(s.get("out_and_back_engine_psnr")),
             s.get("out_and_back_model_psnr"), None),
            ("camera poses given: displacement error per latent frame, map units (the engine's displacement: %s)"
             % f(s.get("engine_displacement")), s.get("camera_displacement_error"), None),
            ("action following: yaw error, deg per %s frames (estimator on real video: %s)"
             % (f(s.get("af_gap_frames")), f(s.get("af_estimator_on_real_yaw_mae_deg"))), s.get("af_model_yaw_mae_deg"),
             None),
            ("action following: displacement error, map units (estimator on real video: %s)"
             % f(s.get("af_estimator_on_real_move_mae")), s.get("af_model_move_mae"), None),
            ("action following: turns in the right direction (real video: %s)"
             % f(s.get("af_estimator_on_real_yaw_sign_agreement")), s.get("af_model_yaw_sign_agreement"), None),
            ("action following: yaw gain, estimated turn / engine's (real video: %s)"
             % f(s.get("af_estimator_on_real_yaw_gain")), s.get("af_model_yaw_gain"), None),
            ("frames per second (rollout, decode included)", s.get("fps"), None),
            ("seconds per chunk, p50", s.get("chunk_s_p50"), None)]
    lines += [f"| {name} | {f(m)} | {f(b)} |" for name, m, b in rows]
    if s.get("tf_repeat_psnr_by_frame"):
        ahead = lambda v: ", ".join(f"{k + 1}: {x:.2f}" for k, x in enumerate(v))  # noqa: E731
        lines += ["", f"{tf} PSNR by frames ahead (dB): "
                  + (f"model {ahead(s['tf_psnr_by_frame'])}; " if s.get("tf_psnr_by_frame") else "")
                  + f"repeat-last {ahead(s['tf_repeat_psnr_by_frame'])}"]
    return "\n".join(lines) + "\n"
