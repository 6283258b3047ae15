"""Dev/test infrastructure for Switchboard. Never imported by service code.

- :mod:`devinfra.broker`   embedded Tansu (Kafka protocol), ``create_topics``
- :mod:`devinfra.postgres` create/drop databases, embedded PostgreSQL
- :mod:`devinfra.procs`    child-process supervision (process groups, pdeathsig, watchdog)
- :mod:`devinfra.stack`    ``python -m devinfra.stack up`` and :class:`devinfra.stack.Stack`
- :mod:`devinfra.pytest_plugin` the session fixtures every test uses
"""
