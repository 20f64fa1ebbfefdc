"""ToolTurns: when a tool's output is followed by response.create (one response at a time, the
caller's turn is theirs)."""

from sipbridge.app.toolturn import ToolTurns


def test_an_output_with_nothing_in_progress_asks_for_a_response_at_once():
    """The calling response is over and the caller is quiet: response.create now, once."""
    t = ToolTurns()
    t.called("a")
    t.response_created()
    assert t.response_done() is False          # nothing owed yet: the tool is still running
    assert t.finished("a") is True
    assert t.finished("a") is False            # a second output for the same call is not a turn


def test_an_output_during_a_response_waits_for_its_end():
    """The output arrives while the calling response still streams: the create follows its done."""
    t = ToolTurns()
    t.response_created()
    t.called("a")
    assert t.finished("a") is False
    assert t.response_done() is True
    assert t.response_done() is False


def test_an_output_after_a_requested_response_waits_for_it_to_be_created_and_done():
    """response.create sent but not yet created: no second create (it would be refused)."""
    t = ToolTurns()
    t.called("a")
    t.requested()
    assert t.finished("a") is False
    t.response_created()
    assert t.response_done() is True


def test_parallel_calls_are_answered_with_one_response_after_the_last_output():
    """Two calls of one response: the first output asks for nothing, the second for one create."""
    t = ToolTurns()
    t.called("a")
    t.called("b")
    assert t.finished("b") is False
    assert t.finished("a") is True


def test_a_barge_in_while_a_tool_runs_gives_the_caller_the_turn():
    """Interrupted with a tool running: its output asks for no response; the caller's committed
    turn does, and after that outputs are answered as usual again."""
    t = ToolTurns()
    t.called("a")
    t.called("b")
    t.interrupted()
    assert t.finished("a") is False
    t.committed()
    t.requested()
    assert t.finished("b") is False             # the turn's response is coming: not a second one
    t.response_created()
    assert t.response_done() is True            # ... but b arrived after it was asked for


def test_a_barge_in_with_an_answer_owed_hands_the_turn_to_the_caller():
    """An output waiting for the current response to end is not answered if the caller cuts in."""
    t = ToolTurns()
    t.response_created()
    t.called("a")
    assert t.finished("a") is False
    t.interrupted()
    assert t.response_done() is False
    assert t.caller_turn


def test_an_interrupt_with_no_tool_involved_changes_nothing():
    """A plain barge-in (no tool running, nothing owed) leaves later tool calls unaffected."""
    t = ToolTurns()
    t.interrupted()
    t.called("a")
    assert t.finished("a") is True


def test_reset_forgets_calls_of_the_old_upstream_session():
    """After a reconnect an output of an old call neither counts nor asks for a response."""
    t = ToolTurns()
    t.called("a")
    t.response_created()
    t.reset()
    assert t.finished("a") is False and not t.active and not t.running


def test_a_refused_answer_of_ours_is_asked_for_again_after_the_response_in_the_way():
    """Our response.create refused (someone else's response was starting): owed again, sent once
    that response is done; a refusal of someone else's create asks for nothing."""
    t = ToolTurns()
    t.called("a")
    assert t.finished("a") is True
    t.refused()
    t.response_created()                       # the other response (e.g. the API's say)
    assert t.response_done() is True
    t.response_created()
    assert t.response_done() is False
    t.refused()                                # not ours: nothing owed
    assert t.response_done() is False
