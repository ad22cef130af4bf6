"""The Prometheus JMX exporter agent in the broker's and Connect's JVMs: its command-line flag,
with its rules (monitoring/jmx.py) written next to the other generated monitoring configs. The
agent re-reads its rules file when it changes, so new rules need no JVM restart; adding the agent
to a JVM started without it does."""

from __future__ import annotations

import socket

from monitoring import jmx
from stack.artifacts import PrerequisiteError
from stack.settings import StackSettings

JMX_AGENT = "jmx-exporter/jmx_prometheus_javaagent.jar"


def jmx_agent_args(settings: StackSettings, which: str, port: int) -> list[str]:
    """`-javaagent:` for a broker ('kafka') or Connect ('connect'), serving on `port`; none when
    monitoring is off."""
    if not settings.monitoring:
        return []
    jar = settings.dist_dir / JMX_AGENT
    if not jar.exists():
        raise PrerequisiteError(f"{jar} is missing: run scripts/setup.sh (it resolves the JMX agent)")
    rules = jmx.broker_rules() if which == "kafka" else jmx.connect_rules()
    config = jmx.write(settings.monitoring_run_dir / f"jmx-{which}.yml", rules)
    return [f"-javaagent:{jar}=127.0.0.1:{port}:{config}"]


def jmx_agent_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
