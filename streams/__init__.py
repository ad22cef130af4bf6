"""notipipe's Python side, by concern, in the order data flows:

- ``core``: the routing rules, pure (no Kafka, no Faust);
- ``contracts``: topic names, Avro schemas and the codec;
- ``connection``: how clients reach the pipeline;
- ``faust_ext``: the only place framework internals are touched;
- ``worker``: one router worker process, composed of small parts;
- ``client``: the producers' SDK, CLI and demo;
- ``cli``: the ``notipipe`` command.
"""
