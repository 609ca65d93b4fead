"""interworld: an open, real-time, interactive world model engine."""

from interworld.config import ModelConfig, get_preset, PRESETS

__version__ = "0.1.0"


def __getattr__(name):  # keep `import interworld` light: the World API pulls in torch models
    if name == "World":
        from interworld.engine.world import World

        return World
    raise AttributeError(name)


__all__ = ["ModelConfig", "get_preset", "PRESETS", "World", "__version__"]
