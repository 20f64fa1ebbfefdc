"""The INVITE policy: rate limit 503, framing 413/400, digest 401/403, numbers 404, in that order."""

from dataclasses import replace

import pytest

from sipbridge.config import SipConfig
from sipbridge.sip.digest import digest_response, parse_params
from sipbridge.sip.inbound import MAX_BODY_BYTES, PJSIP_UDP_RX_BYTES, InboundPolicy
from sipbridge.sip.sipmsg import header_values, request_line, uri_user

SDP = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SRC = "192.0.2.7:5060"


def invite(user="bot", body=SDP, extra="", clen=None):
    clen = len(body.encode()) if clen is None else clen
    return (f"INVITE sip:{user}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1\r\n"
            f"From: <sip:a@192.0.2.7>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: x\r\n"
            f"CSeq: 1 INVITE\r\n{extra}Content-Length: {clen}\r\n\r\n{body}")


def policy(**sip):
    cfg = replace(SipConfig(), **sip)
    return InboundPolicy(cfg, password="pw" if cfg.auth_user else None, secret=b"s" * 32)


def test_request_line_headers_and_user():
    """The Request-URI, header values (folded, any case) and URI user parts are read without raising."""
    msg = invite(extra="authorization: Digest a=1,\r\n b=2\r\nAuthorization: Digest c=3\r\n")
    assert request_line(msg) == ("INVITE", "sip:bot@127.0.0.1:5060")
    assert header_values(msg, "Authorization") == ["Digest a=1, b=2", "Digest c=3"]
    assert uri_user("sip:+15551234567;phone-context=x@h;user=phone") == "+15551234567"
    assert uri_user("<sips:alice:pw@h>") == "alice" and uri_user("tel:%2B1555") == "+1555"
    assert uri_user("sip:host") == "" and uri_user("mailto:x@y") == "" and uri_user("") == ""
    assert request_line("garbage") == ("", "") and request_line("") == ("", "")


def test_default_policy_accepts_a_plain_invite():
    """With the defaults (no auth, any number) a well-formed INVITE goes on."""
    assert policy().check(SRC, invite(), 0.0) is None


def test_rate_limit_refuses_with_retry_after_per_source():
    """Past the burst a source gets 503 with Retry-After; another source still gets through."""
    p = policy(invite_rate_per_s=1, invite_burst=2)
    assert p.check(SRC, invite(), 0.0) is None and p.check(SRC, invite(), 0.0) is None
    r = p.check("192.0.2.7:7777", invite(), 0.0)        # the port does not matter
    assert (r.code, r.counter, dict(r.headers)["Retry-After"]) == (503, "rate_limited", "1")
    assert p.check("192.0.2.8:5060", invite(), 0.0) is None
    assert p.check(SRC, invite(), 1.0) is None


def test_no_rate_limit_when_disabled():
    """invite_rate_per_s null lets any number of INVITEs through."""
    p = policy(invite_rate_per_s=None)
    assert all(p.check(SRC, invite(), 0.0) is None for _ in range(500))


def test_huge_body_gets_413_and_bad_content_length_400():
    """A body over the limit is 413; a Content-Length that does not match the body is 400."""
    big = SDP + "a=x-pad:" + "y" * MAX_BODY_BYTES + "\r\n"
    assert policy().check(SRC, invite(body=big), 0.0).code == 413
    for clen in (5000, 10, "abc", "-1"):
        assert policy().check(SRC, invite(clen=clen), 0.0).code == 400
    assert policy().check(SRC, invite(body="", clen=0), 0.0) is None
    assert policy().check(SRC, invite(clen=MAX_BODY_BYTES + 1), 0.0).code == 413


def test_message_cut_at_the_receive_buffer_gets_513():
    """A datagram pjsip cut at its 4000-byte buffer (body shorter than declared) gets 513."""
    msg = invite(body=SDP + "a=x:" + "y" * 8000 + "\r\n")[:PJSIP_UDP_RX_BYTES]
    r = policy().check(SRC, msg, 0.0)
    assert r.code == 513 and "4000" in r.why


def test_auth_challenge_then_accept_then_wrong_password_403():
    """Auth on: no credentials -> 401 with a challenge; right ones pass; a wrong password -> 403."""
    p = policy(auth_user="bot")
    r = p.check(SRC, invite(), 0.0)
    assert r.code == 401
    ch = parse_params(dict(r.headers)["WWW-Authenticate"])
    uri = "sip:bot@127.0.0.1:5060"

    def creds(password, nc):
        resp = digest_response(username="bot", realm=ch["realm"], password=password, method="INVITE",
                               uri=uri, nonce=ch["nonce"], qop="auth", nc=nc, cnonce="cn")
        return (f'Authorization: Digest username="bot", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
                f'uri="{uri}", response="{resp}", qop=auth, nc={nc}, cnonce="cn", algorithm=MD5\r\n')
    assert p.check(SRC, invite(extra=creds("pw", "00000001")), 1.0) is None
    bad = p.check(SRC, invite(extra=creds("nope", "00000002")), 1.0)
    assert bad.code == 403 and "pw" not in bad.why


def test_numbers_filter_404_after_auth():
    """With sip.numbers set, other Request-URI users get 404; the listed ones go on."""
    p = policy(numbers=("bot", "+15551234567"))
    assert p.check(SRC, invite("bot"), 0.0) is None
    assert p.check(SRC, invite("+15551234567"), 0.0) is None
    r = p.check(SRC, invite("alice"), 0.0)
    assert r.code == 404 and "alice" in r.why
    # auth comes first: an unauthenticated INVITE to an unknown number is challenged, not 404
    assert policy(numbers=("bot",), auth_user="bot").check(SRC, invite("alice"), 0.0).code == 401


def test_rate_limit_comes_before_auth():
    """A flood of unauthenticated INVITEs is answered 503 once the bucket is empty, not 401."""
    p = policy(auth_user="bot", invite_rate_per_s=1, invite_burst=1)
    assert p.check(SRC, invite(), 0.0).code == 401
    assert p.check(SRC, invite(), 0.0).code == 503


@pytest.mark.parametrize("junk", ["", "\x00\x01", "INVITE", "INVITE sip:x SIP/2.0\r\n\r\n",
                                  "A" * 100000, "INVITE sip:x SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n"])
def test_garbage_never_raises(junk):
    """Any message text gives a verdict (or None), never an exception."""
    for p in (policy(), policy(auth_user="bot", numbers=("bot",))):
        r = p.check("garbage", junk, 0.0)
        assert r is None or 400 <= r.code < 600
