"""Digest authentication of INVITEs: the MD5 response, the Authorization parser, nonces, verdicts."""

import pytest

from sipbridge.sip.digest import DigestAuth, digest_response, parse_params

URI = "sip:bot@127.0.0.1:5060"
# computed once with hashlib, independently of the module:
#   HA1 = md5("bot:sipbridge:s3cret"), HA2 = md5("INVITE:" + URI)
HA1 = "26a41dbbf8e843151a1eaa18c9129ecf"
HA2 = "facfd2c164756b1815f43990f957253c"
RESP_QOP = "2fb7fd3a6931953195bc0116cf7f21ee"     # md5(HA1:abc:00000001:xyz:auth:HA2)
RESP_2069 = "a1ba99f6b7810bd8a934398dd74bc758"    # md5(HA1:abc:HA2)


def make(ttl=300.0, max_seen=4096):
    return DigestAuth("bot", "s3cret", "sipbridge", b"k" * 32, ttl_s=ttl, max_seen=max_seen)


def authorization(auth, nonce, *, password="s3cret", username="bot", nc="00000001",
                  cnonce="c0ffee", uri=URI, qop="auth", realm="sipbridge", extra=""):
    resp = digest_response(username=username, realm=realm, password=password, method="INVITE",
                           uri=uri, nonce=nonce, qop=qop, nc=nc, cnonce=cnonce)
    qop_part = f', qop={qop}, nc={nc}, cnonce="{cnonce}"' if qop else ""
    return (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5{qop_part}{extra}')


def nonce_of(challenge):
    return parse_params(challenge)["nonce"]


def test_rfc2617_example_vector():
    """The RFC 2617 section 3.5 example (Mufasa / Circle Of Life) gives its published response."""
    assert digest_response(username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
                           method="GET", uri="/dir/index.html",
                           nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", nc="00000001",
                           cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_sip_vectors_with_and_without_qop():
    """An INVITE's response matches hand-computed MD5 values, with qop=auth and RFC 2069 style."""
    kw = dict(username="bot", realm="sipbridge", password="s3cret", method="INVITE", uri=URI,
              nonce="abc")
    assert digest_response(**kw, qop="auth", nc="00000001", cnonce="xyz") == RESP_QOP
    assert digest_response(**kw) == RESP_2069


def test_parse_params_handles_quotes_commas_and_escapes():
    """Quoted values may hold commas and escaped quotes; keys are case-insensitive; bare tokens too."""
    p = parse_params('Digest Username="a,b", realm="r \\"x\\"", nc=00000001 ,qop=auth')
    assert p == {"username": "a,b", "realm": 'r "x"', "nc": "00000001", "qop": "auth"}
    assert parse_params('Basic dXNlcjpwYXNz') is None
    assert parse_params('Digest') == {}
    assert parse_params('Digest garbage without equals, "x') == {}


def test_challenge_offers_md5_qop_auth_and_a_fresh_nonce():
    """The 401 challenge names the realm, MD5 and qop=auth, and each nonce is new."""
    auth = make()
    a, b = auth.challenge(10.0), auth.challenge(10.0)
    p = parse_params(a)
    assert p["realm"] == "sipbridge" and p["algorithm"] == "MD5" and p["qop"] == "auth"
    assert "stale" not in p and nonce_of(a) != nonce_of(b)
    assert parse_params(auth.challenge(10.0, stale=True))["stale"] == "true"


def test_right_password_passes():
    """Credentials computed with the right password on our nonce are accepted."""
    auth = make()
    nonce = nonce_of(auth.challenge(100.0))
    assert auth.check("INVITE", [authorization(auth, nonce)], 101.0).ok


def test_rfc2069_style_without_qop_passes():
    """A client that ignores qop (no nc/cnonce) is accepted when its response is right."""
    auth = make()
    nonce = nonce_of(auth.challenge(0.0))
    assert auth.check("INVITE", [authorization(auth, nonce, qop=None)], 1.0).ok


def test_wrong_password_and_unknown_user_are_refused_not_rechallenged():
    """A wrong password or username is a 403 (no new challenge), never accepted."""
    auth = make()
    nonce = nonce_of(auth.challenge(0.0))
    r = auth.check("INVITE", [authorization(auth, nonce, password="guess")], 1.0)
    assert not r.ok and not r.challenge and "password" in r.reason
    r = auth.check("INVITE", [authorization(auth, nonce, username="eve")], 1.0)
    assert not r.ok and not r.challenge


def test_missing_or_foreign_realm_credentials_get_a_challenge():
    """No Authorization, or one for another realm, asks for credentials (401)."""
    auth = make()
    assert auth.check("INVITE", [], 0.0).challenge
    nonce = nonce_of(auth.challenge(0.0))
    assert auth.check("INVITE", [authorization(auth, nonce, realm="other")], 0.0).challenge


def test_expired_nonce_is_stale():
    """A right answer on a nonce older than ttl_s is re-challenged with stale=true."""
    auth = make(ttl=30.0)
    nonce = nonce_of(auth.challenge(0.0))
    r = auth.check("INVITE", [authorization(auth, nonce)], 31.0)
    assert not r.ok and r.challenge and r.stale
    assert auth.check("INVITE", [authorization(auth, nonce)], 29.0).ok


def test_forged_or_foreign_nonce_is_rechallenged():
    """A nonce we did not sign (forged, or another process's secret) gets a new challenge."""
    auth = make()
    other = DigestAuth("bot", "s3cret", "sipbridge", b"z" * 32)
    for nonce in ("deadbeef", nonce_of(other.challenge(0.0)), "1.2.3", ""):
        r = auth.check("INVITE", [authorization(auth, nonce)], 1.0)
        assert not r.ok and (r.challenge or "nonce" in r.reason)


def test_replayed_credentials_are_rechallenged():
    """The same nonce, nc and cnonce accepted once is not accepted again."""
    auth = make()
    nonce = nonce_of(auth.challenge(0.0))
    header = authorization(auth, nonce)
    assert auth.check("INVITE", [header], 1.0).ok
    r = auth.check("INVITE", [header], 2.0)
    assert not r.ok and r.challenge and "replay" in r.reason
    assert auth.check("INVITE", [authorization(auth, nonce, nc="00000002")], 2.0).ok


def test_replay_memory_is_bounded():
    """At most max_seen accepted credentials are remembered."""
    auth = make(max_seen=8)
    for i in range(50):
        nonce = nonce_of(auth.challenge(float(i)))
        assert auth.check("INVITE", [authorization(auth, nonce)], float(i)).ok
    assert auth.remembered == 8


def test_bad_algorithm_qop_and_missing_fields():
    """SHA-256, qop=auth-int or a missing response field are not accepted."""
    auth = make()
    nonce = nonce_of(auth.challenge(0.0))
    sha = authorization(auth, nonce).replace("algorithm=MD5", "algorithm=SHA-256")
    assert not auth.check("INVITE", [sha], 1.0).ok
    assert not auth.check("INVITE", [authorization(auth, nonce, qop="auth-int")], 1.0).ok
    no_resp = f'Digest username="bot", realm="sipbridge", nonce="{nonce}", uri="{URI}"'
    assert not auth.check("INVITE", [no_resp], 1.0).ok


@pytest.mark.parametrize("junk", ["", "Digest", "Digest ,,,,", "Digest realm=sipbridge", "\x00\xff",
                                  'Digest realm="sipbridge", nonce="' + "x" * 5000])
def test_garbage_authorization_never_raises(junk):
    """Any Authorization text gives a verdict, never an exception."""
    assert not make().check("INVITE", [junk], 0.0).ok


def test_repr_hides_the_password():
    """The object's repr never shows the password."""
    assert "s3cret" not in repr(make())
