"""Resolve the stack's Java parts from Maven Central with Maven, into the gitignored cache.

Each POM in stack/maven/ lays one part out under .cache/dist. The project's own Connect plugins
(connectors/http-sink) are built from source with Maven and their jar copied there. A stamp file
holding the POM's hash (for a build: the hash of its POM and sources) marks a part as done, so a
second run starts nothing and downloads nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stack.settings import PROJECT_ROOT, StackSettings

MAVEN_DIR = PROJECT_ROOT / "stack" / "maven"


class PrerequisiteError(RuntimeError):
    """Something the stack needs is missing from the machine; the message says how to get it."""


@dataclass(frozen=True)
class Part:
    name: str
    pom: str
    marker: str  # path under dist/ that exists once the part is laid out


@dataclass(frozen=True)
class Build:
    """A Connect plugin of the project's own: a Maven project whose jar becomes one plugin dir."""

    name: str
    project: str  # Maven project dir, relative to the project root
    jar: str  # the jar `mvn package` writes, relative to the project dir
    plugin_dir: str  # plugin dir under dist/connect-plugins

    @property
    def path(self) -> Path:
        return PROJECT_ROOT / self.project

    @property
    def marker(self) -> str:
        return f"connect-plugins/{self.plugin_dir}/{Path(self.jar).name}"


PARTS = (
    Part("kafka", "kafka.xml", "kafka/libs"),
    Part("registry+jdbc-sink", "plugins.xml", "apicurio-registry"),
    Part("avro-converter", "converter.xml", "connect-plugins/apicurio-avro-converter"),
    # The Prometheus JMX exporter agent in the broker's and Connect's JVMs (stack/jmx_agent.py).
    Part("jmx-exporter", "jmx-exporter.xml", "jmx-exporter/jmx_prometheus_javaagent.jar"),
)

BUILDS = (
    Build("http-sink", "connectors/http-sink", "target/notipipe-http-sink.jar", "notipipe-http-sink"),
)

# Parts on Connect's classpath or plugin path: a running Connect must restart to load them.
CONNECT_PLUGIN_PARTS = frozenset({"kafka", "registry+jdbc-sink", "avro-converter", *(b.name for b in BUILDS)})

# Plugin dirs an older checkout laid out: removed, so they never linger on Connect's plugin path.
OBSOLETE = ("connect-plugins/http-sink", ".http-sink.xml.stamp")

# Parent POMs that Maven Central does not serve although the artifact itself is there.
STUB_POMS = ("apicurio-registry-3.0.9.pom",)


def check_java() -> str:
    java = shutil.which("java")
    if not java:
        raise PrerequisiteError(
            "java not found: install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise PrerequisiteError(f"Java 17 or newer is needed (Kafka 4.x); found: {out.splitlines()[:1]}")
    return java


def check_maven() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise PrerequisiteError("mvn not found: install Maven (Debian: apt-get install maven)")
    return mvn


def _stamp_path(settings: StackSettings, part: Part) -> Path:
    return settings.dist_dir / f".{part.pom}.stamp"


def _pom_hash(part: Part) -> str:
    return hashlib.sha256((MAVEN_DIR / part.pom).read_bytes()).hexdigest()


def is_resolved(settings: StackSettings, part: Part) -> bool:
    stamp = _stamp_path(settings, part)
    return (
        (settings.dist_dir / part.marker).exists()
        and stamp.exists()
        and stamp.read_text().strip() == _pom_hash(part)
    )


def _run_maven(settings: StackSettings, args: list[str], log: Path, cwd: Path = MAVEN_DIR) -> None:
    cmd = [check_maven(), "-B", "-q", f"-Dmaven.repo.local={settings.maven_repo}",
           f"-Ddist={settings.dist_dir}", *args]
    with log.open("w") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    if result.returncode == 0:
        return
    text = log.read_text(errors="replace")
    if re.search(r"Unknown host|Connection refused|Connect timed out|Network is unreachable", text):
        raise PrerequisiteError(
            f"Maven could not reach Maven Central (see {log}). Check the network or proxy "
            "settings in ~/.m2/settings.xml, then run `stack up` again."
        )
    errors = [line for line in text.splitlines() if "ERROR" in line][:5]
    raise PrerequisiteError(f"Maven failed (full log: {log}):\n  " + "\n  ".join(errors))


def source_hash(build: Build) -> str:
    """Hash of the build's POM and every file under src/ (names and contents), in a fixed order."""
    digest = hashlib.sha256()
    files = [build.path / "pom.xml", *sorted(p for p in (build.path / "src").rglob("*") if p.is_file())]
    for path in files:
        digest.update(path.relative_to(build.path).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _build_stamp(settings: StackSettings, build: Build) -> Path:
    return settings.dist_dir / f".build-{build.name}.stamp"


def is_built(settings: StackSettings, build: Build) -> bool:
    stamp = _build_stamp(settings, build)
    return ((settings.dist_dir / build.marker).exists() and stamp.exists()
            and stamp.read_text().strip() == source_hash(build))


def check_jdk() -> None:
    if not shutil.which("javac"):
        raise PrerequisiteError(
            "javac not found: the project's Connect plugin is compiled, which needs a JDK 17+ "
            "(Debian: apt-get install openjdk-17-jdk-headless)")


def build_plugin(settings: StackSettings, build: Build) -> Path:
    """`mvn package` the plugin (its unit tests run too) and copy its jar into the plugin dir."""
    check_jdk()
    source = build.path / build.jar
    log = settings.log_dir / f"maven-build-{build.name}.log"
    _run_maven(settings, ["package"], log, cwd=build.path)
    if not source.exists():
        raise PrerequisiteError(f"Maven ran but {source} is missing (log: {log})")
    target = settings.dist_dir / build.marker
    target.parent.mkdir(parents=True, exist_ok=True)
    # Copy, then rename: a running Connect keeps reading the old file until it restarts.
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    _build_stamp(settings, build).write_text(source_hash(build))
    return target


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (flock), held for the `with` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _exclusive(settings: StackSettings) -> contextlib.AbstractContextManager[None]:
    """One resolver at a time: concurrent `stack up`s (e.g. two test sessions) would both run Maven
    into the same target/ and dist/ otherwise."""
    return file_lock(settings.dist_dir / ".resolve.lock")


def resolve_all(settings: StackSettings, echo=print) -> list[str]:
    """Lay out every part that is not there yet; a no-op when all stamps match.

    Returns the names of the parts resolved or built now (empty when nothing changed)."""
    check_java()
    settings.dist_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(settings):
        for leftover in OBSOLETE:
            path = settings.dist_dir / leftover
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        done = _resolve_parts(settings, echo)
        for build in BUILDS:
            if not is_built(settings, build):
                echo(f"building {build.name} from {build.project} with Maven ...")
                build_plugin(settings, build)
                done.append(build.name)
    return done


def _resolve_parts(settings: StackSettings, echo) -> list[str]:
    todo = [part for part in PARTS if not is_resolved(settings, part)]
    if not todo:
        return []
    for stub in STUB_POMS:
        stub_file = MAVEN_DIR / "stubs" / stub
        _run_maven(settings, ["org.apache.maven.plugins:maven-install-plugin:3.1.3:install-file",
                              f"-Dfile={stub_file}", f"-DpomFile={stub_file}"],
                   settings.log_dir / "maven-stubs.log")
    for part in todo:
        echo(f"resolving {part.name} from Maven Central (stack/maven/{part.pom}) ...")
        # Afresh, so jars a previous version of the POM put there do not linger on a classpath.
        # (A running JVM keeps reading the jars it has open until it restarts.)
        shutil.rmtree(settings.dist_dir / part.marker, ignore_errors=True)
        _run_maven(settings, ["-f", part.pom, "package"], settings.log_dir / f"maven-{part.name}.log")
        if not (settings.dist_dir / part.marker).exists():
            raise PrerequisiteError(f"Maven ran but {settings.dist_dir / part.marker} is missing")
        _stamp_path(settings, part).write_text(_pom_hash(part))
        users = {"kafka": "kafka", "registry+jdbc-sink": "registry", "jmx-exporter": "kafka"}.get(part.name)
        if users and (settings.run_dir / f"{users}.pid").exists():
            echo(f"  note: the running {users} keeps its old jars until it restarts "
                 "(`notipipe stack down && notipipe stack up`); Connect is restarted by `stack up`")
    return [part.name for part in todo]
