"""Writing a label past zview's checks, as a careless or hostile writer with zarr would."""

from __future__ import annotations

import numpy as np
import zarr

from zview import _codecs, _store
from zview._location import Location


def write_label(store, key: str, data: np.ndarray) -> None:
    """Put ``data`` at ``labels/KEY`` of ``store`` whatever its length, dtype or shape."""
    where = Location.resolve(store)
    group = zarr.open_group(where.zarr_store(read_only=False), mode="a")
    _codecs.write_array(group, f"{_store.LABELS}/{key}", np.asarray(data))
    _store.consolidate(where)
