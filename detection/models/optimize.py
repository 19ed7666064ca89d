"""A faster CPU inference copy of a detection network, with the same outputs up to float rounding.

`optimize_for_inference(model)` folds every BatchNorm into the conv before it and runs the network
on channels-last-3d activations ([B, C, T, H, W] stored as [B, T, H, W, C]), where each kind of
3D convolution becomes a cheaper operation (measured with benchmarks/model_forward.py):

- k x 1 x 1 convs (all 1x1x1 convs and the temporal "a" convs): one matrix product per temporal
  tap over rows of pixels; taps that would only read the zero padding at the clip's ends are
  skipped instead of computed.
- 1 x k x k convs (the spatial "b" convs and the slow stem): 2D convs over the frames, folded into
  the batch; channels-last for the narrow Fast pathway, where oneDNN's 3D kernels are slow.
- 1 x 3 x 3 max-pools: 2D max-pools over the frames.
- anything else (the Fast stem, the time-strided lateral convs): a channels-last conv3d.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .resnet3d import ResBlock

_CL3D = torch.channels_last_3d

# (conv, BN) attribute pairs in our modules where the BN directly follows the conv.
_CONV_BN_PAIRS = (
    ("conv", "bn"),  # stems
    ("conv_f2s", "bn"),  # lateral connections
    ("conv_out", "bn"),  # non-local blocks
    ("branch1", "branch1_bn"),  # projection shortcuts
    ("a", "a_bn"),
    ("b", "b_bn"),
    ("c", "c_bn"),
)


@torch.no_grad()
def _fold_bn(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> None:
    """conv <- bn(conv(.)) with BN's running statistics; gives conv a bias if it had none."""
    assert bn.running_var is not None and bn.running_mean is not None, "BN without statistics"
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


def fold_batchnorms(model: nn.Module) -> nn.Module:
    """Fold, in place, each BatchNorm3d of `model` that directly follows a conv into that conv
    (with BN's running statistics) and replace the BN by an identity; returns `model`."""
    for module in list(model.modules()):
        for conv_name, bn_name in _CONV_BN_PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d):
                _fold_bn(conv, bn)
                setattr(module, bn_name, nn.Identity())
    return model


def replace_submodules(
    model: nn.Module, replacement: Callable[[nn.Module], nn.Module | None]
) -> None:
    """Replace, in place, each submodule of `model` for which `replacement` returns a module
    (the modules returned are not visited)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            new = replacement(child)
            if new is not None:
                setattr(parent, name, new)


def is_pointwise_in_space(conv: nn.Conv3d) -> bool:
    """Whether `conv` is kT x 1 x 1 with equal spatial strides, no spatial padding (and no padding
    string), no dilation and one group: a matrix product per temporal tap over rows of pixels."""
    _, kh, kw = conv.kernel_size
    return (
        kh == kw == 1
        and conv.stride[1] == conv.stride[2]
        and not isinstance(conv.padding, str)
        and conv.padding[1:] == (0, 0)
        and conv.dilation == (1, 1, 1)
        and conv.groups == 1
    )


def _frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H, W] -> [B*T, C, H, W] (a view when x is channels-last-3d)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def _batch_to_frames(y: torch.Tensor, b: int) -> torch.Tensor:
    """[B*T, C, H, W] -> [B, C, T, H, W]; channels-last-3d when y is channels-last."""
    return y.view(b, -1, *y.shape[1:]).transpose(1, 2)


class TemporalGemmConv(nn.Module):
    """A kT x 1 x 1 conv (temporal stride 1, spatial stride s, no spatial padding) as matrix
    products: output frame t += input frame (t + k - pad) @ W_k for each tap k in range.

    [B, C, T, H, W] -> [B, O, T', H/s, W/s] (channels-last-3d).
    """

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        kt = conv.kernel_size[0]
        assert conv.bias is not None, "TemporalGemmConv.supports needs a bias"
        self.pad = int(conv.padding[0])  # an int: `supports` rules out string paddings
        self.spatial_stride = conv.stride[1]
        # [kt, C, O]: tap k maps C input channels to O outputs.
        self.weight = nn.Parameter(
            conv.weight.detach()[:, :, :, 0, 0].permute(2, 1, 0).contiguous()
        )
        self.bias = nn.Parameter(conv.bias.detach().clone())
        self.kt = kt

    @staticmethod
    def supports(conv: nn.Conv3d) -> bool:
        return is_pointwise_in_space(conv) and conv.stride[0] == 1 and conv.bias is not None

    def forward(self, x: torch.Tensor, accumulate_into: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, C, T, H, W]. With `accumulate_into` ([B, T'*H'*W', O] rows that already hold the
        bias plus anything to add, e.g. a residual), the products are added to it in place."""
        s = self.spatial_stride
        if s > 1:
            x = x[:, :, :, ::s, ::s]
        rows = x.permute(0, 2, 3, 4, 1)  # [B, T, H, W, C], a view for channels-last-3d input
        b, t, h, w, c = rows.shape
        hw = h * w
        t_out = t + 2 * self.pad - self.kt + 1
        rows = rows.reshape(b, t * hw, c)
        out_ch = self.weight.shape[2]
        # Output frame t reads input frame t + k - pad through tap k; frames of the zero padding
        # contribute nothing, so each tap only covers the output frames [lo, hi) it reaches.
        taps = []
        for k in range(self.kt):
            shift = k - self.pad
            lo, hi = max(0, -shift), min(t_out, t - shift)
            if lo < hi:
                taps.append((k, shift, lo, hi))
        y = accumulate_into
        if y is None:
            full = next((tap for tap in taps if tap[2] == 0 and tap[3] == t_out), None)
            if full is None:
                y = self.bias.expand(b, t_out * hw, out_ch).contiguous()
            else:
                # The tap that reaches every output frame writes the result, bias included.
                k, shift, _, _ = full
                src = rows[:, shift * hw : (t_out + shift) * hw]
                y = torch.baddbmm(self.bias, src, self.weight[k].expand(b, c, out_ch))
                taps.remove(full)
        for k, shift, lo, hi in taps:
            y[:, lo * hw : hi * hw].baddbmm_(
                rows[:, (lo + shift) * hw : (hi + shift) * hw], self.weight[k].expand(b, c, out_ch)
            )
        return y.view(b, t_out, h, w, out_ch).permute(0, 4, 1, 2, 3)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, T*H*W, C] (a view for channels-last-3d x)."""
    return x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], -1, x.shape[1])


class GemmResBlock(nn.Module):
    """A residual block whose last 1x1x1 conv adds its products straight into the shortcut
    (which already carries that conv's bias), saving the separate residual-add pass."""

    # Blocks whose convs were already replaced (branch2.c is a TemporalGemmConv): duck-typed.
    def __init__(self, block: Any) -> None:
        super().__init__()
        self.branch2: Any = block.branch2
        self.branch1 = block.branch1
        c = self.branch2.c
        if self.branch1 is not None:
            self.branch1.bias = nn.Parameter(self.branch1.bias + c.bias)

    @staticmethod
    def supports(block: Any) -> bool:
        c, shortcut = block.branch2.c, block.branch1
        return (
            isinstance(c, TemporalGemmConv)
            and c.kt == 1
            and c.spatial_stride == 1
            and (shortcut is None or isinstance(shortcut, TemporalGemmConv))
            and isinstance(block.branch2.c_bn, nn.Identity)
            and (shortcut is None or isinstance(block.branch1_bn, nn.Identity))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        br = self.branch2
        h = br.b_relu(br.b(br.a_relu(br.a(x))))
        if self.branch1 is not None:
            y = self.branch1(x)
            acc = _rows(y)
        else:
            acc = _rows(x) + br.c.bias
        y = br.c(h, accumulate_into=acc)
        return y.relu_()


class FramewiseConv(nn.Module):
    """A 1 x kh x kw conv (temporal stride 1) as a 2D conv over frames folded into the batch.
    Dilated convs run in the default layout, where oneDNN's dilated kernels are faster."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.channels_last = conv.dilation[1:] == (1, 1)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.weight = nn.Parameter(conv.weight.detach()[:, :, 0].contiguous(memory_format=fmt))
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.stride = conv.stride[1:]
        self.padding = conv.padding[1:]
        self.dilation = conv.dilation[1:]
        self.groups = conv.groups

    @staticmethod
    def supports(conv: nn.Conv3d) -> bool:
        return conv.kernel_size[0] == 1 and conv.stride[0] == 1 and conv.padding[0] == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = _frames_to_batch(x.contiguous(memory_format=_CL3D))
        if not self.channels_last:
            frames = frames.contiguous()
        y = F.conv2d(
            frames, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
        return _batch_to_frames(y, x.shape[0]).contiguous(memory_format=_CL3D)


class FramewiseMaxPool(nn.Module):
    """A 1 x k x k max-pool as a 2D max-pool over frames folded into the batch."""

    def __init__(self, pool: nn.MaxPool3d) -> None:
        super().__init__()
        self.kernel_size = _as_3_tuple(pool.kernel_size)[1:]
        self.stride = _as_3_tuple(pool.stride)[1:]
        self.padding = _as_3_tuple(pool.padding)[1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = _frames_to_batch(x.contiguous(memory_format=_CL3D))
        y = F.max_pool2d(frames, self.kernel_size, self.stride, self.padding)
        return _batch_to_frames(y, x.shape[0])


class ChannelsLastConv3d(nn.Module):
    """Any other conv, run by oneDNN on channels-last-3d tensors."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.conv = conv.to(memory_format=_CL3D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.contiguous(memory_format=_CL3D))


def _as_3_tuple(v: int | tuple[int, ...]) -> tuple[int, ...]:
    return v if isinstance(v, tuple) else (v, v, v)


def _replacement(module: nn.Module) -> nn.Module | None:
    if isinstance(module, nn.Conv3d):
        if TemporalGemmConv.supports(module):
            return TemporalGemmConv(module)
        if FramewiseConv.supports(module):
            return FramewiseConv(module)
        return ChannelsLastConv3d(module)
    if isinstance(module, nn.MaxPool3d):
        kernel, stride = _as_3_tuple(module.kernel_size), _as_3_tuple(module.stride)
        if kernel[0] == 1 and stride[0] == 1 and _as_3_tuple(module.padding)[0] == 0:
            return FramewiseMaxPool(module)
    return None


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` for fast CPU inference; `model` itself is not changed.

    The copy takes the same inputs and gives the same outputs as `model.eval()` up to float
    rounding (about 1e-6 on sigmoid scores). It cannot be trained, and its state-dict names
    differ from PySlowFast's, so load checkpoints into `model` before calling this.
    """
    fast = fold_batchnorms(copy.deepcopy(model).eval())
    replace_submodules(fast, _replacement)
    replace_submodules(
        fast,
        lambda m: GemmResBlock(m) if isinstance(m, ResBlock) and GemmResBlock.supports(m) else None,
    )
    return fast
