"""A call's session as the native pump sees it, for the pump's tests (no pjsua)."""

from __future__ import annotations

from typing import Callable, NamedTuple

FB = 320   # 20 ms at 8 kHz
SILENCE = bytes(FB)


def frame(n: int) -> bytes:
    """The ``n``-th numbered agent frame (its samples all ``n``)."""
    return (n % 30000).to_bytes(2, "little") * (FB // 2)


class Session:
    """Logs rx/tx as (name, "rx"|"tx"), keeps the caller frames it got, plays numbered frames;
    ``on_frame`` is called with each caller frame too."""

    def __init__(self, log: list, name: str, on_frame: Callable[[bytes], None] | None = None):
        self.log, self.name = log, name
        self.got: list[bytes] = []
        self.n = 0
        self.hook = on_frame

    def on_caller_frame(self, pcm: bytes) -> None:
        self.log.append((self.name, "rx"))
        self.got.append(pcm)
        if self.hook:
            self.hook(pcm)

    def next_frame(self) -> bytes:
        self.log.append((self.name, "tx"))
        self.n += 1
        return frame(self.n)


class Handlers(NamedTuple):
    """Two plain functions standing in for a session."""

    on_caller_frame: Callable[[bytes], None]
    next_frame: Callable[[], bytes]
