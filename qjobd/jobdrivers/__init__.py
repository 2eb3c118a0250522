"""What each kind of job does: one module per job type.

Block jobs derive from :class:`~qjobd.jobdrivers.blockjob.BlockJobDriver`, which
holds what they share (common options, claims on nodes, the error policy); a
``setup_*`` function per type makes QEMU's checks in QEMU's order, changes the
graph and creates the job without starting it, and the command handler starts it.
"""
