"""An exploring policy that moves like a person playing with keyboard and mouse.

It holds keys for spans (mostly forward, sometimes strafing or backing up), turns and
looks with smooth, continuous mouse motion (an Ornstein-Uhlenbeck yaw rate), pauses,
turns in place through full circles now and then, backs up and turns away when stuck,
and walks back the way it came (turn 180 degrees, replay its recent moves mirrored),
so the data has revisits for the memory to learn from. Deterministic given a seed.

`mouse_rest` is the share of key spans in which the hand leaves the mouse alone (no turn, no
look). Without it the yaw rate never rests: the recordings so far turn 2.7 degrees a frame at the
median, rest the mouse only to back away from a wall, and stand still in 0.08% of frames, so a
player who stands, or walks straight, asks the model for something it has hardly seen
(docs/TRAINING.md, run 29).
"""

from __future__ import annotations

import math
import random
from collections import deque

from interworld.config import KEYS

W, S, A, D, JUMP, ATTACK = range(len(KEYS))


class ExplorerPolicy:
    def __init__(self, seed: int = 0, turn_scale: float = 4.0, mouse_rest: float = 0.0):
        if not 0.0 <= mouse_rest <= 1.0:
            raise ValueError(f"mouse_rest is a share of spans, in [0, 1]; got {mouse_rest}")
        self.rng = random.Random(seed)
        self.turn_scale = turn_scale  # typical yaw rate, degrees per frame
        self.mouse_rest = mouse_rest
        self.resting = False  # this span leaves the mouse alone
        self.yaw_rate = 0.0
        self.pitch = 0.0  # the policy's own idea of where it looks (our convention: + up)
        self.plan: deque = deque()  # queued (keys, dx, dy) frames of a manoeuvre
        self.history: deque = deque(maxlen=120)
        self.hold_keys: list[int] = [W]
        self.hold_left = 0
        self.stuck = 0

    def _start_span(self) -> None:
        r = self.rng.random()
        if r < 0.62:
            keys = [W]
        elif r < 0.70:
            keys = [W, self.rng.choice([A, D])]
        elif r < 0.78:
            keys = [self.rng.choice([A, D])]
        elif r < 0.84:
            keys = [S]
        elif r < 0.93:
            keys = []  # a pause: stand and look around
        else:
            keys = [W, ATTACK] if self.rng.random() < 0.5 else [W, JUMP]
        self.hold_keys, self.hold_left = keys, self.rng.randint(8, 48)
        # drawn only when asked for, so that mouse_rest 0 replays the recordings made before it
        self.resting = self.mouse_rest > 0 and self.rng.random() < self.mouse_rest

    def _full_circle(self) -> None:
        n = self.rng.randint(36, 72)  # a steady 360 in 36-72 frames
        step = 360.0 / n * self.rng.choice([-1, 1])
        self.plan.extend(([], step, 0.0) for _ in range(n))

    def _walk_back(self) -> None:
        """Turn around, then retrace the recent frames with their turns mirrored."""
        n = self.rng.randint(12, 24)
        step = 180.0 / n * self.rng.choice([-1, 1])
        self.plan.extend(([], step, 0.0) for _ in range(n))
        recent = list(self.history)[-self.rng.randint(30, 90):]
        for keys, dx, dy in reversed(recent):
            self.plan.append((list(keys), -dx, 0.0))

    def act(self, moved: float | None = None) -> tuple[list[int], float, float]:
        """Next frame's keys (indices into KEYS) and mouse (dx, dy) in degrees.

        `moved`: distance the player moved last frame (lets the policy notice being stuck)."""
        if moved is not None and self.hold_keys and self.hold_keys[0] in (W, S):
            self.stuck = self.stuck + 1 if moved < 0.5 else 0
        if self.stuck > 6 and not self.plan:
            self.stuck = 0
            self.plan.extend(([S], 0.0, 0.0) for _ in range(self.rng.randint(4, 10)))
            turn = self.rng.uniform(60, 150) * self.rng.choice([-1, 1])
            n = self.rng.randint(8, 16)
            self.plan.extend(([], turn / n, 0.0) for _ in range(n))
        if not self.plan:
            r = self.rng.random()
            if r < 0.004:
                self._full_circle()
            elif r < 0.007:
                self._walk_back()
        if self.plan:
            keys, dx, dy = self.plan.popleft()
        else:
            if self.hold_left <= 0:
                self._start_span()
            self.hold_left -= 1
            keys = list(self.hold_keys)
            if self.resting:  # the mouse rests; it starts again from rest when the span ends
                self.yaw_rate = 0.0
                self.history.append((keys, 0.0, 0.0))
                return keys, 0.0, 0.0
            # smooth yaw: mean-reverting random rate, with occasional quick glances
            self.yaw_rate += -0.15 * self.yaw_rate + self.rng.gauss(0, 0.35 * self.turn_scale)
            if self.rng.random() < 0.01:
                self.yaw_rate += self.rng.choice([-1, 1]) * self.rng.uniform(2, 5) * self.turn_scale
            dx = max(-15.0, min(15.0, self.yaw_rate))
            # pitch drifts a little around level and is pulled back (people look ahead)
            target = -0.9 * self.pitch + self.rng.gauss(0, 1.0)
            dy = max(-4.0, min(4.0, -0.2 * target))
        self.pitch = max(-56.0, min(32.0, self.pitch - dy))
        self.history.append((keys, dx, dy))
        return keys, float(dx), float(dy)


def has_full_circle(mouse_dx, window: int = 80) -> bool:
    """Whether some run of at most `window` frames turns through 360 degrees in one direction."""
    acc = 0.0
    run = []
    for dx in mouse_dx:
        if run and math.copysign(1, dx) != math.copysign(1, run[-1]) or abs(dx) < 1e-6:
            run, acc = [], 0.0
            if abs(dx) < 1e-6:
                continue
        run.append(dx)
        acc += dx
        if len(run) > window:
            acc -= run.pop(0)
        if abs(acc) >= 359.0:
            return True
    return False
