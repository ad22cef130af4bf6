"""Monitoring of the pipeline: configs of Prometheus, Alertmanager, the lag exporter and the JMX
agents, the alert rules, the dashboard and `notipipe lag`."""
