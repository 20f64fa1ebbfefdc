"""A trunk's registration state: what each REGISTER result means, logs and retries."""

from sipbridge.backoff import Backoff
from sipbridge.sip.trunk_state import Phase, TrunkState, failure_reason, own_contact


def state(min_s=1.0, max_s=4.0):
    return TrunkState("carrier", Backoff(min_s, max_s))


def test_success_logs_registered_once_then_refreshes_quietly():
    """The first 200 logs trunk_registered; identical refreshes are debug-level trunk_refreshed."""
    s = state()
    out = s.result(200, "OK", 300, now=0, contact="sip:alice@10.0.0.1:5060;ob")
    assert out.event == "trunk_registered" and out.retry_in_s is None
    assert out.fields == {"trunk": "carrier", "expires": 300, "contact": "sip:alice@10.0.0.1:5060;ob"}
    again = s.result(200, "OK", 300, now=295, contact="sip:alice@10.0.0.1:5060;ob")
    assert again.event == "trunk_refreshed" and again.level == "debug"
    changed = s.result(200, "OK", 120, now=590, contact="sip:alice@10.0.0.1:5060;ob")
    assert changed.event == "trunk_registered" and changed.fields["expires"] == 120


def test_failures_back_off_and_a_success_resets():
    """Each failure logs a warning with retry_in_s growing to the cap; success restarts from min."""
    s = state()
    waits = []
    for t in range(4):
        out = s.result(401, "Unauthorized", 0, now=t * 10)
        assert out.event == "trunk_registration_failed" and out.level == "warning"
        assert out.fields["reason"] == "authentication failed: check the password"
        assert out.fields["status"] == 401 and out.fields["attempt"] == t + 1
        waits.append(out.retry_in_s)
        assert s.attempt(now=t * 10 + out.retry_in_s)
    assert waits == [1, 2, 4, 4]
    assert s.result(200, "OK", 60, now=100).event == "trunk_registered"
    assert s.result(408, "Request Timeout", 0, now=200).retry_in_s == 1


def test_retry_is_not_sent_before_it_is_due_nor_twice():
    """attempt() says yes once, when the backoff is due and a retry is pending."""
    s = state()
    assert not s.attempt(now=0)                  # registering, nothing failed
    s.result(503, "Service Unavailable", 0, now=0)
    assert not s.attempt(now=0.5)
    assert s.attempt(now=1.0)
    assert s.phase is Phase.REGISTERING
    assert not s.attempt(now=5.0)


def test_a_failed_refresh_drops_the_registration_and_retries():
    """A registered trunk whose refresh times out is no longer registered and schedules a retry."""
    s = state()
    s.result(200, "OK", 300, now=0)
    out = s.result(408, "Request Timeout", 0, now=295)
    assert s.phase is Phase.WAITING and out.retry_in_s == 1
    assert out.fields["reason"] == "the registrar did not answer (timeout)"
    assert s.result(200, "OK", 300, now=400).event == "trunk_registered"


def test_stop_unregisters_only_a_registered_trunk():
    """Stopping a registered trunk awaits the REGISTER 0 result (trunk_unregistered); else nothing to send."""
    s = state()
    s.result(200, "OK", 300, now=0)
    assert s.stop() is True and s.phase is Phase.UNREGISTERING
    out = s.result(200, "OK", 0, now=1)
    assert out.event == "trunk_unregistered" and out.fields["ok"] is True
    assert s.phase is Phase.STOPPED
    assert s.result(200, "OK", 300, now=2).event is None   # late results are ignored
    failing = state()
    failing.result(403, "Forbidden", 0, now=0)
    assert failing.stop() is False and failing.phase is Phase.STOPPED
    assert not failing.attempt(now=100)
    assert failing.send_failed("boom", now=100).event is None


def test_a_local_send_error_is_retried_like_a_failure():
    """pjsua refusing to send (status 0) becomes a failure with code 0 and a retry."""
    s = state()
    s.result(503, "Service Unavailable", 0, now=0)
    s.attempt(now=1)
    out = s.send_failed("Object is busy (PJSIP_EBUSY)", now=1)
    assert out.fields["status"] == 0 and out.retry_in_s == 2
    assert "could not send the REGISTER" in out.fields["reason"]


def test_failure_reasons_tell_the_operator_what_to_check():
    """Status codes map to advice: password, username, timeout, availability."""
    assert failure_reason(401, "Unauthorized") == "authentication failed: check the password"
    assert "password" in failure_reason(407, "Proxy Authentication Required")
    assert "username and password" in failure_reason(403, "Forbidden")
    assert "username" in failure_reason(404, "Not Found")
    assert "timeout" in failure_reason(408, "Request Timeout")
    assert failure_reason(503, "Service Unavailable") == "registrar unavailable: 503 Service Unavailable"
    assert failure_reason(488, "Not Acceptable Here") == "registrar refused: 488 Not Acceptable Here"
    assert "no binding" in failure_reason(200, "OK")


def test_own_contact_is_picked_among_the_bindings_of_the_200():
    """The 200 lists every binding of the AOR; ours names our host:port, compact headers included."""
    msg = ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060\r\n"
           "Contact: <sip:alice@10.0.0.9:5070;ob>;expires=20, <sip:alice@10.0.0.1:5060;ob>;expires=300\r\n"
           "m: <sip:alice@10.0.0.2:5060>;expires=30\r\nContent-Length: 0\r\n\r\n")
    assert own_contact(msg, "10.0.0.1", 5060) == "sip:alice@10.0.0.1:5060;ob"
    assert own_contact(msg, "10.0.0.2", 5060) == "sip:alice@10.0.0.2:5060"
    assert own_contact(msg, "192.0.2.1", 5060) == "sip:alice@10.0.0.9:5070;ob"  # none: the first
    assert own_contact("SIP/2.0 200 OK\r\n\r\n", "10.0.0.1", 5060) is None
    assert own_contact("", "10.0.0.1", 5060) is None


def test_a_binding_that_lapses_unrefreshed_is_reported_then_the_timeout_retries():
    """Past its expiry with the refresh unanswered the trunk is reported down; pjsua's 408 then schedules the retry."""
    s = state()
    s.result(200, "OK", 10, now=100)
    assert s.check_expiry(now=109.9).event is None
    lapsed = s.check_expiry(now=110)
    assert lapsed.event == "trunk_registration_failed" and lapsed.retry_in_s is None
    assert lapsed.fields["status"] == 408 and "expired" in lapsed.fields["reason"]
    assert s.phase is Phase.WAITING and not s.attempt(now=111)   # the refresh is still pending
    assert s.check_expiry(now=120).event is None                 # said once
    timeout = s.result(408, "Request Timeout", 0, now=137)
    assert timeout.retry_in_s == 1 and s.attempt(now=138)
    assert s.result(200, "OK", 10, now=139).event == "trunk_registered"


def test_a_refresh_in_time_keeps_the_binding():
    """A refresh answered before expiry moves the lapse point; nothing is reported."""
    s = state()
    s.result(200, "OK", 10, now=0)
    s.result(200, "OK", 10, now=5)
    assert s.check_expiry(now=10.5).event is None
    assert s.check_expiry(now=15).event == "trunk_registration_failed"
