"""glassnet.ops.parallel: BLAS held at one thread while glassnet's own workers run."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import glassnet as gn
from glassnet.ops import parallel


def blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture(autouse=True)
def blas_controlled():
    if not parallel._blas_controllers():
        pytest.skip("threadpoolctl sees no BLAS library in this NumPy build")


def test_workers_hold_blas_at_one_thread_and_put_it_back(monkeypatch):
    monkeypatch.setattr(parallel, "_CPUS", 4)

    def threads_inside(_):
        assert parallel.num_threads() == 1                              # nested calls stay sequential
        return blas_threads()

    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        inside = parallel.run_blocks(threads_inside, [0, 1], threads=2)
        assert inside == [[1] * len(before)] * 2
        assert blas_threads() == before == [2] * len(before)


def test_held_blas_holds_blas_at_one_thread_through_nested_calls(monkeypatch):
    monkeypatch.setattr(parallel, "_CPUS", 4)
    with threadpool_limits(3, user_api="blas"):
        outside = blas_threads()
        with parallel.held_blas():
            assert blas_threads() == [1] * len(outside)
            assert parallel.num_threads() == 3                          # the limit from before
            parallel.run_blocks(lambda _: None, [0, 1], threads=2)
            assert blas_threads() == [1] * len(outside)                 # the inner call left it held
        assert blas_threads() == outside == [3] * len(outside)


def test_a_training_step_runs_with_blas_held_and_puts_it_back(monkeypatch):
    monkeypatch.setattr(parallel, "_CPUS", 4)
    model = gn.Sequential([gn.layers.Dense(3, input_shape=(4,))], seed=0)
    model.compile(gn.optimizers.SGD(0.1), "mse")
    seen = []
    apply = model.optimizer.apply
    monkeypatch.setattr(model.optimizer, "apply", lambda *args: seen.append(blas_threads()) or apply(*args))
    x, y = np.ones((5, 4), np.float32), np.zeros((5, 3), np.float32)
    with threadpool_limits(2, user_api="blas"):
        model.train_on_batch(x, y)
        model.fit(x, y, batch_size=5, epochs=1, verbose=0)
        after = blas_threads()
    assert seen == [[1] * len(after)] * 2 and after == [2] * len(after)


def test_an_error_inside_a_step_or_while_lowering_blas_puts_it_back(monkeypatch):
    monkeypatch.setattr(parallel, "_CPUS", 4)
    model = gn.Sequential([gn.layers.Dense(3, input_shape=(4,))], seed=0)
    model.compile(gn.optimizers.SGD(1e30), "mse")
    x, y = np.full((5, 4), 1e30, np.float32), np.zeros((5, 3), np.float32)
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(RuntimeError, match="finite"):              # the step's own numerical check
            model.train_on_batch(x, y)
        assert blas_threads() == [2] * len(blas_threads()) and parallel._STATE["active"] == 0
        controller = parallel._blas_controllers()[0]

        def refuse(_):
            raise OSError("the BLAS library refused")
        monkeypatch.setattr(controller, "set_num_threads", refuse)
        with pytest.raises(OSError, match="refused"):
            with parallel.held_blas():
                pass
        assert parallel._STATE["active"] == 0 and parallel.num_threads() == 2
