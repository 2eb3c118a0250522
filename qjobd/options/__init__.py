"""Reading qjobd's configuration: the command line and QEMU's option syntaxes.

Pure parsing (no I/O): :mod:`.getopt` scans the command line as qemu-storage-daemon
does, :mod:`.keyval` reads QEMU's ``key=value`` syntax of ``--blockdev`` and
``--monitor``, and :mod:`.chardev` reads ``--chardev`` (QEMU's older QemuOpts syntax)
and ``--monitor`` into what qjobd will listen on.
"""
