"""htdviz.topology: the topology and HTD's split of it against literal dense numpy."""
import numpy as np
import pytest
import torch

from htdviz import topology


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_cosine_similarity_chunked_equals_dense():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((50, 7)), rng.standard_normal((23, 7))
    dense = _unit(a) @ _unit(b).T
    got = topology.cosine_similarity(a, b, chunk_size=6, dtype=np.float64)
    np.testing.assert_allclose(got, dense, atol=1e-12)
    got32 = topology.cosine_similarity(torch.from_numpy(a).float(), chunk_size=9)
    assert got32.dtype == np.float32 and got32.shape == (50, 50)
    np.testing.assert_allclose(got32, _unit(a) @ _unit(a).T, atol=1e-6)


def test_cosine_similarity_zero_row_is_orthogonal_to_everything():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    got = topology.cosine_similarity(a, dtype=np.float64)
    np.testing.assert_allclose(got, [[1, 0, 0.6], [0, 0, 0], [0.6, 0, 1]], atol=1e-12)


def test_prototypes_are_group_means_and_empty_groups_nan():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]])
    got = topology.prototypes(x, np.array([0, 0, 2]))
    np.testing.assert_allclose(got[0], [2.0, 3.0])
    assert np.isnan(got[1]).all()
    np.testing.assert_allclose(got[2], [10.0, 0.0])
    assert topology.prototypes(x, np.array([0, 0, 2]), n_groups=5).shape == (5, 2)


def test_htd_decomposition_blocks_match_the_dense_topology():
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((40, 6)), rng.permutation(np.arange(40) % 3)
    dec = topology.htd_decomposition(x, labels)
    dense = _unit(x) @ _unit(x).T
    for g in range(3):
        m = dec.members[g]
        np.testing.assert_array_equal(m, np.flatnonzero(labels == g))
        np.testing.assert_allclose(dec.within_group[g], dense[np.ix_(m, m)], atol=1e-12)
    protos = _unit(np.stack([x[labels == g].mean(0) for g in range(3)]))
    np.testing.assert_allclose(dec.prototype_prototype, protos @ protos.T, atol=1e-12)
    np.testing.assert_allclose(dec.prototype_entity, protos @ _unit(x).T, atol=1e-12)


def test_stack_entities_offsets_item_groups():
    joint, labels = topology.stack_entities(np.ones((2, 3)), np.zeros((3, 3)),
                                            np.array([0, 1]), np.array([0, 0, 2]))
    assert joint.shape == (5, 3)
    np.testing.assert_array_equal(labels, [0, 1, 2, 2, 4])


def test_rejects_non_finite_and_bad_shapes():
    with pytest.raises(ValueError, match="non-finite"):
        topology.cosine_similarity(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        topology.cosine_similarity(np.ones(3))


def test_a_measure_asked_of_topology_says_where_it_moved():
    with pytest.raises(AttributeError, match=r"htdviz\.preservation\.discrepancy"):
        topology.discrepancy
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        topology.nonsense
