"""The transform server (Parts 12 and 20): ``server`` speaks its netstring protocol; where the
work runs is beside it: ``workers`` (the reactor's thread, a thread pool, processes),
``pool`` (the bounded, cancellable queue in front of a pool), ``processes`` (the process
pool), ``costs`` (what a request costs, to measure Part 20's warning), ``worklog``
(``--work-log``)."""
