"""The `tools/export_model.py` command: the action detector as ONNX and OpenVINO IR."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from detection.apps.cli import run_tool, tool_parser
from detection.config import load_config
from detection.utils.paths import check_outputs

DESCRIPTION = """\
Export the action detector (SlowFast or Slow-only backbone + RoI head, eval mode) as ONNX
(opset 20, PyTorch's torch.export-based exporter), with --openvino also as OpenVINO IR, and with
--int8 also as an int8 (QDQ) ONNX file. The .onnx file is laid out for ONNX Runtime (3D
convolutions written as 2D ones); the IR and the int8 file come from the model's own 3D
convolutions, which OpenVINO runs faster. All have the same inputs and output:

Inputs of the exported model (float32; B clips and K boxes are dynamic, T, H, W fixed):
  slow   [B,3,T/alpha,H,W]  (Slow-only: [B,3,T,H,W])  T = DATA.NUM_FRAMES, alpha = SLOWFAST.ALPHA
  fast   [B,3,T,H,W]        SlowFast only
  boxes  [K,5]              (batch index, x1, y1, x2, y2) in input pixels
Pixels are normalized as (x/255 - mean[c]) / std[c] per input channel, RGB (BGR when AVA.BGR);
the file's metadata gives channel_order, mean and std in input-channel order, and the config.
Output: scores [K,MODEL.NUM_CLASSES], the head's eval activation (sigmoid probabilities for
AVA); column i is AVA action id i + 1.

Reads: the config file and KEY VALUE overrides; --weights (any checkpoint format the project
reads; default MODEL.WEIGHTS; random weights if neither is set).
  --int8: the training split of DATA.PATH_TO_DATA_DIR, whose clips calibrate the quantization
  (as MODEL.RUNTIME onnxruntime_int8 / openvino_int8 do).
Writes: --output (the .onnx file); with --openvino the IR beside it (same name, .xml and .bin);
with --int8 NAME.int8.onnx beside it (convolutions int8, head float32; ONNX Runtime or OpenVINO).
Needs the export extra: pip install 'slowfast-ava-detection[export]'.

Example:
  python tools/export_model.py --config configs/AVA/SLOWFAST_32x2_R50.yaml \\
      --weights SLOWFAST_32x2_R50.pyth --output slowfast_r50.onnx --openvino
  python tools/export_model.py --config configs/AVA/SLOWFAST_32x2_R50.yaml \\
      --weights SLOWFAST_32x2_R50.pyth --output slowfast_r50.onnx --int8 \\
      DATA.PATH_TO_DATA_DIR /data/ava     # also slowfast_r50.int8.onnx
"""


def main(argv: list[str] | None = None) -> int:
    parser = tool_parser(DESCRIPTION)
    parser.add_argument("--config", required=True, help="YAML config (may use _BASE_)")
    parser.add_argument("--output", required=True, help="the ONNX file to write (.onnx)")
    parser.add_argument("--weights", help="checkpoint to export (default: MODEL.WEIGHTS)")
    parser.add_argument("--openvino", action="store_true", help="also write OpenVINO IR")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write NAME.int8.onnx: int8 convolutions (QDQ), calibrated on clips of "
        "DATA.PATH_TO_DATA_DIR's training split; run by ONNX Runtime and OpenVINO",
    )
    parser.add_argument("--height", type=int, help="input height (default DATA.TEST_CROP_SIZE)")
    parser.add_argument("--width", type=int, help="input width (default DATA.TEST_CROP_SIZE)")
    parser.add_argument("opts", nargs="*", help="KEY VALUE config overrides")
    # Intermixed, so that options may come before or after the KEY VALUE overrides.
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The ONNX optimizer logs each of its passes at INFO.
    for name in ("onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.WARNING)

    def job() -> list[Path]:
        cfg = load_config(args.config, args.opts)
        output = Path(args.output)
        weights = args.weights or cfg.MODEL.WEIGHTS or None
        ir = {
            "OpenVINO .xml": output.with_suffix(".xml"),
            "OpenVINO .bin": output.with_suffix(".bin"),
        }
        int8 = {"int8 file": output.with_suffix(".int8.onnx")}
        check_outputs(
            inputs={
                "--config": args.config,
                "--weights" if args.weights else "MODEL.WEIGHTS": weights,
                **({"DATA.PATH_TO_DATA_DIR": cfg.DATA.PATH_TO_DATA_DIR} if args.int8 else {}),
            },
            outputs={
                "--output": output,
                **(ir if args.openvino else {}),
                **(int8 if args.int8 else {}),
            },
        )
        # torch and the exporter are imported once the arguments are known good.
        from detection.export import (
            ClipShape,
            ExportConfigError,
            calibration_feeds,
            convert_to_openvino,
            export_onnx,
            quantize_onnx,
        )
        from detection.export.onnx import build_export_model

        if output.suffix != ".onnx":
            raise ExportConfigError(f"--output must name an .onnx file, got {output}")
        clip = ClipShape.from_config(cfg, args.height, args.width)
        # Calibration clips first: a dataset without training keyframes fails before the export.
        feeds = calibration_feeds(cfg, clip) if args.int8 else []
        model = build_export_model(cfg, weights)
        h, w = clip.height, clip.width
        written = [export_onnx(cfg, output, weights=weights, model=model, height=h, width=w)]
        if not (args.openvino or args.int8):
            return written
        with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.stem}.") as tmp:
            source = Path(tmp) / "conv3d.onnx"
            export_onnx(cfg, source, weights=weights, model=model, height=h, width=w, layout=False)
            if args.openvino:
                xml = convert_to_openvino(source, ir["OpenVINO .xml"])
                written += [xml, xml.with_suffix(".bin")]
            if args.int8:
                written.append(quantize_onnx(source, int8["int8 file"], feeds))
        return written

    for path in run_tool(job):
        print(path)
    return 0
