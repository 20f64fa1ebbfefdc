"""Drive baresip 1.0.0 headless as a real SIP handset on 127.0.0.1.

    bs = Baresip(tmp_path / "handset")
    res = bs.call("sip:bot@127.0.0.1:5080", duration_s=6, mic="tt-weasels")
    assert res.established
    heard = audio.load_wav(res.recorded_wav)          # what the handset heard

How it works (all verified against baresip 1.0.0 as packaged by Debian):

* A private config dir (``-f DIR``) with ``config`` + ``accounts``; nothing is
  read from ``~/.baresip``.  Modules: ``g711`` (PCMU/PCMA only), ``aufile``
  (microphone = WAV file), ``sndfile`` (audio filter that dumps
  ``dump-<time>-dec.wav`` = decoded received audio, and ``-enc.wav`` = the
  audio it sent), ``account``, ``menu`` (provides the dial/hangup/quit
  commands) and ``ctrl_tcp`` (JSON-in-netstring control socket + event stream
  on a free TCP port).  No sound-card, STUN/ICE, video or UI modules.
* ``net_interface 127.0.0.1`` (``lo`` does NOT work: "could not get network
  address"), ``sip_listen 127.0.0.1:<free UDP+TCP port>``, ``rtp_ports`` within
  a free block, account ``;regint=0`` (no REGISTER) and
  ``;audio_codecs=PCMU,PCMA``.
* ``aufile`` in 1.0.0 is a *source* only (no player) and requires a 16-bit WAV
  with exactly ``ausrc_srate``/``ausrc_channels`` (set to 8000/1 here).  When
  the file ends it raises an audio error and the ``menu`` module HANGS UP the
  call, so the microphone WAV is padded with silence to outlast the call.
* There is no audio player (``audio_player none,none`` - no player module is
  loaded); the decoded audio is still written by ``sndfile``.  That dump only
  contains frames for RTP packets that actually arrived (no time-filling for
  gaps), at 8 kHz mono.
* ``-e "/dial URI" -t SECONDS`` also works for fire-and-forget calls, but the
  ctrl_tcp socket gives CALL_ESTABLISHED / CALL_CLOSED events, so ``call()``
  uses it.  ``quit`` while an INVITE is still pending can leave baresip hung
  (even SIGTERM is ignored); ``call()`` escalates to SIGKILL.

Public API::

    baresip_available() -> bool
    @dataclass BaresipResult(established, recorded_wav, sent_wav, log, log_path,
        events, close_reason, returncode, established_at, closed_at)
        .event_types -> list[str] ; .recorded_pcm() -> np.ndarray ; .sent_pcm()
    class Baresip(workdir, *, user="handset", sip_port=None, rtp_port_block=None,
                  ctrl_port=None, codecs=("PCMU", "PCMA"), extra_config=None,
                  binary="baresip", modules=(), account_params="")
        .prepare_mic(mic, min_duration_s, lead_ms=0) -> Path
        .write_config(mic_wav) -> Path
        .call(uri, duration_s, *, mic=None, lead_ms=0, answer_timeout=10.0,
              hangup=True) -> BaresipResult
        .session(mic_wav) -> BaresipSession          # context manager, lower level
    class BaresipSession: .command(cmd, params=None, timeout=5.0) -> dict
        .wait_event(types, timeout) -> dict | None ; .events ; .stop() -> int
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from . import audio, system
from .ports import LOOPBACK, free_port, free_port_block

__all__ = ["baresip_available", "BaresipResult", "Baresip", "BaresipSession"]

MODULE_PATH = str(system.BARESIP_MODULES)


def baresip_available() -> bool:
    """True if the baresip binary and the modules this helper needs are installed."""
    needed = ("g711.so", "aufile.so", "sndfile.so", "account.so", "menu.so", "ctrl_tcp.so")
    return shutil.which("baresip") is not None and all((Path(MODULE_PATH) / m).exists() for m in needed)


@dataclass
class BaresipResult:
    """Outcome of ``Baresip.call``; ``recorded_wav`` is what the handset heard."""

    established: bool
    recorded_wav: Path | None
    sent_wav: Path | None
    log: str
    log_path: Path
    events: list[dict] = field(default_factory=list)
    close_reason: str | None = None
    returncode: int | None = None
    established_at: float | None = None  # time.time() of CALL_ESTABLISHED
    closed_at: float | None = None  # time.time() of CALL_CLOSED

    @property
    def event_types(self) -> list[str]:
        return [e.get("type", "") for e in self.events if e.get("event")]

    def recorded_pcm(self) -> np.ndarray:
        """Received audio as 8 kHz int16 (empty if nothing was recorded)."""
        return audio.load_wav(self.recorded_wav) if self.recorded_wav else np.zeros(0, dtype=np.int16)

    def sent_pcm(self) -> np.ndarray:
        """Audio the handset sent, as 8 kHz int16."""
        return audio.load_wav(self.sent_wav) if self.sent_wav else np.zeros(0, dtype=np.int16)


class BaresipSession:
    """A running baresip plus its ctrl_tcp connection (netstring-framed JSON)."""

    def __init__(self, proc: subprocess.Popen, ctrl_port: int, log_path: Path, start_timeout: float = 5.0):
        self.proc = proc
        self.log_path = log_path
        self.events: list[dict] = []
        self._responses: list[dict] = []
        self._buf = b""
        self._token = 0
        deadline = time.monotonic() + start_timeout
        last_err: Exception | None = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"baresip exited early (rc={proc.returncode}):\n{_read(log_path)}")
            try:
                self.sock = socket.create_connection((LOOPBACK, ctrl_port), timeout=0.5)
                break
            except OSError as exc:
                last_err = exc
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"cannot reach baresip ctrl_tcp on {ctrl_port}: {last_err}\n{_read(log_path)}")
                time.sleep(0.05)

    # -- netstring I/O
    def _send(self, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data + b",")

    def _pump(self, timeout: float) -> bool:
        """Read whatever arrives within ``timeout``; return True if a message was parsed."""
        self.sock.settimeout(max(0.001, timeout))
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return False
        except OSError:
            chunk = b""
        if not chunk:
            time.sleep(min(timeout, 0.05))
            return False
        self._buf += chunk
        got = False
        while True:
            colon = self._buf.find(b":")
            if colon < 0 or not self._buf[:colon].isdigit():
                break
            n = int(self._buf[:colon])
            if len(self._buf) < colon + 1 + n + 1:
                break
            body = self._buf[colon + 1 : colon + 1 + n]
            self._buf = self._buf[colon + 2 + n :]
            try:
                msg = json.loads(body)
            except ValueError:
                continue
            msg.setdefault("_t", time.time())
            (self._responses if msg.get("response") else self.events).append(msg)
            got = True
        return got

    def command(self, cmd: str, params: str | None = None, timeout: float = 5.0) -> dict:
        """Run a baresip long command (``dial``, ``hangup``, ``quit``...) and return its response."""
        self._token += 1
        token = f"t{self._token}"
        msg = {"command": cmd, "token": token}
        if params is not None:
            msg["params"] = params
        self._send(msg)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for r in self._responses:
                if r.get("token") == token:
                    self._responses.remove(r)
                    return r
            self._pump(deadline - time.monotonic())
        raise TimeoutError(f"no response to {cmd!r} within {timeout}s")

    def wait_event(self, types: Iterable[str], timeout: float, start: int = 0) -> dict | None:
        """First event (index >= ``start``) whose ``type`` is in ``types``; None on timeout."""
        wanted = set(types)
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events[start:]:
                if ev.get("type") in wanted:
                    return ev
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                return None
            self._pump(min(remaining, 0.2))

    def drain(self, seconds: float) -> None:
        """Keep collecting events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self._pump(min(remaining, 0.2))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 5.0) -> int:
        """``quit`` (wait ``timeout`` s), then SIGTERM (2 s), then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            try:
                self._send({"command": "quit", "token": "quit"})
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self.kill()
        try:
            self.sock.close()
        except OSError:
            pass
        return self.proc.returncode

    def __enter__(self) -> "BaresipSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class Baresip:
    """A headless baresip handset with its own config dir under ``workdir``."""

    def __init__(
        self,
        workdir: str | Path,
        *,
        user: str = "handset",
        sip_port: int | None = None,
        rtp_port_block: tuple[int, int] | None = None,
        ctrl_port: int | None = None,
        codecs: Sequence[str] = ("PCMU", "PCMA"),
        extra_config: Mapping[str, str] | None = None,
        binary: str = "baresip",
        modules: Sequence[str] = (),
        account_params: str = "",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_dir = self.workdir / "config"
        self.snd_dir = self.workdir / "snd"
        self.user = user
        self.sip_port = sip_port or free_port(udp=True, tcp=True)
        if rtp_port_block is None:
            first = free_port_block(20, align=2)
            rtp_port_block = (first, first + 19)
        self.rtp_ports = rtp_port_block
        self.ctrl_port = ctrl_port or free_port(udp=False, tcp=True)
        self.codecs = tuple(codecs)
        self.extra_config = dict(extra_config or {})
        self.binary = binary
        self.modules = tuple(modules)          # extra media modules, e.g. ("srtp.so",)
        self.account_params = account_params   # appended to the account, e.g. ";mediaenc=srtp"
        self._calls = 0

    @property
    def aor(self) -> str:
        """The handset's own SIP URI."""
        return f"sip:{self.user}@{LOOPBACK}:{self.sip_port}"

    def prepare_mic(
        self, mic: str | Path | np.ndarray | None, min_duration_s: float, lead_ms: int = 0
    ) -> Path:
        """Write the microphone WAV: 8 kHz mono s16, ``lead_ms`` silence first, padded to ``min_duration_s``.

        ``mic`` is a WAV path (any rate), an Asterisk prompt name, PCM, or None (silence).
        """
        if mic is None:
            pcm = np.zeros(0, dtype=np.int16)
        elif isinstance(mic, np.ndarray):
            pcm = mic.astype(np.int16).reshape(-1)
        else:
            p = Path(mic)
            pcm = audio.load_wav(p if p.exists() else audio.asterisk_prompt(str(mic)))
        pcm = np.concatenate([audio.silence(lead_ms), pcm])
        total = audio.ms_to_samples(min_duration_s * 1000)
        if pcm.size < total:
            pcm = np.concatenate([pcm, np.zeros(total - pcm.size, dtype=np.int16)])
        return audio.write_wav(self.workdir / "mic.wav", pcm)

    def write_config(self, mic_wav: str | Path) -> Path:
        """(Re)write ``config`` and ``accounts``; returns the config dir."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.snd_dir.mkdir(parents=True, exist_ok=True)
        cfg = {
            "poll_method": "epoll",
            "sip_listen": f"{LOOPBACK}:{self.sip_port}",
            "net_interface": LOOPBACK,
            "call_local_timeout": "120",
            "call_max_calls": "4",
            "audio_player": "none,none",
            "audio_alert": "none,none",
            "audio_source": f"aufile,{Path(mic_wav).resolve()}",
            "ausrc_srate": "8000",
            "auplay_srate": "8000",
            "ausrc_channels": "1",
            "auplay_channels": "1",
            "audio_txmode": "poll",
            "rtp_ports": f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "rtp_timeout": "0",
            "jitter_buffer_delay": "1-10",
            "module_path": MODULE_PATH,
            "ctrl_tcp_listen": f"{LOOPBACK}:{self.ctrl_port}",
            "snd_path": str(self.snd_dir.resolve()),
        }
        cfg.update(self.extra_config)
        lines = [f"{k}\t{v}" for k, v in cfg.items()]
        lines += [f"module\t{m}" for m in ("g711.so", "aufile.so", "sndfile.so", *self.modules)]
        lines += [f"module_app\t{m}" for m in ("account.so", "menu.so", "ctrl_tcp.so")]
        (self.config_dir / "config").write_text("\n".join(lines) + "\n")
        account = (f"<{self.aor}>;regint=0;audio_codecs={','.join(self.codecs)};answermode=manual"
                   f"{self.account_params}")
        (self.config_dir / "accounts").write_text(account + "\n")
        return self.config_dir

    def session(self, mic_wav: str | Path, log_path: Path | None = None) -> BaresipSession:
        """Start baresip with ``mic_wav`` as microphone and connect to its control socket."""
        self.write_config(mic_wav)
        for old in self.snd_dir.glob("dump-*.wav"):
            old.unlink()
        log_path = log_path or self.workdir / "baresip.log"
        log = open(log_path, "wb")
        try:
            proc = subprocess.Popen(
                [self.binary, "-f", str(self.config_dir)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        return BaresipSession(proc, self.ctrl_port, log_path)

    def call(
        self,
        uri: str,
        duration_s: float,
        *,
        mic: str | Path | np.ndarray | None = None,
        lead_ms: int = 0,
        answer_timeout: float = 10.0,
        hangup: bool = True,
    ) -> BaresipResult:
        """Dial ``uri``, stay ``duration_s`` after answer, hang up, quit; return what was heard.

        ``mic`` (WAV path / prompt name / PCM / None) is what the handset says,
        starting when its audio starts (at answer) after ``lead_ms`` of silence.
        If the far end hangs up or rejects first, the call ends there
        (``close_reason`` holds baresip's reason: "486 Busy Here" for a
        rejection, "Connection reset by peer" for a remote BYE, "Connection
        reset by user" when we hung up).  An unanswered call is cancelled after
        ``answer_timeout``; baresip then has to be killed (returncode -9).
        With ``hangup=False`` the handset waits up to ``duration_s`` for the far end to hang up.
        """
        self._calls += 1
        mic_wav = self.prepare_mic(mic, duration_s + answer_timeout + 5.0, lead_ms)
        log_path = self.workdir / f"baresip-call{self._calls}.log"
        established_at = closed_at = None
        close_reason = None
        with self.session(mic_wav, log_path) as sess:
            sess.command("dial", uri)
            ev = sess.wait_event(("CALL_ESTABLISHED", "CALL_CLOSED"), answer_timeout)
            established = bool(ev and ev.get("type") == "CALL_ESTABLISHED")
            if established:
                established_at = ev["_t"]
                closed = sess.wait_event(("CALL_CLOSED",), duration_s, start=sess.events.index(ev))
                if closed is None and hangup:
                    try:
                        sess.command("hangup")
                    except (TimeoutError, OSError):
                        pass
                    closed = sess.wait_event(("CALL_CLOSED",), 5.0)
            cancelled = ev is None
            if cancelled:  # no answer in time: cancel the attempt
                try:
                    sess.command("hangup")
                except (TimeoutError, OSError):
                    pass
                sess.wait_event(("CALL_CLOSED",), 3.0)
            closed = next((e for e in sess.events if e.get("type") == "CALL_CLOSED"), None)
            if closed is not None:
                closed_at = closed["_t"]
                close_reason = closed.get("param")
            sess.drain(0.1)
            # an unanswered INVITE keeps baresip from quitting (it even ignores
            # SIGTERM until the transaction times out): do not wait long then
            rc = sess.stop(timeout=1.0 if cancelled else 5.0)
            events = list(sess.events)
        dec = sorted(self.snd_dir.glob("dump-*-dec.wav"))
        enc = sorted(self.snd_dir.glob("dump-*-enc.wav"))
        return BaresipResult(
            established=established,
            recorded_wav=dec[-1] if dec else None,
            sent_wav=enc[-1] if enc else None,
            log=_read(log_path),
            log_path=log_path,
            events=events,
            close_reason=close_reason,
            returncode=rc,
            established_at=established_at,
            closed_at=closed_at,
        )
