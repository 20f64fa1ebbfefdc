"""bench/loadstats.py: RTP send times from a header-only capture, pooled intervals, the step verdict."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tests.support.pcap import UdpDatagram, write_pcap

_SPEC = importlib.util.spec_from_file_location(
    "loadstats", Path(__file__).resolve().parents[3] / "bench" / "loadstats.py")
loadstats = sys.modules.setdefault("loadstats", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(loadstats)


def dgram(sport, dport, ts, size=172):
    return UdpDatagram("127.0.0.1", "127.0.0.1", sport, dport, ts, bytes(size))


def test_send_times_groups_packets_by_port_pair_even_when_truncated(tmp_path):
    """Capture times come back per (src, dst) port pair, also from a 64-byte snap length."""
    pkts = [dgram(40000, 6000, 100 + 0.02 * i) for i in range(5)] + [dgram(40002, 6004, 100.5)]
    full, cut = tmp_path / "full.pcap", tmp_path / "cut.pcap"
    write_pcap(full, pkts)
    write_pcap(cut, pkts, snaplen=64)
    for path in (full, cut):
        got = loadstats.send_times(path)
        assert sorted(got) == [(40000, 6000), (40002, 6004)]
        assert got[(40000, 6000)] == pytest.approx([100 + 0.02 * i for i in range(5)])


def test_interval_stats_pools_gaps_inside_the_window_only():
    """Gaps are taken per stream between packets inside [t0, t1], then pooled into percentiles."""
    steady = [10 + 0.02 * i for i in range(200)]            # 20 ms, 10.0 .. 13.98
    late = [10 + 0.02 * i for i in range(100)] + [12.1 + 0.02 * i for i in range(50)]  # one 120 ms gap
    stats = loadstats.interval_stats({"a": steady, "b": late, "c": [11.0]}, 10.0, 14.0)
    assert stats["streams"] == 2 and stats["intervals"] == 199 + 149
    assert stats["p50_ms"] == pytest.approx(20.0, abs=0.01)
    assert stats["max_ms"] == pytest.approx(120.0, abs=0.01) and stats["over_25ms"] == 1
    outside = loadstats.interval_stats({"b": late}, 10.0, 11.9)
    assert outside["max_ms"] == pytest.approx(20.0, abs=0.01)
    assert loadstats.interval_stats({}, 0, 1)["p99_ms"] is None


def test_a_step_is_sustained_only_with_all_calls_answered_none_failed_and_p99_in_limit():
    """sustained needs every call answered, 0 failed and the p99 gap at or under the limit."""
    good = {"calls": 8, "answered": 8, "failed": 0, "rtp_out_interval": {"p99_ms": 24.0}}
    assert loadstats.step_sustained(good)
    assert not loadstats.step_sustained({**good, "failed": 1})
    assert not loadstats.step_sustained({**good, "answered": 7})
    assert not loadstats.step_sustained({**good, "rtp_out_interval": {"p99_ms": 25.5}})
    assert not loadstats.step_sustained({**good, "rtp_out_interval": {"p99_ms": None}})


def test_proc_sample_reads_this_process_and_reports_a_gone_one():
    """proc_sample gives this process's CPU seconds and RSS, and alive=False for a pid that is gone."""
    me = loadstats.proc_sample(os.getpid())
    assert me.alive and me.rss_bytes > 10 * 2**20 and me.cpu_s > 0
    assert not loadstats.proc_sample(2**22 + 1).alive
    busy, total = loadstats.machine_busy()
    assert 0 < busy < total


def test_memory_reads_rss_and_pss_from_smaps_rollup():
    """smaps_rollup's kB lines become bytes; this process has RSS >= PSS > 0; a gone one reads 0."""
    text = ("55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  120 kB\nPss:   80 kB\n"
            "Pss_Anon:  40 kB\nSwapPss: 0 kB\n")
    assert loadstats.parse_smaps_rollup(text) == {"Rss": 120 * 1024, "Pss": 80 * 1024,
                                                  "Pss_Anon": 40 * 1024, "SwapPss": 0}
    me = loadstats.memory(os.getpid())
    assert me["rss"] >= me["pss"] > 10 * 2**20
    assert loadstats.memory(2**22 + 1) == {"rss": 0, "pss": 0}
