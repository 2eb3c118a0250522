"""The command layer: one handler module per schema module, and dispatch.

* :mod:`~qjobd.commands.context` - the services and session a handler may touch;
* :mod:`~qjobd.commands.registry` - the ``@handler`` decorator and its table;
* :mod:`~qjobd.commands.dispatch` - runs a request's handler and builds the reply;
  importing it registers every handler;
* the other modules - the handlers, thin: they resolve names, build option records
  and call the block graph, the job manager and the job drivers.
"""
