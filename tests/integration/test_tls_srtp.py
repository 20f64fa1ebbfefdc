"""SIP over TLS and SRTP: a real baresip handset calls the bridge over TLS on 127.0.0.1.

SIPp here has no TLS, so TLS calls come from baresip (its ``srtp`` module does SDES SRTP);
plain-UDP refusals are checked with SIPp. The bridge runs at pjsip log level 4 so its log holds
the SIP messages it sent and received in clear (TLS hides them on the wire).
"""

import subprocess
import sys

import pytest

from tests.support import audio
from tests.support.baresip import Baresip
from tests.support.bridge import Bridge
from tests.support.certs import self_signed
from tests.support.ports import free_port
from tests.support.sipp import run_sipp


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_bridge(tmp_path_factory, certs):
    """The embedded model behind a bridge listening on UDP and TLS, SRTP optional."""
    cert, key = certs
    tls_port = free_port(udp=False, tcp=True)
    extra = {"sip": {"tls_port": tls_port, "tls_cert": str(cert), "tls_key": str(key),
                     "srtp": "optional"},
             "log": {"pjsip_level": 4}}
    with Bridge(tmp_path_factory.mktemp("bridge"), upstream_url=None, extra=extra) as b:
        b.tls_port = tls_port
        yield b


def pjsip_messages(bridge: Bridge, head: str) -> list[str]:
    """The SIP messages pjsip logged whose log line starts with ``head`` (e.g. 'TX', 'RX')."""
    return [r["msg"] for r in bridge.logs("pjsip") if r.get("msg", "").startswith(head)]


def call_over_tls(bridge: Bridge, certs, workdir, account_params: str = ""):
    """baresip says a sentence over a TLS call; returns (result, the sentence, what it heard)."""
    prompt = audio.trim_silence(audio.load_wav(audio.asterisk_prompt("hello-world")))
    handset = Baresip(workdir, modules=("srtp.so",), account_params=account_params,
                      extra_config={"sip_cafile": str(certs[0])})
    res = handset.call(f"sip:bot@127.0.0.1:{bridge.tls_port};transport=tls",
                       duration_s=2 * len(prompt) / 8000 + 2.5, mic=prompt)
    assert res.established, res.log[-3000:]
    return res, prompt, res.recorded_pcm()


def assert_heard_own_sentence(prompt, heard) -> None:
    """The embedded model echoes the caller: a match proves audio went both ways."""
    audio.assert_heard_back(prompt, heard)


def test_tls_call_is_answered_and_audio_flows_both_ways(tmp_path, tls_bridge, certs):
    """A baresip call over TLS (plain RTP) is answered and the handset hears its sentence back."""
    res, prompt, heard = call_over_tls(tls_bridge, certs, tmp_path / "handset")
    invites = [m for m in pjsip_messages(tls_bridge, "RX") if "Request msg INVITE" in m]
    assert invites and all(" from TLS " in m.splitlines()[0] for m in invites), invites[:1]
    call_id = tls_bridge.logs("call_incoming")[-1]["call_id"]
    active = tls_bridge.wait_log("media_active", call_id=call_id)
    assert active["srtp"] is None
    assert_heard_own_sentence(prompt, heard)


def test_srtp_call_over_tls_is_encrypted_and_audio_flows_both_ways(tmp_path, tls_bridge, certs):
    """baresip offering mandatory SRTP over TLS gets an RTP/SAVP answer with a=crypto, and audio."""
    before = len(tls_bridge.logs("media_active"))
    res, prompt, heard = call_over_tls(tls_bridge, certs, tmp_path / "handset",
                                       account_params=";mediaenc=srtp-mand")
    answers = [m for m in pjsip_messages(tls_bridge, "TX")
               if "Response msg 200/INVITE" in m and "m=audio" in m]
    assert answers, "the bridge's 200 OK with SDP is not in its log"
    sdp = answers[-1]
    assert " to TLS " in sdp.splitlines()[0]
    assert "RTP/SAVP" in sdp and "a=crypto:" in sdp, sdp
    active = tls_bridge.logs("media_active")[before:]
    assert [a["srtp"] for a in active] == ["AES_CM_128_HMAC_SHA1_80"]
    assert "SRTP is Enabled" in res.log, "baresip did not run SRTP:\n" + res.log[-2000:]
    assert_heard_own_sentence(prompt, heard)


def test_plain_udp_call_to_an_srtp_bridge_needing_tls_gets_406(tls_bridge):
    """With SRTP on and srtp_secure_signaling 1, pjsua refuses calls not over TLS with 406."""
    res = run_sipp("uac_expect_reject", tls_bridge.target, timeout=15)
    assert res.returncode == 0 and res.final_code == 406, res.stderr


def test_mandatory_srtp_rejects_a_plain_rtp_offer_with_488(tmp_path):
    """With sip.srtp mandatory (here allowed over UDP), an RTP/AVP offer without crypto gets 488."""
    extra = {"sip": {"srtp": "mandatory", "srtp_secure_signaling": 0}}
    with Bridge(tmp_path, upstream_url=None, extra=extra) as b:
        res = run_sipp("uac_expect_reject", b.target, timeout=15)
        assert res.returncode == 0 and res.final_code == 488, res.stderr
        assert b.stop() == 0


def test_unreadable_certificate_exits_2_naming_the_key(tmp_path, certs):
    """`sipbridge run` with a missing TLS certificate names sip.tls_cert and exits 2 at start-up."""
    cfg = tmp_path / "tls.yaml"
    cfg.write_text(f"sip:\n  tls_cert: {tmp_path / 'missing.pem'}\n  tls_key: {certs[1]}\n")
    r = subprocess.run([sys.executable, "-m", "sipbridge", "run", "-c", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "sip.tls_cert" in r.stderr and "no such file" in r.stderr


def test_verify_client_admits_only_handsets_with_a_certificate_from_tls_ca(tmp_path, certs):
    """With tls_verify_client, only a handset with a certificate from tls_ca gets through."""
    cert, key = certs
    client_pem = tmp_path / "client.pem"  # baresip wants certificate and key in one file
    client_pem.write_text(cert.read_text() + key.read_text())
    tls_port = free_port(udp=False, tcp=True)
    extra = {"sip": {"tls_port": tls_port, "tls_cert": str(cert), "tls_key": str(key),
                     "tls_ca": str(cert), "tls_verify_client": True}}
    with Bridge(tmp_path, upstream_url=None, extra=extra) as b:
        results = {}
        for name, more in (("anonymous", {}), ("with_cert", {"sip_certificate": str(client_pem)})):
            handset = Baresip(tmp_path / name, extra_config={"sip_cafile": str(cert), **more})
            results[name] = handset.call(f"sip:bot@127.0.0.1:{tls_port};transport=tls",
                                         duration_s=1, answer_timeout=5)
        assert not results["anonymous"].established
        assert results["with_cert"].established, results["with_cert"].log[-2000:]
        assert len(b.logs("call_incoming")) == 1
