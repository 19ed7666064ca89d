"""Caffe2 blob names of PySlowFast's `c2` model-zoo files -> our (PySlowFast) state-dict names.

Caffe2 names a parameter by layer and suffix: `res4_5_branch2b_bn_riv` is the running variance of
the BN after conv b of block 5 of res4 in the Slow pathway; a `t_` prefix marks the Fast pathway;
`t_pool1_subsample` and `t_res{S}_{last}_branch2c_bn_subsample` are the lateral connections after
conv1 and stage S; `nonlocal_conv{S}_{i}_*` is a non-local block; `pred` is the classifier.
"""

from __future__ import annotations

import re

import torch

# Suffix -> (is a BN parameter, our parameter name).
_SUFFIXES = {
    "w": (False, "weight"),
    "b": (False, "bias"),
    "bn_s": (True, "weight"),
    "bn_b": (True, "bias"),
    "bn_rm": (True, "running_mean"),
    "bn_riv": (True, "running_var"),
}
_SPLIT = re.compile(r"^(?P<layer>.+?)_(?P<suffix>w|b|bn_s|bn_b|bn_rm|bn_riv)$")

_STEM_CONV = re.compile(r"^(?P<t>t_)?conv1$")
_STEM_BN = re.compile(r"^(?P<t>t_)?res_conv1$")
_SHORTCUT = re.compile(r"^(?P<t>t_)?res(?P<stage>\d+)_(?P<block>\d+)_branch1$")
_BRANCH2 = re.compile(r"^(?P<t>t_)?res(?P<stage>\d+)_(?P<block>\d+)_branch2(?P<conv>[abc])$")
_LATERAL1 = re.compile(r"^t_pool1_subsample$")
_LATERAL = re.compile(r"^t_res(?P<stage>\d+)_\d+_branch2c_bn_subsample$")
_NONLOCAL_CONV = re.compile(
    r"^nonlocal_conv(?P<stage>\d+)_(?P<block>\d+)_(?P<conv>theta|phi|g|out)$"
)
_NONLOCAL_BN = re.compile(r"^nonlocal_conv(?P<stage>\d+)_(?P<block>\d+)$")

# Blobs of the Caffe2 solver state, not of the network.
_SOLVER_BLOBS = ("lr", "model_iter")


def is_solver_blob(name: str) -> bool:
    """True for optimizer state stored beside the weights (momenta, learning rate, iteration)."""
    return name in _SOLVER_BLOBS or name.endswith("_momentum")


def caffe2_to_pyslowfast_name(name: str) -> str | None:
    """Our state-dict name of Caffe2 blob `name`, or None if it names no known parameter."""
    split = _SPLIT.match(name)
    if split is None:
        return None
    layer = split["layer"]
    is_bn, param = _SUFFIXES[split["suffix"]]

    if not is_bn and (m := _STEM_CONV.match(layer)):
        return f"s1.pathway{1 if m['t'] else 0}_stem.conv.{param}"
    if is_bn and (m := _STEM_BN.match(layer)):
        return f"s1.pathway{1 if m['t'] else 0}_stem.bn.{param}"
    if m := _SHORTCUT.match(layer):
        module = "branch1_bn" if is_bn else "branch1"
        return f"s{m['stage']}.pathway{1 if m['t'] else 0}_res{m['block']}.{module}.{param}"
    if m := _BRANCH2.match(layer):
        module = f"{m['conv']}_bn" if is_bn else m["conv"]
        return f"s{m['stage']}.pathway{1 if m['t'] else 0}_res{m['block']}.branch2.{module}.{param}"
    if _LATERAL1.match(layer):
        return f"s1_fuse.{'bn' if is_bn else 'conv_f2s'}.{param}"
    if m := _LATERAL.match(layer):
        return f"s{m['stage']}_fuse.{'bn' if is_bn else 'conv_f2s'}.{param}"
    if not is_bn and (m := _NONLOCAL_CONV.match(layer)):
        return f"s{m['stage']}.pathway0_nonlocal{m['block']}.conv_{m['conv']}.{param}"
    if is_bn and (m := _NONLOCAL_BN.match(layer)):
        return f"s{m['stage']}.pathway0_nonlocal{m['block']}.bn.{param}"
    if layer == "pred" and not is_bn:
        return f"head.projection.{param}"
    return None


def convert_caffe2_blobs(
    blobs: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename Caffe2 blobs to our names, dropping solver state.

    Returns (state dict, names of blobs that map to no parameter).
    """
    state: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for name, value in blobs.items():
        if is_solver_blob(name) or not isinstance(value, torch.Tensor):
            continue
        ours = caffe2_to_pyslowfast_name(name)
        if ours is None:
            unknown.append(name)
        else:
            state[ours] = value
    return state, unknown
