"""Integration tests start real processes (sipbridge, SIPp, baresip, tcpdump) on 127.0.0.1."""

import pytest

from tests.support.bridge import Bridge, Upstream


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def upstream(tmp_path):
    with Upstream(tmp_path) as server:
        yield server


@pytest.fixture
def bridge(tmp_path, upstream):
    with Bridge(tmp_path, upstream.url) as b:
        yield b
