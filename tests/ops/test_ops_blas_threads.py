"""glassnet.ops.blas_threads: BLAS held at one thread from any thread, counted, and always put back
(issue 19 item 3). Counts are read through threadpoolctl, as a program would."""
import threading

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from glassnet.ops import blas_threads


def numpy_blas_count():
    """NumPy's BLAS thread count as threadpoolctl reads it."""
    path = blas_threads.library().path
    return next(info["num_threads"] for info in threadpool_info() if info["filepath"] == path)


def on_thread(fn):
    """``fn()`` on a new thread; its result."""
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the thread did not finish"
    return out[0]


@pytest.fixture
def blas_at_two():
    """NumPy's OpenBLAS at 2 threads for the test; the count from before put back after it."""
    library = blas_threads.library()
    if library is None:
        pytest.skip("this NumPy's BLAS is not a pthreads OpenBLAS: glassnet never changes it")
    before = library.get()
    library.set(2)
    yield library
    assert blas_threads.holds() == 0
    library.set(before)


def test_numpy_wheel_openblas_is_found_and_is_the_one_threadpoolctl_reads(blas_at_two):
    assert numpy_blas_count() == 2 == blas_threads.count()
    blas_at_two.set(3)
    assert numpy_blas_count() == 3 == blas_threads.count()


def test_a_hold_on_another_thread_lowers_blas_for_every_thread_and_puts_it_back(blas_at_two):
    def held_counts():
        with blas_threads.held():
            return numpy_blas_count(), blas_threads.count(), on_thread(numpy_blas_count)
    assert on_thread(held_counts) == (1, 2, 1)           # held; count() answers with the program's 2
    assert numpy_blas_count() == 2 and on_thread(numpy_blas_count) == 2


def test_a_hold_taken_on_one_thread_and_released_on_another_is_put_back(blas_at_two):
    token = on_thread(blas_threads.hold)
    assert numpy_blas_count() == 1
    on_thread(lambda: blas_threads.release(token))
    assert numpy_blas_count() == 2


def test_overlapping_holds_on_two_threads_share_one_lowering(blas_at_two):
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with blas_threads.held():
            first_in.set()
            second_in.wait(30)
        seen["after first"] = numpy_blas_count()
        first_out.set()

    def second():
        first_in.wait(30)
        with blas_threads.held():
            second_in.set()
            first_out.wait(30)
            seen["inside second"] = (numpy_blas_count(), blas_threads.count())
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seen == {"after first": 1, "inside second": (1, 2)}
    assert numpy_blas_count() == 2


def test_a_count_the_program_sets_during_a_hold_is_kept(blas_at_two):
    with blas_threads.held():
        on_thread(lambda: blas_at_two.set(3))
    assert numpy_blas_count() == 3


def test_a_failed_lowering_holds_nothing(blas_at_two, monkeypatch):
    def refuse(_):
        raise OSError("refused")
    monkeypatch.setattr(blas_at_two, "set", refuse)
    with pytest.raises(OSError, match="refused"):
        blas_threads.hold()
    assert blas_threads.holds() == 0 and numpy_blas_count() == 2


def test_glassnet_never_becomes_threadpoolctls_controlling_thread(blas_at_two):
    """threadpoolctl lets only one thread change a pthreads OpenBLAS: glassnet must not take that
    role from the program (a later threadpool_limits on a worker thread would silently do nothing)."""
    with blas_threads.held():
        pass

    def limited():
        with threadpool_limits(1, user_api="blas"):
            return numpy_blas_count()
    assert on_thread(limited) == 1 and numpy_blas_count() == 2


def test_a_child_forked_during_another_threads_hold_gets_the_programs_count_back(blas_at_two, forked):
    holding, done = threading.Event(), threading.Event()

    def hold_until_done():
        with blas_threads.held():
            holding.set()
            done.wait(60)
    thread = threading.Thread(target=hold_until_done)
    thread.start()
    holding.wait(30)
    try:
        assert numpy_blas_count() == 1

        def child():
            with blas_threads.held():                  # holds work in the child, and end
                inside = numpy_blas_count()
            return numpy_blas_count(), inside, blas_threads.holds()
        assert forked(child) == (2, 1, 0)
    finally:
        done.set()
        thread.join(60)
    assert numpy_blas_count() == 2
