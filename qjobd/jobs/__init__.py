"""Jobs: QEMU's job life cycle, transactions, and the manager that runs them.

* :mod:`~qjobd.jobs.fsm` - QEMU 7.2's status and verb tables, as data (pure);
* :mod:`~qjobd.jobs.job` - one job: its state, pause points, user verbs, the task
  that runs its driver;
* :mod:`~qjobd.jobs.transaction` - jobs that complete together, and the completion
  sequence of QEMU's job.c (pure);
* :mod:`~qjobd.jobs.manager` - every job by id, the nursery they run in, the verbs
  that involve a transaction;
* :mod:`~qjobd.jobs.events` - the EventSink protocol jobs emit through;
* :mod:`~qjobd.jobs.ratelimit` - the speed limit's arithmetic (pure).
"""
