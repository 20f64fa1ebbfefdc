"""The cell front's slot view (sipbridge/cell/slots.py), pure with times passed in; and, on the
cell API's stand-in workers (tests/unit/cell/test_cell_api.py), that ``POST /v1/calls`` goes by
the view instead of asking every worker first."""

from __future__ import annotations

import time

from sipbridge.cell import api as cell_api
from sipbridge.cell.slots import SlotView
from tests.unit.cell.test_cell_api import call, front  # noqa: F401 - the stand-in cell fixture

RUNNING = {0: 100, 1: 101, 2: 102}


def ready(calls: int, slots: int = 4) -> dict:
    return {"ready": calls < slots, "calls": calls, "slots": slots}


def view(now: float = 10.0) -> SlotView:
    v = SlotView(max_age_s=3.0)
    for i, calls in ((0, 3), (1, 1), (2, 2)):
        v.report(i, RUNNING[i], ready(calls), now)
    return v


def test_a_fresh_view_orders_workers_most_free_first():
    """Reports of 1, 3 and 2 free slots order the workers 1, 2, 0, with nothing stale."""
    v = view()
    assert v.stale(RUNNING, 11.0) == []
    assert v.order(RUNNING, 11.0) == [1, 2, 0]
    assert [v.free(i) for i in range(3)] == [1, 3, 2]


def test_a_report_too_old_missing_or_of_a_replaced_process_is_stale():
    """Past max_age_s, never reported, or reported by another pid: stale, and not offered."""
    v = view(now=10.0)
    assert v.stale(RUNNING, 13.5) == [0, 1, 2] and v.order(RUNNING, 13.5) == []
    assert SlotView(3.0).stale(RUNNING, 0.0) == [0, 1, 2]
    restarted = {**RUNNING, 1: 999}
    assert v.stale(restarted, 11.0) == [1] and v.order(restarted, 11.0) == [2, 0]


def test_a_forwarded_call_takes_a_slot_at_once_and_a_201_keeps_it_taken():
    """take() counts the slot before the worker answers; placed() keeps it counted, so calls
    spread: worker 1 (3 free) twice, then worker 2 ties it and wins by free count order."""
    v = view()
    v.take(1)
    assert v.free(1) == 2 and v.order(RUNNING, 11.0) == [1, 2, 0]
    v.placed(1, 11.0)
    v.take(1)
    v.placed(1, 11.1)
    assert v.free(1) == 1 and v.order(RUNNING, 11.2) == [2, 0, 1]


def test_a_refusal_for_another_reason_gives_the_slot_back():
    """A 400 from the worker (gave_back) leaves its free count as it was."""
    v = view()
    v.take(2)
    v.gave_back(2)
    assert v.free(2) == 2


def test_a_worker_that_refused_as_full_is_passed_over_for_the_next():
    """A 503 or no answer (full) leaves that worker nothing free: the next one is offered,
    and ``skip`` leaves out the workers already tried."""
    v = view()
    v.take(1)
    v.full(1)
    assert v.free(1) == 0 and v.order(RUNNING, 11.0) == [2, 0]
    assert v.order(RUNNING, 11.0, skip=[2]) == [0]


def test_all_full_or_not_ready_is_an_empty_order():
    """Full, not ready and unanswered workers: no worker to offer a call to."""
    v = SlotView(3.0)
    v.report(0, 100, ready(4), 10.0)
    v.report(1, 101, {"ready": False, "calls": 0, "slots": 4}, 10.0)
    v.report(2, 102, None, 10.0)
    assert v.stale(RUNNING, 10.5) == [] and v.order(RUNNING, 10.5) == []


def test_a_report_counts_the_calls_placed_after_it_was_asked_and_those_in_flight():
    """A report asked before a 201 does not include that call, nor one still in flight: both
    stay taken; a report asked after the 201 replaces the count; an older report is ignored."""
    v = view(now=10.0)
    v.take(1)
    v.placed(1, 10.5)      # worker 1: 3 free -> 2
    v.take(1)              # in flight
    v.report(1, 101, ready(1), 10.4)   # asked before the 201: still 3 free by the worker
    assert v.free(1) == 1
    v.report(1, 101, ready(2), 10.6)   # asked after it: the worker counts it
    assert v.free(1) == 1              # 2 free, less the one in flight
    v.report(1, 101, ready(0), 10.2)   # an answer to an older request: ignored
    assert v.free(1) == 1


def test_outbound_goes_by_the_view_without_asking_again(front, monkeypatch):  # noqa: F811
    """A second POST within the view's age does not re-ask the workers: with worker 2 emptied
    meanwhile it still goes to worker 1 (2 counted free, lowest index); a third to worker 2."""
    monkeypatch.setattr(cell_api, "SLOTS_REFRESH_S", 30.0)   # no background poll in between
    url, workers, _ = front
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "sip:100@127.0.0.1:5099"})
    assert status == 201 and body["uid"].startswith("c_1_"), body
    workers[2].calls = 0    # 4 free now, but the front counts 2 until its next poll
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "sip:101@127.0.0.1:5099"})
    assert status == 201 and body["uid"].startswith("c_1_"), body
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "sip:102@127.0.0.1:5099"})
    assert status == 201 and body["uid"].startswith("c_2_"), body
    assert [len(w.placed) for w in workers] == [0, 2, 1]


def test_the_poll_refreshes_the_view_and_a_full_one_is_checked(front, monkeypatch):  # noqa: F811
    """While calls are placed the workers are polled: an emptied worker 2 is seen and chosen; a
    view counting every worker full asks them all again before a 503, and places the call
    where a slot did free up."""
    monkeypatch.setattr(cell_api, "SLOTS_REFRESH_S", 0.05)
    url, workers, _ = front
    assert call(url + "/v1/calls", "POST", {"to": "sip:100@127.0.0.1:5099"})[0] == 201
    workers[2].calls = 0
    time.sleep(0.5)
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "sip:101@127.0.0.1:5099"})
    assert status == 201 and body["uid"].startswith("c_2_"), body
    monkeypatch.setattr(cell_api, "SLOTS_REFRESH_S", 30.0)
    time.sleep(0.3)   # the poller's last 0.05 s sleep ends; the next poll is 30 s away
    for w in workers:
        w.calls = 4
    for w in workers:   # the view still counts free slots: each worker refuses (503) in turn
        w.refuse = True
    status, body, headers = call(url + "/v1/calls", "POST", {"to": "sip:102@127.0.0.1:5099"})
    assert status == 503 and headers["Retry-After"] == "1", body
    for w in workers:
        w.refuse = False
    workers[0].calls = 3   # a call ended on worker 0: the view (all full) does not know yet
    status, body, _ = call(url + "/v1/calls", "POST", {"to": "sip:103@127.0.0.1:5099"})
    assert status == 201 and body["uid"].startswith("c_0_"), body
