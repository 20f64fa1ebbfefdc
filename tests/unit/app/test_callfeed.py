"""A worker's records and events wiring (sipbridge/app/callfeed.py): config errors, the tap
subscription, and a call folded into a real SQLite file."""

import asyncio
import dataclasses
import threading

import pytest
import structlog

from sipbridge.app.callfeed import Recording
from sipbridge.app.tap import TAP
from sipbridge.config import Config
from sipbridge.errors import ConfigError


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def config(**sections) -> Config:
    cfg = Config()
    for name, values in sections.items():
        cfg = dataclasses.replace(cfg, **{name: dataclasses.replace(getattr(cfg, name), **values)})
    return cfg


def test_a_records_path_that_cannot_be_opened_is_a_config_error_naming_the_key(tmp_path, loop):
    """records.path under a plain file: ConfigError('records.path') at start, not a crash later."""
    (tmp_path / "file").write_text("")
    rec = Recording(config(records={"path": str(tmp_path / "file" / "r.db")}), loop)
    with pytest.raises(ConfigError) as err:
        rec.start()
    assert err.value.key == "records.path"


def test_a_secret_that_is_not_base64_is_a_config_error_naming_the_variable(loop):
    """events_url with a malformed secret: ConfigError('app.webhook_secret_env')."""
    with pytest.raises(ConfigError) as err:
        Recording(config(app={"events_url": "http://127.0.0.1:9/"}), loop,
                  environ={"SIPBRIDGE_WEBHOOK_SECRET": "not base64!"})
    assert err.value.key == "app.webhook_secret_env"
    with pytest.raises(ConfigError, match="must be signed") as err:
        Recording(config(app={"events_url": "http://127.0.0.1:9/"}), loop, environ={})
    assert err.value.key == "app.webhook_secret_env"


def test_an_events_url_that_is_not_http_is_refused_when_the_config_is_loaded(tmp_path):
    """app.events_url: ftp://... is a ConfigError naming the key, like the other URLs."""
    from sipbridge import config as config_mod
    path = tmp_path / "c.yaml"
    path.write_text("app:\n  events_url: ftp://example.com/x\n")
    with pytest.raises(ConfigError) as err:
        config_mod.load(str(path))
    assert err.value.key == "app.events_url"


def test_with_records_events_and_api_off_nothing_subscribes_to_the_tap(loop):
    """Nobody would read the output: the log tap stays without this subscriber (zero cost)."""
    rec = Recording(config(records={"path": None}, api={"listen": None}), loop)
    before = len(TAP._subs)
    rec.start()
    assert len(TAP._subs) == before and rec._unsubscribe is None
    rec.stop()


def test_logged_call_lines_become_a_stored_record(tmp_path, loop):
    """Lines logged through structlog reach the store through the tap: open, answer, end."""
    from sipbridge import logs
    import io
    logs.configure("info", "json", stream=io.StringIO())
    rec = Recording(config(records={"path": str(tmp_path / "r.db")}, api={"listen": None}), loop)
    rec.start()
    log = structlog.get_logger("t").bind(call_id="cf@1")
    log.info("call_incoming", uid="c_cf", caller="a", called="b")
    log.info("call_answered")
    log.info("call_ended", status=200, reason="bye")
    rec.stop()
    stored = rec.store.get("c_cf")
    assert stored["status"] == "completed" and stored["ended_by"] == "caller"
    assert stored["answer_at"] is not None and rec.store.written == 3
