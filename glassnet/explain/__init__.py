"""Explanations: what a trained model looks at, computed on glassnet's own backward pass.

Every method is a function of ``(model, images, ...)``, batched over images, returning a NumPy
array; none changes the model. Conventions:

- ``target``: None (each image's predicted class), an int, or one int per image.
- Scores are the pre-softmax logits unless ``score="probability"``.
- ``layer``: a name, an index or a Layer; CAM-style methods default to the last layer with a
  (N, h, w, C) output.
- Maps keep their units and signs: nothing is normalized for display (see :mod:`glassnet.viz`).
- The map methods (``METHODS``) take ``batch_size`` (128): images are explained in fixed batches,
  each alone, so a map does not depend on how the images are split (:mod:`glassnet.explain.batching`).
- Large batches run in chunks bounded by ``glassnet.explain.backprop.MEMORY_BUDGET`` (bytes);
  :func:`glassnet.explain.backprop.backprop` is the one forward+backward routine behind the
  gradient methods.

=========================  ==============================================  ===================
function                   what                                            returns
=========================  ==============================================  ===================
input_gradients            d score / d pixels (vanilla, guided, rectified) (N, H, W, C)
saliency                   max over channels of abs(input gradient)        (N, H, W)
smooth_grad                gradients averaged over noisy copies            (N, H, W, C)
integrated_gradients       path-integrated gradients from a baseline       (N, H, W, C)
grad_cam                   gradient-weighted feature maps                  (N, H, W)
grad_cam_plus_plus         Grad-CAM++ weights                              (N, H, W)
guided_grad_cam            guided backprop times Grad-CAM                  (N, H, W, C)
cam                        CAM of a GlobalAveragePooling2D -> Dense model  (N, H, W)
occlusion                  score drop when a window is hidden              (N, H, W)
activation_maximization    input that maximizes a unit or a filter         (H, W, C) or (K, H, W, C)
feature_maps               a layer's output                                (N, ...)
filters                    a Conv2D kernel, filter first                   (F, KH, KW, C)
sanity_check               model / data randomization tests, calibrated    SanityCheck
deletion_insertion         deletion / insertion AUCs vs. a random order    DeletionInsertion
=========================  ==============================================  ===================
"""
from glassnet.explain.cam import (cam, grad_cam, grad_cam_plus_plus, guided_grad_cam, receptive_field_grid,
                                  upsample_bilinear)
from glassnet.explain.gradients import input_gradients, integrated_gradients, saliency, smooth_grad
from glassnet.explain.inspect import feature_maps, filters
from glassnet.explain.maximization import activation_maximization
from glassnet.explain.occlusion import occlusion
from glassnet.explain import similarity
from glassnet.explain.similarity import blank_maps
from glassnet.explain.trust import (METHODS, DeletionInsertion, SanityCheck, deletion_insertion,
                                    rank_correlation, sanity_check)

__all__ = [
    "input_gradients", "saliency", "smooth_grad", "integrated_gradients", "grad_cam", "grad_cam_plus_plus",
    "guided_grad_cam", "cam", "occlusion", "activation_maximization", "feature_maps", "filters",
    "sanity_check", "deletion_insertion", "rank_correlation", "upsample_bilinear", "receptive_field_grid",
    "METHODS", "SanityCheck", "DeletionInsertion", "similarity", "blank_maps",
]
