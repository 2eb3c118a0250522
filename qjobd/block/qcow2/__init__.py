"""qcow2, QEMU's copy-on-write image format, in pure Python.

``header`` parses and writes the header and its extensions, ``tables`` decodes
L1/L2 entries into runs of one kind, ``snapshots`` handles the internal snapshot
table, ``image`` ties them to a file with a bounded L2 cache, and ``node`` is the
BlockNode that the graph opens for ``driver: qcow2``.  Format facts come from QEMU's
docs/interop/qcow2.txt; error texts follow QEMU 7.2's block/qcow2.c.
"""
