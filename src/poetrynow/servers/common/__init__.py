"""What every poetry server shares: where it listens and why it cannot (``listen``,
``startup``, ``ports``), whether its fast edition runs (``fastpath``), how a connection ends
(``ending``, ``sending``, ``gone``), one fault costing one connection (``guard``), and the log
line per client (``logline``)."""
