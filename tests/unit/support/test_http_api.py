"""Tests for tests/support/http_api.py against a real HTTP server on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.http_api import request, samples


class Echo(BaseHTTPRequestHandler):
    """Answers what it got as JSON; /text answers plain text; /missing is a 404 in JSON."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        got = {"method": self.command, "path": self.path,
               "auth": self.headers.get("Authorization"),
               "type": self.headers.get("Content-Type"),
               "body": self.rfile.read(length).decode()}
        status, text, ctype = 200, json.dumps(got), "application/json"
        if self.path == "/text":
            text, ctype = "plain words", "text/plain"
        elif self.path == "/missing":
            status, text = 404, json.dumps({"error": "not_found"})
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("X-Seen", "yes")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *_args):
        pass


@pytest.fixture
def base():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_json_body_and_token_are_sent_and_the_json_answer_parsed(base):
    """body goes as JSON with the given headers, token as a bearer; the answer comes back parsed."""
    status, got, headers = request(base + "/v1/calls", "POST", {"to": "sip:a@b"}, token="t1",
                                   headers={"Content-Type": "application/json"})
    assert status == 200 and headers["X-Seen"] == "yes"
    assert got == {"method": "POST", "path": "/v1/calls", "auth": "Bearer t1",
                   "type": "application/json", "body": '{"to": "sip:a@b"}'}


def test_raw_wins_over_body_and_no_token_sends_no_authorization(base):
    """raw bytes are sent as they are, even with a body given; without token no header."""
    _, got, _ = request(base + "/x", "POST", {"ignored": 1}, raw=b"{not json")
    assert got["body"] == "{not json" and got["auth"] is None


def test_an_error_status_is_an_answer_and_text_stays_text(base):
    """A 404 comes back as (404, parsed JSON, headers); a non-JSON answer as its text."""
    assert request(base + "/missing")[:2] == (404, {"error": "not_found"})
    assert request(base + "/text")[:2] == (200, "plain words")


def test_samples_are_keyed_by_name_and_sorted_labels():
    """Each sample of a Prometheus text is keyed (name, sorted label pairs) -> value."""
    text = ("# TYPE calls_total counter\n"
            'calls_total{worker="1",dir="in"} 3\n'
            "# TYPE up gauge\nup 1\n")
    assert samples(text) == {("calls_total", (("dir", "in"), ("worker", "1"))): 3.0,
                             ("up", ()): 1.0}
