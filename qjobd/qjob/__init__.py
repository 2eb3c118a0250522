"""``qjob``, the operator's command line, built on the generated client.

:mod:`.main` parses the command line and runs one command; :mod:`.session` holds
the connection, what the daemon offers (qjobd's job extensions, or plain QEMU) and
the logic that follows jobs; :mod:`.display` draws tables and progress bars.
"""
