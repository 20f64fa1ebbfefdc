"""Call records folded from scripted log events (sipbridge/app/records.py)."""

from sipbridge.app.records import ANSWER, END, OPEN, UPDATE, CallBook, percentile

CID = "abc@127.0.0.1"


def ev(event, t, **fields):
    return {"event": event, "ts": t, "call_id": CID, **fields}


def incoming(t=100.0, **fields):
    return ev("call_incoming", t, uid="c_0001", caller="alice", called="sales", trunk=None,
              source="127.0.0.1:5062", route="sales", **fields)


def test_a_full_inbound_call_leaves_a_complete_record():
    """Open at INVITE, answer, turns, barge-ins, tools, transcript, outage and RTP all land in one record."""
    book = CallBook()
    ups = [book.feed(e) for e in [
        incoming(),
        ev("call_answered", 100.25),
        ev("speech_stopped", 101.0, audio_end_ms=800, eou_ms=520),
        ev("speech_stopped", 101.0, source="server", audio_end_ms=800),
        ev("response.done", 101.5, status="completed"),
        ev("barge_in", 102.0, source="local_vad", reason="interrupted"),
        ev("response.done", 102.1, status="cancelled"),
        ev("speech_stopped", 103.0, audio_end_ms=2900, eou_ms=560),
        ev("barge_in", 103.5, source="dtmf"),
        ev("barge_in", 103.6, source="local_vad"),
        ev("upstream_lost", 104.0, reason="x"),
        ev("upstream_restored", 104.5, attempt=1),
        ev("function_call", 105.0, function="lookup_order", fn_call_id="fc1"),
        ev("tool_called", 105.2, function="lookup_order", fn_call_id="fc1", latency_ms=180.5, ok=True),
        ev("transcript", 105.3, role="caller", text="where is my order", item_id="u1"),
        ev("transcript", 105.4, role="agent", text="It shipped.", item_id="a1"),
        ev("call_hangup", 106.0, reason="agent_ended_call"),
        ev("call_ended", 106.1, status=200, reason="Normal call clearing", rtp_rx_packets=290,
           rtp_rx_lost=1, rtp_rx_jitter_ms=0.4, rtp_tx_packets=300),
        ev("session_closed", 106.2, underruns=2, frames_out=300, pauses=1, held_ms=120,
           upstream_outages=1, upstream_reconnects=1),
    ]]
    kinds = [u.kind for u in ups if u is not None]
    assert kinds == [OPEN, ANSWER, END, UPDATE]
    rec = ups[-1].record
    assert rec["uid"] == "c_0001" and rec["sip_call_id"] == CID and rec["direction"] == "inbound"
    assert (rec["caller"], rec["called"], rec["route"]) == ("alice", "sales", "sales")
    assert rec["status"] == "completed" and rec["sip_status"] == 200
    assert (rec["ended_by"], rec["end_reason"]) == ("agent", "agent_ended_call")
    assert (rec["invite_at"], rec["answer_at"], rec["end_at"]) == (100.0, 100.25, 106.1)
    assert rec["setup_ms"] == 250.0 and rec["talk_s"] == 5.85 and rec["total_s"] == 6.1
    assert rec["turns"] == 2 and rec["server_turns"] == 1
    assert rec["eou_ms"] == [520, 560] and rec["eou_p50_ms"] == 520 and rec["eou_p95_ms"] == 560
    assert rec["barge_ins"] == {"local_vad": 2, "dtmf": 1}
    assert rec["responses"] == {"completed": 1, "cancelled": 1}
    assert rec["upstream_outages"] == 1 and rec["upstream_reconnects"] == 1
    assert rec["tools"] == [{"name": "lookup_order", "fn_call_id": "fc1", "at": 105.0,
                             "latency_ms": 180.5, "ok": True}]
    assert [(t["role"], t["text"]) for t in rec["transcript"]] == [
        ("caller", "where is my order"), ("agent", "It shipped.")]
    assert rec["rtp"] == {"rx_packets": 290, "rx_lost": 1, "rx_jitter_ms": 0.4, "tx_packets": 300}
    assert rec["session"] == {"underruns": 2, "frames_out": 300, "pauses": 1, "held_ms": 120}


def test_the_caller_hanging_up_before_the_answer_is_cancelled_by_the_caller():
    """A CANCEL (487) before the answer: status cancelled, ended by the caller, no talk time."""
    book = CallBook()
    book.feed(incoming())
    end = book.feed(ev("call_ended", 101.0, status=487, reason="Request Terminated"))
    rec = end.record
    assert end.kind == END and rec["status"] == "cancelled" and rec["ended_by"] == "caller"
    assert rec["talk_s"] is None and rec["total_s"] == 1.0 and rec["answer_at"] is None


def test_a_route_rejection_after_the_invite_closes_the_record_as_rejected():
    """call_rejected of a call already opened ends it at once with the SIP status and why."""
    book = CallBook()
    book.feed(incoming())
    end = book.feed(ev("call_rejected", 100.01, status=486, why="route blocked"))
    assert end.kind == END
    assert (end.record["status"], end.record["sip_status"], end.record["end_reason"]) == (
        "rejected", 486, "route blocked")
    assert book.feed(ev("call_ended", 100.2, status=486)) is None   # already over


def test_an_unreachable_model_fails_the_call_with_503_from_the_bridge():
    """upstream_unavailable then the disconnect: failed, 503, ended by the bridge, the reason kept."""
    book = CallBook()
    book.feed(incoming())
    assert book.feed(ev("upstream_unavailable", 105.0, reason="refused")) is None
    rec = book.feed(ev("call_ended", 105.1, status=503, reason="Service Unavailable")).record
    assert (rec["status"], rec["sip_status"], rec["ended_by"]) == ("failed", 503, "bridge")
    assert rec["end_reason"] == "upstream_unavailable: refused"


def test_a_caller_bye_after_the_answer_is_ended_by_the_caller():
    """No call_hangup from us: the caller ended the call."""
    book = CallBook()
    book.feed(incoming())
    book.feed(ev("call_answered", 100.1))
    rec = book.feed(ev("call_ended", 110.0, status=200, reason="Normal call clearing")).record
    assert (rec["status"], rec["ended_by"], rec["end_reason"]) == (
        "completed", "caller", "Normal call clearing")


def test_a_transfer_records_its_target_and_final_status():
    """call_transfer then a final 200 NOTIFY, then our BYE: ended by the transfer."""
    book = CallBook()
    book.feed(incoming())
    book.feed(ev("call_answered", 100.1))
    book.feed(ev("call_transfer", 101.0, target="sip:desk@x"))
    book.feed(ev("call_transfer_status", 101.2, status=100, final=False))
    book.feed(ev("call_transfer_status", 101.5, status=200, final=True))
    book.feed(ev("call_hangup", 101.6, reason="transferred"))
    rec = book.feed(ev("call_ended", 101.7, status=200)).record
    assert rec["transfer"] == {"target": "sip:desk@x", "status": 200}
    assert rec["ended_by"] == "transfer"


def test_events_of_unknown_calls_and_odd_fields_change_nothing():
    """Events before call_incoming, without call_id, of other calls, or with odd types are ignored."""
    book = CallBook()
    assert book.feed({"event": "call_answered", "call_id": CID, "ts": 1.0}) is None
    assert book.feed({"event": "call_incoming", "ts": 1.0, "uid": "c_1"}) is None   # no call_id
    assert book.feed({"event": "call_incoming", "call_id": CID, "ts": 1.0}) is None  # no uid
    assert book.feed({"event": 7, "call_id": CID}) is None
    book.feed(incoming())
    for odd in (ev("speech_stopped", "x", eou_ms="fast"), ev("barge_in", 1, source=None),
                ev("transcript", 1, role="agent", text=None), ev("tool_called", 1),
                ev("response.done", 1), ev("something_new", 1, x=1), ev("call_answered", "noon")):
        assert book.feed(odd) is None or odd["event"] == "call_answered"
    rec = book.get(CID)
    assert rec["turns"] == 1 and rec["eou_ms"] == [] and rec["barge_ins"] == {"unknown": 1}
    assert rec["transcript"] == [] and rec["tools"] == [{"name": None, "fn_call_id": None,
                                                         "at": 1.0, "latency_ms": None}]
    assert rec["answer_at"] is None and rec["setup_ms"] is None   # a time that is not a number
    rec = book.feed(ev("call_ended", 2.0, status=True)).record      # bool is not a SIP status
    assert rec["sip_status"] is None and rec["status"] == "failed"


def test_the_book_stays_bounded_and_snapshots_are_independent():
    """Open records beyond max_open evict the oldest (counted); an Update never changes later."""
    book = CallBook(max_open=2, max_closing=1)
    for i in range(3):
        book.feed({"event": "call_incoming", "call_id": f"c{i}", "uid": f"u{i}", "ts": 1.0})
    assert book.open_count == 2 and book.evicted == 1 and book.get("c0") is None
    snap = book.feed({"event": "barge_in", "call_id": "c1", "ts": 2.0, "source": "dtmf"})
    assert snap is None
    end = book.feed({"event": "call_ended", "call_id": "c1", "ts": 3.0, "status": 200})
    book.feed({"event": "call_ended", "call_id": "c2", "ts": 3.0, "status": 200})
    assert book.get("c1") is None            # pushed out of the closing window by c2
    end.record["barge_ins"]["dtmf"] = 99
    assert book.get("c2")["barge_ins"] == {}


def test_outbound_progress_opens_an_outbound_record_and_busy_ends_it():
    """An outbound call is opened by its first progress event and a busy answer closes it."""
    book = CallBook()
    up = book.feed({"event": "outbound_progress", "call_id": "o1", "uid": "c_out", "ts": 5.0,
                    "state": "queued", "from": "+100", "to": "+200"})
    assert up.kind == OPEN and up.record["direction"] == "outbound"
    assert (up.record["caller"], up.record["called"]) == ("+100", "+200")
    book.feed({"event": "outbound_progress", "call_id": "o1", "uid": "c_out", "ts": 5.5,
               "state": "ringing"})
    end = book.feed({"event": "outbound_progress", "call_id": "o1", "uid": "c_out", "ts": 7.0,
                     "state": "busy", "status": 486})
    assert end.kind == END and end.record["status"] == "busy" and end.record["sip_status"] == 486
    assert end.record["ended_by"] == "callee"


def test_transcripts_are_capped():
    """A call's transcript keeps at most MAX_TRANSCRIPT_CHARS characters."""
    from sipbridge.app.records import MAX_TRANSCRIPT_CHARS
    book = CallBook()
    book.feed(incoming())
    for _ in range(3):
        book.feed(ev("transcript", 1.0, role="agent", text="x" * (MAX_TRANSCRIPT_CHARS // 2 + 1)))
    assert sum(len(t["text"]) for t in book.get(CID)["transcript"]) == MAX_TRANSCRIPT_CHARS


def test_percentile_is_nearest_rank():
    """p50 and p95 of a small sample are actual samples, by nearest rank; empty is None."""
    assert percentile([], 50) is None
    assert percentile([30, 10, 20], 50) == 20
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([7], 95) == 7


def test_an_app_tool_call_is_matched_to_the_models_function_call_by_its_id():
    """function_call (fn_call_id) then the app tool runner's tool_called (name, tool_call_id,
    latency, outcome) make one tools entry; a failed one keeps its outcome and detail."""
    book = CallBook()
    book.feed(incoming())
    book.feed(ev("function_call", 1.0, function="book_slot", fn_call_id="call_1"))
    book.feed(ev("function_call", 1.1, function="book_slot", fn_call_id="call_2"))
    book.feed(ev("tool_called", 1.3, uid="c_0001", **{"name": "book_slot"}, tool_call_id="call_2",
                 latency_ms=5000.2, outcome="timeout", ok=False, status=None, detail="no answer"))
    book.feed(ev("tool_called", 1.4, uid="c_0001", **{"name": "book_slot"}, tool_call_id="call_1",
                 latency_ms=42.0, outcome="ok", ok=True, status=200))
    tools = book.get(CID)["tools"]
    assert [(t["fn_call_id"], t["latency_ms"], t["outcome"], t["ok"]) for t in tools] == [
        ("call_1", 42.0, "ok", True), ("call_2", 5000.2, "timeout", False)]
    assert tools[1]["detail"] == "no answer"


def test_outbound_progress_as_the_dialer_logs_it():
    """The dialer's first line may have no Call-ID yet; the record opens at the first that has
    one, answered sets the answer time, and the call_ended that follows closes it."""
    book = CallBook()
    base = {"event": "outbound_progress", "uid": "c_o", "to": "sip:+1555@carrier",
            "called": "+1555", "caller": "+1444", "trunk": "carrier"}
    assert book.feed({**base, "call_id": None, "state": "queued", "ts": 1.0}) is None
    opened = book.feed({**base, "call_id": "o@x", "state": "ringing", "status": None, "ts": 1.2})
    assert opened.kind == OPEN and opened.record["called"] == "+1555"
    assert opened.record["trunk"] == "carrier" and opened.record["direction"] == "outbound"
    assert book.feed({**base, "call_id": "o@x", "state": "answered", "status": 200,
                      "ts": 2.0}).kind == ANSWER
    end = book.feed({"event": "call_ended", "call_id": "o@x", "status": 200, "ts": 9.0})
    assert end.record["status"] == "completed" and end.record["talk_s"] == 7.0
