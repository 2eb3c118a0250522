"""The trio edge: the Unix listener, one Connection per client, the event bus, and
the Daemon that assembles the services and runs them all."""
