"""TLS and SRTP settings: checked at start-up with the key named; SRTP state read from pjsua."""

import pytest
import yaml

from sipbridge import config
from sipbridge.errors import ConfigError
from sipbridge.sip.tls import srtp_suite
from tests.support.certs import self_signed


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("other"))


def tls(cert, key, **more):
    return {"sip": {"tls_cert": str(cert), "tls_key": str(key), **more}}


def test_tls_and_srtp_are_off_by_default():
    """With no TLS keys the bridge has no TLS listener and no SRTP; the TLS port would be 5061."""
    sip = config.build({}, environ={}).sip
    assert (sip.tls_cert, sip.tls_port, sip.srtp, sip.srtp_secure_signaling) == \
        (None, 5061, "off", 1)


def test_a_matching_certificate_and_key_turn_tls_on(pair):
    """A readable certificate with its own key (and a CA file) is accepted as given."""
    cert, key = pair
    sip = config.build(tls(cert, key, tls_ca=str(cert), tls_verify_client=True, tls_port=5071,
                           srtp="mandatory"), environ={}).sip
    assert (sip.tls_cert, sip.tls_key, sip.tls_port, sip.srtp) == (str(cert), str(key), 5071,
                                                                    "mandatory")


def test_yaml_off_is_the_srtp_off_choice():
    """`srtp: off` in YAML (a boolean to YAML 1.1) means SRTP off, not a type error."""
    raw = yaml.safe_load("sip:\n  srtp: off\n")
    assert config.build(raw, environ={}).sip.srtp == "off"


@pytest.mark.parametrize("case,key,words", [
    ("missing_cert", "sip.tls_cert", "no such file"),
    ("missing_key", "sip.tls_key", "no such file"),
    ("key_without_cert", "sip.tls_key", "without sip.tls_cert"),
    ("cert_without_key", "sip.tls_key", "required"),
    ("cert_is_not_pem", "sip.tls_cert", "no PEM certificate"),
    ("key_of_another_cert", "sip.tls_key", "matching"),
    ("ca_is_not_pem", "sip.tls_ca", "no PEM CA"),
    ("verify_without_ca", "sip.tls_verify_client", "tls_ca"),
    ("srtp_without_tls", "sip.srtp", "needs TLS"),
    ("bad_srtp_word", "sip.srtp", "one of"),
    ("bad_secure_level", "sip.srtp_secure_signaling", "between 0 and 2"),
])
def test_bad_tls_or_srtp_settings_name_their_key(tmp_path, pair, other, case, key, words):
    """Every unusable TLS/SRTP setting is a ConfigError naming the key and the reason."""
    cert, key_file = pair
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    raw = {
        "missing_cert": tls(tmp_path / "nope.pem", key_file),
        "missing_key": tls(cert, tmp_path / "nope.pem"),
        "key_without_cert": {"sip": {"tls_key": str(key_file)}},
        "cert_without_key": {"sip": {"tls_cert": str(cert)}},
        "cert_is_not_pem": tls(junk, key_file),
        "key_of_another_cert": tls(cert, other[1]),
        "ca_is_not_pem": tls(cert, key_file, tls_ca=str(junk)),
        "verify_without_ca": tls(cert, key_file, tls_verify_client=True),
        "srtp_without_tls": {"sip": {"srtp": "optional"}},
        "bad_srtp_word": {"sip": {"srtp": "sometimes"}},
        "bad_secure_level": {"sip": {"srtp_secure_signaling": 3}},
    }[case]
    with pytest.raises(ConfigError) as err:
        config.build(raw, environ={})
    assert err.value.key == key
    assert words in err.value.reason


def test_srtp_over_plain_sip_is_allowed_with_secure_signaling_0():
    """srtp_secure_signaling 0 lets SRTP run without TLS (keys visible to anyone on the path)."""
    sip = config.build({"sip": {"srtp": "mandatory", "srtp_secure_signaling": 0}}, environ={}).sip
    assert (sip.srtp, sip.srtp_secure_signaling) == ("mandatory", 0)


DUMP = """  [CONFIRMED] To: <sip:handset@127.0.0.1>;tag=f01b
    Call time: 00h:00m:06s, 1st res in 17 ms, conn in 63ms
    #0 audio PCMU @8kHz, sendrecv, peer=127.0.0.1:29066
       SRTP status: {status} Crypto-suite: {suite}
       RX pt=0, last update:00h:00m:01.110s ago
"""


def test_srtp_suite_is_read_from_the_call_dump():
    """An active SRTP stream gives its crypto suite; an inactive one or plain RTP gives None."""
    assert srtp_suite(DUMP.format(status="Active", suite="AES_CM_128_HMAC_SHA1_80")) == \
        "AES_CM_128_HMAC_SHA1_80"
    assert srtp_suite(DUMP.format(status="Not active", suite="")) is None
    assert srtp_suite("  #0 audio PCMU @8kHz, sendrecv\n") is None
    assert srtp_suite("") is None
