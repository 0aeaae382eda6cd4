"""fastnmf._datasets: the swimmer images, their parts, low_rank, ascii_image."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastnmf._datasets import ascii_image, low_rank, swimmer, swimmer_parts, swimmer_weights


def test_swimmer_shape_values_and_distinct_images():
    X = swimmer()
    assert X.shape == (256, 1024)
    assert X.dtype == np.float64
    assert set(np.unique(X)) == {0.0, 1.0}
    assert len({row.tobytes() for row in X}) == 256


def test_swimmer_is_deterministic():
    np.testing.assert_array_equal(swimmer(), swimmer())
    np.testing.assert_array_equal(swimmer(noise=0.1, seed=3), swimmer(noise=0.1, seed=3))


def test_swimmer_parts_are_disjoint_binary_and_sum_to_the_images():
    P = swimmer_parts()
    assert P.shape == (17, 1024)
    assert set(np.unique(P)) == {0.0, 1.0}
    assert P.sum(axis=1).min() >= 5  # every part is a visible segment
    # Disjoint supports: no pixel belongs to two parts (so no limb touches the torso).
    assert P.sum(axis=0).max() == 1.0
    A = swimmer_weights()
    assert A.shape == (256, 17)
    np.testing.assert_array_equal(A @ P, swimmer())
    # Torso in every image; exactly one of the four positions of each limb.
    np.testing.assert_array_equal(A[:, 0], 1.0)
    for limb in range(4):
        np.testing.assert_array_equal(A[:, 1 + 4 * limb:5 + 4 * limb].sum(axis=1), 1.0)


def test_swimmer_weights_index_encoding():
    A = swimmer_weights()
    for i in (0, 27, 108, 255):
        for limb in range(4):
            pos = (i >> 2 * (3 - limb)) & 3
            assert A[i, 1 + 4 * limb + pos] == 1.0


def test_swimmer_every_image_has_the_torso_and_four_limbs():
    X, P = swimmer(), swimmer_parts()
    torso = P[0] > 0
    assert np.all(X[:, torso] == 1.0)
    # The 256 images use each limb position in exactly 64 images.
    A = swimmer_weights()
    np.testing.assert_array_equal(A[:, 1:].sum(axis=0), 64)


def test_swimmer_parts_are_linearly_independent():
    assert np.linalg.matrix_rank(swimmer_parts()) == 17
    # X itself has rank 13 (17 parts, minus one per limb because each limb's four
    # positions always sum to the same indicator as the torso's weight).
    assert np.linalg.matrix_rank(swimmer()) == 13


def test_swimmer_noise_is_non_negative_and_bounded():
    X0 = swimmer()
    X = swimmer(noise=0.2, seed=1)
    assert X.shape == X0.shape
    diff = X - X0
    assert diff.min() >= 0 and diff.max() < 0.2 and diff.max() > 0.1
    assert not np.array_equal(X, swimmer(noise=0.2, seed=2))


@pytest.mark.parametrize("noise", [-0.1, float("nan"), float("inf")])
def test_swimmer_rejects_bad_noise(noise):
    with pytest.raises(ValueError, match="noise"):
        swimmer(noise=noise)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_low_rank_dense(dtype):
    X = low_rank(40, 30, 4, dtype=dtype, seed=1)
    assert isinstance(X, np.ndarray)
    assert X.shape == (40, 30) and X.dtype == dtype
    assert X.min() >= 0
    # Rank 4 plus 5 % noise: the 5th singular value is small next to the 1st.
    s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    assert s[4] < 0.1 * s[0]
    np.testing.assert_array_equal(X, low_rank(40, 30, 4, dtype=dtype, seed=1))
    assert not np.array_equal(X, low_rank(40, 30, 4, dtype=dtype, seed=2))


def test_low_rank_noise_free_is_exactly_low_rank():
    X = low_rank(30, 20, 3, noise=0.0)
    assert np.linalg.matrix_rank(X) == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_low_rank_sparse_density(dtype):
    X = low_rank(200, 100, 5, density=0.1, dtype=dtype, seed=0)
    assert sp.issparse(X) and X.format == "csr"
    assert X.shape == (200, 100) and X.dtype == dtype
    assert 0.07 < X.nnz / (200 * 100) < 0.13
    assert X.data.min() > 0


def test_ascii_image_shape_and_levels():
    img = np.zeros((4, 6))
    img[0, 0] = 1.0
    img[3, 5] = 0.5
    text = ascii_image(img, shape=(4, 6), pool=(1, 1))
    lines = text.split("\n")
    assert len(lines) == 4 and all(len(line) == 6 for line in lines)
    assert lines[0][0] == "@"
    assert lines[3][5] not in (" ", "@")
    assert set(lines[1]) == {" "}


def test_ascii_image_default_pooling_halves_rows():
    vec = swimmer()[27]
    lines = ascii_image(vec).split("\n")
    assert len(lines) == 16 and all(len(line) == 32 for line in lines)
    # Max pooling keeps every lit pixel visible.
    pooled = vec.reshape(16, 2, 32).max(axis=1)
    for r in range(16):
        for c in range(32):
            assert (lines[r][c] == "@") == (pooled[r, c] == 1.0)


def test_ascii_image_all_zero_and_flat_input():
    text = ascii_image(np.zeros(1024))
    assert set(text.replace("\n", "")) == {" "}
    assert ascii_image(np.ones((32, 32))) == ascii_image(np.ones(1024))
