"""A strict local Gemini Live server (``BidiGenerateContent``) that echoes the caller, in its own
process, recording every client message.

Strict as the documented protocol (see ``sipbridge/realtime/providers/gemini.py``): the upgrade
must be on ``/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent`` with
``?key=<key>`` (else HTTP 403); the first message must be ``setup`` and nothing may follow it
before ``setupComplete`` (sent 50 ms later); any field the API does not define, ``realtimeInput``
audio that is not ``audio/pcm;rate=16000`` base64 of whole samples, ``activityStart``/``End`` with
automatic activity detection on (or out of order with it off), a ``toolResponse`` whose id or
name is not an open call, or an unknown resumption handle close the socket with 1007 and the
reason (as Gemini reports errors).

The model: with activity detection off, the audio between ``activityStart`` and ``activityEnd``
is the caller's turn; with it on, an energy detector (the embedded model's) ends turns after the
setup's ``silenceDurationMs``. A turn is answered with its own audio back at 24 kHz in 100 ms
``modelTurn`` chunks at ``pace`` x real time, then ``turnComplete``; a ``clientContent`` text
turn with the embedded model's chime. An ``activityStart`` (or, with detection on, speech) during
an answer stops it: ``interrupted``. ``--call-tool NAME``: the first caller turn is answered with
a ``toolCall`` instead; the ``toolResponse`` is answered with a beep. With ``sessionResumption``
in the setup, a ``sessionResumptionUpdate`` (resumable) follows ``setupComplete`` and every
``turnComplete``. stdin ``goaway MS``: ``goAway`` on every connection, closed (1000) MS later
(recorded as ``goaway_closed``); answered ``ok goaway N`` on stdout.

Records (JSON lines): ``{"_conn": n, "msg": <message>, "_t": <time.monotonic()>}``, and
``{"_conn": n, "sent": "interrupted"}`` when an answer is cut off; audio data is kept so a test can
decode what the model heard. Test side: :class:`GeminiServer` (a context manager).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
SETUP_KEYS = {"model", "generationConfig", "systemInstruction", "tools", "realtimeInputConfig",
              "inputAudioTranscription", "outputAudioTranscription", "sessionResumption",
              "contextWindowCompression", "proactivity", "enableAffectiveDialog"}
GEN_KEYS = {"responseModalities", "speechConfig", "temperature", "maxOutputTokens", "topP", "topK"}
RIC_KEYS = {"automaticActivityDetection", "activityHandling", "turnCoverage"}
AAD_KEYS = {"disabled", "startOfSpeechSensitivity", "endOfSpeechSensitivity", "prefixPaddingMs",
            "silenceDurationMs"}
RT_KEYS = {"audio", "video", "text", "activityStart", "activityEnd", "audioStreamEnd", "mediaChunks"}
CLIENT_KEYS = {"setup", "clientContent", "realtimeInput", "toolResponse"}


class Refused(Exception):
    """A protocol violation: the connection closes with 1007 and this reason."""


def _only(obj, allowed: set[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise Refused(f"{where} must be an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise Refused(f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}'")


def check_setup(setup) -> dict:
    """Validate a ``setup`` message body; returns its automaticActivityDetection."""
    _only(setup, SETUP_KEYS, "setup")
    if not str(setup.get("model", "")).startswith("models/"):
        raise Refused("setup.model must be models/<name>")
    _only(setup.get("generationConfig", {}), GEN_KEYS, "setup.generationConfig")
    ric = setup.get("realtimeInputConfig", {})
    _only(ric, RIC_KEYS, "setup.realtimeInputConfig")
    aad = ric.get("automaticActivityDetection", {})
    _only(aad, AAD_KEYS, "setup.realtimeInputConfig.automaticActivityDetection")
    for tool in setup.get("tools", []):
        _only(tool, {"functionDeclarations", "googleSearch", "codeExecution"}, "setup.tools[]")
        for fd in tool.get("functionDeclarations", []):
            _only(fd, {"name", "description", "parameters", "behavior"}, "functionDeclarations[]")
    for key in ("inputAudioTranscription", "outputAudioTranscription"):
        _only(setup.get(key, {}), set(), f"setup.{key}")
    _only(setup.get("sessionResumption", {}), {"handle", "transparent"}, "setup.sessionResumption")
    return aad


def _pcm(audio) -> bytes:
    _only(audio, {"data", "mimeType"}, "realtimeInput.audio")
    if audio.get("mimeType") != "audio/pcm;rate=16000":
        raise Refused(f"audio mimeType must be audio/pcm;rate=16000 here, got {audio.get('mimeType')!r}")
    try:
        pcm = base64.b64decode(audio.get("data", ""), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("realtimeInput.audio.data is not base64") from None
    if len(pcm) % 2:
        raise Refused("realtimeInput.audio.data is not whole 16-bit samples")
    return pcm


def serve(port: int, record: Path, key: str, pace: float, call_tool: str | None) -> None:
    from sipcodecs import StreamResampler
    from websockets.asyncio.server import serve as ws_serve
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    from sipbridge.embedded.echo_core import EnergyVad, chime, tool_answer

    sink = record.open("a", buffering=1)
    conns: dict[int, object] = {}
    handles: dict[str, int] = {}          # handle -> turns answered so far (the "context")
    count = [0]

    def refuse(connection, request):
        parts = urlsplit(request.path)
        if parts.path != PATH or parse_qs(parts.query).get("key") != [key]:
            return Response(403, "Forbidden", Headers(), b"API key not valid\n")
        return None

    async def handler(ws):
        count[0] += 1
        n = count[0]
        conns[n] = ws
        out: asyncio.Queue = asyncio.Queue()
        state = {"setup": False, "ready": False, "activity": False, "heard": bytearray(),
                 "answer": None, "calls": {}, "resumable": False, "turns": 0, "tool_done": False}

        def rec(msg):
            sink.write(json.dumps({"_conn": n, "msg": msg, "_t": time.monotonic()}) + "\n")

        async def send(msg):
            await ws.send(json.dumps(msg))

        def resumption():
            if state["resumable"]:
                handle = f"h{n}-{state['turns']}"
                handles[handle] = state["turns"]
                out.put_nowait({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

        async def answer(pcm24: bytes, transcript: str):
            for i in range(0, len(pcm24), 4800):
                out.put_nowait({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
                    "mimeType": "audio/pcm;rate=24000",
                    "data": base64.b64encode(pcm24[i:i + 4800]).decode()}}]}}})
                await asyncio.sleep(0.1 / pace)
            out.put_nowait({"serverContent": {"outputTranscription": {"text": transcript}}})
            out.put_nowait({"serverContent": {"generationComplete": True}})
            out.put_nowait({"serverContent": {"turnComplete": True}})
            state["answer"] = None
            state["turns"] += 1
            resumption()

        def start_answer(pcm24: bytes, transcript: str):
            state["answer"] = asyncio.ensure_future(answer(pcm24, transcript))

        def interrupt():
            task = state["answer"]
            if task is not None and not task.done():
                task.cancel()
                state["answer"] = None
                out.put_nowait({"serverContent": {"interrupted": True}})
                sink.write(json.dumps({"_conn": n, "sent": "interrupted", "_t": time.monotonic()}) + "\n")

        def caller_turn():
            heard, state["heard"] = bytes(state["heard"]), bytearray()
            out.put_nowait({"serverContent": {"inputTranscription": {"text": f"({len(heard) // 32} ms)"}}})
            if call_tool and not state["tool_done"]:
                state["tool_done"] = True
                cid = f"call-{n}-1"
                state["calls"][cid] = call_tool
                out.put_nowait({"toolCall": {"functionCalls": [{"id": cid, "name": call_tool, "args": {}}]}})
                return
            start_answer(StreamResampler(16000, 24000).process(heard), "echo")

        async def writer():
            while True:
                await send(await out.get())

        wtask = None
        vad = None
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    raise Refused("not JSON") from None
                rec(msg)
                _only(msg, CLIENT_KEYS, "BidiGenerateContentClientMessage")
                if len(msg) != 1:
                    raise Refused("exactly one of setup, clientContent, realtimeInput, toolResponse")
                (kind, body), = msg.items()
                if not state["setup"]:
                    if kind != "setup":
                        raise Refused("the first message must be setup")
                    aad = check_setup(body)
                    state["setup"], state["manual"] = True, aad.get("disabled") is True
                    handle = body.get("sessionResumption", {}).get("handle")
                    if handle is not None and handle not in handles:
                        raise Refused("session resumption handle is not valid")
                    state["turns"] = handles.get(handle, 0)
                    state["resumable"] = "sessionResumption" in body
                    if not state["manual"]:
                        vad = EnergyVad(0.5, aad.get("prefixPaddingMs", 300), aad.get("silenceDurationMs", 500),
                                        rate=16000)
                    try:   # nothing may come before setupComplete
                        early = await asyncio.wait_for(ws.recv(), 0.05)
                    except TimeoutError:
                        pass
                    else:
                        rec(json.loads(early))
                        raise Refused("a message arrived before setupComplete")
                    state["ready"] = True
                    await send({"setupComplete": {}})
                    wtask = asyncio.ensure_future(writer())
                    resumption()
                    continue
                if kind == "setup":
                    raise Refused("setup is sent only in the first message")
                if kind == "realtimeInput":
                    _only(body, RT_KEYS, "realtimeInput")
                    if len(body) != 1:
                        raise Refused("realtimeInput carries exactly one input")
                    if "audio" in body:
                        pcm = _pcm(body["audio"])
                        if state["manual"]:
                            if state["activity"]:
                                state["heard"] += pcm
                        else:
                            for ev in vad.feed(pcm):
                                if ev.kind == "started":
                                    interrupt()
                                    state["heard"] = bytearray()
                                elif ev.kind == "stopped":
                                    caller_turn()
                            if vad.speaking:
                                state["heard"] += pcm
                    elif "activityStart" in body or "activityEnd" in body:
                        if not state["manual"]:
                            raise Refused("activityStart/activityEnd need automaticActivityDetection disabled")
                        _only(body.get("activityStart", body.get("activityEnd")), set(), "realtimeInput.activity")
                        if "activityStart" in body:
                            if state["activity"]:
                                raise Refused("activityStart while an activity is open")
                            state["activity"] = True
                            interrupt()
                        else:
                            if not state["activity"]:
                                raise Refused("activityEnd without activityStart")
                            state["activity"] = False
                            caller_turn()
                    else:
                        raise Refused(f"unsupported realtimeInput {sorted(body)}")
                elif kind == "clientContent":
                    _only(body, {"turns", "turnComplete"}, "clientContent")
                    interrupt()
                    if body.get("turnComplete"):
                        c = chime(24000)
                        start_answer(c.astype("<i2").tobytes(), "chime")
                elif kind == "toolResponse":
                    _only(body, {"functionResponses"}, "toolResponse")
                    outputs = []
                    for fr in body.get("functionResponses", []):
                        _only(fr, {"id", "name", "response", "scheduling", "willContinue"}, "functionResponses[]")
                        if state["calls"].pop(fr.get("id"), None) != fr.get("name"):
                            raise Refused(f"functionResponse for unknown call {fr.get('id')!r}/{fr.get('name')!r}")
                        if not isinstance(fr.get("response"), dict):
                            raise Refused("functionResponse.response must be an object")
                        outputs.append(json.dumps(fr["response"]))
                    start_answer(tool_answer(outputs, 24000).astype("<i2").tobytes(), "beep")
        except Refused as exc:
            sink.write(json.dumps({"_conn": n, "refused": str(exc)}) + "\n")
            await ws.close(1007, str(exc)[:120])
        finally:
            conns.pop(n, None)
            if wtask is not None:
                wtask.cancel()
            if state["answer"] is not None:
                state["answer"].cancel()

    async def control():
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not line:
                if not sys.stdin or sys.stdin.closed:
                    return
                await asyncio.sleep(0.05)
                continue
            if line[0] == "goaway":
                ms = int(line[1])
                targets = list(conns.items())
                for _, ws in targets:
                    await ws.send(json.dumps({"goAway": {"timeLeft": f"{ms / 1000:g}s"}}))

                async def later(targets=targets):
                    await asyncio.sleep(ms / 1000)
                    for n, ws in targets:
                        await ws.close(1000)   # returns once the client answered the close
                        sink.write(json.dumps({"_conn": n, "goaway_closed": 1000}) + "\n")
                asyncio.ensure_future(later())
                print(f"ok goaway {len(targets)}", flush=True)

    async def main():
        async with ws_serve(handler, "127.0.0.1", port, process_request=refuse, max_size=2**24,
                            compression=None):
            print(f"ws://127.0.0.1:{port}{PATH}", flush=True)
            await control()
            await asyncio.Future()

    asyncio.run(main())


class GeminiServer:
    """The server in its own process: ``.url`` (without the key), ``.messages(kind, conn)``,
    ``.refusals()``, ``.goaway(ms)``."""

    def __init__(self, tmp_path, key: str, pace: float = 1.0, call_tool: str | None = None):
        from .bridge import PYTHON
        from .ports import free_tcp_port
        self.record = Path(tmp_path) / f"gemini-{time.monotonic_ns()}.jsonl"
        cmd = [PYTHON, "-m", "tests.support.gemini_server", "--port", str(free_tcp_port()),
               "--record", str(self.record), "--key", key, "--pace", str(pace)]
        if call_tool:
            cmd += ["--call-tool", call_tool]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     cwd=Path(__file__).resolve().parents[2])
        self.url = self.proc.stdout.readline().decode().strip()
        if not self.url.startswith("ws://"):
            self.stop()
            raise RuntimeError(f"gemini server did not start: {self.url!r}")

    def records(self) -> list[dict]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]

    def messages(self, kind: str | None = None, conn: int | None = None) -> list[dict]:
        """Client messages (``kind``: setup, realtimeInput, clientContent, toolResponse)."""
        return [r["msg"] for r in self.records() if "msg" in r and (conn is None or r["_conn"] == conn)
                and (kind is None or kind in r["msg"])]

    def sent(self, what: str) -> list[dict]:
        """What the server did on its own (``interrupted``), with ``_t`` (time.monotonic())."""
        return [r for r in self.records() if r.get("sent") == what]

    def timed(self, kind: str) -> list[dict]:
        """Client messages with their arrival ``_t`` (time.monotonic(), comparable across processes)."""
        return [r for r in self.records() if "msg" in r and kind in r["msg"]]

    def refusals(self) -> list[str]:
        return [r["refused"] for r in self.records() if "refused" in r]

    def goaway_closed(self) -> list[int]:
        """The connections a ``goaway`` has closed so far (the client has answered the close)."""
        return [r["_conn"] for r in self.records() if "goaway_closed" in r]

    def goaway(self, ms: int) -> str:
        self.proc.stdin.write(f"goaway {ms}\n".encode())
        self.proc.stdin.flush()
        return self.proc.stdout.readline().decode().strip()

    def stop(self) -> None:
        from .bridge import terminate
        terminate(self.proc, 5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--record", type=Path, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--pace", type=float, default=1.0)
    ap.add_argument("--call-tool")
    a = ap.parse_args()
    serve(a.port, a.record, a.key, a.pace, a.call_tool)
