"""A real Pipecat bot for tests/integration/test_pipecat.py and bench/pipecat_media_stream.py, run
by ``.venv-pipecat/bin/python`` (``./bootstrap --test`` makes that venv: Pipecat cannot share
``.venv``); never imported by the test process.

FastAPI WebSocket transport + ``TwilioFrameSerializer`` (auto hang-up off: no Twilio REST) +
Silero VAD (``VADProcessor``) + an offline processor that says the caller's utterance back once
the VAD says it ended; speech over that answer broadcasts an interruption, which the serializer
sends as Twilio's ``clear``. ``python pipecat_echo_bot.py PORT LOG``: serves ws://127.0.0.1:PORT/bot
and appends JSON lines (parsed start, echo, interrupting) to LOG."""

import json
import sys
import time

import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (InputAudioRawFrame, OutputAudioRawFrame, VADUserStartedSpeakingFrame,
                                   VADUserStoppedSpeakingFrame)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

LOG = open(sys.argv[2], "a") if __name__ == "__main__" else None


def note(**kw):
    LOG.write(json.dumps({"t": time.time(), **kw}) + "\n")
    LOG.flush()


class Echo(FrameProcessor):
    """Records the caller between the VAD's start and stop, then says it back in 20 ms frames."""

    def __init__(self):
        super().__init__()
        self.buf, self.rec, self.rate, self.talking_until = bytearray(), False, 8000, 0.0
    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.rate = frame.sample_rate
            if self.rec:
                self.buf += frame.audio
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self.rec, self.buf = True, bytearray()
            if time.time() < self.talking_until:
                note(event="interrupting")
                self.talking_until = 0.0
                await self.broadcast_interruption()
            return
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self.rec = False
            said = bytes(self.buf)
            note(event="echo", ms=len(said) // 2 * 1000 // self.rate)
            step = self.rate // 50 * 2
            for off in range(0, len(said), step):
                await self.push_frame(OutputAudioRawFrame(audio=said[off:off + step], sample_rate=self.rate,
                                                          num_channels=1))
            self.talking_until = time.time() + len(said) / 2 / self.rate
            return
        await self.push_frame(frame, direction)

app = FastAPI()


@app.websocket("/bot")
async def bot(websocket: WebSocket):
    await websocket.accept()
    kind, call = await parse_telephony_websocket(websocket)
    note(event="parsed", kind=kind, stream_id=call["stream_id"], call_id=call["call_id"],
         body=call.get("body", {}))
    ser = TwilioFrameSerializer(stream_sid=call["stream_id"], call_sid=call["call_id"],
                                params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
    transport = FastAPIWebsocketTransport(websocket, FastAPIWebsocketParams(
        audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=ser))
    pipeline = Pipeline([transport.input(), VADProcessor(vad_analyzer=SileroVADAnalyzer()), Echo(),
                         transport.output()])
    task = PipelineTask(pipeline, params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000))
    await PipelineRunner(handle_sigint=False).run(task)
    note(event="ended")


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stderr, level="INFO")
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
