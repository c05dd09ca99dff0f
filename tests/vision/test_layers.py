"""The shared network blocks: the transformer MLP (exact GELU, timm's key names) and ViT's init."""

import math

import pytest
import torch
from torch import nn

from mnemovision.vision.layers import Mlp, vit_init


def exact_gelu(x):
    """GELU in its erf form (not the tanh approximation)."""
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def test_mlp_is_linear_exact_gelu_linear_with_fc1_fc2_keys():
    torch.manual_seed(0)
    mlp = Mlp(6, 24).double()
    assert list(mlp.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert mlp.fc1.weight.shape == (24, 6) and mlp.fc2.weight.shape == (6, 24)
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    hidden = x @ mlp.fc1.weight.T + mlp.fc1.bias
    torch.testing.assert_close(mlp(x), exact_gelu(hidden) @ mlp.fc2.weight.T + mlp.fc2.bias, rtol=1e-12, atol=1e-12)


def test_vit_init_sets_linear_weights_to_std_002_zero_biases_and_unit_layernorms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 1024), nn.LayerNorm(1024), nn.Linear(1024, 64, bias=False), nn.Conv2d(3, 3, 3))
    with torch.no_grad():
        model[1].weight.fill_(3.0)
        model[1].bias.fill_(-1.0)
        conv_before = model[3].weight.clone()
    model.apply(vit_init)
    model.requires_grad_(False)
    for linear in (model[0], model[2]):
        assert float(linear.weight.std()) == pytest.approx(0.02, rel=0.03) and abs(float(linear.weight.mean())) < 1e-3
    assert torch.all(model[0].bias == 0) and model[2].bias is None
    assert torch.all(model[1].weight == 1) and torch.all(model[1].bias == 0)
    assert torch.equal(model[3].weight, conv_before)  # other layers keep their own init
