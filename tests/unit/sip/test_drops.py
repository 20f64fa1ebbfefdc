"""pjsip's reports of dropped incoming messages are recognised and counted; other lines are not."""

from sipbridge.sip.drops import DropCounter, parse_drop


def test_syntax_error_drop_is_recognised():
    """A 'Dropping N bytes packet' report gives the source, size and reason."""
    d = parse_drop("Dropping 435 bytes packet from UDP 127.0.0.1:40155 : PJSIP syntax error exception "
                   "when parsing 'CSeq' header on line 6 col 7")
    assert (d.source, d.size) == ("127.0.0.1:40155", 435) and "'CSeq' header" in d.reason


def test_missing_header_report_keeps_only_its_first_line():
    """'Error processing packet' gives the missing header, not the packet text that follows."""
    d = parse_drop("Error processing packet from 10.0.0.9:5060: Missing required header(s) "
                   "(PJSIP_EMISSINGHDR) Call-ID [code 171050]:\nINVITE sip:x SIP/2.0\r\nVia: secret")
    assert d.source == "10.0.0.9:5060" and d.reason.endswith("Call-ID") and "INVITE" not in d.reason


def test_other_lines_are_not_drops_and_count_is_kept():
    """Ordinary pjsip lines are ignored; each drop adds one to the counter."""
    c = DropCounter()
    assert c.feed("Bad SDP in incoming INVITE: Invalid SDP origin line") is None
    assert c.feed("") is None
    c.feed("Dropping 19 bytes packet from UDP 127.0.0.1:1 : garbage")
    assert c.count == 1
