"""Training, as Keras 3's ``trainers/``: the fit / evaluate loop (:mod:`.trainer`), where batches come
from (:mod:`.data`), what compile sets up per output (:mod:`.compile_utils`), the numeric checks
(:mod:`.numerics`), sample and class weights with the epoch totals (:mod:`.weighting`)."""
from glassnet.trainers.weighting import EpochTotals, class_weight_table, weights_for_batch

__all__ = ["EpochTotals", "class_weight_table", "weights_for_batch"]
