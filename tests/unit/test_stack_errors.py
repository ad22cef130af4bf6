"""The local stack's error messages for bad situations say what is wrong and what to do."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stack import artifacts
from stack.components import ProviderStub
from stack.process import StartError
from stack.settings import ConfigError, StackSettings


def test_a_taken_port_is_reported_with_the_way_out(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = StackSettings.from_env({"NOTIPIPE_HOME": str(tmp_path), "NOTIPIPE_STUB_PORT": str(port)})
        with pytest.raises(StartError) as error:
            ProviderStub(settings).start()
    assert f"port {port} is already taken" in str(error.value)
    assert "NOTIPIPE_*_PORT" in str(error.value)


def test_missing_java_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts.shutil, "which", lambda name: None)
    with pytest.raises(artifacts.PrerequisiteError, match="apt-get install"):
        artifacts.check_java()
    with pytest.raises(artifacts.PrerequisiteError, match="install Maven"):
        artifacts.check_maven()


@pytest.mark.parametrize(("name", "value"), [("NOTIPIPE_KAFKA_PORT", "kafka"),
                                              ("NOTIPIPE_PARTITIONS", "0")])
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        StackSettings.from_env({name: value})
