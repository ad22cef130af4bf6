"""How every client reaches and authenticates to Kafka, the schema registry, Kafka Connect and
PostgreSQL: addresses and credentials from `NOTIPIPE_*` variables, and the Kafka plumbing clients
share. On the local stack (`notipipe stack up`) the credentials default to the secrets it
generated in `.cache/secrets/`, so commands work without setup; against other servers a missing
one is an error naming its variable. One module per server; see docs/security.md.
"""
