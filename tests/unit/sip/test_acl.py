"""Source-address filtering for INVITEs."""

import pytest

from sipbridge.errors import ConfigError
from sipbridge.sip.acl import AddressFilter, split_host_port


def test_allows_addresses_inside_the_networks_only():
    """An address inside a configured CIDR is allowed; one outside is not."""
    f = AddressFilter(["127.0.0.1/32", "10.0.0.0/8"])
    assert f.allows("127.0.0.1:5060")
    assert f.allows("10.200.3.4")
    assert not f.allows("127.0.0.2:5060")
    assert not f.allows("192.0.2.1:5060")


def test_ipv6_sources_are_parsed_with_brackets():
    """pjsip writes IPv6 sources as [addr]:port; those are matched against IPv6 networks."""
    f = AddressFilter(["::1/128"])
    assert f.allows("[::1]:5060")
    assert not f.allows("127.0.0.1:5060")
    assert split_host_port("[2001:db8::1]:5070") == ("2001:db8::1", 5070)


def test_empty_list_allows_nobody_and_garbage_is_refused():
    """No networks means no caller, and an unparsable source is never allowed."""
    assert not AddressFilter([]).allows("127.0.0.1")
    assert not AddressFilter(["0.0.0.0/0"]).allows("not-an-ip:5060")


def test_bad_cidr_is_a_config_error_naming_the_entry():
    """A malformed network names its index in sip.allow_from."""
    with pytest.raises(ConfigError) as err:
        AddressFilter(["10.0.0.0/8", "10.0.0.0/33"])
    assert err.value.key == "sip.allow_from[1]"
