"""The port pools' shared bookkeeping: every port made, the idle ones, reuse order."""

import threading

from sipbridge.media.reuse import Reuse


def test_an_empty_pool_has_nothing_to_take():
    """With no port made, take answers None and the size is 0."""
    reuse = Reuse()
    assert reuse.take() is None
    assert reuse.size == 0


def test_a_new_port_is_in_a_call_until_given_back():
    """A port just added counts in size but is not idle; given back, the next take returns it."""
    reuse = Reuse()
    reuse.add("p0")
    assert reuse.size == 1
    assert reuse.take() is None
    reuse.give_back("p0")
    assert reuse.take() == "p0"
    assert reuse.take() is None
    assert reuse.size == 1


def test_the_most_recently_idled_port_is_taken_first():
    """Ports given back in order a, b are taken b, then a."""
    reuse = Reuse()
    for p in ("a", "b"):
        reuse.add(p)
    reuse.give_back("a")
    reuse.give_back("b")
    assert [reuse.take(), reuse.take(), reuse.take()] == ["b", "a", None]


def test_a_double_release_does_not_hand_one_port_to_two_calls():
    """Giving the same port back twice leaves it idle once."""
    reuse = Reuse()
    reuse.add("p")
    reuse.give_back("p")
    reuse.give_back("p")
    assert [reuse.take(), reuse.take()] == ["p", None]


def test_a_port_the_pool_never_made_is_not_taken_in():
    """Giving back a stranger's port changes nothing: it is never handed out, size unchanged."""
    reuse = Reuse()
    reuse.give_back("stranger")
    assert reuse.take() is None
    assert reuse.size == 0


def test_threads_taking_and_giving_back_never_share_a_port():
    """Eight threads cycling take/give_back 500 times each never hold the same port at once."""
    reuse = Reuse()
    for i in range(4):
        reuse.add(i)
        reuse.give_back(i)
    held, clash, lock = set(), [], threading.Lock()

    def cycle():
        for _ in range(500):
            port = reuse.take()
            if port is None:
                continue
            with lock:
                if port in held:
                    clash.append(port)
                held.add(port)
            with lock:
                held.discard(port)
            reuse.give_back(port)

    threads = [threading.Thread(target=cycle) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clash == []
    assert sorted(reuse.take() for _ in range(4)) == [0, 1, 2, 3]
    assert reuse.take() is None
