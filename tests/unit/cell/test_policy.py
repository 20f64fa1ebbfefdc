"""RestartPolicy / RestartTracker: backoff doubling, give-up on a crash loop, forgetting."""

from sipbridge.cell.policy import RestartPolicy, RestartTracker


def tracker(**kw):
    return RestartTracker(RestartPolicy(**{"backoff_s": 0.5, "max_backoff_s": 4.0, "limit": 5,
                                           "window_s": 60.0, **kw}))


def test_backoff_doubles_per_crash_within_the_window():
    """Each further crash inside the window doubles the delay before the restart."""
    t = tracker()
    assert [t.on_crash("w0", now) for now in (0, 1, 2, 3)] == [0.5, 1.0, 2.0, 4.0]


def test_backoff_is_capped():
    """The delay never exceeds max_backoff_s."""
    t = tracker(limit=100, max_backoff_s=3.0)
    delays = [t.on_crash("w0", float(i)) for i in range(8)]
    assert delays[-1] == 3.0 and max(delays) == 3.0


def test_gives_up_at_the_limit_within_the_window():
    """The limit-th crash within window_s returns None: no more restarts."""
    t = tracker(limit=3)
    assert t.on_crash("w0", 0) is not None
    assert t.on_crash("w0", 10) is not None
    assert t.on_crash("w0", 20) is None


def test_old_crashes_are_forgotten():
    """Crashes older than the window no longer count: the delay starts over."""
    t = tracker(limit=3, window_s=30)
    t.on_crash("w0", 0)
    t.on_crash("w0", 10)
    assert t.on_crash("w0", 35) == 1.0  # the crash at 0 has left the window, 10 has not
    assert t.on_crash("w0", 100) == 0.5
    assert t.recent("w0", 100) == 1


def test_workers_are_tracked_separately():
    """One worker's crash loop does not shorten another's patience."""
    t = tracker(limit=2)
    t.on_crash("w0", 0)
    assert t.on_crash("w0", 1) is None
    assert t.on_crash("w1", 1) == 0.5


def test_limit_one_never_restarts():
    """limit 1 means the first crash is final."""
    assert tracker(limit=1).on_crash("w0", 0) is None


def test_from_config_reads_the_cell_keys():
    """The policy comes from cell.restart_backoff_ms / restart_limit / restart_window_s."""
    from sipbridge import config
    cfg = config.build({"cell": {"restart_backoff_ms": 250, "restart_limit": 7,
                                 "restart_window_s": 90}}, environ={})
    p = RestartPolicy.from_config(cfg.cell)
    assert (p.backoff_s, p.limit, p.window_s) == (0.25, 7, 90.0)
