"""Training loops (Lightning) and their training checkpoints."""

from clumpdet.engine.config import TrainConfig

__all__ = ["TrainConfig"]
