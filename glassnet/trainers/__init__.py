"""Training helpers shared by the models' ``fit`` / ``evaluate``: sample and class weights, epoch totals."""
from glassnet.trainers.weighting import EpochTotals, class_weight_table, weights_for_batch

__all__ = ["EpochTotals", "class_weight_table", "weights_for_batch"]
