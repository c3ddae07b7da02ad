"""An everyday Keras 3 script, run twice: with ``import keras`` (real Keras 3, torch backend) and with
only its imports changed to glassnet. Both must run and reach similar accuracy."""
import numpy as np
import pytest

import glassnet as gn
import keras_oracle

SCRIPT = '''
import numpy as np
{imports}

num_classes = 10
model = keras.Sequential([
    layers.InputLayer(shape=(28, 28, 1)),
    layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Flatten(),
    layers.Dropout(0.25),
    layers.Dense(num_classes, activation="softmax"),
])
model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=3e-3),
              metrics=["accuracy"], weighted_metrics=["accuracy"])
seen = []
callbacks = [
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4),
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
    keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(sorted(logs))),
]
y_train_cat = keras.utils.to_categorical(y_train, num_classes)
weights = np.where(y_train == 8, 2.0, 1.0)
history = model.fit(x_train, y_train_cat, batch_size=50, epochs=3, validation_split=0.1, callbacks=callbacks,
                    sample_weight=weights, validation_freq=1, verbose=0)
score = model.evaluate(x_test, keras.utils.to_categorical(y_test, num_classes), verbose=0, return_dict=True)
probabilities = model.predict(x_test, verbose=0)
config = model.to_json()
'''


def _run(imports, data):
    namespace = dict(data)
    exec(SCRIPT.format(imports=imports), namespace)
    return namespace


@pytest.mark.parametrize("library", ["keras", "glassnet"])
def test_the_same_keras_script_runs_on_both(library):
    x, y = gn.datasets.mnist.load_t10k()
    x = (x[..., None] / 255.0).astype("float32")
    data = {"x_train": x[:800], "y_train": y[:800], "x_test": x[8000:8300], "y_test": y[8000:8300]}
    if library == "keras":
        with keras_oracle.seeded(keras_oracle.load(), 0):     # Keras's run does not depend on the tests before
            result = _run("import keras\nfrom keras import layers", data)
    else:
        result = _run("import glassnet as keras\nfrom glassnet import layers", data)
    history, score = result["history"].history, result["score"]
    assert {"loss", "accuracy", "weighted_accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(history)
    assert set(score) == {"loss", "accuracy", "weighted_accuracy"}
    assert score["accuracy"] > 0.7, score                       # chance: 0.1
    assert result["probabilities"].shape == (300, 10)
    assert len(result["seen"]) == len(history["loss"])
