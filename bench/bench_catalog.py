"""Benchmark: load a 100,000-product catalog as a mapping does, and how long and how much memory.

Writes a Shopify-shaped `products.json` ({"products": [...]}, each product with 1-3 variants, a
handle, a type, a vendor and images), then - in a process of its own, so the figure is the
load's alone - loads it the way `hubmap run` does (`catalogs.products: {file, path: products,
each: variants, key: sku}`) and looks every SKU up once.  Prints the load time, the look-ups per
second and the peak memory, and what the catalog adds to it; exits 1 when the load takes over
`--max-seconds` or the catalog adds over `--max-mib` (the targets: seconds, and about 100 MB).

    PYTHONPATH=engine python bench/bench_catalog.py [--products 100000]

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAPPING = """\
version: 1
name: catalog-bench
catalogs:
  products:
    file: products.json
    path: products
    each: variants
    key: sku
records:
  id: id
  time: at
  contact: email
target:
  kind: contacts
  match_on: email
properties:
  categories_bought:
    label: Categories bought
    type: string
    from: "lookup('products', line_items[].sku)[].parent.product_type"
    merge: prepend
"""

TYPES = ["Shoes", "Bags", "Shirts", "Hats", "Socks", "Watches", "Toys", "Books"]


def write_catalog(folder: Path, products: int) -> int:
    rng = random.Random(7)
    variants = 0
    items = []
    for number in range(products):
        count = rng.randint(1, 3)
        variants += count
        items.append(
            {
                "id": 1_000_000 + number,
                "title": f"Product {number}",
                "handle": f"product-{number}",
                "product_type": rng.choice(TYPES),
                "vendor": f"Brand {number % 97}",
                "images": [{"src": f"https://cdn.example.com/p/{number}.jpg"}],
                "variants": [
                    {
                        "id": 5_000_000 + number * 3 + v,
                        "sku": f"SKU-{number}-{v}",
                        "price": f"{rng.randrange(100, 20_000) / 100:.2f}",
                    }
                    for v in range(count)
                ],
            }
        )
    (folder / "products.json").write_text(json.dumps({"products": items}), encoding="utf-8")
    (folder / "catalog.yaml").write_text(MAPPING, encoding="utf-8")
    return variants


def load(folder: Path) -> dict[str, float]:
    """In this process: load the catalog as a run does, look every key up once."""
    from hubmap.catalogs import load_catalogs
    from hubmap.mapping import load_mapping

    mapping = load_mapping(folder / "catalog.yaml")
    before = _peak_mib()  # the interpreter and hubmap, before the catalog
    started = time.perf_counter()
    catalogs = load_catalogs(mapping)
    seconds = time.perf_counter() - started
    catalog = catalogs["products"]
    keys = list(catalog.rows)
    started = time.perf_counter()
    found = sum(1 for key in keys if catalog.get(key) is not None)
    lookup_seconds = time.perf_counter() - started
    peak = _peak_mib()
    return {
        "rows": len(keys),
        "found": found,
        "seconds": round(seconds, 2),
        "lookups_per_second": round(len(keys) / max(lookup_seconds, 1e-9)),
        "peak_mib": round(peak, 1),
        "catalog_mib": round(peak - before, 1),
    }


def _peak_mib() -> float:
    """This process's peak resident memory: VmHWM (per address space, so a child started by
    the process that wrote the catalog does not inherit its figure, as ru_maxrss does)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--max-mib", type=float, default=100.0)
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the child: load this folder
    args = parser.parse_args()
    if args.load:
        print(json.dumps(load(Path(args.load))))
        return 0
    with tempfile.TemporaryDirectory(prefix="hubmap-bench-catalog-") as tmp:
        folder = Path(tmp)
        variants = write_catalog(folder, args.products)
        size = (folder / "products.json").stat().st_size
        done = subprocess.run(
            [sys.executable, __file__, "--load", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 2
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"catalog: {args.products:,} products, {variants:,} variants (rows), "
        f"{size / 2**20:.1f} MiB of JSON"
    )
    print(
        f"load: {figures['seconds']} s; look-ups: {figures['lookups_per_second']:,}/s "
        f"({figures['found']:,} of {figures['rows']:,} found)"
    )
    print(
        f"peak memory of the loading process: {figures['peak_mib']} MiB, of which the catalog "
        f"{figures['catalog_mib']} MiB (the rest: Python and hubmap before loading)"
    )
    ok = figures["seconds"] <= args.max_seconds and figures["catalog_mib"] <= args.max_mib
    print(
        "targets met" if ok else f"TARGETS MISSED (<= {args.max_seconds} s, <= {args.max_mib} MiB)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
