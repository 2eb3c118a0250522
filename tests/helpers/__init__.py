"""Test helpers shared by every test package (imported as ``helpers``).

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so test modules import these
by package name: ``from helpers.images import make_image``.

* ``model``: the bundled schema's model; an event bus that checks payloads with it
* ``events``: :class:`EventRecorder`, the events of an in-process bus, and waiting
* ``engine``: :class:`Engine`, graph + job manager + recorder (the ``engine`` fixture
  of ``tests/jobs``)
* ``images``: raw image files (``make_image``, ``assert_same_content``...)
* ``nodes``: blockdev-add options for image files
* ``wire``: :class:`Wire`, a raw-socket QMP client
* ``client``: :class:`Client` and :class:`Transcript` on top of it
* ``daemons``: qjobd and qemu-storage-daemon subprocesses
"""
