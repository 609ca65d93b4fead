"""VAE decode overlapped with the next chunk's denoising, on the same device.

A worker thread decodes the chunks in order, on its own CUDA stream, while the caller's
thread goes on to generate the next chunk: the GPU runs the two side by side wherever one
alone leaves it idle (launch gaps, small kernels). The cost is one chunk of extra latency
when the decode is the longer of the two; at most one chunk waits, so the slower side sets
the pace instead of a queue growing without bound. On a CPU the two threads share the cores.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time

import torch


class DecodeWorker:
    """`submit(z, t_start)` hands over a chunk's latents (normalized, [B, C, F, h, w]); `close()`
    waits for the last one and returns a record per chunk: t_start, t_first (its first frame
    decoded), t_done, decode_s, and the frames [T, H, W, 3] uint8 when keep_frames is set."""

    def __init__(self, vae, device: torch.device, keep_frames: bool = False):
        self.vae, self.device, self.keep = vae, torch.device(device), keep_frames
        self.decoder = vae.stream_decoder()
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        # one chunk may wait: when decoding is the slower side, the generator is held back rather
        # than running ahead and piling up latency
        self.jobs: queue.Queue = queue.Queue(maxsize=1)
        self.records: list[dict] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="interworld-decode", daemon=True)
        self.thread.start()

    def submit(self, z: torch.Tensor, t_start: float) -> None:
        if self.error is not None:
            raise RuntimeError("the decode thread failed") from self.error
        event = None
        if self.stream is not None:  # the decode must wait for the latents, not for everything after
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
            z.record_stream(self.stream)
        self.jobs.put((z, t_start, event))

    def _sync(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()

    @torch.no_grad()
    def _run(self) -> None:
        from interworld.engine.world import to_uint8

        try:
            while (job := self.jobs.get()) is not None:
                z, t_start, event = job
                ctx = torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()
                with ctx:
                    if event is not None:
                        self.stream.wait_event(event)
                    t0 = time.perf_counter()
                    zz = self.vae.denormalize(z.float())
                    first = self.decoder.decode(zz[:, :, :1])
                    self._sync()
                    t_first = time.perf_counter()
                    rest = self.decoder.decode(zz[:, :, 1:]) if zz.shape[2] > 1 else None
                    self._sync()
                    t_done = time.perf_counter()
                rec = {"t_start": t_start, "t_first": t_first, "t_done": t_done, "decode_s": t_done - t0}
                if self.keep:
                    video = first if rest is None else torch.cat([first, rest], 2)
                    rec["frames"] = to_uint8(video)
                self.records.append(rec)
        except BaseException as e:  # reported to the caller at its next submit or at close
            self.error = e

    def close(self) -> list[dict]:
        self.jobs.put(None)
        self.thread.join()
        if self.error is not None:
            raise RuntimeError("the decode thread failed") from self.error
        return self.records

