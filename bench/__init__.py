"""`notipipe bench`: the benchmark of the router and its peers on the local Kafka stack.

``workload`` (the synthetic users, preferences and events), ``kafka_io`` (topics, paced producer,
lag, reading deliveries back), ``systems`` (the systems under test as processes), ``runner`` (the
phases and their measurement), ``stats`` (percentiles, pacing, rates; pure), ``profile`` (py-spy),
``report`` (machine, tables, plot), ``cli``; ``peers/`` holds the three peer implementations.
"""
