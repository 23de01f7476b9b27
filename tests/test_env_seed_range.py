"""``setup(seed=...)``: a seed torch cannot take is a clear ValueError (issue 13, lesser)."""

import pytest
import torch

from course_utils import setup
from course_utils.env import seed_everything


@pytest.mark.parametrize("bad", [2**64, 2**70, 10**5000], ids=["2**64", "2**70", "10**5000"])
def test_a_seed_too_large_for_torch_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"seed must be a non-negative int below 2\*\*64") as err:
        setup(seed=bad, quiet=True)
    assert len(str(err.value)) < 200  # a huge int is not printed in full


def test_the_largest_seed_torch_takes_still_works():
    seed_everything(2**64 - 1)
    assert torch.initial_seed() == 2**64 - 1
