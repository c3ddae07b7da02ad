"""Named model presets: functions returning a fresh, uncompiled, built model.

=================  ==========  ===========================================================
name               params      what it is
=================  ==========  ===========================================================
``seed003_tiny``   13,602      seed 003: Conv3x3(8, no bias) -> MaxPool2 -> Dense(10, softmax)
``keras_mnist``    1,199,882   seed 000's Keras ``mnist_cnn`` (Conv32-Conv64-Pool-Dense128)
``seed000_tanh``   35,754      seed 000's Keras script: Conv 4/8/16 with tanh, Dense128 tanh
``lenet5``         61,706      LeCun's LeNet-5 with ReLU and max pooling
``fashion``        871,978     our best small net for Fashion-MNIST (Conv-BN-ReLU blocks)
``resnet8``        78,426      He et al.'s small ResNet (basic blocks, BatchNorm, projection shortcuts, GAP)
``resnet_fashion`` 874,282     our ResNet for Fashion-MNIST (deep stem, a basic block, dense head)
=================  ==========  ===========================================================

Every preset takes ``input_shape=(28, 28, 1)``, ``num_classes=10``, ``seed=None`` (weight
initialization) and ``dtype="float32"``; the ResNets are Functional :class:`~glassnet.Model` instances
(with an ``augment`` switch for their augmentation layers), the others are Sequential. :data:`RECIPES` holds
the training settings each was measured with (optimizer, learning-rate schedule, epochs, batch size) and
:func:`recipe` returns them.
"""
import numpy as np

from glassnet.errors import message
from glassnet.validation import check_text
from glassnet.layers import (Activation, Add, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                             GlobalAveragePooling2D, MaxPooling2D, RandomCrop, RandomErasing, RandomFlip, ReLU,
                             ZeroPadding2D)


def _sequential(layers, seed, name):
    from glassnet.model import Sequential
    return Sequential(layers, name=name, seed=seed)


def seed003_tiny(input_shape=(28, 28, 1), num_classes=10, seed=None, dtype="float32"):
    """Seed 003's network: Conv3x3(8 filters, no bias) -> MaxPool2 -> Flatten -> Dense(10, softmax).

    13,602 parameters for 28x28x1 inputs (72 in the filters, 13,530 in the dense layer).
    """
    return _sequential([
        Conv2D(8, 3, use_bias=False, input_shape=tuple(input_shape), dtype=dtype),
        MaxPooling2D(2, dtype=dtype),
        Flatten(dtype=dtype),
        Dense(num_classes, activation="softmax", dtype=dtype),
    ], seed, "seed003_tiny")


def keras_mnist(input_shape=(28, 28, 1), num_classes=10, seed=None, dtype="float32"):
    """Keras's ``mnist_cnn`` example as seed 000 prints it (1,199,882 parameters); last layer named ``preds``."""
    return _sequential([
        Conv2D(32, 3, activation="relu", input_shape=tuple(input_shape), dtype=dtype),
        Conv2D(64, 3, activation="relu", dtype=dtype),
        MaxPooling2D(2, dtype=dtype),
        Dropout(0.25, dtype=dtype),
        Flatten(dtype=dtype),
        Dense(128, activation="relu", dtype=dtype),
        Dropout(0.5, dtype=dtype),
        Dense(num_classes, activation="softmax", name="preds", dtype=dtype),
    ], seed, "keras_mnist")


def seed000_tanh(input_shape=(28, 28, 1), num_classes=10, seed=None, dtype="float32"):
    """Seed 000's Keras training script: Conv(4, 5x5) tanh -> Conv(8, 3x3) tanh -> MaxPool2 ->
    Conv(16, 3x3) tanh -> MaxPool2 -> Flatten -> Dense(128, 'normal' init) tanh -> Dense(10, 'normal') softmax.

    The activations are separate layers as in the script; 28 -> 24 -> 22 -> 11 -> 9 -> 4, so the dense
    layer sees 4*4*16 = 256 features (35,754 parameters).
    """
    return _sequential([
        Conv2D(4, 5, padding="valid", input_shape=tuple(input_shape), dtype=dtype),
        Activation("tanh", dtype=dtype),
        Conv2D(8, 3, padding="valid", dtype=dtype),
        Activation("tanh", dtype=dtype),
        MaxPooling2D(2, dtype=dtype),
        Conv2D(16, 3, padding="valid", dtype=dtype),
        Activation("tanh", dtype=dtype),
        MaxPooling2D(2, dtype=dtype),
        Flatten(dtype=dtype),
        Dense(128, kernel_initializer="normal", dtype=dtype),
        Activation("tanh", dtype=dtype),
        Dense(num_classes, kernel_initializer="normal", dtype=dtype),
        Activation("softmax", dtype=dtype),
    ], seed, "seed000_tanh")


def lenet5(input_shape=(28, 28, 1), num_classes=10, seed=None, dtype="float32"):
    """LeNet-5 (ReLU, max pooling): Conv5x5(6, same) -> Pool -> Conv5x5(16) -> Pool -> 120 -> 84 -> 10.

    61,706 parameters for 28x28x1 inputs (the "same" padding plays the role of LeNet's 32x32 input).
    """
    return _sequential([
        Conv2D(6, 5, padding="same", activation="relu", input_shape=tuple(input_shape), dtype=dtype),
        MaxPooling2D(2, dtype=dtype),
        Conv2D(16, 5, activation="relu", dtype=dtype),
        MaxPooling2D(2, dtype=dtype),
        Flatten(dtype=dtype),
        Dense(120, activation="relu", dtype=dtype),
        Dense(84, activation="relu", dtype=dtype),
        Dense(num_classes, activation="softmax", dtype=dtype),
    ], seed, "lenet5")


def _conv_bn_relu(filters, dtype, **kwargs):
    # No bias: the BatchNormalization's beta that follows does its job.
    return [Conv2D(filters, 3, padding="same", use_bias=False, dtype=dtype, **kwargs),
            BatchNormalization(dtype=dtype), ReLU(dtype=dtype)]


def fashion(input_shape=(28, 28, 1), num_classes=10, seed=None, dtype="float32"):
    """Our small net for Fashion-MNIST: two VGG-style blocks of Conv3x3-BN-ReLU x2 -> MaxPool -> Dropout(0.25),
    then Dense(256)-BN-ReLU -> Dropout(0.5) -> Dense(10, softmax).

    Channels 32, 32 | 64, 64 with "same" padding: 28x28 in the first block, 14x14 in the second, so the
    dense layer sees 7*7*64 = 3,136 features (871,978 parameters, about 19 M multiply-adds per image).
    Trained with :data:`RECIPES` ``["fashion"]`` (Adam, 15 epochs, step-down learning rate). A
    "valid"-padding variant (331,306 parameters, 10 M multiply-adds) scored 1.2 points lower in a
    20k-image, 5-epoch comparison, and random flips/shifts slowed convergence too much for a
    short schedule, so neither is used.
    """
    return _sequential([
        *_conv_bn_relu(32, dtype, input_shape=tuple(input_shape)),
        *_conv_bn_relu(32, dtype),
        MaxPooling2D(2, dtype=dtype),
        Dropout(0.25, dtype=dtype),
        *_conv_bn_relu(64, dtype),
        *_conv_bn_relu(64, dtype),
        MaxPooling2D(2, dtype=dtype),
        Dropout(0.25, dtype=dtype),
        Flatten(dtype=dtype),
        Dense(256, use_bias=False, dtype=dtype),
        BatchNormalization(dtype=dtype),
        ReLU(dtype=dtype),
        Dropout(0.5, dtype=dtype),
        Dense(num_classes, activation="softmax", dtype=dtype),
    ], seed, "fashion")


def _conv_bn(x, filters, kernel, strides, dtype, rng):
    """Conv (no bias: the BatchNormalization's beta does its job) -> BatchNormalization, on a tensor.

    The moving statistics use momentum 0.9 (PyTorch's 0.1), not Keras's 0.99: measured on a 2-epoch run on
    9,000 images (142 steps), 0.99 left them so far behind (0.99 ** 142 = 24% of the initial 0 / 1) that the
    test accuracy was 9.7% at inference against 77.6% with the statistics re-estimated."""
    x = Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, dtype=dtype, seed=rng)(x)
    return BatchNormalization(momentum=0.9, dtype=dtype)(x)


def _basic_block(x, filters, strides, dtype, rng):
    """He et al.'s basic block: ``relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut)``; the shortcut is a
    1x1 convolution + BN (projection) when the block changes the resolution or the width, else ``x``."""
    y = ReLU(dtype=dtype)(_conv_bn(x, filters, 3, strides, dtype, rng))
    y = _conv_bn(y, filters, 3, 1, dtype, rng)
    shortcut = x if strides == 1 and x.shape[-1] == filters else _conv_bn(x, filters, 1, strides, dtype, rng)
    return ReLU(dtype=dtype)(Add(dtype=dtype)([y, shortcut]))


def _augmentation(x, input_shape, dtype, draws, erasing=0.0):
    """RandomFlip("horizontal") and ZeroPadding2D(2) + RandomCrop (random shifts of up to 2 pixels), then with
    ``erasing`` > 0 a RandomErasing of each image with that probability (a rectangle of 2-40% of the image
    per side product, filled with 0, the background of images scaled to [0, 1]): active only while training,
    exactly the identity at inference."""
    x = RandomFlip("horizontal", dtype=dtype, seed=draws)(x)
    x = ZeroPadding2D(2, dtype=dtype)(x)
    x = RandomCrop(input_shape[0], input_shape[1], dtype=dtype, seed=draws)(x)
    if erasing:
        x = RandomErasing((erasing, erasing), scale=(0.02, 0.4), fill_value=0.0, value_range=(0, 1), dtype=dtype,
                          seed=draws)(x)
    return x


def _graph_start(input_shape, seed, dtype, augment, erasing=0.0):
    """The input tensor, the tensor the network starts from and the weights' generator.

    Two streams from the seed: the weights' (each layer draws its own seed from it) and the augmentation's, so
    that the same seed gives the same weights with or without augmentation."""
    from glassnet import Input
    rng, draws = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2))
    inputs = Input(tuple(input_shape), name="images")
    return inputs, _augmentation(inputs, input_shape, dtype, draws, erasing) if augment else inputs, rng


def resnet8(input_shape=(28, 28, 1), num_classes=10, seed=None, dtype="float32", widths=(16, 32, 64),
            blocks_per_stage=1, augment=True):
    """He et al.'s small CIFAR-style ResNet for 28x28 images, built with the Functional API.

    [augmentation] -> Conv3x3-BN-ReLU stem -> three stages of basic blocks (``widths`` 16, 32, 64 at 28x28,
    14x14 and 7x7; the first block of stages 2 and 3 has stride 2 and a projection shortcut) ->
    GlobalAveragePooling2D -> Dense(num_classes, softmax). 78,426 parameters and 9.35 M multiply-adds
    per 28x28x1 image with the defaults (``blocks_per_stage=1``: 7 convolutions deep, a ResNet-8).

    ``augment`` puts the random flips and 2-pixel shifts of :func:`_augmentation` in front. Trained with
    :data:`RECIPES` ``["resnet8"]`` (AdamW, cosine decay per batch): 92.70% on Fashion-MNIST in 18 epochs.
    """
    from glassnet import Model
    inputs, x, rng = _graph_start(input_shape, seed, dtype, augment)
    x = ReLU(dtype=dtype)(_conv_bn(x, widths[0], 3, 1, dtype, rng))
    for stage, filters in enumerate(widths):
        for block in range(blocks_per_stage):
            x = _basic_block(x, filters, 2 if stage > 0 and block == 0 else 1, dtype, rng)
    x = GlobalAveragePooling2D(dtype=dtype)(x)
    outputs = Dense(num_classes, activation="softmax", dtype=dtype, seed=rng)(x)
    return Model(inputs, outputs, name="resnet8")


def resnet_fashion(input_shape=(28, 28, 1), num_classes=10, seed=None, dtype="float32", stem=(32, 32),
                   widths=(64,), head=256, dropout=0.0, augment=True, erasing=0.0):
    """Our ResNet for Fashion-MNIST, built with the Functional API: a deep stem at full resolution, basic
    blocks between max-poolings, and a dense head.

    [augmentation] -> ``stem``: Conv3x3-BN-ReLU with 32 and 32 filters at 28x28 -> MaxPool2 -> one basic block
    per entry of ``widths`` (64 filters at 14x14; a projection shortcut where the width changes), each followed
    by MaxPool2 -> Flatten -> Dense(``head``)-BN-ReLU [-> Dropout(``dropout``)] -> Dense(num_classes, softmax).
    With the defaults 874,282 parameters and 19.5 M multiply-adds per 28x28x1 image.

    Why this shape (measured, benchmarks/NOTES.md): on 2 CPU cores and a 30-minute budget, fine detail at full
    resolution paid more than depth at low resolution. With the same recipe for 12 epochs a plain version of this
    network (two stages of two convolutions, with dropout) reached 93.9-94.0% while a ResNet that pools right
    after a one-convolution stem (32 | 64 | 128 filters at 28 | 14 | 7, 290,730 parameters) reached 92.5% after 10 of
    12 epochs; the GAP ResNet-8 (:func:`resnet8`) reached 92.7% in 18 epochs.

    ``augment`` puts the random flips and 2-pixel shifts of :func:`_augmentation` in front, and ``erasing`` > 0
    a RandomErasing of each image with that probability after them. Trained with :data:`RECIPES`
    ``["resnet_fashion"]`` (SGD with Nesterov momentum, cosine decay per batch, label smoothing 0.1, 12 epochs):
    94.27% test accuracy on Fashion-MNIST; the whole ``glassnet train`` command took 34.8 minutes on 2 CPUs in a
    slow hour of this shared VM (its training steps 1.2-1.6x as long as an hour before). With AdamW (lr 2e-3,
    weight decay 0.02) instead: 94.09% in 29.2 minutes (a faster hour); with AdamW and ``dropout=0.3``: 93.78%;
    with AdamW and ``erasing=0.5`` (one thread): 93.94%. Regularizers did not pay at this budget, so both
    default to none.
    """
    from glassnet import Model
    inputs, x, rng = _graph_start(input_shape, seed, dtype, augment, erasing)
    for filters in stem:
        x = ReLU(dtype=dtype)(_conv_bn(x, filters, 3, 1, dtype, rng))
    x = MaxPooling2D(2, dtype=dtype)(x)
    for filters in widths:
        x = MaxPooling2D(2, dtype=dtype)(_basic_block(x, filters, 1, dtype, rng))
    x = Dense(head, use_bias=False, dtype=dtype, seed=rng)(Flatten(dtype=dtype)(x))
    x = ReLU(dtype=dtype)(BatchNormalization(momentum=0.9, dtype=dtype)(x))
    if dropout:
        x = Dropout(dropout, dtype=dtype, seed=rng)(x)
    outputs = Dense(num_classes, activation="softmax", dtype=dtype, seed=rng)(x)
    return Model(inputs, outputs, name="resnet_fashion")


PRESETS = {
    "seed003_tiny": seed003_tiny,
    "keras_mnist": keras_mnist,
    "seed000_tanh": seed000_tanh,
    "lenet5": lenet5,
    "fashion": fashion,
    "resnet8": resnet8,
    "resnet_fashion": resnet_fashion,
}

#: Training settings per preset: ``optimizer`` (an ``optimizers.get`` config), ``epochs``,
#: ``batch_size``, an optional step ``schedule`` ``[(epoch, factor), ...]`` (the learning rate is the
#: base rate times the factor of the last entry whose epoch has been reached, applied with a
#: LearningRateScheduler), an optional ``cosine_decay`` ``{"alpha": a, "warmup_epochs": w}`` (the rate follows
#: ``optimizers.schedules.CosineDecay`` per batch over the whole run, after ``w`` epochs of linear warm-up
#: from a tenth of the base rate), optional ``augment`` options for ``ImageDataGenerator`` and an optional
#: ``loss`` (a ``losses.get`` config; default: sparse categorical cross-entropy).
RECIPES = {
    "seed003_tiny": {"optimizer": {"class_name": "SGD", "learning_rate": 0.005}, "epochs": 3, "batch_size": 1},
    "keras_mnist": {"optimizer": {"class_name": "Adam", "learning_rate": 1e-3}, "epochs": 12, "batch_size": 128,
                    "schedule": [(0, 1.0), (6, 0.5), (9, 0.25), (11, 0.1)]},
    "seed000_tanh": {"optimizer": {"class_name": "SGD", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True,
                                   "decay": 1e-6}, "epochs": 10, "batch_size": 100},
    "lenet5": {"optimizer": {"class_name": "Adam", "learning_rate": 1e-3}, "epochs": 3, "batch_size": 32},
    "fashion": {"optimizer": {"class_name": "Adam", "learning_rate": 1e-3}, "epochs": 15, "batch_size": 128,
                "schedule": [(0, 1.0), (8, 0.3), (12, 0.1)]},
    "resnet8": {"optimizer": {"class_name": "AdamW", "learning_rate": 2e-3, "weight_decay": 0.02},
                "epochs": 18, "batch_size": 128, "cosine_decay": {"alpha": 0.0, "warmup_epochs": 1}},
    "resnet_fashion": {"optimizer": {"class_name": "SGD", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True,
                                     "weight_decay": 5e-3},
                       "loss": {"class_name": "SparseCategoricalCrossentropy", "label_smoothing": 0.1},
                       "epochs": 12, "batch_size": 128, "cosine_decay": {"alpha": 0.0, "warmup_epochs": 1}},
}


def available():
    """Names of the presets, in a stable order."""
    return list(PRESETS)


def get(name, **kwargs):
    """Build the preset ``name`` (keyword arguments go to its function: input_shape, num_classes, seed, dtype)."""
    if check_text(name, "name", "models.get", "See glassnet.presets.available().") not in PRESETS:
        raise ValueError(message("models.get", f"a preset name among {available()}", repr(name),
                                 "See glassnet.presets.available()."))
    return PRESETS[name](**kwargs)


def augment_option(name, augment):
    """``{"augment": augment}`` for a preset whose function takes it (augmentation layers in the model, such
    as ``resnet_fashion``'s), else ``{}``: what ``glassnet train --no-augment`` passes to :func:`get`."""
    import inspect
    return {"augment": bool(augment)} if "augment" in inspect.signature(PRESETS[name]).parameters else {}


def recipe(name):
    """A copy of the training settings of preset ``name`` (see :data:`RECIPES`)."""
    if name not in RECIPES:
        raise ValueError(message("models.recipe", f"a preset name among {available()}", repr(name)))
    entry = RECIPES[name]
    return {**entry, "optimizer": dict(entry["optimizer"]), "schedule": list(entry.get("schedule", [])),
            **({"loss": dict(entry["loss"])} if "loss" in entry else {})}


def compile_recipe(model, name, optimizer=None, learning_rate=None):
    """Compile ``model`` with preset ``name``'s optimizer (or ``optimizer``), its loss (sparse categorical
    cross-entropy unless the recipe names one) and accuracy. ``learning_rate`` overrides the optimizer's rate;
    the rate is kept in ``model.metadata["base_learning_rate"]`` (saved with the model) as the base of the
    recipe's schedule."""
    from glassnet import losses, optimizers
    settings = recipe(name)
    optimizer = optimizers.get(optimizer if optimizer is not None else settings["optimizer"])
    if learning_rate is not None:
        optimizer.learning_rate = learning_rate
    model.compile(optimizer=optimizer, loss=losses.get(settings.get("loss", "sparse_categorical_crossentropy")),
                  metrics=["accuracy"])
    model.metadata = {**(model.metadata or {}), "base_learning_rate": optimizer.learning_rate}
    return model


def fit_recipe(model, name, x, y, epochs=None, batch_size=None, seed=None, verbose=0, validation_data=None,
               callbacks=(), augment=None, initial_epoch=0, settings=None):
    """Train a compiled ``model`` on ``(x, y)`` with preset ``name``'s settings; returns the History.

    Parameters
    ----------
    epochs, batch_size : int, optional
        Override the recipe's.
    settings : dict, optional
        A whole recipe to train with instead of ``name``'s (a variant of what :func:`recipe` returns, with
        its keys).
    augment : bool, optional
        Use the recipe's ``ImageDataGenerator`` options (default: when the recipe has them). With
        augmentation the batches come from ``ImageDataGenerator(...).flow(x, y, seed=seed)``, so a
        resumed run is not bit-identical to an uninterrupted one (the generator's state is not saved).
    """
    from glassnet.callbacks import LearningRateScheduler
    settings = recipe(name) if settings is None else settings
    epochs = settings["epochs"] if epochs is None else epochs
    batch_size = settings["batch_size"] if batch_size is None else batch_size
    callbacks = list(callbacks)
    if settings.get("cosine_decay") and model.optimizer.schedule is None:
        steps_per_epoch = -(-len(x) // batch_size)
        model.optimizer.learning_rate = cosine_schedule(
            (model.metadata or {}).get("base_learning_rate", model.optimizer.learning_rate), epochs,
            steps_per_epoch, **settings["cosine_decay"])
    if settings["schedule"]:
        base = (model.metadata or {}).get("base_learning_rate", model.optimizer.learning_rate)
        callbacks.append(LearningRateScheduler(step_schedule([(e, base * f) for e, f in settings["schedule"]])))
    options = settings.get("augment")
    if options and (augment is None or augment):
        from glassnet.preprocessing import ImageDataGenerator
        flow = ImageDataGenerator(**options).flow(x, y, batch_size=batch_size, seed=seed)
        return model.fit(flow, epochs=epochs, verbose=verbose, validation_data=validation_data,
                         callbacks=callbacks, seed=seed, initial_epoch=initial_epoch)
    return model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, validation_data=validation_data,
                     callbacks=callbacks, seed=seed, initial_epoch=initial_epoch)


def cosine_schedule(base, epochs, steps_per_epoch, alpha=0.0, warmup_epochs=0):
    """The :class:`~glassnet.schedules.CosineDecay` of a recipe's run: ``epochs * steps_per_epoch`` optimizer
    steps in all, the first ``warmup_epochs`` of them rising linearly from ``base / 10`` to ``base``.

    A resumed run keeps the schedule saved with its optimizer, so it continues the same curve.
    """
    from glassnet.schedules import CosineDecay
    warmup = min(warmup_epochs, epochs - 1) * steps_per_epoch
    decay = epochs * steps_per_epoch - warmup
    if warmup:
        return CosineDecay(base / 10, decay, alpha=alpha, warmup_target=base, warmup_steps=warmup)
    return CosineDecay(base, decay, alpha=alpha)


def step_schedule(steps):
    """A ``schedule(epoch, lr)`` for LearningRateScheduler from ``[(epoch, rate), ...]`` (sorted by epoch)."""
    steps = sorted((int(e), float(r)) for e, r in steps)

    def schedule(epoch, lr):
        rate = lr
        for start, value in steps:
            if epoch >= start:
                rate = value
        return rate
    return schedule


__all__ = ["available", "get", "augment_option", "recipe", "compile_recipe", "fit_recipe", "cosine_schedule", "step_schedule", "PRESETS", "RECIPES"] + list(PRESETS)
