"""vidbatch: declarative, make-like batch rendering for MiniMax Hailuo video generation."""

__version__ = "0.1.0"
