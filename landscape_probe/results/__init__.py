"""Results files: HDF5 written atomically, with provenance, read back in one place.

The general machinery is in ``hdf5``; each kind of results file (``slice``,
``train``) has its own layout module. The layout is documented in
``docs/hdf5-format.md``.
"""

from landscape_probe.results.hdf5 import (
    SCHEMA_VERSION,
    atomic_h5,
    check_writable,
    open_results,
    plain_value,
    provenance,
    read_attrs,
    read_group,
    write_dataset,
)

__all__ = [
    # writing
    "SCHEMA_VERSION",
    "check_writable",
    "atomic_h5",
    "provenance",
    "write_dataset",
    # reading
    "open_results",
    "read_attrs",
    "read_group",
    "plain_value",
]
