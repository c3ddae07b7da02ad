"""glassnet.ops.parallel: BLAS held at one thread while glassnet's own workers run; items taken as threads come
free, folded in item order."""
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import glassnet as gn
from glassnet.ops import blas_threads
from glassnet.ops import parallel


def blas_counts():
    """NumPy's BLAS thread count, and those of the other BLAS libraries loaded (SciPy's own OpenBLAS),
    as threadpoolctl reads them."""
    path = blas_threads.library().path
    infos = [info for info in threadpool_info() if info["user_api"] == "blas"]
    return (next(info["num_threads"] for info in infos if info["filepath"] == path),
            [info["num_threads"] for info in infos if info["filepath"] != path])


@pytest.fixture(autouse=True)
def blas_controlled():
    if blas_threads.library() is None:
        pytest.skip("this NumPy's BLAS is not a pthreads OpenBLAS: glassnet leaves it alone")


def test_workers_hold_numpys_blas_at_one_thread_and_put_it_back(monkeypatch):
    pytest.importorskip("scipy.linalg")                                 # loads SciPy's own OpenBLAS
    monkeypatch.setattr(parallel, "_CPUS", 4)

    def threads_inside(_):
        assert parallel.num_threads() == 1                              # nested calls stay sequential
        return blas_counts()

    with threadpool_limits(2, user_api="blas"):
        before = blas_counts()
        inside = parallel.run_blocks(threads_inside, [0, 1], threads=2)
        assert before == (2, [2] * len(before[1])) and len(before[1]) >= 1
        assert inside == [(1, before[1])] * 2                           # NumPy's held; SciPy's left alone
        assert blas_counts() == before


def test_held_blas_holds_blas_at_one_thread_through_nested_calls(monkeypatch):
    monkeypatch.setattr(parallel, "_CPUS", 4)
    with threadpool_limits(3, user_api="blas"):
        outside = blas_counts()
        with parallel.held_blas():
            assert blas_counts()[0] == 1
            assert parallel.num_threads() == 3                          # the limit from before
            parallel.run_blocks(lambda _: None, [0, 1], threads=2)
            assert blas_counts()[0] == 1                                # the inner call left it held
        assert blas_counts() == outside and outside[0] == 3


def test_a_training_step_runs_with_blas_held_and_puts_it_back(monkeypatch):
    monkeypatch.setattr(parallel, "_CPUS", 4)
    model = gn.Sequential([gn.layers.Dense(3, input_shape=(4,))], seed=0)
    model.compile(gn.optimizers.SGD(0.1), "mse")
    seen = []
    apply = model.optimizer.apply
    monkeypatch.setattr(model.optimizer, "apply", lambda *args: seen.append(blas_counts()[0]) or apply(*args))
    x, y = np.ones((5, 4), np.float32), np.zeros((5, 3), np.float32)
    with threadpool_limits(2, user_api="blas"):
        model.train_on_batch(x, y)
        model.fit(x, y, batch_size=5, epochs=1, verbose=0)
        after = blas_counts()[0]
    assert seen == [1, 1] and after == 2


def test_an_error_inside_a_step_or_while_lowering_blas_puts_it_back(monkeypatch):
    monkeypatch.setattr(parallel, "_CPUS", 4)
    model = gn.Sequential([gn.layers.Dense(3, input_shape=(4,))], seed=0)
    model.compile(gn.optimizers.SGD(1e30), "mse")
    x, y = np.full((5, 4), 1e30, np.float32), np.zeros((5, 3), np.float32)
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(RuntimeError, match="finite"):              # the step's own numerical check
            model.train_on_batch(x, y)
        assert blas_counts()[0] == 2 and blas_threads.holds() == 0

        def refuse(_):
            raise OSError("the BLAS library refused")
        monkeypatch.setattr(blas_threads.library(), "set", refuse)
        with pytest.raises(OSError, match="refused"):
            with parallel.held_blas():
                pass
        assert blas_threads.holds() == 0 and parallel.num_threads() == 2


def test_split_calls_fold_in_item_order_whichever_thread_ran_an_item():
    """Float sums depend on their order: the folded value of a split call is the one thread's, bit for bit."""
    values = [1e16, 1.0, -1e16, 3.0, 1e-3, 2.5e15, -7.0, 1.0] * 5
    items = list(range(len(values)))

    def slow_first(i):
        if i == 0:
            time.sleep(0.05)              # the other thread takes most items meanwhile
        return np.array([values[i]])

    def add(total, part):
        total += part
        return total
    alone = parallel.run_blocks(slow_first, items, 1, fold=add, blas=False)
    split = parallel.run_blocks(slow_first, items, 2, fold=add, blas=False)
    assert split.tobytes() == alone.tobytes()
    assert parallel.run_blocks(lambda i: i * i, items, 2, blas=False) == [i * i for i in items]


def test_threads_take_items_as_they_come_free():
    """A thread held up on one item does not hold up the items after it: the other thread takes them."""
    ran_on = {}

    def work(i):
        if i == 0:
            time.sleep(0.2)
        ran_on[i] = threading.get_ident()
    parallel.run_blocks(work, list(range(8)), 2, blas=False)
    assert sorted(ran_on) == list(range(8))
    assert sum(ident != ran_on[0] for ident in ran_on.values()) >= 6


def test_an_error_in_one_item_reaches_the_caller_after_every_thread_stopped():
    started, finished = [], []

    def work(i):
        started.append(i)
        if i == 1:
            raise ValueError("item 1 failed")
        time.sleep(0.01)
        finished.append(i)
    with pytest.raises(ValueError, match="item 1 failed"):
        parallel.run_blocks(work, list(range(6)), 2, blas=False)
    count = len(finished)
    time.sleep(0.05)
    assert len(finished) == count          # nothing still running after the call returned
