"""Which workers Prometheus scrapes: one file per worker in a directory that Prometheus watches
(file-based service discovery).

Workers run on ports that vary, so whoever starts one lists it (`stack up --with-worker`, the
tests' worker harness, or `notipipe monitoring add-worker`) and de-lists it when it stops it on
purpose. A worker that dies stays listed, so Prometheus shows its target down and
`NotipipeWorkerDown` fires.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from stack.settings import StackSettings

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _file(settings: StackSettings, name: str) -> Path:
    return settings.worker_targets_dir / f"{_UNSAFE.sub('_', name)}.json"


def list_worker(settings: StackSettings, name: str, port: int, app_id: str, host: str = "127.0.0.1") -> Path:
    """Write the worker's target file (atomically: Prometheus may read it at any moment)."""
    path = _file(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = [{"targets": [f"{host}:{port}"], "labels": {"worker": name, "app_id": app_id}}]
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(entry) + "\n")
    os.replace(partial, path)
    return path


def delist_worker(settings: StackSettings, name: str) -> bool:
    path = _file(settings, name)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def listed_workers(settings: StackSettings) -> dict[str, str]:
    """Worker name -> its address, from the target files."""
    out: dict[str, str] = {}
    for path in sorted(settings.worker_targets_dir.glob("*.json")):
        try:
            for group in json.loads(path.read_text()):
                out[group["labels"]["worker"]] = group["targets"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            continue
    return out
