"""Resolve the stack's Java parts from Maven Central with Maven, into the gitignored cache.

Each POM in stack/maven/ lays one part out under .cache/dist. A stamp file holding the POM's hash
marks a part as done, so a second run starts nothing and downloads nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
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


PARTS = (
    Part("kafka", "kafka.xml", "kafka/libs"),
    Part("registry+jdbc-sink", "plugins.xml", "apicurio-registry"),
    Part("avro-converter", "converter.xml", "connect-plugins/apicurio-avro-converter"),
    Part("http-sink", "http-sink.xml", "connect-plugins/http-sink"),
)

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


def _run_maven(settings: StackSettings, args: list[str], log: Path) -> None:
    cmd = [check_maven(), "-B", "-q", f"-Dmaven.repo.local={settings.maven_repo}",
           f"-Ddist={settings.dist_dir}", *args]
    with log.open("w") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=MAVEN_DIR)
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


def resolve_all(settings: StackSettings, echo=print) -> None:
    """Lay out every part that is not there yet; a no-op when all stamps match."""
    check_java()
    settings.dist_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    todo = [part for part in PARTS if not is_resolved(settings, part)]
    if not todo:
        return
    for stub in STUB_POMS:
        stub_file = MAVEN_DIR / "stubs" / stub
        _run_maven(settings, ["org.apache.maven.plugins:maven-install-plugin:3.1.3:install-file",
                              f"-Dfile={stub_file}", f"-DpomFile={stub_file}"],
                   settings.log_dir / "maven-stubs.log")
    for part in todo:
        echo(f"resolving {part.name} from Maven Central (stack/maven/{part.pom}) ...")
        _run_maven(settings, ["-f", part.pom, "package"], settings.log_dir / f"maven-{part.name}.log")
        if not (settings.dist_dir / part.marker).exists():
            raise PrerequisiteError(f"Maven ran but {settings.dist_dir / part.marker} is missing")
        _stamp_path(settings, part).write_text(_pom_hash(part))
