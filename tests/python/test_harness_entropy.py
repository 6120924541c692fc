"""The harness's fresh entropy for each forked job (_harness._fresh_entropy)."""

import random

import numpy as np

from stratq import _harness


def test_each_call_gives_numpys_global_generator_a_new_state():
    _harness._fresh_entropy()
    first = np.random.get_state()
    _harness._fresh_entropy()
    second = np.random.get_state()
    assert first[0] == second[0] == "MT19937"
    assert not np.array_equal(first[1], second[1])
    # A whole state: 624 words, at the start of a draw.
    assert len(second[1]) == 624 and second[2] == 624


def test_no_gaussian_cached_by_the_parent_is_handed_on():
    np.random.seed(1)
    np.random.normal()  # draws two, caches the second
    assert np.random.get_state()[3] == 1
    _harness._fresh_entropy()
    assert np.random.get_state()[3] == 0


def test_pythons_random_is_reseeded_too():
    random.seed(5)
    before = random.getstate()
    _harness._fresh_entropy()
    assert random.getstate() != before
