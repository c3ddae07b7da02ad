"""Which module runs which convolution plan: the strategy is the plan's type (:mod:`glassnet.ops.conv.plan`);
the fused strategies are listed in :mod:`glassnet.ops.conv`.

Convolution strategies share one signature::

    forward(plan, xp, kernel, bias, relu, target, finish=None, kept=None)
    backward(plan, xp, kernel, gradient, dtype, need_dx=True, need_bias=True, gate_input=False, kept=None,
             need_kernel=True) -> (dxp, dkernel or None, dbias or None)

and fused convolution + max pooling strategies another::

    forward(plan, xp, kernel, bias, relu, record_winners=True, kept=None) -> (y, winner)
    backward(plan, cache, dy, kernel, need_dx=True, need_bias=True, gate_input=False, kept=None,
             need_kernel=True) -> (dxp, dkernel or None, dbias or None)
"""
from glassnet.ops.conv import dilated, im2col, plan, row_windows, wide_rows

#: The convolution strategy of each plan type.
CONV = {plan.Im2colPlan: im2col, plan.WideRowsPlan: wide_rows, plan.RowWindowPlan: row_windows,
        plan.DilatedPlan: dilated}


def conv_strategy(conv_plan):
    """The module that runs ``conv_plan``."""
    return CONV[type(conv_plan)]
