"""Shared tooling for integration tests (all traffic on 127.0.0.1, free ports only).

ports    free UDP/TCP ports, RTP pairs and port blocks
pcap     classic pcap reader (many link types) / Ethernet pcap writer
rtp      RTP (RFC 3550) and telephone-event (RFC 4733) parse/build
audio    8 kHz WAV I/O, levels, G.711, generators, utterances with known speech spans
sipp     run SIPp scenarios from sipp-scenarios/ (run_sipp, SippUas), make RTP pcaps
capture  tcpdump on lo -> RTP streams with per-packet timing and levels
baresip  baresip 1.0.0 as a headless handset (WAV mic, records what it hears)
flaky_upstream  recording model server that drops sockets / refuses upgrades on command
"""
