"""The embedded model's upgrade checks: OpenAI's bearer key, Azure's exact URL and api-key header."""

from http import HTTPStatus

import pytest

from sipbridge.embedded.endpoint import azure_refusal, openai_refusal

GA = "/openai/v1/realtime?model=dep"
PREVIEW = "/openai/realtime?api-version=2025-04-01-preview&deployment=dep"


def test_openai_style_wants_the_bearer_key_only_when_one_is_set():
    """No key configured lets anyone in; with one, only Authorization: Bearer <key> passes (401 otherwise)."""
    assert openai_refusal({}, None) is None
    assert openai_refusal({"Authorization": "Bearer k"}, "k") is None
    assert openai_refusal({"Authorization": "Bearer x"}, "k")[0] == HTTPStatus.UNAUTHORIZED
    assert openai_refusal({"api-key": "k"}, "k")[0] == HTTPStatus.UNAUTHORIZED


@pytest.mark.parametrize("path, version", [(GA, None), (PREVIEW, "2025-04-01-preview")])
def test_azure_style_accepts_the_deployment_url_with_either_header(path, version):
    """The GA or preview URL of the deployment passes with api-key: <key> or a bearer token."""
    for headers in ({"api-key": "k"}, {"Authorization": "Bearer k"}):
        assert azure_refusal(path, headers, api_key="k", deployment="dep", api_version=version) is None


@pytest.mark.parametrize("path, version", [
    ("/openai/v1/realtime?model=other", None),
    ("/openai/v1/realtime?model=dep&extra=1", None),
    ("/v1/realtime?model=dep", None),
    (PREVIEW, None),
    (GA, "2025-04-01-preview"),
    ("/openai/realtime?api-version=2024-10-01-preview&deployment=dep", "2025-04-01-preview"),
])
def test_azure_style_refuses_any_other_url_with_404(path, version):
    """Another deployment, an extra parameter, another path or the other shape is 404 Resource not found."""
    status, body = azure_refusal(path, {"api-key": "k"}, api_key="k", deployment="dep", api_version=version)
    assert status == HTTPStatus.NOT_FOUND and "Resource not found" in body


def test_azure_style_refuses_a_missing_or_wrong_key_with_401():
    """The right URL without the key, or with another, is 401 Access denied."""
    for headers in ({}, {"api-key": "x"}, {"Authorization": "k"}):
        status, body = azure_refusal(GA, headers, api_key="k", deployment="dep")
        assert status == HTTPStatus.UNAUTHORIZED and "Access denied" in body
