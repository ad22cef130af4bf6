"""What crosses the wire: the topics registry, the Avro schemas and the codec."""
