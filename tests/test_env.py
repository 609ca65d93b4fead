"""`interworld.env.WorldEnv`: gymnasium's own checker, frames from reset and step, actions that
reach the model, clean errors, and the plain-class fallback without gymnasium."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from interworld.engine.actions import ActionError
from interworld.env import WorldEnv
from interworld.serve.stream import Stream
from play_helpers import EXAMPLES, tiny_world

START = EXAMPLES / "start.png"


@pytest.mark.parametrize("scheme", ["segment", "causal"])
def test_passes_gymnasiums_env_checker(scheme):
    gym = pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    env = WorldEnv(tiny_world(scheme=scheme), image=START)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # advice about normalised Box ranges; mouse is in degrees on purpose
        check_env(env, skip_render_check=False)
    assert isinstance(env, gym.Env)
    assert env.observation_space.shape == (32, 32, 3)


def test_reset_gives_the_first_frame_and_step_the_next_ones():
    env = WorldEnv(tiny_world(), image=START, prompt="a corridor", max_steps=3)
    assert isinstance(env.stream, Stream)  # the same streaming core as the web app
    assert env.render() is None  # nothing yet
    obs, info = env.reset(seed=4)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert info["frames"].shape == (1, 32, 32, 3) and info["seed"] == 4
    assert np.array_equal(env.render(), obs)
    for i in range(3):
        obs, reward, terminated, truncated, info = env.step({"keys": ["w"], "mouse": [3.0, 0.0]})
        t = env.stream.frames_per_step if i else info["frames"].shape[0]
        assert info["frames"].shape == (t, 32, 32, 3)
        assert np.array_equal(obs, info["frames"][-1]) and np.array_equal(env.render(), obs)
        assert reward == 0.0 and terminated is False and truncated == (i == 2)


def test_actions_change_the_frames_and_seeds_repeat():
    def run(action, seed=0):
        env = WorldEnv(tiny_world(scheme="causal"), image=START)
        env.reset(seed=seed)
        return np.concatenate([env.step(action)[4]["frames"] for _ in range(3)])

    walk = run({"keys": ["w"]})
    assert np.array_equal(walk, run({"keys": np.array([1, 0, 0, 0, 0, 0], dtype=np.int8)}))  # names or multi-hot
    assert not np.array_equal(walk, run({"keys": ["s"]}))
    assert not np.array_equal(walk, run({"keys": ["w"], "mouse": [10.0, 0.0]}))
    assert not np.array_equal(walk, run({"keys": ["w"]}, seed=1))
    assert not np.array_equal(run(None), walk)


def test_bad_use_gives_clear_errors():
    env = WorldEnv(tiny_world(), image=START)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(None)
    env.reset(seed=0)
    with pytest.raises(ActionError, match="unknown key 'q'"):
        env.step({"keys": ["q"]})
    with pytest.raises(ActionError, match="out of range"):
        env.step({"mouse": [1e6, 0]})
    with pytest.raises(ActionError, match="unknown action fields"):
        env.step({"keys": [], "jump": 1})
    with pytest.raises(ActionError, match="zeros and ones"):
        env.step({"keys": [2, 0, 0, 0, 0, 0]})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"map": 19})
    with pytest.raises(FileNotFoundError):
        env.reset(options={"image": "/nonexistent.png"})
    assert env.step({"keys": ["d"]})[0].shape == (32, 32, 3)  # the stream survived the bad calls


def test_gymnasium_make():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("interworld/World-v0", world=tiny_world(), image=START)
    obs, _ = env.reset(seed=0)
    assert env.step(env.action_space.sample())[0].shape == obs.shape == (32, 32, 3)


def test_without_gymnasium_it_is_a_plain_class_with_the_same_api():
    """And it needs none of the web server's packages."""
    code = f"""
import sys
for m in ("gymnasium", "fastapi", "uvicorn", "starlette"):
    sys.modules[m] = None  # as if they were not installed
sys.path.insert(0, {str(EXAMPLES.parent / "tests")!r})
from interworld.env import WorldEnv
from play_helpers import tiny_world
env = WorldEnv(tiny_world(), image={str(START)!r})
assert type(env).__mro__[1] is object and not hasattr(env, "action_space")
obs, info = env.reset(seed=0)
obs, r, term, trunc, info = env.step({{"keys": ["w"]}})
assert obs.shape == (32, 32, 3) and env.render().shape == (32, 32, 3)
print("plain ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "plain ok" in out.stdout, out.stderr
