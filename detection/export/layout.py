"""The network rewritten for export: every 3D convolution as a 2D one, which ONNX Runtime runs
faster.

ONNX Runtime's fast convolution path (MLAS's blocked NCHWc kernels, with the ReLU fused in) takes
2D convolutions only; a 3D one goes through im2col + sgemm. There the Fast pathway's stem
(5 x 7 x 7, 3 -> 8 channels: a matrix product with 8 output rows) took 0.8 s of a 5.5 s R50
forward at 256 (ONNX Runtime's profiler, 1 thread, a loaded machine), at a tenth of the rate of
the other convs. `export_layout(model)` gives a copy with
BatchNorm folded into the convs and each kind of 3D conv written as a 2D one in standard ONNX ops
(reshape, transpose, pad, slice, add, conv) on [B, C, T, H, W] tensors:

- k x 1 x 1 (all 1x1x1 convs, the temporal "a" convs, the lateral fusions): a k x 1 2D conv over
  [B, C, T, H*W], a free reshape; with a spatial stride s (1x1x1 only) a 1 x 1 conv of stride s
  over [B, C, T*H, W] when s divides H.
- 1 x k x k (the spatial "b" convs, the Slow stem): a 2D conv over the frames folded into the
  batch, [B*T, C, H, W].
- kT x k x k with temporal stride 1 (the Fast stem): one 2D conv over the zero-padded frames
  with kT * O output channels (one set per temporal tap), then the taps' shifted sum.
- a ReLU after a conv is applied in the conv's 2D view, where the runtime fuses it into the conv.
- each residual block adds its shortcut and applies its ReLU in its last conv's view
  [B, O, T, H*W] (`ResidualBlock2d`, a strided shortcut conv reading a sliced input). The
  exporter's back-and-forth Reshapes between blocks are then removed from the graph
  (`detection.export.onnx.collapse_reshapes`), so that the residual path is one chain of 4D
  tensors: ONNX Runtime keeps it in its blocked NCHWc layout and fuses each add and ReLU into
  the conv (ONNX Runtime's NCHWc transformer fuses an Add only when both inputs are NCHWc
  tensors of provably equal shape, which a Reshape on either path breaks).

What stays outside the convs (ONNX Runtime 1.32's profiler, R50 at 224, 1 thread): the layout
reorders and transposes around the 1 x k x k convs (over frames), the stem's tap sum and the
shortcut slices, about 12% of the time (was 18% before the residual path stayed 4D).

Outputs equal the PyTorch model's up to float rounding (a few 1e-5 on sigmoid scores); anything
else is kept as is. OpenVINO runs the original 3D graph faster (see `detection.export.onnx`).
"""

from __future__ import annotations

import copy
import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from detection.models.optimize import fold_batchnorms, is_pointwise_in_space, replace_submodules
from detection.models.resnet3d import ResBlock

# (conv, ReLU) attribute pairs of our modules where the ReLU follows the conv (and its BN, folded
# into the conv before).
_CONV_RELU_PAIRS = (("conv", "relu"), ("conv_f2s", "relu"), ("a", "a_relu"), ("b", "b_relu"))


def _view(x: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """x with dims start..end merged, the batch size written as -1: the exported Reshape then
    has a constant shape instead of one computed from Shape ops at run time."""
    if start == 0:
        return x.reshape(-1, *x.shape[end + 1 :])
    shape = x.shape[1:start] + (math.prod(x.shape[start : end + 1]),) + x.shape[end + 1 :]
    return x.reshape(-1, *shape)


class TemporalConv2d(nn.Module):
    """A kT x 1 x 1 conv (no spatial padding or dilation, one group) as a 2D conv.

    [B, C, T, H, W] -> [B, O, T', H', W'], as the Conv3d it replaces.
    """

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach()[..., 0].clone())  # [O, C, kT, 1]
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.temporal_stride, self.spatial_stride = conv.stride[0], conv.stride[1]
        self.pad = int(conv.padding[0])  # an int: `supports` rules out string paddings
        # Set by `export_layout` when a ReLU follows: applied in the 2D view, where runtimes
        # fuse it into the conv.
        self.relu = False

    @staticmethod
    def supports(conv: nn.Conv3d) -> bool:
        return is_pointwise_in_space(conv) and (conv.stride[1] == 1 or conv.kernel_size[0] == 1)

    def conv2d(
        self, x: torch.Tensor, flat_hw: bool = False
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """x [B, C, T, H, W] -> (the 2D conv's output [B, O, T', H'*W'] or [B, O, T'*H', W'],
        (H', W')); always the first with `flat_hw`."""
        s, h, w = self.spatial_stride, x.shape[3], x.shape[4]
        if s > 1 and h % s == 0 and not flat_hw:
            # Rows t*H + h of [B, C, T*H, W] with h a multiple of s are the ones the conv reads
            # (kT is 1 here).
            y = F.conv2d(_view(x, 2, 3), self.weight, self.bias, (s, s))
            return y, (h // s, (w - 1) // s + 1)
        if s > 1:
            x = x[:, :, :, ::s, ::s]
        y = F.conv2d(
            _view(x, 3, 4), self.weight, self.bias, (self.temporal_stride, 1), (self.pad, 0)
        )
        return y, (x.shape[3], x.shape[4])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        y, (h, w) = self.conv2d(x)
        if self.relu:
            y = y.relu()
        t_out = (t + 2 * self.pad - self.weight.shape[2]) // self.temporal_stride + 1
        return y.reshape(-1, y.shape[1], t_out, h, w)


class FramewiseConv2d(nn.Module):
    """A kT x kh x kw conv of temporal stride 1 as one 2D conv over frames folded into the batch.

    For kT > 1 (the Fast stem) the 2D conv has kT * O output channels, channel j * O + o being
    tap j's share of output o, over the zero-padded frames; output frame t sums tap j of padded
    frame t + j. Its output channels are then a multiple of ONNX Runtime's channel block (its
    blocked kernels run 8-output-channel convs at a third of their speed), and its input keeps
    the clip's few channels, which those kernels read directly.

    [B, C, T, H, W] -> [B, O, T, H', W'], as the Conv3d it replaces.
    """

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        o, c, kt, kh, kw = conv.weight.shape
        weight = conv.weight.detach().permute(2, 0, 1, 3, 4).reshape(kt * o, c, kh, kw)
        self.weight = nn.Parameter(weight.clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.kt, self.pad = kt, int(conv.padding[0])
        self.stride, self.padding = conv.stride[1:], conv.padding[1:]
        self.dilation, self.groups = conv.dilation[1:], conv.groups
        self.relu = False  # as TemporalConv2d.relu

    @staticmethod
    def supports(conv: nn.Conv3d) -> bool:
        return (
            conv.stride[0] == 1
            and not isinstance(conv.padding, str)
            and conv.dilation[0] == 1
            and (conv.kernel_size[0] == 1 or conv.groups == 1)
            and 2 * conv.padding[0] == conv.kernel_size[0] - 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        frames = x.transpose(1, 2)  # [B, T, C, H, W]
        if self.kt > 1:
            frames = F.pad(frames, (0, 0, 0, 0, 0, 0, self.pad, self.pad))
        bias = self.bias if self.kt == 1 else None
        y = F.conv2d(
            _view(frames, 0, 1),
            self.weight,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
        if self.kt > 1:
            taps = y.reshape(-1, frames.shape[1], self.kt, y.shape[1] // self.kt, *y.shape[2:])
            y = taps[:, :t, 0]
            for j in range(1, self.kt):
                y = y + taps[:, j : j + t, j]
            y = _view(y, 0, 1)
            if self.bias is not None:
                y = y + self.bias.view(-1, 1, 1)
        if self.relu:
            y = y.relu()
        return y.reshape(-1, t, *y.shape[1:]).transpose(1, 2)


class ResidualBlock2d(nn.Module):
    """A `ResBlock` (BN folded, its convs replaced) whose residual add and ReLU happen in the 2D
    view of its last conv, [B, O, T, H*W], so that ONNX Runtime fuses them into that conv; with
    `collapse_reshapes` on the exported graph, the next block's first conv then reads that view
    directly and the tensor stays in the runtime's blocked layout from block to block.

    [B, C, T, H, W] -> [B, O, T, H', W'], as the block it replaces.
    """

    def __init__(self, block: ResBlock) -> None:
        super().__init__()
        b2 = block.branch2
        # The branch up to its last conv: a, its ReLU, b, its ReLU (Identity when fused above).
        self.inner = nn.Sequential(b2.a, b2.a_relu, b2.b, b2.b_relu)
        self.c = cast(TemporalConv2d, b2.c)  # checked by `supports`
        self.branch1: nn.Module | None = block.branch1

    @staticmethod
    def supports(block: nn.Module) -> bool:
        branch2 = getattr(block, "branch2", None)
        c = getattr(branch2, "c", None)
        return (
            isinstance(c, TemporalConv2d)
            and c.spatial_stride == c.temporal_stride == 1
            and c.weight.shape[2] == 1
            and not c.relu
            and isinstance(getattr(branch2, "c_bn", None), nn.Identity)
            and isinstance(getattr(block, "relu", None), nn.ReLU)
            and (
                getattr(block, "branch1", None) is None
                or isinstance(getattr(block, "branch1_bn", None), nn.Identity)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, (h, w) = self.c.conv2d(self.inner(x))  # [B, O, T, H*W]
        if isinstance(self.branch1, TemporalConv2d):
            # In the view of y, so that the runtime keeps both in its blocked layout and fuses
            # the add into the conv c (a strided shortcut then reads its input through a slice).
            shortcut, _ = self.branch1.conv2d(x, flat_hw=True)
        else:
            shortcut = _view(x if self.branch1 is None else self.branch1(x), 3, 4)
        y = (y + shortcut).relu()
        return y.reshape(-1, y.shape[1], y.shape[2], h, w)


def _replacement(module: nn.Module) -> nn.Module | None:
    if isinstance(module, nn.Conv3d):
        if TemporalConv2d.supports(module):
            return TemporalConv2d(module)
        if FramewiseConv2d.supports(module):
            return FramewiseConv2d(module)
    return None


def export_layout(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` for export (see the module docstring); `model` itself is not
    changed. It takes the same inputs and gives the same outputs up to float rounding."""
    out = fold_batchnorms(copy.deepcopy(model).eval())
    replace_submodules(out, _replacement)
    for module in list(out.modules()):
        for conv_name, relu_name in _CONV_RELU_PAIRS:
            conv, relu = getattr(module, conv_name, None), getattr(module, relu_name, None)
            if isinstance(conv, (TemporalConv2d, FramewiseConv2d)) and isinstance(relu, nn.ReLU):
                conv.relu = True
                setattr(module, relu_name, nn.Identity())
    replace_submodules(
        out,
        lambda m: (
            ResidualBlock2d(m) if isinstance(m, ResBlock) and ResidualBlock2d.supports(m) else None
        ),
    )
    return out
