"""provider azure end to end: a SIPp call through ``sipbridge run`` to an Azure-style model server.

The server is the embedded model serving as one Azure OpenAI deployment
(``--azure-deployment``): it accepts only the deployment's URL (path and query exactly) with the
key in the ``api-key`` header, so the call is answered only if the bridge built both itself from
``realtime.azure_*`` (``realtime.url`` points the host at 127.0.0.1).
"""

from tests.support import audio
from tests.support.bridge import Bridge, Upstream
from tests.support.capture import RtpCapture
from tests.support.model_audio import caller_audio
from tests.support.ports import free_port_block
from tests.support.sipp import PCMU_SPEECH_PCAP, pcap_duration_ms, run_sipp

KEY = "az-test-key"


def _azure(upstream: Upstream, **more) -> dict:
    return {"realtime": {"provider": "azure", "url": upstream.url, "azure_deployment": "rt-test",
                         "api_key_env": None, **more}}


def _call(bridge: Bridge):
    media = free_port_block(4)
    with RtpCapture(ports=[media], port_range=bridge.rtp_range) as cap:
        res = run_sipp("uac_pcmu", bridge.target, media_port=media, pcap=PCMU_SPEECH_PCAP,
                       hold_ms=pcap_duration_ms(PCMU_SPEECH_PCAP) + 6000, timeout=40)
    assert res.returncode == 0 and res.final_code == 200, res.stderr
    lo, hi = bridge.rtp_range
    down = [s for s in cap.streams().values() if lo <= s.src[1] <= hi]
    assert len(down) == 1
    return down[0]


def test_a_call_reaches_an_azure_deployment_and_the_answer_comes_back(tmp_path):
    """The caller's speech reaches the Azure-style server on /openai/v1/realtime?model=<deployment>
    with the api-key header from $AZURE_OPENAI_API_KEY, and its answer plays to the caller."""
    with Upstream(tmp_path, api_key=KEY, extra_args=["--azure-deployment", "rt-test"]) as upstream, \
            Bridge(tmp_path, None, extra=_azure(upstream), env={"AZURE_OPENAI_API_KEY": KEY}) as bridge:
        assert bridge.wait_log("ready")["upstream"] == f"{upstream.url}/openai/v1/realtime?model=rt-test"
        back = _call(bridge)
        assert bridge.wait_log("upstream_connected")["url"].endswith("/openai/v1/realtime?model=rt-test")
        bridge.wait_log("response.done", status="completed")
        bridge.wait_log("session_closed")
        assert not bridge.logs("upstream_error")
        assert bridge.stop() == 0

    sent, _ = caller_audio(upstream.events("session.update")[0]["session"],
                           upstream.events("input_audio_buffer.append"))
    assert audio.dbfs(sent) > -35, "the caller's speech arrived as (near) silence"
    assert upstream.events("input_audio_buffer.commit") and upstream.events("response.create")
    assert back.active_mask(-40.0).sum() * 20 >= 700, "the model's answer did not reach the caller"


def test_a_wrong_key_is_refused_by_the_server_and_the_call_gets_503(tmp_path):
    """The same server with another key answers the upgrade 401: the INVITE is refused, no call."""
    with Upstream(tmp_path, api_key="other", extra_args=["--azure-deployment", "rt-test"]) as upstream, \
            Bridge(tmp_path, None, extra=_azure(upstream), env={"AZURE_OPENAI_API_KEY": KEY}) as bridge:
        res = run_sipp("uac_expect_reject", bridge.target, timeout=20)
        assert res.returncode == 0 and res.final_code == 503
        assert "401" in bridge.wait_log("upstream_unavailable")["reason"]
        assert upstream.events() == []


def test_a_preview_api_version_speaks_beta_on_the_preview_url_with_a_bearer_token(tmp_path):
    """azure_api_version + api: beta + azure_auth: bearer: the bridge opens
    /openai/realtime?api-version=..&deployment=.. with its token (the server takes it as a bearer
    token or an api-key; which header is sent is checked in tests/unit/realtime/test_providers.py),
    sends the beta session shape, and the call is answered."""
    version = "2025-04-01-preview"
    with Upstream(tmp_path, api_key=KEY, extra_args=["--azure-deployment", "rt-test",
                                                     "--azure-api-version", version]) as upstream, \
            Bridge(tmp_path, None, extra=_azure(upstream, azure_api_version=version, api="beta",
                                                azure_auth="bearer"),
                   env={"AZURE_OPENAI_API_KEY": KEY}) as bridge:
        back = _call(bridge)
        url = bridge.wait_log("upstream_connected")["url"]
        assert url.endswith(f"/openai/realtime?api-version={version}&deployment=rt-test")
        bridge.wait_log("response.done", status="completed")
        bridge.wait_log("session_closed")
        assert not bridge.logs("upstream_error")
        assert bridge.stop() == 0

    session = upstream.events("session.update")[0]["session"]
    # the beta shape; audio_format auto on the default 8 kHz port is µ-law
    assert session["input_audio_format"] == "g711_ulaw" and "audio" not in session
    assert back.active_mask(-40.0).sum() * 20 >= 700, "the model's answer did not reach the caller"
