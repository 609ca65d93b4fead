"""Training clips as latents, encoded once by the frozen VAE.

World-model training never updates the VAE, so encoding every clip at every step (a
third of the step on a GPU, plus moving uint8 frames to the device) is wasted work.
Each shard is encoded once as one causal sequence, and every fourth frame once more
on its own as a start image. A clip starting at frame 4j is then

    [image latent of frame 4j, sequence latents j+1 .. j+F-1]

where sequence latent m covers frames 4m-3 .. 4m, as the generator's latents do after
its start image. Latents, actions and poses stay on the device; a batch is one gather.
"""

from __future__ import annotations

import contextlib

import torch

from interworld.data.shards import ClipDataset
from interworld.train.world import to_video


class LatentClips:
    def __init__(self, clips: ClipDataset, vae, latents: int, device, seed: int = 0, amp=None):
        tr = vae.cfg.temporal
        self.latents, self.tr, self.device = latents, tr, torch.device(device)
        seq, img, keys, mouse, pose, starts, firsts = [], [], [], [], [], [], []
        n_lat = 0
        amp = amp or contextlib.nullcontext()
        for s in clips.shards:
            k = (len(s) - 1) // tr  # sequence latents after the first frame
            if k < latents - 1:
                continue
            frames = torch.from_numpy(s.frames[: 1 + k * tr])
            seq.append(self._encode_sequence(vae, frames, device, amp))
            with torch.no_grad(), amp:
                im = frames[::tr][:k + 1]  # frames 0, 4, 8, ... each alone
                img.append(torch.cat([vae.normalize(vae.encode(to_video(c[:, None].to(device))).float())[:, :, 0]
                                      for c in im.split(64)]).half())
            keys.append(torch.from_numpy(s.keys[: 1 + k * tr]).float())
            mouse.append(torch.from_numpy(s.mouse[: 1 + k * tr]).float())
            pose.append(torch.from_numpy(s.pose[: 1 + k * tr]).float())
            # valid clip starts j (shard-local) are 0 .. k - (latents - 1); stored as global latent indices
            starts.append(torch.arange(k - latents + 2) + n_lat)
            firsts.append(torch.full((k + 1,), n_lat))  # each latent's shard begins at this global index
            # pad the frame arrays so that global latent index x always maps to frame x * tr
            pad = tr - 1
            keys[-1] = torch.cat([keys[-1], keys[-1].new_zeros(pad, keys[-1].shape[1])])
            mouse[-1] = torch.cat([mouse[-1], mouse[-1].new_zeros(pad, 2)])
            pose[-1] = torch.cat([pose[-1], pose[-1][-1:].expand(pad, -1)])
            n_lat += k + 1
        if not seq:
            raise ValueError(f"no shard is long enough for clips of {latents} latent frames")
        self.seq = torch.cat(seq).to(device)  # [N, C, h, w] fp16
        self.img = torch.cat(img).to(device)
        self.keys = torch.cat(keys).to(device)
        self.mouse = torch.cat(mouse).to(device)
        self.pose = torch.cat(pose).to(device)
        self.starts = torch.cat(starts).to(device)
        self.shard_first = torch.cat(firsts).to(device)
        self._memory_starts: dict[int, torch.Tensor] = {}
        self.height, self.width = clips.shards[0].frames.shape[1:3]
        self.gen = torch.Generator(device=self.device).manual_seed(seed)

    @staticmethod
    @torch.no_grad()
    def _encode_sequence(vae, frames, device, amp) -> torch.Tensor:
        """One shard as one causal sequence -> [1 + k, C, h, w]. Encoded whole: the encoder has no
        streaming state, and a shard (512 frames at 128x160) fits a GPU easily."""
        with amp:
            z = vae.normalize(vae.encode(to_video(frames[None].to(device))).float())
        return z[0].transpose(0, 1).half()

    @property
    def clips(self) -> int:
        return int(self.starts.numel())

    def sample(self, batch: int, memory: int = 0) -> dict[str, torch.Tensor]:
        """latents [B, C, F, h, w] float32, per-frame keys/mouse/pose [B, T, .] and the clips'
        global start latents `start` [B]. memory > 0: only clips with at least that many
        earlier latents in their shard, to retrieve memory frames from (`memory`)."""
        F_, tr = self.latents, self.tr
        starts = self.starts
        if memory:
            if memory not in self._memory_starts:
                self._memory_starts[memory] = starts[starts - self.shard_first[starts] >= memory]
            starts = self._memory_starts[memory]
            if not len(starts):
                raise ValueError(f"no clip has {memory} earlier latent frames in its shard to take memory from")
        j = starts[torch.randint(len(starts), (batch,), device=self.device, generator=self.gen)]
        lat = self.seq[j[:, None] + torch.arange(F_, device=self.device)]  # [B, F, C, h, w]
        lat[:, 0] = self.img[j]  # the clip's first frame encoded alone, as a stream's start image
        fr = j[:, None] * tr + torch.arange(1 + (F_ - 1) * tr, device=self.device)
        keys, mouse = self.keys[fr], self.mouse[fr]
        keys[:, 0], mouse[:, 0] = 0, 0  # the first frame is given, not reached by an action
        return {"latents": lat.transpose(1, 2).float(), "keys": keys, "mouse": mouse, "pose": self.pose[fr], "start": j}

    def memory(self, start: torch.Tensor, k: int, query_from: int, frustum: dict, window: int = 128) -> dict:
        """Memory frames for clips starting at global latents `start` [B]: of the `window` latents
        before each clip in its shard, the k whose views overlap most those of the clip's latents
        from `query_from` on (the frames being generated), as the generator retrieves from its bank.

        Returns {"latents" [B, C, k, h, w], "poses" [B, k, 5], "pos" [B, k] (latent positions
        relative to the clip's first latent: negative), "query_from"}."""
        from interworld.models.memory import overlap_topk

        back = torch.arange(window, 0, -1, device=self.device)  # window .. 1 latents back, in time order
        cand = start[:, None] - back  # [B, K]
        valid = cand >= self.shard_first[start][:, None]
        cand = cand.clamp(min=0)
        q = start[:, None] + torch.arange(query_from, self.latents, device=self.device)
        pick = overlap_topk(self.pose[q * self.tr], self.pose[cand * self.tr], valid, k, **frustum)
        ids = cand.gather(1, pick)
        return {"latents": self.seq[ids].transpose(1, 2).float(), "poses": self.pose[ids * self.tr],
                "pos": ids - start[:, None], "query_from": query_from}
