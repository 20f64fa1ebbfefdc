"""The native pool refuses to start, naming ``sip.media_port``, when the library is not the one it was written for."""

import pytest

from sipbridge.errors import ConfigError
from sipbridge.media.native import build
from sipbridge.media.native.pool import NativePortPool


def test_a_library_without_pjmedia_is_a_config_error_on_the_key():
    """Pointed at a library that exports no pjmedia functions, start() raises ConfigError(sip.media_port) and starts no pump."""
    pool = NativePortPool(str(build.ensure()), 8000)   # our own library: no pjmedia in it
    with pytest.raises(ConfigError) as err:
        pool.start()
    assert err.value.key == "sip.media_port" and "lacks a function" in err.value.reason
    assert pool.pump is None


def test_a_missing_library_is_a_config_error_on_the_key(tmp_path):
    """A pjsua library path that cannot be loaded is refused the same way."""
    pool = NativePortPool(str(tmp_path / "missing.so"), 16000)
    with pytest.raises(ConfigError, match="native port unavailable") as err:
        pool.start()
    assert err.value.key == "sip.media_port" and pool.pump is None
