"""Other libraries' model files: Keras 3 ``.keras``, Keras 2 / tf.keras ``.h5`` and ONNX.

``gn.load_model(path)`` tells the format by content (:func:`detect_format`) and comes here for
everything but glassnet's own ``.npz``; ``model.save("m.keras")`` and ``gn.export_onnx(model, path)``
write the other direction. Needs the optional extra ``glassnet[interop]`` (h5py, onnx).
"""
import os

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: where an HDF5 superblock may start (after a user block of 512 * 2**k bytes)
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)


def detect_format(path):
    """``"npz"``, ``"keras"`` (a zip with config.json), ``"h5"`` (HDF5) or ``"onnx"`` (a protobuf
    starting with the ir_version field, or any other non-zip, non-HDF5 file named ``.onnx``), told
    by the file's first bytes; ``"npz"`` for anything else, whose reader then says what is wrong."""
    import zipfile
    try:
        with open(path, "rb") as handle:
            head = handle.read(max(_HDF5_OFFSETS) + 8)
    except (OSError, TypeError, ValueError):
        return "npz"
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except Exception:  # noqa: BLE001 -- any damage: the reader of the likely format words the error
            return "keras" if b"config.json" in head else "npz"
        return "keras" if "config.json" in names else "npz"
    if any(head[offset:offset + 8] == _HDF5_MAGIC for offset in _HDF5_OFFSETS):
        return "h5"
    if _looks_like_onnx(head) or (head and os.fsdecode(path).lower().endswith(".onnx")):
        return "onnx"
    return "npz"


#: ModelProto's field tags that may follow ir_version: producer_name, producer_version, domain,
#: model_version, doc_string, graph, opset_import, metadata_props
_ONNX_NEXT_TAGS = {0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72}


def _looks_like_onnx(head):
    """An ONNX protobuf starts with field 1, ir_version (tag 0x08, a small varint), then another field."""
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 64 and head[2] in _ONNX_NEXT_TAGS


def load(path, kind):
    """Open a file of ``kind`` (from :func:`detect_format`) as a glassnet model."""
    if kind == "keras":
        from glassnet.interop.keras_format import read_keras_zip
        return read_keras_zip(path, os.path.getsize(path))
    if kind == "h5":
        from glassnet.interop.keras_format import read_keras_h5
        return read_keras_h5(path)
    from glassnet.interop.onnx_format import read_onnx
    return read_onnx(path)


def export_onnx(model, path, opset=17, dtype="float32"):
    """Write ``model`` as an ONNX file that onnxruntime runs (see :func:`glassnet.interop.onnx_writer.export_onnx`)."""
    from glassnet.interop.onnx_writer import export_onnx as export
    export(model, path, opset=opset, dtype=dtype)


__all__ = ["detect_format", "load", "export_onnx"]
