"""What ``sipbridge call`` prints: the call's outcome and its :class:`~.analysis.Report`.

:func:`as_dict` is the ``--json`` object (times in whole milliseconds from the answer, ``null``
where nothing was measured); :func:`as_text` renders the same dict for a person. Both are pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analysis import Report


@dataclass(frozen=True)
class Outcome:
    """How the call went at the SIP level."""

    uri: str
    answered: bool
    status: int | None          # the final SIP status (200 when answered); None: no response
    reason: str                 # its reason phrase, or why there was none
    setup_ms: float | None = None   # INVITE sent -> call confirmed (wall clock)
    hung_up_by: str = "caller"      # "caller" (we hung up) or "agent" (its BYE)


def _ms(value: float | None) -> int | None:
    return None if value is None else int(round(value))


def as_dict(outcome: Outcome, report: Report | None, recorded: str | None = None) -> dict:
    """The summary as one JSON-ready dict."""
    out = {"uri": outcome.uri, "answered": outcome.answered, "status": outcome.status,
           "reason": outcome.reason, "setup_ms": _ms(outcome.setup_ms)}
    if not outcome.answered or report is None:
        return out
    out.update({
        "hung_up_by": outcome.hung_up_by,
        "duration_ms": _ms(report.duration_ms),
        "first_words_ms": _ms(report.first_words_ms),
        "agent_speech_ms": _ms(report.agent_speech_ms),
        "turns": [{
            "utterance_start_ms": _ms(t.utterance.start_ms),
            "utterance_end_ms": _ms(t.utterance.end_ms),
            "reply_start_ms": _ms(t.reply_start_ms),
            "eou_to_reply_ms": _ms(t.eou_to_reply_ms),
            "barge_in": None if t.barge_in is None else {
                "onset_ms": _ms(t.barge_in.onset_ms),
                "to_silence_ms": _ms(t.barge_in.to_silence_ms)},
        } for t in report.turns],
        "agent_segments_ms": [[_ms(s.start_ms), _ms(s.end_ms)] for s in report.agent],
        "recorded": recorded,
    })
    return out


def _s(ms: int) -> str:
    return f"{ms / 1000:.2f} s"


def as_text(summary: dict) -> str:
    """The dict of :func:`as_dict` as a few lines for a person."""
    if not summary["answered"]:
        status = summary["status"]
        return (f"not answered: {status} {summary['reason']}" if status is not None
                else f"not answered: {summary['reason']}")
    lines = [f"answered: {summary['status']} {summary['reason']}"
             + (f" ({summary['setup_ms']} ms after the INVITE)"
                if summary["setup_ms"] is not None else "")
             + "; times below are from the answer"]
    first = summary["first_words_ms"]
    lines.append(f"agent's first words: {first} ms after the answer" if first is not None
                 else "agent's first words: none heard")
    for i, t in enumerate(summary["turns"], 1):
        line = (f"utterance {i}: {_s(t['utterance_start_ms'])} - {_s(t['utterance_end_ms'])}; ")
        if t["reply_start_ms"] is None:
            line += "no reply before the next utterance"
        else:
            line += (f"reply at {_s(t['reply_start_ms'])}, "
                     f"end-of-utterance -> reply {t['eou_to_reply_ms']} ms")
        barge = t["barge_in"]
        if barge is not None:
            line += (f"; barge-in: agent silent {barge['to_silence_ms']} ms after the onset"
                     if barge["to_silence_ms"] is not None else "; barge-in: the agent talked on")
        lines.append(line)
    if not summary["turns"]:
        lines.append("caller said nothing (the WAV had no speech above the level threshold)")
    lines.append(f"call: {_s(summary['duration_ms'])}, agent spoke {_s(summary['agent_speech_ms'])}"
                 f", hung up by the {summary['hung_up_by']}"
                 + (f"; heard audio saved to {summary['recorded']}" if summary["recorded"] else ""))
    return "\n".join(lines)
