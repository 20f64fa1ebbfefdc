"""Run SIPp from tests: place calls (``run_sipp``) or stand up a test UAS (``SippUas``).

Every SIPp run is a plain subprocess (never ``-bg``) bound to 127.0.0.1
(``-i``/``-mi``/``-ci``) with free ports for SIP (``-p``), media (``-mp``) and
SIPp's control socket (``-cp``, default 8888 otherwise), ``-nostdin``,
``-m 1`` by default, ``-aa`` and a global ``-timeout ... -timeout_error`` so a
hung call makes SIPp exit non-zero instead of hanging the test.  All trace files
go to a per-run directory and are parsed into a ``SippResult``:

* ``-trace_shortmsg`` (one line per SIP message: time, S/R, Call-ID, CSeq,
  first line) gives ``response_codes`` and ``final_code`` -- the final response
  the UAS sent to our INVITE, e.g. 200, 486, 503;
* ``-trace_msg`` keeps the full messages (``messages``, ``answer_sdp``);
* ``-trace_err``, ``-trace_screen``, ``-trace_stat``, ``-trace_logs`` are kept
  for debugging.

Scenario keywords: the scenarios in ``sipp-scenarios/`` play ``[pcap]`` (and
``[dtmf_pcap]``) via ``play_pcap_audio``; SIPp 3.6.1 substitutes ``-key``
keywords inside that attribute (verified), but not inside other attributes
(``<pause milliseconds="[x]">`` is rejected), so pause lengths are passed as
``-set`` variables (``hold_ms``, ``speech_ms``) converted with ``<todouble>``.
Response codes in ``<send>`` are validated at parse time, so ``uas_reject.xml``
is specialised per code by ``reject_scenario()``.

Public API::

    SCENARIO_DIR, PCMU_SPEECH_PCAP, PCMA_SPEECH_PCAP, DTMF_POUND_PCAP
    sipp_available() -> bool
    scenario_path(name_or_path) -> Path        # "uac_pcmu" -> sipp-scenarios/uac_pcmu.xml
    pcap_duration_ms(path) -> int              # first to last packet + one ptime
    reject_scenario(code, reason=None, out_dir=None) -> Path
    make_audio_pcap(source, out, *, law="ulaw", pt=None, ssrc=None, seq=None,
                    ts=None, ptime_ms=20, start_ts=1_700_000_000.0) -> int   # packets
    make_dtmf_pcap(digits, out, *, pt=101, ssrc=None, seq=0, ts=0, tone_ms=160,
                   gap_ms=100, start_ts=1_700_000_000.0) -> int
    @dataclass SipMessage(time, direction, call_id, cseq, first_line)
        .is_response ; .code ; .method
    @dataclass SippResult(...)  .returncode .ok .final_code .response_codes
        .invite_codes .shortmsgs .messages .answer_sdp .stdout .stderr
        .trace_dir .files .stats .successful_calls .failed_calls .command
    run_sipp(scenario, target, local_port=None, media_port=None, keys=None,
             timeout=30.0, *, variables=None, calls=1, rtp_echo=False,
             service="sipbridge", hold_ms=None, pcap=None, dtmf_pcap=None,
             speech_ms=None, extra_args=(), trace_dir=None, on_start=None) -> SippResult
    class SippUas(scenario="uas_echo", *, port=None, media_port=None,
                  rtp_echo=True, calls=1, codec="PCMU", reject=None,
                  hold_ms=1000, keys=None, variables=None, timeout=60.0, trace_dir=None,
                  extra_args=())       # context manager
        .start() .target .port .media_port .stop(timeout=10.0) -> SippResult
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from . import audio, pcap, rtp, system
from .ports import LOOPBACK, free_port, free_port_block, is_udp_port_free

__all__ = [
    "SCENARIO_DIR",
    "PCMU_SPEECH_PCAP",
    "PCMA_SPEECH_PCAP",
    "DTMF_POUND_PCAP",
    "sipp_available",
    "scenario_path",
    "pcap_duration_ms",
    "reject_scenario",
    "make_audio_pcap",
    "make_dtmf_pcap",
    "SipMessage",
    "SippResult",
    "run_sipp",
    "SippUas",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = REPO_ROOT / "sipp-scenarios"
PCMU_SPEECH_PCAP = SCENARIO_DIR / "pcmu_speech.pcap"
PCMA_SPEECH_PCAP = SCENARIO_DIR / "pcma_speech.pcap"
DTMF_POUND_PCAP = system.SIPP_SHARE / "dtmf_2833_pound.pcap"

_SIPP = os.environ.get("SIPP_BINARY", "sipp")  # override for a custom build


def sipp_available() -> bool:
    """True if a ``sipp`` binary is on PATH."""
    return shutil.which(_SIPP) is not None


def scenario_path(scenario: str | Path) -> Path:
    """Resolve a scenario: an existing path, or a name in ``sipp-scenarios/`` (``.xml`` optional)."""
    p = Path(scenario)
    if p.exists():
        return p.resolve()
    name = p.name if p.suffix == ".xml" else f"{p.name}.xml"
    candidate = SCENARIO_DIR / name
    if candidate.exists():
        return candidate
    raise FileNotFoundError(f"no SIPp scenario {scenario!r} (looked in {SCENARIO_DIR})")


# --------------------------------------------------------------------------- pcaps


def pcap_duration_ms(path: str | Path) -> int:
    """Play length of an RTP pcap: first to last packet plus one packet interval."""
    dgrams = pcap.read_pcap(path)
    if not dgrams:
        return 0
    span = dgrams[-1].ts - dgrams[0].ts
    step = (span / (len(dgrams) - 1)) if len(dgrams) > 1 else 0.02
    return int(round((span + step) * 1000))


def make_audio_pcap(
    source: str | Path | Sequence[int],
    out: str | Path,
    *,
    law: str = "ulaw",
    pt: int | None = None,
    ssrc: int | None = None,
    seq: int | None = None,
    ts: int | None = None,
    ptime_ms: int = 20,
    start_ts: float = 1_700_000_000.0,
) -> int:
    """Encode a WAV (any rate; resampled to 8 kHz) or 8 kHz PCM as a G.711 RTP pcap for SIPp.

    Packets carry ``ptime_ms`` of audio each, consecutive sequence numbers and
    timestamps (random start unless given), one SSRC, the marker bit on the
    first packet, and pcap timestamps exactly ``ptime_ms`` apart (SIPp paces
    ``play_pcap_audio`` by them).  Ethernet framing.  Returns the packet count.
    """
    pcm = audio.load_wav(source) if isinstance(source, (str, Path)) else np.asarray(source, dtype=np.int16)
    norm = audio.normalize_law(law)
    if pt is None:
        pt = 0 if norm == "ulaw" else 8
    spp = audio.ms_to_samples(ptime_ms)
    # pad to whole packets with silence so every packet has the same size
    pcm = np.concatenate([pcm.reshape(-1), np.zeros((-len(pcm)) % spp, dtype=np.int16)])
    payload = audio.g711_encode(pcm, norm)
    packets = rtp.packetize(
        payload,
        pt,
        secrets.randbits(32) if ssrc is None else ssrc,
        seq=secrets.randbits(15) if seq is None else seq,
        ts=secrets.randbits(31) if ts is None else ts,
        samples_per_packet=spp,
    )
    return pcap.write_rtp_pcap(out, packets, interval=ptime_ms / 1000.0, start_ts=start_ts)


def make_dtmf_pcap(
    digits: str,
    out: str | Path,
    *,
    pt: int = 101,
    ssrc: int | None = None,
    seq: int = 0,
    ts: int = 0,
    tone_ms: int = 160,
    gap_ms: int = 100,
    start_ts: float = 1_700_000_000.0,
) -> int:
    """Write an RFC 4733 telephone-event pcap for ``digits`` (20 ms updates, 3 end packets)."""
    ssrc = secrets.randbits(32) if ssrc is None else ssrc
    packets: list[bytes] = []
    times: list[float] = []
    t = 0.0
    rtp_ts = ts
    for digit in digits:
        steps = max(1, tone_ms // 20)
        for i in range(steps):
            dur = (i + 1) * 160
            end = i == steps - 1
            payload = rtp.build_telephone_event(digit, dur, end=end)
            for _ in range(3 if end else 1):
                packets.append(rtp.build_rtp(pt, seq, rtp_ts, ssrc, payload, marker=(i == 0)))
                times.append(t)
                seq += 1
            t += 0.020
        rtp_ts += steps * 160 + audio.ms_to_samples(gap_ms)
        t += gap_ms / 1000.0
    return pcap.write_rtp_pcap(out, packets, start_ts=start_ts, times=times)


def reject_scenario(code: int, reason: str | None = None, out_dir: str | Path | None = None) -> Path:
    """Copy ``uas_reject.xml`` with its final response changed to ``code reason``."""
    if not 300 <= int(code) <= 699:
        raise ValueError("reject code must be 300..699")
    reason = reason or _REASONS.get(int(code), "Rejected")
    text = scenario_path("uas_reject").read_text()
    text = text.replace("SIP/2.0 486 Busy Here", f"SIP/2.0 {int(code)} {reason}")
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="sipp-reject-"))
    path = out_dir / f"uas_reject_{int(code)}.xml"
    path.write_text(text)
    return path


_REASONS = {
    403: "Forbidden",
    404: "Not Found",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    603: "Decline",
}


# --------------------------------------------------------------------------- results


@dataclass
class SipMessage:
    """One line of SIPp's ``-trace_shortmsg`` log; ``direction`` is "S" (sent) or "R" (received)."""

    time: float
    direction: str
    call_id: str
    cseq: str
    first_line: str

    @property
    def is_response(self) -> bool:
        return self.first_line.startswith("SIP/2.0 ")

    @property
    def code(self) -> int | None:
        if not self.is_response:
            return None
        try:
            return int(self.first_line.split()[1])
        except (IndexError, ValueError):
            return None

    @property
    def method(self) -> str:
        """CSeq method (``INVITE``, ``BYE``...)."""
        return self.cseq.split()[-1] if self.cseq else ""


@dataclass
class SippResult:
    """Outcome of one SIPp run; ``final_code`` is the final response to our INVITE."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    trace_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    shortmsgs: list[SipMessage] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """SIPp exit code 0: every call completed its scenario."""
        return self.returncode == 0 and not self.timed_out

    @property
    def received(self) -> list[SipMessage]:
        return [m for m in self.shortmsgs if m.direction == "R"]

    @property
    def sent(self) -> list[SipMessage]:
        return [m for m in self.shortmsgs if m.direction == "S"]

    @property
    def response_codes(self) -> list[int]:
        """Codes of all responses SIPp received, in order (retransmissions included)."""
        return [m.code for m in self.received if m.code is not None]

    @property
    def invite_codes(self) -> list[int]:
        """Codes of responses received to INVITE, in order."""
        return [m.code for m in self.received if m.code is not None and m.method == "INVITE"]

    @property
    def final_code(self) -> int | None:
        """First final (>= 200) response received to the INVITE, or None if there was none."""
        return next((c for c in self.invite_codes if c >= 200), None)

    @property
    def sent_codes(self) -> list[int]:
        """Codes of responses SIPp sent (useful when SIPp is the UAS)."""
        return [m.code for m in self.sent if m.code is not None]

    @property
    def messages(self) -> list[tuple[str, str]]:
        """Full SIP messages from ``-trace_msg`` as ``("S"|"R", text)``."""
        path = self.files.get("messages")
        if not path or not path.exists():
            return []
        out = []
        for block in re.split(r"^-{20,}.*$", path.read_text(errors="replace"), flags=re.M):
            m = re.search(r"message (sent|received)[^\n]*\n\n?(.*)", block, flags=re.S)
            if m:
                out.append(("S" if m.group(1) == "sent" else "R", m.group(2).strip("\n")))
        return out

    @property
    def answer_sdp(self) -> str | None:
        """SDP body of the first 2xx to INVITE that SIPp received, if any."""
        for direction, text in self.messages:
            if direction == "R" and re.match(r"SIP/2\.0 2\d\d", text) and re.search(r"^CSeq:\s*\d+\s+INVITE", text, re.M | re.I):
                parts = re.split(r"\r?\n\r?\n", text, maxsplit=1)
                return parts[1] if len(parts) > 1 else ""
        return None

    @property
    def stats(self) -> dict[str, str]:
        """Last row of the ``-trace_stat`` CSV as a dict (header -> value)."""
        path = self.files.get("stat")
        if not path or not path.exists():
            return {}
        rows = [r for r in path.read_text(errors="replace").splitlines() if r.strip()]
        if len(rows) < 2:
            return {}
        header, last = rows[0].split(";"), rows[-1].split(";")
        return dict(zip(header, last))

    def _stat_int(self, key: str) -> int | None:
        try:
            return int(self.stats[key])
        except (KeyError, ValueError):
            return None

    @property
    def successful_calls(self) -> int | None:
        return self._stat_int("SuccessfulCall(C)")

    @property
    def failed_calls(self) -> int | None:
        return self._stat_int("FailedCall(C)")

    def describe(self) -> str:
        """Human-readable summary for assertion messages."""
        flow = "\n".join(f"  {m.direction} {m.cseq:<16} {m.first_line}" for m in self.shortmsgs)
        err = ""
        if "errors" in self.files and self.files["errors"].exists():
            err = self.files["errors"].read_text(errors="replace")[-2000:]
        return (
            f"sipp rc={self.returncode} timed_out={self.timed_out} final={self.final_code}\n"
            f"cmd: {' '.join(self.command)}\nflow:\n{flow}\nerrors:\n{err}\nstderr:\n{self.stderr[-2000:]}"
        )


def _parse_shortmsgs(path: Path) -> list[SipMessage]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        cols = line.split("\t")
        if len(cols) < 7:
            continue
        try:
            t = float(cols[2])
        except ValueError:
            continue
        cseq = cols[5][5:] if cols[5].startswith("CSeq:") else cols[5]
        out.append(SipMessage(t, cols[3], cols[4], cseq.strip(), "\t".join(cols[6:]).strip()))
    return out


def _trace_args(trace_dir: Path, stem: str) -> tuple[list[str], dict[str, Path]]:
    files = {
        "messages": trace_dir / f"{stem}_messages.log",
        "shortmessages": trace_dir / f"{stem}_shortmessages.log",
        "errors": trace_dir / f"{stem}_errors.log",
        "screen": trace_dir / f"{stem}_screen.log",
        "stat": trace_dir / f"{stem}_stat.csv",
        "logs": trace_dir / f"{stem}_logs.log",
    }
    args = [
        "-trace_msg", "-message_file", str(files["messages"]),
        "-trace_shortmsg", "-shortmessage_file", str(files["shortmessages"]),
        "-trace_err", "-error_file", str(files["errors"]),
        "-trace_screen", "-screen_file", str(files["screen"]),
        "-trace_stat", "-stf", str(files["stat"]),
        "-trace_logs", "-log_file", str(files["logs"]),
    ]  # fmt: skip
    return args, files


def _scenario_args(scenario: str | Path) -> tuple[list[str], str]:
    """``-sn NAME`` for ``"builtin:NAME"``, else ``-sf PATH``; also returns a file stem."""
    s = str(scenario)
    if s.startswith("builtin:"):
        name = s.split(":", 1)[1]
        return ["-sn", name], f"builtin_{name}"
    path = scenario_path(scenario)
    return ["-sf", str(path)], path.stem


def _base_args(local_port: int, media_port: int, ctrl_port: int) -> list[str]:
    return [
        "-i", LOOPBACK, "-mi", LOOPBACK, "-ci", LOOPBACK,
        "-p", str(local_port), "-mp", str(media_port), "-cp", str(ctrl_port),
        "-t", "u1", "-nostdin", "-aa",
    ]  # fmt: skip


def _kv_args(flag: str, mapping: Mapping[str, object] | None) -> list[str]:
    out: list[str] = []
    for k, v in (mapping or {}).items():
        out += [flag, str(k), str(v)]
    return out


def _default_pcap(scenario: str | Path) -> Path:
    return PCMA_SPEECH_PCAP if "pcma" in str(scenario).lower() else PCMU_SPEECH_PCAP


def run_sipp(
    scenario: str | Path,
    target: str,
    local_port: int | None = None,
    media_port: int | None = None,
    keys: Mapping[str, object] | None = None,
    timeout: float = 30.0,
    *,
    variables: Mapping[str, object] | None = None,
    calls: int = 1,
    rtp_echo: bool = False,
    service: str = "sipbridge",
    hold_ms: int | None = None,
    pcap: str | Path | None = None,
    dtmf_pcap: str | Path | None = None,
    speech_ms: int | None = None,
    extra_args: Sequence[str] = (),
    trace_dir: str | Path | None = None,
    on_start: Callable[[subprocess.Popen], object] | None = None,
) -> SippResult:
    """Run SIPp as a client against ``target`` ("host:port") and wait for it to finish.

    ``scenario`` is a name in ``sipp-scenarios/`` ("uac_pcmu"), a path, or
    ``"builtin:uac"``.  ``pcap``/``dtmf_pcap``/``hold_ms``/``speech_ms`` fill
    the ``[pcap]``/``[dtmf_pcap]`` keys and ``hold_ms``/``speech_ms`` variables
    used by our scenarios (defaults: the committed speech pcap matching the
    codec, the RFC 2833 '#' pcap, hold_ms = the pcap's length + 500 ms (1000 ms
    after the DTMF in uac_dtmf), speech_ms = the speech pcap's length + 200 ms);
    ``keys``/``variables`` add or override ``-key``/``-set`` pairs.  SIPp's own
    ``-timeout`` is ``timeout``; the subprocess is killed 10 s later at worst.
    The RTP sent by ``play_pcap_audio`` leaves from ``media_port``.
    ``on_start`` is called with SIPp's process once it runs (from this thread): a test that no
    longer needs a call which will never end by itself can ``terminate()`` it (SIPp exits at
    once on SIGTERM) instead of waiting out ``timeout``.
    """
    local_port = local_port or free_port()
    media_port = media_port or free_port_block(4, align=2)
    ctrl_port = free_port()
    trace_dir = Path(trace_dir) if trace_dir else Path(tempfile.mkdtemp(prefix="sipp-"))
    trace_dir.mkdir(parents=True, exist_ok=True)
    scen_args, stem = _scenario_args(scenario)
    trace_args, files = _trace_args(trace_dir, stem)

    all_keys: dict[str, object] = {}
    all_vars: dict[str, object] = {}
    if not str(scenario).startswith("builtin:"):
        text = scenario_path(scenario).read_text(errors="replace")
        pcap_path = Path(pcap) if pcap else _default_pcap(scenario)
        if "[pcap]" in text:
            all_keys["pcap"] = str(Path(pcap_path).resolve())
        if "[dtmf_pcap]" in text:
            all_keys["dtmf_pcap"] = str(Path(dtmf_pcap or DTMF_POUND_PCAP).resolve())
        if re.search(r'variable="hold_ms"', text):
            if hold_ms is None:  # let the speech finish (or give the DTMF a second)
                hold_ms = 1000 if "[dtmf_pcap]" in text else (pcap_duration_ms(pcap_path) + 500 if "[pcap]" in text else 2000)
            all_vars["hold_ms"] = int(hold_ms)
        if re.search(r'variable="speech_ms"', text):
            all_vars["speech_ms"] = int(speech_ms if speech_ms is not None else pcap_duration_ms(pcap_path) + 200)
    all_keys.update(keys or {})
    all_vars.update(variables or {})

    cmd = [
        _SIPP, target, *scen_args,
        *_base_args(local_port, media_port, ctrl_port),
        "-s", service, "-m", str(calls),
        "-timeout", f"{int(max(1, round(timeout)))}s", "-timeout_error",
        *trace_args,
        *_kv_args("-key", all_keys), *_kv_args("-set", all_vars),
    ]  # fmt: skip
    if rtp_echo:
        cmd.append("-rtp_echo")
    cmd += list(extra_args)

    timed_out = False
    with subprocess.Popen(cmd, cwd=trace_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, errors="replace") as proc:
        try:
            if on_start is not None:
                on_start(proc)
            out, err = proc.communicate(timeout=timeout + 10)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            timed_out, rc = True, -9
        except BaseException:   # as subprocess.run: never leave SIPp running behind an error
            proc.kill()
            raise
    return SippResult(
        command=cmd,
        returncode=rc,
        stdout=out,
        stderr=err,
        trace_dir=trace_dir,
        files=files,
        shortmsgs=_parse_shortmsgs(files["shortmessages"]),
        timed_out=timed_out,
    )


# --------------------------------------------------------------------------- UAS


class SippUas:
    """A SIPp UAS running in the background for the duration of a ``with`` block.

    Default scenario ``uas_echo`` answers with ``codec`` (PCMU or PCMA) on
    ``media_port`` and, with ``rtp_echo``, bounces all RTP back to its sender.
    ``reject=486`` (or ``(503, "Overloaded")``) instead runs ``uas_reject`` with
    that final response.  ``"uas_hangup"`` answers and sends BYE ``hold_ms``
    after the ACK.  ``"builtin:uas"`` runs SIPp's embedded UAS.

        with SippUas() as uas:
            res = run_sipp("uac_pcmu", uas.target)
        uas.result.sent_codes  # [100, 180, 200, 200]
    """

    def __init__(
        self,
        scenario: str | Path = "uas_echo",
        *,
        port: int | None = None,
        media_port: int | None = None,
        rtp_echo: bool = True,
        calls: int = 1,
        codec: str = "PCMU",
        reject: int | tuple[int, str] | None = None,
        hold_ms: int = 1000,
        keys: Mapping[str, object] | None = None,
        variables: Mapping[str, object] | None = None,
        timeout: float = 60.0,
        trace_dir: str | Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.trace_dir = Path(trace_dir) if trace_dir else Path(tempfile.mkdtemp(prefix="sipp-uas-"))
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        if reject is not None:
            code, reason = (reject, None) if isinstance(reject, int) else reject
            scenario = reject_scenario(code, reason, self.trace_dir)
        self.scenario = scenario
        self.port = port or free_port()
        self.media_port = media_port or free_port_block(4, align=2)
        self.rtp_echo = rtp_echo
        self.calls = calls
        self.timeout = timeout
        self.keys: dict[str, object] = {}
        scen_text = "" if str(scenario).startswith("builtin:") else scenario_path(scenario).read_text(errors="replace")
        if "[answer_pt]" in scen_text:
            pt, name = {"PCMU": (0, "PCMU/8000"), "PCMA": (8, "PCMA/8000")}[codec.upper()]
            self.keys.update(answer_pt=pt, answer_codec=name)
        self.keys.update(keys or {})
        self.variables: dict[str, object] = {}
        if 'variable="hold_ms"' in scen_text:
            self.variables["hold_ms"] = int(hold_ms)
        self.variables.update(variables or {})
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.result: SippResult | None = None
        self._files: dict[str, Path] = {}
        self._cmd: list[str] = []

    @property
    def target(self) -> str:
        """``"127.0.0.1:PORT"`` to hand to a UAC."""
        return f"{LOOPBACK}:{self.port}"

    def start(self, ready_timeout: float = 5.0) -> "SippUas":
        """Start SIPp and wait until its SIP port is bound."""
        scen_args, stem = _scenario_args(self.scenario)
        trace_args, self._files = _trace_args(self.trace_dir, stem)
        self._cmd = [
            _SIPP, *scen_args,
            *_base_args(self.port, self.media_port, free_port()),
            "-m", str(self.calls),
            "-timeout", f"{int(max(1, round(self.timeout)))}s",
            *trace_args,
            *_kv_args("-key", self.keys), *_kv_args("-set", self.variables),
        ]  # fmt: skip
        if self.rtp_echo:
            self._cmd.append("-rtp_echo")
        self._cmd += self.extra_args
        self._stdout = open(self.trace_dir / "stdout.txt", "w+b")
        self._stderr = open(self.trace_dir / "stderr.txt", "w+b")
        self.proc = subprocess.Popen(
            self._cmd, cwd=self.trace_dir, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("SIPp UAS exited at startup:\n" + (self.result.describe() if self.result else ""))
            if not is_udp_port_free(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"SIPp UAS did not bind {self.target} within {ready_timeout}s")

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait for SIPp to exit by itself (after ``calls`` calls); True if it did."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout: float = 10.0) -> SippResult:
        """Wait up to ``timeout`` s for SIPp to finish, then SIGUSR1/SIGTERM/SIGKILL it; parse traces."""
        if self.result is not None:
            return self.result
        assert self.proc is not None, "not started"
        if not self.wait(timeout):
            for sig, grace in ((signal.SIGUSR1, 2.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    break
                if self.wait(grace):
                    break
        for fh in (self._stdout, self._stderr):
            fh.flush()
            fh.seek(0)
        out = self._stdout.read().decode(errors="replace")
        err = self._stderr.read().decode(errors="replace")
        self._stdout.close()
        self._stderr.close()
        self.result = SippResult(
            command=self._cmd,
            returncode=self.proc.returncode if self.proc.returncode is not None else -9,
            stdout=out,
            stderr=err,
            trace_dir=self.trace_dir,
            files=self._files,
            shortmsgs=_parse_shortmsgs(self._files["shortmessages"]),
        )
        return self.result

    def __enter__(self) -> "SippUas":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


