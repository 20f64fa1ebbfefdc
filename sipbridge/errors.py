"""The one exception root of sipbridge."""


class SipBridgeError(Exception):
    """Base of every error sipbridge raises on purpose."""


class ConfigError(SipBridgeError):
    """A configuration value is wrong. ``key`` is the dotted path, ``reason`` says why."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class ModelFileError(SipBridgeError):
    """The Silero ONNX file is missing or is not the file we expect."""


class ListenError(SipBridgeError):
    """A SIP transport could not be opened (the port is taken, the address is not ours)."""
