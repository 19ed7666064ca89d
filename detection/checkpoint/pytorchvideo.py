"""PyTorchVideo's `slowfast_r50_detection` state-dict names -> ours (PySlowFast's).

PyTorchVideo wraps the network as `model.blocks.{i}` (0 = stems + first lateral, 1..4 = res2..res5
+ laterals) and `detection_head`; inside, `multipathway_blocks.{p}` is pathway p, `norm` is BN and
`conv_a`/`norm_a` are a bottleneck's conv a and its BN. This module only renames strings: it does
not import pytorchvideo.
"""

from __future__ import annotations

import re

import torch

_RULES = [
    (
        re.compile(r"^model\.blocks\.0\.multipathway_blocks\.(\d+)\.(conv|norm)\.(\w+)$"),
        lambda m: f"s1.pathway{m[1]}_stem.{'conv' if m[2] == 'conv' else 'bn'}.{m[3]}",
    ),
    (
        re.compile(r"^model\.blocks\.(\d+)\.multipathway_fusion\.(conv_fast_to_slow|norm)\.(\w+)$"),
        lambda m: (
            f"s{int(m[1]) + 1}_fuse.{'conv_f2s' if m[2] == 'conv_fast_to_slow' else 'bn'}.{m[3]}"
        ),
    ),
    (
        re.compile(
            r"^model\.blocks\.(\d+)\.multipathway_blocks\.(\d+)\.res_blocks\.(\d+)"
            r"\.branch1_(conv|norm)\.(\w+)$"
        ),
        lambda m: (
            f"s{int(m[1]) + 1}.pathway{m[2]}_res{m[3]}"
            f".{'branch1' if m[4] == 'conv' else 'branch1_bn'}.{m[5]}"
        ),
    ),
    (
        re.compile(
            r"^model\.blocks\.(\d+)\.multipathway_blocks\.(\d+)\.res_blocks\.(\d+)"
            r"\.branch2\.(conv|norm)_([abc])\.(\w+)$"
        ),
        lambda m: (
            f"s{int(m[1]) + 1}.pathway{m[2]}_res{m[3]}"
            f".branch2.{m[5] if m[4] == 'conv' else m[5] + '_bn'}.{m[6]}"
        ),
    ),
    (re.compile(r"^detection_head\.proj\.(\w+)$"), lambda m: f"head.projection.{m[1]}"),
]


def is_pytorchvideo_state(state: dict[str, torch.Tensor]) -> bool:
    """True when the names are PyTorchVideo's detection-network names."""
    return any(k.startswith(("model.blocks.", "detection_head.")) for k in state)


def pytorchvideo_to_pyslowfast_name(name: str) -> str | None:
    """Our state-dict name of PyTorchVideo parameter `name`, or None if it has none."""
    for pattern, rename in _RULES:
        if m := pattern.match(name):
            return rename(m)
    return None


def convert_pytorchvideo_state(
    state: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a PyTorchVideo state dict. Returns (state dict, names that map to nothing)."""
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for name, value in state.items():
        ours = pytorchvideo_to_pyslowfast_name(name)
        if ours is None:
            unknown.append(name)
        else:
            converted[ours] = value
    return converted, unknown
