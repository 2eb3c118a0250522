"""qjobd: long disk operations as background jobs, driven over QMP.

The package is layered so that only the edges do I/O (see README.md):
``qapi`` (schema front end), ``protocol`` (QMP session, sans-IO), ``model``
(runtime types from the schema), ``jobs``/``block`` (pure state), and the trio
edges ``server``, ``jobs.manager``, ``jobdrivers`` and ``cli``.
"""

import logging

__version__ = "0.1.0"

logging.getLogger("qjobd").addHandler(logging.NullHandler())
