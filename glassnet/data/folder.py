"""``image_dataset_from_directory``: a folder of class sub-folders of images, read lazily, as Keras spells it.

::

    main_directory/
        cats/   a.png  b.jpg ...
        dogs/   c.png  ...

gives batches ``(images, labels)``: images float32 ``(batch, height, width, channels)`` with pixel
values in [0, 255] (not rescaled, as in Keras), labels the index of the class folder (class names in
alphanumeric order, or the order of ``class_names=``). Only the list of files is made up front (and
each file's header checked, so that a file that is not an image is reported by its path before
training starts); the pixels are decoded with Pillow batch by batch.

File order and splitting follow Keras 3: the files are listed class by class in sorted order,
shuffled once with ``seed`` (when ``shuffle``), and with ``validation_split=f`` the last
``int(f * n)`` files are the "validation" subset, the others the "training" subset. With
``shuffle`` the order of each subset changes every epoch (from ``seed``). Needs Pillow (the ``viz``
extra).
"""
import math
import numbers
import os
import warnings

import numpy as np

from glassnet.errors import describe, message
from glassnet.validation import check_int, check_list, check_real

WHERE = "image_dataset_from_directory"
#: File extensions read, as Keras 3's list.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
#: color_mode -> (Pillow mode, channels)
COLOR_MODES = {"grayscale": ("L", 1), "rgb": ("RGB", 3), "rgba": ("RGBA", 4)}
LABEL_MODES = ("int", "categorical", "binary", None)
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos", "hamming")


def _pillow():
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(message(WHERE, "Pillow to read image files", "no Pillow installed",
                                  'Install it with: pip install "glassnet[viz]".')) from error
    return Image


def _image_files(folder, follow_links):
    """Image files under ``folder`` (recursively), sorted alphanumerically by path."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=follow_links):
        dirs.sort()
        found += [os.path.join(root, name) for name in sorted(files) if name.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def _class_folders(directory, class_names):
    folders = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if class_names is None:
        return folders
    if not isinstance(class_names, (list, tuple)) or not all(isinstance(n, str) for n in class_names):
        raise TypeError(message(WHERE, "class_names as a list of sub-folder names", describe(class_names)))
    if sorted(class_names) != folders:
        raise ValueError(message(WHERE, f"class_names naming exactly the sub-folders {folders}",
                                 repr(list(class_names)), "Keras uses class_names only to order the classes."))
    return list(class_names)


def _index(directory, labels, class_names, follow_links):
    """(file paths, integer labels or None, class names) in Keras's order before shuffling."""
    if labels == "inferred":
        names = _class_folders(directory, class_names)
        paths, indices = [], []
        for index, name in enumerate(names):
            files = _image_files(os.path.join(directory, name), follow_links)
            paths += files
            indices += [index] * len(files)
        return paths, np.array(indices, dtype=np.int64), names
    if class_names is not None:
        raise ValueError(message(WHERE, "class_names only with labels='inferred'", f"labels={labels!r}"))
    paths = _image_files(directory, follow_links)
    if labels is None:
        return paths, None, None
    given = np.asarray(labels)
    if given.dtype.kind not in "iu" or given.shape != (len(paths),):
        raise ValueError(message(WHERE, f"labels 'inferred', None, or one int per image ({len(paths)} found, in "
                                 "alphanumeric order of their paths)", describe(given)))
    return paths, given.astype(np.int64), [str(c) for c in range(int(given.max()) + 1)] if len(given) else []


def _unreadable(paths, Image):
    """The paths whose header Pillow cannot read (not an image, or cut before its size)."""
    bad = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.size
        except Exception:   # Pillow raises many kinds (UnidentifiedImageError, OSError, SyntaxError, ...)
            bad.append(path)
    return bad


def _report_bad(bad, skip):
    listed = ", ".join(repr(p) for p in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    if not skip:
        raise ValueError(message(WHERE, "image files Pillow can read", f"{len(bad)} unreadable: {listed}",
                                 "Remove or repair them, or pass skip_bad_files=True to leave them out."))
    warnings.warn(f"{WHERE}: skipped {len(bad)} unreadable file(s): {listed}", RuntimeWarning, stacklevel=4)


def _check_arguments(directory, label_mode, color_mode, batch_size, image_size, validation_split, subset,
                     interpolation, shuffle, seed):
    if not os.path.isdir(directory):
        raise ValueError(message(WHERE, "a folder of class sub-folders of images", repr(directory)))
    if label_mode not in LABEL_MODES:
        raise ValueError(message(WHERE, f"label_mode among {LABEL_MODES}", repr(label_mode)))
    if color_mode not in COLOR_MODES:
        raise ValueError(message(WHERE, f"color_mode among {tuple(COLOR_MODES)}", repr(color_mode)))
    if interpolation not in INTERPOLATIONS:
        raise ValueError(message(WHERE, f"interpolation among {INTERPOLATIONS}", repr(interpolation)))
    if batch_size is not None:
        check_int(batch_size, "batch_size", WHERE, minimum=1, fix="Or None: one image at a time.")
    size = [check_int(d, "image_size entries", WHERE, minimum=1) for d in check_list(image_size, "image_size", WHERE)]
    if len(size) != 2:
        raise ValueError(message(WHERE, "image_size as (height, width) of positive ints", repr(image_size)))
    if validation_split is not None:
        check_real(validation_split, "validation_split", WHERE, low=0, high=1, low_open=True, high_open=True)
        if subset not in ("training", "validation", "both"):
            raise ValueError(message(WHERE, "subset 'training', 'validation' or 'both' with validation_split",
                                     repr(subset)))
        if shuffle and seed is None:
            raise ValueError(message(WHERE, "a seed with validation_split and shuffle=True", "seed=None",
                                     "Pass the same seed=... for the training and the validation subset, as "
                                     "Keras asks, so that they do not overlap."))
    elif subset is not None:
        raise ValueError(message(WHERE, "subset only with validation_split", repr(subset)))


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, skip_bad_files=False):
    """Batches of images from a folder of class sub-folders, as ``keras.utils.image_dataset_from_directory``.

    Parameters
    ----------
    directory : str or os.PathLike
    labels : "inferred", None, or list of int
        "inferred": from the sub-folders; None: images only; or one label per image file (in
        alphanumeric order of the paths).
    label_mode : {"int", "categorical", "binary", None}
        Class indices ``(batch,)`` int64, one-hot ``(batch, classes)`` float32, ``(batch, 1)``
        float32 for two classes, or no labels.
    class_names : list of str, optional
        The sub-folder names in the order their labels should have.
    color_mode : {"grayscale", "rgb", "rgba"}
        1, 3 or 4 channels.
    batch_size : int or None
        None yields single images (no batch axis).
    image_size : (height, width)
        Every image is resized to this (Pillow, ``interpolation``).
    shuffle : bool
    seed : int, optional
        Shuffling (and the split): required with ``validation_split`` and ``shuffle``.
    validation_split : float in (0, 1), optional
    subset : {"training", "validation", "both"}
        With ``validation_split``; "both" returns ``(training, validation)``.
    crop_to_aspect_ratio : bool
        Center-crop to the target's aspect ratio before resizing (else the image is stretched).
    skip_bad_files : bool
        Files Pillow cannot read are an error naming them (False, the default) or left out with a
        warning naming them (True). glassnet's addition: Keras has no such option.

    Returns
    -------
    ImageFolderDataset or (ImageFolderDataset, ImageFolderDataset)
        A Keras-style Sequence: ``len(ds)`` batches, ``ds[i]``, iteration, ``class_names``,
        ``file_paths``; ``model.fit(ds)`` / ``model.evaluate(ds)`` take it.
    """
    directory = os.fspath(directory)
    _check_arguments(directory, label_mode, color_mode, batch_size, image_size, validation_split, subset,
                     interpolation, shuffle, seed)
    paths, label_array, names = _index(directory, labels, class_names, follow_links)
    if not paths:
        raise ValueError(message(WHERE, f"image files ({', '.join(IMAGE_EXTENSIONS)}) in {directory!r}",
                                 "none", "Put each class's images in a sub-folder named after the class."))
    if label_mode == "binary" and len(names or ()) != 2:
        raise ValueError(message(WHERE, "exactly 2 classes with label_mode='binary'", f"{len(names or ())}",
                                 "Use label_mode='int' or 'categorical' for more classes."))
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(paths))
        paths = [paths[i] for i in order]
        label_array = None if label_array is None else label_array[order]
    bad = _unreadable(paths, _pillow())
    if bad:
        _report_bad(bad, skip_bad_files)
        keep = [i for i, path in enumerate(paths) if path not in set(bad)]
        paths = [paths[i] for i in keep]
        label_array = None if label_array is None else label_array[keep]
    options = dict(class_names=names, label_mode=label_mode if labels is not None else None,
                   color_mode=color_mode, batch_size=batch_size, image_size=tuple(int(d) for d in image_size),
                   interpolation=interpolation, shuffle=shuffle, seed=seed, crop=crop_to_aspect_ratio,
                   skip_bad_files=skip_bad_files, skipped=bad)
    if validation_split is None:
        return ImageFolderDataset(paths, label_array, **options)
    held = int(validation_split * len(paths))
    split = {"training": slice(0, len(paths) - held), "validation": slice(len(paths) - held, len(paths))}
    made = {name: ImageFolderDataset(paths[part], None if label_array is None else label_array[part], **options)
            for name, part in split.items() if subset in (name, "both")}
    return (made["training"], made["validation"]) if subset == "both" else made[subset]


class ImageFolderDataset:
    """Lazily read batches of image files (made by :func:`image_dataset_from_directory`).

    Attributes
    ----------
    file_paths : list of str
        The files in their current order.
    class_names : list of str or None
    skipped_files : list of str
        Files left out as unreadable (``skip_bad_files=True``).
    """

    def __init__(self, paths, labels, class_names, label_mode, color_mode, batch_size, image_size, interpolation,
                 shuffle, seed, crop, skip_bad_files, skipped):
        self.file_paths, self._labels = list(paths), labels
        self.class_names = None if class_names is None else list(class_names)
        self.label_mode, self.color_mode, self.batch_size = label_mode, color_mode, batch_size
        self.image_size, self.interpolation, self.shuffle = image_size, interpolation, shuffle
        self.crop_to_aspect_ratio, self.skip_bad_files = crop, skip_bad_files
        self.skipped_files = list(skipped)
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(self.file_paths))

    @property
    def element_shape(self):
        """Shape of one image: ``(height, width, channels)``."""
        return self.image_size + (COLOR_MODES[self.color_mode][1],)

    def __len__(self):
        return math.ceil(len(self.file_paths) / (self.batch_size or 1))

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not -len(self) <= index < len(self):
            raise IndexError(message("ImageFolderDataset", f"a batch index in [0, {len(self) - 1}]", repr(index)))
        size = self.batch_size or 1
        chosen = self._order[index % len(self) * size:][:size]
        images, kept = [], []
        for i in chosen:
            image = self._read(self.file_paths[i])
            if image is not None:
                images.append(image)
                kept.append(i)
        x = np.stack(images) if images else np.zeros((0,) + self.element_shape, np.float32)
        if self.batch_size is None:
            x = x[0]
        if self.label_mode is None:
            return x
        y = self._encode(self._labels[np.asarray(kept, dtype=np.intp)])
        return x, (y[0] if self.batch_size is None else y)

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]
        self.on_epoch_end()

    def on_epoch_end(self):
        """Called by ``fit`` after each epoch: a new order when shuffling."""
        if self.shuffle:
            self._order = self._rng.permutation(len(self.file_paths))

    def _encode(self, labels):
        if self.label_mode == "categorical":
            return np.eye(len(self.class_names), dtype=np.float32)[labels]
        if self.label_mode == "binary":
            return labels.astype(np.float32)[:, None]
        return labels

    def _read(self, path):
        """One image as float32 (H, W, C) in [0, 255]; None for an unreadable file being skipped."""
        Image = _pillow()
        mode, channels = COLOR_MODES[self.color_mode]
        height, width = self.image_size
        resample = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST, "bicubic": Image.BICUBIC,
                    "area": Image.BOX, "lanczos": Image.LANCZOS, "hamming": Image.HAMMING}[self.interpolation]
        try:
            with Image.open(path) as opened:
                picture = opened.convert(mode)
            if self.crop_to_aspect_ratio:
                picture = picture.crop(_centered_box(picture.size, width / height))
            if picture.size != (width, height):
                picture = picture.resize((width, height), resample)
            pixels = np.asarray(picture, dtype=np.float32)
        except Exception as error:     # Pillow's decoders raise OSError, SyntaxError, ValueError, ...
            if not self.skip_bad_files:
                raise ValueError(message(WHERE, "image files Pillow can decode",
                                         f"{path!r} ({type(error).__name__}: {error})",
                                         "Remove or repair it, or pass skip_bad_files=True.")) from None
            warnings.warn(f"{WHERE}: skipped the unreadable file {path!r} ({error})", RuntimeWarning, stacklevel=3)
            self.skipped_files.append(path)
            return None
        return pixels.reshape(height, width, channels)


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """``keras.utils.load_img``: one image file as a Pillow image in ``color_mode``, resized to
    ``target_size`` (height, width) when given (center-cropped first with ``keep_aspect_ratio``)."""
    if color_mode not in COLOR_MODES:
        raise ValueError(message("load_img", f"color_mode among {tuple(COLOR_MODES)}", repr(color_mode)))
    if interpolation not in INTERPOLATIONS:
        raise ValueError(message("load_img", f"interpolation among {INTERPOLATIONS}", repr(interpolation)))
    Image = _pillow()
    try:
        with Image.open(os.fspath(path)) as opened:
            picture = opened.convert(COLOR_MODES[color_mode][0])
    except OSError as error:        # missing, unreadable, or not an image (UnidentifiedImageError)
        raise ValueError(message("load_img", "an image file Pillow can read (PNG, JPEG, BMP, GIF, ...)",
                                 f"{os.fspath(path)!r} ({type(error).__name__})")) from None
    if target_size is not None:
        height, width = target_size
        if keep_aspect_ratio:
            picture = picture.crop(_centered_box(picture.size, width / height))
        resample = getattr(Image, {"area": "BOX"}.get(interpolation, interpolation.upper()))
        picture = picture.resize((width, height), resample)
    return picture


def img_to_array(img, dtype="float32"):
    """``keras.utils.img_to_array``: a Pillow image as an array (height, width, channels), values as stored."""
    array = np.asarray(img, dtype=dtype)
    return array[..., None] if array.ndim == 2 else array


def _centered_box(size, aspect):
    """The largest centered (left, top, right, bottom) box of ``size`` with width / height = ``aspect``."""
    width, height = size
    crop_w, crop_h = (width, round(width / aspect)) if width / height < aspect else (round(height * aspect), height)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


__all__ = ["image_dataset_from_directory", "ImageFolderDataset", "IMAGE_EXTENSIONS", "load_img", "img_to_array"]
