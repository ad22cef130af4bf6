"""docker-compose.yml describes the same stack as `notipipe stack up`; keep the two from drifting apart.

`docker-compose config` validates and resolves the file without a Docker engine (Debian's
`docker-compose` package). The versions are checked against the POMs the local stack resolves.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from stack.artifacts import BUILDS, CONNECT_PLUGIN_PARTS, PARTS
from stack.components import Connect
from stack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[2]
MAVEN_DIR = ROOT / "stack" / "maven"
CONNECT_DOCKERFILE = ROOT / "docker" / "connect" / "Dockerfile"
WORKER_PROPERTIES = ROOT / "docker" / "connect" / "worker.properties"
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
SERVICES = {"secrets", "kafka", "registry", "postgres", "connect", "provider-stub", "worker", "init"}
# Lines of the Connect worker config that name addresses or paths, which differ inside containers.
ADDRESS_KEYS = {"bootstrap.servers", "listeners", "rest.advertised.host.name", "rest.advertised.port",
                "plugin.path", "config.providers.file.param.allowed.paths"}
SECRETS = "/app/.cache/secrets"
# The local stack's Kafka is secured (docs/security.md); docker-compose.yml's listens in plaintext.
SECURITY_KEY = re.compile(r"((producer|consumer|admin)\.)?(security\.protocol|sasl\..+|ssl\..+)")


def pom_property(pom: str, name: str) -> str:
    value = ET.parse(MAVEN_DIR / pom).getroot().findtext(f"m:properties/m:{name}", namespaces=POM_NS)
    assert value, f"stack/maven/{pom} has no <{name}> property"
    return value.strip()


def image_tag(image: str) -> str:
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"image {image!r} has no pinned tag"
    return tag


def _script_interpreter(program: str) -> list[str] | None:
    """Debian's docker-compose 1.x is a Python script; its interpreter has PyYAML (a dependency)."""
    with open(program, "rb") as handle:
        first = handle.readline(200).decode(errors="replace")
    if first.startswith("#!") and "python" in first:
        return shlex.split(first[2:])
    return None


def _as_data(compose: str, yaml_text: str, env: dict[str, str]) -> dict[str, Any]:
    try:
        import yaml  # type: ignore[import-untyped]

        return yaml.safe_load(yaml_text)
    except ImportError:
        pass
    interpreter = _script_interpreter(compose)
    if interpreter:
        result = subprocess.run(
            [*interpreter, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
            input=yaml_text, capture_output=True, text=True, env=env)
    else:  # Compose v2 (a Go binary) prints JSON itself.
        result = subprocess.run([compose, "-f", "docker-compose.yml", "config", "--format", "json"],
                                cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"could not read the resolved compose config:\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is not installed (it validates docker-compose.yml without a "
                    "Docker engine): run scripts/setup.sh, which installs Debian's docker-compose",
                    pytrace=False)
    # Defaults only: the user's NOTIPIPE_*/COMPOSE_* variables must not change what is checked.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIPIPE_", "COMPOSE_"))}
    result = subprocess.run([compose, "-f", "docker-compose.yml", "config"],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config = _as_data(compose, result.stdout, env)
    assert isinstance(config, dict) and "services" in config, result.stdout[:2000]
    return config


def test_config_has_every_service(compose_config: dict[str, Any]) -> None:
    assert set(compose_config["services"]) >= SERVICES


def test_connect_builds_from_its_dockerfile(compose_config: dict[str, Any]) -> None:
    build = compose_config["services"]["connect"]["build"]
    assert Path(build["context"]).resolve() == ROOT
    assert Path(build["dockerfile"]) == Path("docker/connect/Dockerfile")


def test_python_services_share_the_worker_image(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in ("provider-stub", "worker", "init"):
        assert Path(services[name]["build"]["dockerfile"]) == Path("docker/worker/Dockerfile"), name
    assert len({services[n]["image"] for n in ("provider-stub", "worker", "init")}) == 1


def test_kafka_image_is_the_kafka_version_of_the_local_stack(compose_config: dict[str, Any]) -> None:
    version = pom_property("kafka.xml", "kafka.version")
    image = compose_config["services"]["kafka"]["image"]
    assert image.startswith("apache/kafka:")
    assert image_tag(image) == version
    # Connect's runtime image too.
    froms = [line.split()[1] for line in CONNECT_DOCKERFILE.read_text().splitlines()
             if line.startswith("FROM apache/kafka:")]
    assert froms and all(image_tag(image) == version for image in froms), froms


def test_registry_image_is_the_apicurio_version_of_the_local_stack(compose_config: dict[str, Any]) -> None:
    image = compose_config["services"]["registry"]["image"]
    assert image.startswith("apicurio/apicurio-registry:")
    assert image_tag(image) == pom_property("plugins.xml", "apicurio.version")


def test_init_runs_after_the_stack_is_healthy(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    depends = services["init"]["depends_on"]
    for name in ("kafka", "registry", "connect"):
        assert depends[name]["condition"] == "service_healthy", name
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_servers_wait_for_the_secrets_and_read_them_where_they_were_written(
        compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert services["secrets"]["volumes"] and "stack secrets" in " ".join(services["secrets"]["entrypoint"])
    for name in ("registry", "postgres", "connect", "provider-stub", "init"):
        assert services[name]["depends_on"]["secrets"]["condition"] == "service_completed_successfully", name
        mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}"
                  for v in services[name]["volumes"]]
        assert any(m.startswith(f"secrets:{SECRETS}") for m in mounts), (name, mounts)
    assert _properties(WORKER_PROPERTIES.read_text())["config.providers.file.param.allowed.paths"] == SECRETS
    assert f"{SECRETS}/connect-jaas.conf" in services["connect"]["environment"]["KAFKA_OPTS"]
    database = services["postgres"]["environment"]
    assert database["POSTGRES_PASSWORD_FILE"] == f"{SECRETS}/postgres-owner-password"
    assert "--auth=scram-sha-256" in database["POSTGRES_INITDB_ARGS"]
    assert f"{SECRETS}/gateway-tokens.properties" in services["provider-stub"]["command"]
    registry = services["registry"]["environment"]
    assert registry["QUARKUS_CONFIG_LOCATIONS"] == f"file:{SECRETS}/registry-users.properties"
    assert registry["APICURIO_AUTH_ANONYMOUS_READ_ACCESS_ENABLED"] == "true"


def _published(port: Any) -> tuple[int, int]:
    if isinstance(port, dict):
        return int(port["published"]), int(port["target"])
    host, _, container = str(port).rpartition(":")
    return int(host.rpartition(":")[2]), int(container.split("/")[0])


def test_host_ports_are_the_local_stack_defaults(compose_config: dict[str, Any]) -> None:
    defaults = StackSettings.from_env({})
    wanted = {"kafka": defaults.kafka_port, "registry": defaults.registry_port,
              "connect": defaults.connect_port, "postgres": defaults.postgres_port,
              "provider-stub": defaults.stub_port}
    for name, port in wanted.items():
        published = {_published(p)[0] for p in compose_config["services"][name].get("ports", [])}
        assert port in published, f"{name} publishes {published}, the local stack uses {port}"


def test_data_lives_in_named_volumes(compose_config: dict[str, Any]) -> None:
    assert {"kafka-data", "postgres-data"} <= set(compose_config.get("volumes") or {})


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_connect_worker_config_matches_the_local_stack(tmp_path: Path) -> None:
    local = Connect(StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path)}))
    local.prepare()
    expected = {k: v for k, v in _properties(local.properties.read_text()).items()
                if not SECURITY_KEY.fullmatch(k)}
    docker = _properties(WORKER_PROPERTIES.read_text())
    assert set(docker) == set(expected)
    assert {k: v for k, v in docker.items() if k not in ADDRESS_KEYS} == {
        k: v for k, v in expected.items() if k not in ADDRESS_KEYS}
    copy_plugins = f"COPY --from=plugins /dist/connect-plugins {docker['plugin.path']}"
    assert copy_plugins in CONNECT_DOCKERFILE.read_text()


def test_connect_dockerfile_runs_the_local_stack_poms() -> None:
    text = CONNECT_DOCKERFILE.read_text()
    assert "stubs/*.pom" in text and "install-file" in text
    # Kafka itself is the base image; the JMX exporter agent is the local stack's monitoring, not Connect's.
    for part in PARTS:
        if part.pom != "kafka.xml" and part.name in CONNECT_PLUGIN_PARTS:
            assert part.pom in text, f"docker/connect/Dockerfile does not run stack/maven/{part.pom}"


def test_connect_dockerfile_builds_the_project_plugins() -> None:
    text = CONNECT_DOCKERFILE.read_text()
    for build in BUILDS:
        assert f"COPY {build.project}/src/ ./{build.project}/src/" in text, build.name
        assert f"mvn -B -q -f {build.project}/pom.xml package" in text, build.name
        assert f"cp {build.project}/{build.jar} /dist/connect-plugins/{build.plugin_dir}/" in text, build.name
