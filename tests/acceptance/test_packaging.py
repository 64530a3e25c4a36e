"""The JSON Schema editors point at (schemas/) is the one inside the installed package, and an
installed hubmap finds it when run from another folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from hubmap.mapping.schema import mapping_schema
from tests.conftest import ROOT

SCHEMA = ROOT / "schemas" / "mapping.schema.json"


def test_schema_is_a_valid_2020_12_schema_with_descriptions():
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert mapping_schema() == schema

    def walk(node, path):
        """Check a schema node, then each schema below it."""
        if not isinstance(node, dict):
            return
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}/properties/{key} has no description"
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} allows unknown keys"
        children = list(node.get("properties", {}).items()) + list(node.get("$defs", {}).items())
        for key in ("items", "additionalProperties", "then", "else"):
            if isinstance(node.get(key), dict):
                children.append((key, node[key]))
        for key in ("oneOf", "anyOf"):
            children += [(f"{key}/{i}", sub) for i, sub in enumerate(node.get(key, []))]
        for key, sub in children:
            walk(sub, f"{path}/{key}")

    walk(schema, "#")


@pytest.mark.slow
def test_an_installed_hubmap_finds_its_schema_from_another_folder(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # the machine has the package index: a wheel that cannot be built is a broken package
    assert built.returncode == 0, f"the wheel could not be built: {built.stderr[-2000:]}"
    wheel = next((tmp_path / "dist").glob("hubmap-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "hubmap/schemas/mapping.schema.json" in archive.namelist()
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, hubmap.mapping.schema as s; "
            "print(s.__file__); print(json.dumps(s.mapping_schema()))",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    module_file, schema_text = done.stdout.splitlines()
    assert module_file.startswith(str(site))
    assert json.loads(schema_text) == json.loads(SCHEMA.read_text())
    # the shipped mappings and their example files are in the wheel: `hubmap init` copies them
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "mappings").glob("*.yaml"))
    assert (
        sorted(
            n.split("/")[-1]
            for n in names
            if n.startswith("hubmap/shipped/") and n.endswith(".yaml")
        )
        == shipped
    )
    assert "hubmap/shipped/examples/shopify/product.json" in names
    (elsewhere / "order.json").write_text(
        json.dumps({"id": 1, "financial_status": "paid", "total_price": "1.00", "currency": "EUR"})
    )
    started = subprocess.run(
        [sys.executable, "-m", "hubmap.cli", "init", "order.json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert (elsewhere / "mappings" / "examples" / "shopify" / "product.json").is_file()
    assert "default: EUR" in (elsewhere / "mappings" / "shopify-orders-contacts.yaml").read_text()
