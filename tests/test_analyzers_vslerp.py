"""vSLERP (SPEC §12): slerp identities after the mean shift."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.errors import InputError


@pytest.fixture
def shell(rng):
    d = 32
    m = rng.normal(size=d) * 2
    p, q = rng.normal(size=d), rng.normal(size=d)
    q *= np.linalg.norm(p) / np.linalg.norm(q)  # equal distance from the mean
    return m + p, m + q, m


def test_endpoints(shell):
    a, b, m = shell
    out = cg.vslerp(a, b, [0.0, 1.0], mean=m)
    np.testing.assert_allclose(out[0], a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[1], b, rtol=0, atol=1e-12)


def test_constant_norm_and_linear_angle_after_the_shift(shell):
    a, b, m = shell
    t = np.linspace(0, 1, 11)
    out = cg.vslerp(a, b, t, mean=m)  # (11, d)
    radius = np.linalg.norm(a - m)
    np.testing.assert_allclose(np.linalg.norm(out - m, axis=1), radius, rtol=1e-12)
    cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    omega = np.arccos(cos(a - m, b - m))
    angles = np.array([np.arccos(np.clip(cos(o - m, a - m), -1, 1)) for o in out])
    np.testing.assert_allclose(angles, t * omega, atol=1e-7)


def test_scale_zero_is_plain_slerp_and_differs_from_the_shifted_path(shell):
    a, b, m = shell
    plain = cg.vslerp(a, b, 0.5, mean=m, scale=0.0)
    np.testing.assert_allclose(plain, cg.vslerp(a, b, 0.5), rtol=1e-12)
    ua, ub = a / np.linalg.norm(a), b / np.linalg.norm(b)
    # plain slerp of equal-norm vectors is the normalised midpoint, scaled
    if np.isclose(np.linalg.norm(a), np.linalg.norm(b)):
        np.testing.assert_allclose(plain / np.linalg.norm(plain), (ua + ub) / np.linalg.norm(ua + ub), rtol=1e-10)
    assert not np.allclose(plain, cg.vslerp(a, b, 0.5, mean=m))
    assert cg.vslerp(a, b, 0.5, mean=m).shape == a.shape


def test_parallel_vectors_fall_back_to_the_line():
    a = np.array([1.0, 0.0])
    out = cg.vslerp(a, 2 * a, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out, [[1, 0], [1.5, 0], [2, 0]], rtol=1e-12)


def test_bad_input(rng):
    with pytest.raises(InputError, match="b has 3"):
        cg.vslerp(np.ones(2), np.ones(3), 0.5)
    with pytest.raises(InputError, match="mean has dimension"):
        cg.vslerp(np.ones(2), np.ones(2), 0.5, mean=np.ones(4))
    with pytest.raises(InputError, match="shape"):
        cg.vslerp(np.ones((2, 2)), np.ones((2, 2)), 0.5)
