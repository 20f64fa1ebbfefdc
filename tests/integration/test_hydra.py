"""Hydra on real calls: the bridge against the strict local Hydra server (tests/support/hydra_server.py), RtpPeer caller."""

from tests.support import audio
from tests.support.barge import reply_pcm
from tests.support.hydra_call import run


def reply_gap_ms() -> int:
    """The reply's own longest quiet stretch (between its prompts), in ms."""
    loud = audio.frame_dbfs(reply_pcm(), 20, 8000) > -45
    longest = run_ = 0
    for flag in loud[int(loud.argmax()):]:
        run_ = 0 if flag else run_ + 20
        longest = max(longest, run_)
    return longest


def test_speech_reaches_hydra_and_a_barge_in_silences_the_agent_and_drops_the_old_answer(tmp_path):
    """Caller speech goes up as 16 kHz appends Hydra's VAD turns into an answer the caller hears; speaking
    over it silences the agent at once, Hydra cancels the answer and none of it reaches RTP after its speech_started."""
    r = run(tmp_path)
    s = r.server
    assert s.violations == [] and s.refused_upgrades == []
    appends = s.of("input_audio_buffer.append", sent=False)
    span_ms = (appends[-1]["_recv_t"] - appends[0]["_recv_t"]) * 1000
    assert 0.9 <= (s.audio_bytes / 32) / span_ms <= 1.1, (s.audio_bytes / 32, span_ms)  # 16 kHz, real time
    assert [e["item"]["status"] for e in s.of("conversation.item.done")
            if e["item"]["role"] == "user"][:1] == ["completed"]
    assert r.agent_ms_heard >= 800, "the answer did not reach the caller"
    # the interruption: Hydra's speech_started over the answer, then its cancel
    assert r.speech_started_t is not None
    done = s.of("response.done")
    assert done[0]["response"]["status"] == "cancelled", done
    assert r.old_audio_after_start == 0, "audio of the cancelled answer reached the caller"
    assert r.onset_to_silence_ms is not None and r.onset_to_silence_ms <= 300, r.onset_to_silence_ms
    barge = [x for x in r.bridge_log if x.get("event") == "barge_in"]
    assert len(barge) == 1, barge
    # the caller's turn is answered afresh after it
    assert len(s.of("response.created")) == 2


def test_a_200ms_noise_burst_changes_nothing_the_answer_resumes_where_it_paused(tmp_path):
    """Noise over the answer: Hydra starts a turn and discards it (incomplete); the agent pauses, then resumes
    where it paused, nothing cancelled or lost, no dead air beyond the pause."""
    r = run(tmp_path, over="noise")
    s = r.server
    assert s.violations == []
    users = [e["item"]["status"] for e in s.of("conversation.item.done") if e["item"]["role"] == "user"]
    assert users == ["completed", "incomplete"], users
    assert [d["response"]["status"] for d in s.of("response.done")] == ["completed"]
    assert s.of("response.cancel", sent=False) == []
    log = r.bridge_log
    assert [x for x in log if x.get("event") == "barge_in"] == []
    resumed = [x for x in log if x.get("event") == "barge_in_resumed"]
    assert [x["why"] for x in resumed] in (["server_discarded"], ["server_timeout"]), resumed
    loud_ms = 20 * int((audio.frame_dbfs(reply_pcm(), 20, 8000) > -45).sum())
    assert r.agent_ms_heard >= loud_ms - 100, (r.agent_ms_heard, loud_ms)   # nothing skipped
    assert r.longest_gap_ms <= reply_gap_ms() + 1000, (r.longest_gap_ms, reply_gap_ms())
