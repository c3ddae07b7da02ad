"""Fashion-MNIST loader: 70,000 28x28 grayscale images of 10 kinds of clothing, in MNIST's IDX format.

Search order as for MNIST (see :mod:`glassnet.data.mnist`), with Debian's package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``) before the download,
so ``load_data()`` works offline wherever that package is installed.
"""
from glassnet.data.mnist import IDXDataset, load

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# SHA-256 of the gzipped files Zalando Research publishes (github.com/zalandoresearch/fashion-mnist,
# its S3 bucket); the same values are pinned by torchvision's dataset definitions and TensorFlow
# Datasets. Debian's package re-compresses the files (other bytes, same data), so files found on
# disk are checked for structure, not for these hashes.
FASHION_MNIST = IDXDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
    checksums={
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    class_names=CLASS_NAMES,
)


def load_data(path=None, download=True, **kwargs):
    """Load Fashion-MNIST like ``keras.datasets.fashion_mnist.load_data()``.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A folder with the four IDX files (gzipped or raw), or a Keras-style ``.npz``.
    download : bool
        Download from the mirrors when the files are neither cached nor installed by Debian.
    **kwargs
        ``mirrors``, ``checksums``, ``cache_dir``, ``timeout``: see :func:`glassnet.data.mnist.load`.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8; images ``(60000, 28, 28)`` / ``(10000, 28, 28)``, labels 0..9 (see ``CLASS_NAMES``).
    """
    return load(FASHION_MNIST, path=path, download=download, **kwargs)
