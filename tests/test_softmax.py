"""nn/softmax.py: log_softmax over a few classes computed along a non-last dimension equals torch's."""
import pytest
import torch

from trainwell.nn.softmax import VECTOR_FLOATS, log_softmax_classes


@pytest.mark.parametrize("shape", [(7, 2), (32, 3), (8, 29, 10), (8, 32, 10), (512, 10), (3, 5, 15), (8, 4, 16), (64, 40)])
def test_log_softmax_classes_equals_torch_to_float_rounding(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 8
    got = log_softmax_classes(x)
    assert got.shape == x.shape
    torch.testing.assert_close(got, torch.log_softmax(x, -1), rtol=0, atol=4e-6)
    # the probabilities still sum to one along the classes
    torch.testing.assert_close(got.exp().sum(-1), torch.ones(shape[:-1]), rtol=0, atol=1e-5)


def test_few_classes_take_the_transposed_kernel_and_many_the_last_dim_one():
    few, many = torch.randn(8, 32, 3), torch.randn(8, 32, VECTOR_FLOATS)
    assert not log_softmax_classes(few).is_contiguous()      # computed along dim -2 of a transposed copy
    assert log_softmax_classes(many).is_contiguous()         # torch's own last-dimension kernel


def test_extreme_logits_stay_finite():
    x = torch.tensor([[1e4, -1e4, 0.0], [-3e38, 3e38, 0.0]])
    got = log_softmax_classes(x)
    assert torch.isfinite(got[0]).all() and got[0, 0] == 0.0
    torch.testing.assert_close(got, torch.log_softmax(x, -1))
