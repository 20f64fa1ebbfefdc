"""Who may open the embedded model's socket, and on which URL: pure checks of an upgrade request.

OpenAI style (the default): any path; with an API key set, ``Authorization: Bearer <key>``.

Azure style (``azure_deployment`` set), as Azure OpenAI documents its realtime endpoint:
GA ``/openai/v1/realtime?model=<deployment>``, or with an ``api_version`` the preview shape
``/openai/realtime?api-version=<version>&deployment=<deployment>``; nothing else in the query.
The key comes in the ``api-key`` header, or as ``Authorization: Bearer <token>`` (an Entra
token; here the same secret). A wrong path or query is 404, a missing or wrong key 401, each
with an Azure-like JSON body, so a test sees the bridge build the URL and the header itself.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

Refusal = tuple[HTTPStatus, str]

NOT_FOUND = json.dumps({"error": {"code": "404", "message": "Resource not found"}})
DENIED = json.dumps({"error": {"code": "401", "message": "Access denied due to invalid subscription key "
                               "or wrong API endpoint. Make sure to provide a valid key for an active "
                               "subscription and use a correct regional API endpoint for your resource."}})
OPENAI_DENIED = json.dumps({"error": {"type": "invalid_request_error", "code": "invalid_api_key",
                                      "message": "Incorrect API key provided."}})


def _same(got: str | None, want: str) -> bool:
    return got is not None and hmac.compare_digest(got.encode(), want.encode())


def openai_refusal(headers: Mapping[str, str], api_key: str | None) -> Refusal | None:
    """None when the upgrade may proceed; else (401, body)."""
    if api_key is None or _same(headers.get("Authorization"), f"Bearer {api_key}"):
        return None
    return HTTPStatus.UNAUTHORIZED, OPENAI_DENIED


def azure_refusal(path: str, headers: Mapping[str, str], *, api_key: str | None, deployment: str,
                  api_version: str | None = None) -> Refusal | None:
    """None when ``path`` (with its query) is the deployment's realtime URL and the key is
    right; else (404 or 401, body)."""
    parts = urlsplit(path)
    query = parse_qs(parts.query, keep_blank_values=True)
    if api_version is None:
        want_path, want_query = "/openai/v1/realtime", {"model": [deployment]}
    else:
        want_path, want_query = "/openai/realtime", {"api-version": [api_version], "deployment": [deployment]}
    if parts.path != want_path or query != want_query:
        return HTTPStatus.NOT_FOUND, NOT_FOUND
    if api_key is None:
        return None
    if _same(headers.get("api-key"), api_key) or _same(headers.get("Authorization"), f"Bearer {api_key}"):
        return None
    return HTTPStatus.UNAUTHORIZED, DENIED
