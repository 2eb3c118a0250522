"""qjobd: long disk operations as background jobs, driven over QMP.

The package is layered; each row imports only the rows below it (a test,
``tests/test_layering.py``, keeps it so, and finds no import cycles)::

    cli                 the program: options, signals, logging
    server/             trio edge: listener, connections, event fan-out, Daemon
    commands/           handlers (one module per topic), dispatch, services record
    jobdrivers/         what each job type does; the shared block-job base
    jobs/               job life cycle, transactions, the manager (trio at its edge)
    block/ model/ protocol/   block layer | schema runtime | QMP session (sans-IO)
    qapi/               schema front end
    errors, ids, qdict, qjson, schema_path   shared leaves

Only ``server``, ``jobs.job``/``jobs.manager``, ``jobdrivers`` and ``cli`` use trio;
``qapi``, ``protocol``, ``model``, ``block`` and the rest of ``jobs`` are plain
synchronous code.
"""

import logging

__version__ = "0.1.0"

logging.getLogger("qjobd").addHandler(logging.NullHandler())
