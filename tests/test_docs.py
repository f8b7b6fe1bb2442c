"""The documentation is self-contained and true: every Python sample in it runs, its links stay
inside the repository, and every public name it lists imports from the path it gives."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from docsamples import ROOT, documents, samples
from s3_server import AWS_TEST_ENV, AWS_UNSET, s3_client, start_s3_server

# Runs one document's samples in order, each in a fresh namespace, in one process. Lines
# starting with "#> " are the output a sample must print.
RUNNER = """
import contextlib, io, json, sys, traceback
for where, code in json.load(open(sys.argv[1])):
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(code, where, "exec"), {"__name__": "__main__"})
    except BaseException:
        traceback.print_exc()
        sys.exit(f"sample failed: {where}")
    expected = [line[3:] for line in code.splitlines() if line.startswith("#> ")]
    if expected and printed.getvalue().splitlines() != expected:
        sys.exit(f"sample {where} printed {printed.getvalue()!r}, not {expected!r}")
"""

# The bucket the S3 samples name; it exists on the server the samples run against.
SAMPLE_BUCKET = "my-bucket"


@pytest.fixture(scope="module")
def s3_environment() -> Iterator[dict[str, str]]:
    """Environment that sends the samples' S3 traffic to a local moto server."""
    server, endpoint = start_s3_server()
    s3_client(endpoint).create_bucket(Bucket=SAMPLE_BUCKET)
    yield {**AWS_TEST_ENV, "AWS_ENDPOINT_URL_S3": endpoint}
    server.stop()


def document_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


WITH_SAMPLES = [document for document in documents()
                if any(sample.not_run is None for sample in samples(document))]
WITH_TEST_FILES = [document for document in WITH_SAMPLES
                   if any(Path(sample.file or "").name.startswith("test_")
                          for sample in samples(document))]


@pytest.mark.parametrize("document", WITH_SAMPLES, ids=document_id)
def test_every_python_sample_runs(
    document: Path, tmp_path: Path, s3_environment: dict[str, str]
) -> None:
    found = [sample for sample in samples(document) if sample.not_run is None]
    write_file_samples(document, tmp_path)
    batch = tmp_path / "samples.json"
    batch.write_text(json.dumps([[sample.where(), sample.code] for sample in found]))
    env = {key: value for key, value in os.environ.items() if key not in AWS_UNSET}
    env.update(s3_environment, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", RUNNER, str(batch)], capture_output=True,
                            text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-4000:]


def write_file_samples(document: Path, root: Path) -> list[str]:
    """Write `document`'s file samples under `root`; return the test files among them."""
    tests = []
    for sample in samples(document):
        if sample.file is not None and sample.not_run is None:
            path = root / sample.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(sample.code)
            if Path(sample.file).name.startswith("test_"):
                tests.append(sample.file)
    return tests


@pytest.mark.slow
@pytest.mark.parametrize("document", WITH_TEST_FILES, ids=document_id)
def test_every_test_file_sample_passes_every_case(
    document: Path, tmp_path: Path, s3_environment: dict[str, str]
) -> None:
    """A sample that is a test file (`# tests/test_x.py`) is run by pytest, as its reader
    would run it, with the other file samples of its document importable."""
    tests = write_file_samples(document, tmp_path)
    env = {key: value for key, value in os.environ.items() if key not in AWS_UNSET}
    env.pop("AGENTWORLD_LOAD_PLUGINS", None)
    env.update(PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-rs", *tests], capture_output=True, text=True, timeout=600,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary


def test_the_samples_are_found() -> None:
    assert {ROOT / "docs" / "stores.md", ROOT / "docs" / "testing.md"} <= set(WITH_TEST_FILES)
    assert len(WITH_SAMPLES) >= 8


def test_samples_that_do_not_run_are_few_and_say_why() -> None:
    skipped = [sample for document in documents() for sample in samples(document)
               if sample.not_run is not None]
    assert len(skipped) <= 2, [sample.where() for sample in skipped]
    assert all(sample.not_run and sample.not_run.strip() for sample in skipped)


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("document", documents(), ids=document_id)
def test_documents_refer_only_to_what_the_repository_holds(document: Path) -> None:
    text = document.read_text()
    assert re.search(r"\bSPEC\b", text) is None and "shared/" not in text
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        resolved = (document.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{target} leaves the repository"
        assert resolved.exists(), f"{target} does not exist"
    for quoted in re.findall(r"`((?:docs|tests|benchmarks|agentworld|plugins|backends)/[\w./-]+)`",
                             text):
        assert (ROOT / quoted.rstrip(".")).exists(), f"{quoted} does not exist"


API_ROW = re.compile(r"^\| `([\w.]+)` \| `([\w.]+)` \|", re.M)

# Modules whose every public class and function must be in docs/api.md.
FULLY_DOCUMENTED = (
    "agentworld.errors", "agentworld.executor", "agentworld.compat", "agentworld.manager",
    "agentworld.store", "agentworld.world", "agentworld.versions", "agentworld.upgrade_check",
    "agentworld.testing.store_contract", "agentworld.testing.pytest_plugin",
    "agentworld.wasm_info", "agentworld.commits", "agentworld.live", "agentworld.live_dir",
)


def api_rows() -> list[tuple[str, str]]:
    return API_ROW.findall((ROOT / "docs" / "api.md").read_text())


def test_every_name_in_the_api_reference_imports_from_its_path() -> None:
    rows = api_rows()
    assert len(rows) == len(set(rows))
    for name, module in rows:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"
    listed = {f"{module}.{name}" for name, module in rows}
    for required in ("agentworld.manager.PluginManager", "agentworld.executor.ExecutorConfig",
                     "agentworld.compat.Violation", "agentworld.compat.CompatContext",
                     "agentworld.World", "agentworld.hookimpl"):
        assert required in listed


@pytest.mark.parametrize("module_name", FULLY_DOCUMENTED)
def test_every_public_name_of_the_api_modules_is_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    listed = {name for name, module_path in api_rows() if module_path == module_name}
    public = {name for name, value in vars(module).items()
              if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
              and getattr(value, "__module__", None) == module_name}
    assert public <= listed, sorted(public - listed)
