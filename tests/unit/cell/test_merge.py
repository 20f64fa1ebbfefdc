"""The cell API's pure decisions: merging call lists, readiness, and the outbound worker."""

from sipbridge.cell.merge import cell_readiness, free_slots, merge_calls, outbound_order


def ready(calls, slots=4, ok=True):
    return {"ready": ok, "reasons": [] if ok else ["draining: x"], "calls": calls, "slots": slots}


def test_merge_tags_each_call_with_its_worker_in_worker_order():
    """Every worker's calls appear once, tagged with the worker, workers in index order."""
    merged = merge_calls({2: {"calls": [{"uid": "c_2_a"}]},
                          0: {"calls": [{"uid": "c_0_a"}, {"uid": "c_0_b"}]}, 1: {"calls": []}})
    assert merged == {"calls": [{"uid": "c_0_a", "worker": 0}, {"uid": "c_0_b", "worker": 0},
                                {"uid": "c_2_a", "worker": 2}], "workers_unavailable": []}


def test_merge_names_workers_that_did_not_answer():
    """A worker that is down or answered garbage is listed as unavailable, not silently empty."""
    merged = merge_calls({0: None, 1: {"calls": "nope"}, 2: {"calls": [{"uid": "u"}, 7]}})
    assert merged == {"calls": [{"uid": "u", "worker": 2}], "workers_unavailable": [0, 1]}


def test_free_slots_counts_only_ready_workers():
    """Free slots are slots - calls of a ready worker; not ready, missing or odd fields: 0."""
    assert free_slots(ready(1)) == 3
    assert free_slots(ready(4)) == 0
    assert free_slots(ready(1, ok=False)) == 0
    assert free_slots(None) == 0
    assert free_slots({"ready": True, "calls": "1", "slots": 4}) == 0


def test_outbound_goes_to_the_worker_with_most_free_slots_then_lowest_index():
    """Most free slots first, ties by index; full, draining and silent workers are skipped."""
    states = {0: ready(3), 1: ready(1), 2: ready(1), 3: ready(0, ok=False), 4: None, 5: ready(4)}
    assert outbound_order(states) == [1, 2, 0]


def test_outbound_with_no_free_slot_anywhere_is_empty():
    """A full cell offers no worker (the API answers 503 at once)."""
    assert outbound_order({0: ready(4), 1: ready(0, ok=False), 2: None}) == []
    assert outbound_order({}) == []


def test_cell_is_ready_while_one_worker_is():
    """One ready worker makes the cell ready; the detail names each worker's reasons."""
    body = cell_readiness({0: ready(4, ok=False), 2: ready(1)}, expected=3)
    assert body["ready"] and body["workers_ready"] == 1 and body["reasons"] == []
    assert body["workers"]["0"]["ready"] is False and body["workers"]["0"]["reasons"]
    assert body["workers"]["1"] == {"ready": False, "reasons": ["worker: not running"],
                                    "calls": None, "slots": None}
    assert body["workers"]["2"]["ready"] and body["slots_free"] == 3 and body["calls"] == 5


def test_cell_is_not_ready_when_no_worker_is():
    """No ready worker (down, silent, full): not ready, with a reason."""
    body = cell_readiness({0: None, 1: ready(4, ok=False)}, expected=2)
    assert not body["ready"] and body["reasons"] == ["no worker is ready"]
    assert body["workers"]["0"]["reasons"] == ["worker: did not answer"]
