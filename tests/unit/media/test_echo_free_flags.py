"""On a line with no echo, the caller's soft sounds are never flagged as echo."""

import numpy as np

from sipbridge.media.echo import EchoCanceller, EchoSettings


def test_soft_caller_sounds_on_an_echo_free_line_are_not_echo():
    """Once the canceller has given up on finding an echo, quiet near frames are not echo-only."""
    rng = np.random.default_rng(1)
    ec = EchoCanceller(EchoSettings(acquire_give_up_ms=1000))
    silent = np.zeros(320, dtype=np.int16)
    for _ in range(60):                       # 1.2 s of loud agent audio, digital silence back
        ec.near(silent)
        ec.far((rng.standard_normal(320) * 6000).astype(np.int16))
    assert ec.mode == "echo_free"
    soft = (rng.standard_normal(320) * 250).astype(np.int16)   # about -42 dBFS, under the bound
    out = ec.near(soft)
    assert not ec.likely_echo_only
    assert np.array_equal(out, soft)
