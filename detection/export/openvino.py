"""OpenVINO IR (.xml graph + .bin weights) from an exported ONNX file.

The IR has the ONNX file's inputs, output and dynamic dimensions (see `detection.export.onnx`);
OpenVINO's ONNX reader copies the file's metadata into the IR's rt_info, section "framework"
(`model.get_rt_info(["framework", "mean"])`). The IR keeps fp32 weights, which OpenVINO's
`save_model` would otherwise compress to fp16.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from detection.utils.atomic import atomic_write

from .onnx import ExportConfigError, require

logger = logging.getLogger(__name__)


def convert_to_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike) -> Path:
    """Convert `onnx_path` to the IR `xml_path` and the .bin beside it; return `xml_path`.

    Both files are written atomically, the .bin first, so a reader that finds the .xml also
    finds its complete weights.
    """
    ov = require("openvino", "OpenVINO conversion")
    xml_path = Path(xml_path)
    if xml_path.suffix != ".xml":
        raise ExportConfigError(f"an OpenVINO IR path ends with .xml, got {xml_path}")
    model = ov.convert_model(str(onnx_path))
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=xml_path.parent, prefix=f".{xml_path.stem}.") as tmp:
        tmp_xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        for src, dst in (
            (tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin")),
            (tmp_xml, xml_path),
        ):
            with atomic_write(dst, "wb") as f, open(src, "rb") as data:
                while chunk := data.read(1 << 22):
                    f.write(chunk)
    logger.info("wrote %s and %s", xml_path, xml_path.with_suffix(".bin"))
    return xml_path
