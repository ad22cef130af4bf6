"""How every client reaches the pipeline: addresses, and the Kafka plumbing clients share."""
