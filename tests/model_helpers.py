"""Helpers shared by the model and checkpoint tests (imported from the tests folder)."""

import torch


def randomize_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Give every BatchNorm3d random affine parameters and statistics, so that BN is not an
    identity and a wrong fold or a missed key changes outputs. Returns the model in eval mode."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()
