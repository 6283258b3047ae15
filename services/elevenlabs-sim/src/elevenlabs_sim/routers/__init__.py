"""One router module per simulated resource, plus ``sim_control`` for the ``/_sim`` test API."""
