"""The tree walker and label nesting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zview._labels import nest
from zview._tree import get_path, leaves, map_tree, map_with_path

keys = st.text("abcxyz", min_size=1, max_size=3)
trees = st.recursive(st.integers(), lambda c: st.one_of(
    st.dictionaries(keys, c, min_size=1, max_size=3), st.lists(c, min_size=1, max_size=3)),
    max_leaves=10)


@given(trees)
def test_leaves_paths_address_their_leaves(tree):
    for path, leaf in leaves(tree):
        assert get_path(tree, path) == leaf


@given(trees)
def test_map_keeps_shape(tree):
    doubled = map_tree(lambda x: 2 * x, tree)
    assert [p for p, _ in leaves(doubled)] == [p for p, _ in leaves(tree)]
    assert [v for _, v in leaves(doubled)] == [2 * v for _, v in leaves(tree)]
    assert map_with_path(lambda p, _: p, tree) == map_tree(lambda x: x, map_with_path(
        lambda p, _: p, tree))


@given(st.dictionaries(keys, trees, min_size=1, max_size=3))
def test_nest_inverts_leaves(tree):
    """Flattening to paths and nesting again gives the tree back (lists stay lists)."""
    assert nest(dict(leaves(tree))) == tree
