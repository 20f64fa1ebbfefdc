"""Plain HTTP requests to a bridge's or a cell's API from a test, and its /metrics as numbers.

Blocking (``urllib``), so a test calls them between the steps of a call without an event loop;
an error status is an answer like any other, never an exception. (Named ``http_api`` so that no
module here is mistaken for the standard library's ``http``.)

    status, body, headers = request(bridge.api_url + "/v1/calls", token="t")
    scraped = samples(request(bridge.api_url + "/metrics")[1])
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def request(url: str, method: str = "GET", body=None, raw: bytes | None = None,
            token: str | None = None, headers: dict | None = None,
            timeout: float = 10.0) -> tuple[int, object, dict]:
    """(status, the JSON answer parsed or else its text, the answer's headers) of one request.

    ``body`` is sent as JSON, ``raw`` as given (it wins over ``body``); ``token`` adds
    ``Authorization: Bearer``."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text, hdrs = r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, text, hdrs = e.code, e.read().decode(), dict(e.headers)
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def samples(text: str) -> dict:
    """{(name, sorted label pairs): value} of a Prometheus text exposition, by
    prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}
