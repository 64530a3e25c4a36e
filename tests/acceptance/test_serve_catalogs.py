"""`hubmap serve` reads a mapping's catalogs when it starts, and again when a catalog file
changes - without a restart: the next webhook is looked up in the new catalog."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hubmap.serve import Service, load_config
from tests.acceptance.test_serve import (
    FAST_WORKER,
    contacts,
    hubspot_env,
    jobs,
    post_shopify,
    sandbox,  # noqa: F401  (the fixture)
    shopify_order,
    wait_for,
)
from tests.conftest import MAPPINGS


def _config(folder: Path, mapping: Path) -> Path:
    lines = [
        "listen: {host: 127.0.0.1, port: 0, threads: 2}",
        f"state: {folder / 'state.db'}",
        f"queue: {folder / 'queue.db'}",
        "worker:",
    ]
    lines += [f"  {key}: {value}" for key, value in FAST_WORKER.items()]
    lines += [
        "routes:",
        "  /shopify:",
        "    auth: shopify",
        "    secret_env: SHOPIFY_SECRET",
        f"    mappings: [{mapping}]",
    ]
    path = folder / "serve.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_changed_catalog_file_is_read_again_without_a_restart(tmp_path: Path, sandbox) -> None:  # noqa: F811
    mapping = tmp_path / "shopify-orders-contacts.yaml"
    shutil.copy(MAPPINGS / "shopify-orders-contacts.yaml", mapping)
    shutil.copytree(MAPPINGS / "examples" / "shopify", tmp_path / "examples" / "shopify")
    catalog = tmp_path / "examples" / "shopify" / "product.json"
    service = Service(load_config(str(_config(tmp_path, mapping))), hubspot_env(sandbox)).start()
    try:
        assert post_shopify(service, shopify_order(1, "first@example.com"), "d-1").ok
        wait_for(lambda: jobs(service).get("sent") == 1)
        assert contacts(sandbox)["first@example.com"]["categories_bought"] == "Cult Products"

        product = json.loads(catalog.read_text())
        product["product"]["product_type"] = "Music Players"
        catalog.write_text(json.dumps(product))
        later = os.stat(catalog).st_mtime + 5  # a new file, even within the clock's resolution
        os.utime(catalog, (later, later))

        assert post_shopify(service, shopify_order(2, "second@example.com"), "d-2").ok
        wait_for(lambda: jobs(service).get("sent") == 2)
        assert contacts(sandbox)["second@example.com"]["categories_bought"] == "Music Players"
    finally:
        service.stop()
