"""Readiness rules, the model reachability probe, and the API's taken-port error."""

import asyncio
import socket

import pytest

from sipbridge import config
from sipbridge.app.health import ModelProbe, model_address, readiness
from sipbridge.app.server import ApiContext, ApiServer
from sipbridge.errors import ListenError

READY = dict(sip_bound=True, draining=False, active=1, capacity=4, model_ok=True)


def test_ready_only_when_every_condition_holds():
    """Bound, not draining, a slot free and the model reachable: no reasons."""
    assert readiness(**READY) == []


@pytest.mark.parametrize("change,word", [({"sip_bound": False}, "sip"), ({"draining": True}, "draining"),
                                         ({"active": 4}, "capacity"),
                                         ({"model_ok": False, "model_why": "refused"}, "model: refused")])
def test_each_failing_condition_is_named(change, word):
    """Each unmet condition gives one reason that names it."""
    reasons = readiness(**{**READY, **change})
    assert len(reasons) == 1 and word in reasons[0]


def test_all_failing_conditions_are_listed_together():
    """A draining, full worker with its model down lists all three."""
    assert len(readiness(sip_bound=True, draining=True, active=4, capacity=4, model_ok=False)) == 3


def test_model_addresses_come_from_the_url_with_default_ports():
    """ws/wss URLs give host and port (80/443 by default); the embedded model has none."""
    assert model_address("wss://api.openai.com/v1/realtime?model=x") == ("api.openai.com", 443)
    assert model_address("ws://127.0.0.1:9000/v1/realtime") == ("127.0.0.1", 9000)
    assert model_address("embedded") is None and model_address("") is None


def test_the_probe_connects_caches_and_reports_a_closed_port():
    """A listening port is reachable; a closed one is not, named; results are cached for the interval."""
    async def go():
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        probe = ModelProbe(f"ws://127.0.0.1:{port}/v1/realtime", interval_s=5.0)
        ok, why = await probe.check(now=100.0)
        server.close()
        await server.wait_closed()
        cached = await probe.check(now=104.0)
        again = await probe.check(now=105.0)
        return (ok, why), cached, again, port
    (ok, why), cached, again, port = asyncio.run(go())
    assert ok and f"127.0.0.1:{port}" in why
    assert cached == (ok, why)
    assert again[0] is False and f"127.0.0.1:{port}" in again[1]


def test_the_embedded_model_is_always_reachable():
    """No address to probe: ready as far as the model goes."""
    assert asyncio.run(ModelProbe("").check(0.0)) == (True, "embedded")


def test_a_taken_api_port_is_one_listen_error_naming_the_address():
    """Starting the API on a port another socket listens on raises ListenError with host:port and the OS reason."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = config.build({}, environ={})
        server = ApiServer(ApiContext(None, cfg), f"127.0.0.1:{port}")
        with pytest.raises(ListenError) as exc:
            asyncio.run(server.start())
    assert str(exc.value) == f"cannot listen for the API on 127.0.0.1:{port}: Address already in use"
