"""Notification router: Faust app (app*.py, agents*.py) around a pure, Kafka-free domain core.

The core (no Kafka, no Faust): ``model`` (typed records and Avro converters), ``rules`` (the
router), ``settings``, ``clock``, ``templates``, ``schemas`` and ``avro_codec``.
"""
