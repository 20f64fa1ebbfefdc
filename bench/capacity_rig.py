"""The rig of bench/capacity.py: worker processes, the shared model server, tcpdump, and the
callers' conversation pcap. Processes only; the numbers are made in bench/loadstats.py.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import audio, pcap  # noqa: E402
from tests.support.bridge import Bridge, terminate  # noqa: E402
from tests.support.ports import free_tcp_port  # noqa: E402
from tests.support.sipp import PCMU_SPEECH_PCAP, make_audio_pcap  # noqa: E402

CALLS_PER_WORKER = 4
QUIET_S = 8.0
BRIDGES = ("sipbridge", "floor-native", "floor-python", "floor-cport")


def worker_command(bridge: str) -> list[str] | None:
    """The worker program for ``--bridge``: None is ``sipbridge run``; ``floor-native``,
    ``floor-python`` and ``floor-cport`` are bench/floor_worker.py with ``--media
    native|python|cport``."""
    if bridge not in BRIDGES:
        raise ValueError(f"bridge must be one of {BRIDGES}, got {bridge!r}")
    if bridge == "sipbridge":
        return None
    return [sys.executable, str(ROOT / "bench" / "floor_worker.py"), "--media",
            bridge.removeprefix("floor-")]


def config_overrides(items: list[str]) -> dict:
    """``--set section.key=value`` items as a config fragment (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not section or not name:
            raise ValueError(f"--set wants section.key=value, got {item!r}")
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


def progress(msg: str) -> None:
    print(f"[capacity] {msg}", file=sys.stderr, flush=True)


def conversation_pcap(out: Path, seconds: float) -> Path:
    """The speech pcap then QUIET_S of -65 dBFS noise, repeated to ``seconds``, as PCMU RTP."""
    frames = [d.payload[12:] for d in pcap.read_pcap(PCMU_SPEECH_PCAP)]
    speech = audio.g711_decode(b"".join(frames), "ulaw")
    cycle = np.concatenate([speech, audio.noise(QUIET_S * 1000, -65.0, seed=7, rate=8000)])
    reps = max(1, math.ceil(seconds * 8000 / len(cycle)))
    make_audio_pcap(np.tile(cycle, reps)[: int(seconds * 8000)], out)
    return out


class Tcpdump:
    """Header-only capture of UDP leaving the workers' RTP ranges."""

    def __init__(self, path: Path, ranges: list[tuple[int, int]]):
        self.path = path
        terms = " or ".join(f"src portrange {lo}-{hi}" for lo, hi in ranges)
        cmd = ["tcpdump", "-i", "lo", "-n", "-U", "-s", "64", "-B", "32768", "-w", str(path),
               f"udp and ({terms})"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        self.stats = ""

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        out = {}
        for line in (err or "").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "packets":
                out[" ".join(parts[2:])] = int(parts[0])
        return out


class ModelServer:
    """``python -m sipbridge.embedded`` without a recording (it would cost more than
    the model itself at this load)."""

    def __init__(self, pace: float = 4.0):
        cmd = [sys.executable, "-m", "sipbridge.embedded", "--port", str(free_tcp_port()),
               "--pace", str(pace)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        self.url = self.proc.stdout.readline().decode().strip()
        if not self.url.startswith("ws://"):
            self.stop()
            raise RuntimeError(f"model server did not start: {self.url!r}")

    def stop(self) -> None:
        terminate(self.proc, 10)


class Pool:
    """Worker processes, started on demand and kept between steps."""

    def __init__(self, tmp: Path, upstream_url: str | None, command: list[str] | None = None,
                 config: dict | None = None):
        self.tmp = tmp
        self.url = upstream_url
        self.command = command  # see worker_command()
        self.config = {"sip": {"max_calls": CALLS_PER_WORKER}}  # plus --set overrides
        for section, values in (config or {}).items():
            self.config.setdefault(section, {}).update(values)
        self.workers: list[Bridge] = []

    def ensure(self, count: int) -> list[Bridge]:
        missing = count - len(self.workers)
        if missing > 0:
            progress(f"starting {missing} worker(s) ({count} in all)")
            started: list[Bridge] = []
            errors: list[str] = []

            def start() -> None:
                try:
                    started.append(Bridge(self.tmp, self.url, ready_timeout=120,
                                          extra=self.config, command=self.command))
                except Exception as exc:  # noqa: BLE001
                    errors.append(str(exc)[:500])
            for batch in range(0, missing, 4):  # a few at a time: each loads pjsua2 and Silero
                threads = [threading.Thread(target=start) for _ in range(min(4, missing - batch))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            self.workers += started
            if errors:
                raise RuntimeError(f"{len(errors)} worker(s) failed to start: {errors[0]}")
        return self.workers[:count]

    def stop(self) -> None:
        threads = [threading.Thread(target=w.stop) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def spread(calls: int, workers: int) -> list[int]:
    """Calls per worker, as even as possible, never above CALLS_PER_WORKER."""
    base, extra = divmod(calls, workers)
    out = [base + (1 if i < extra else 0) for i in range(workers)]
    if max(out) > CALLS_PER_WORKER:
        raise ValueError(f"{calls} calls do not fit on {workers} workers of {CALLS_PER_WORKER}")
    return out
