"""sipbridge: put a realtime voice-AI model on real phone calls."""

__version__ = "0.1.0"
