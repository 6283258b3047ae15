"""Extract the part of the official ElevenLabs OpenAPI spec that the simulator serves.

Usage (from the repo root)::

    uv run --no-sync python services/elevenlabs-sim/scripts/extract_spec.py [FULL_SPEC]

FULL_SPEC defaults to ``/work/shared/reference/elevenlabs-openapi.json`` or
``<repo>/../shared/reference/elevenlabs-openapi.json``. The operations are taken from the app's
routes, so re-run this after adding a router and commit the regenerated
``src/elevenlabs_sim/openapi_subset.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SUBSET_PATH = PACKAGE_DIR / "src" / "elevenlabs_sim" / "openapi_subset.json"
REPO_ROOT = PACKAGE_DIR.parents[1]
SPEC_CANDIDATES = [
    Path("/work/shared/reference/elevenlabs-openapi.json"),
    REPO_ROOT.parent / "shared" / "reference" / "elevenlabs-openapi.json",
]
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def find_full_spec() -> Path | None:
    return next((p for p in SPEC_CANDIDATES if p.is_file()), None)


def served_operations() -> dict[str, set[str]]:
    """``{openapi_path: {method, ...}}`` for every upstream route the app serves."""
    from fastapi.routing import APIRoute

    from elevenlabs_sim.app import API_ROUTERS

    # The routers carry their full prefix themselves, so their routes' paths are the upstream
    # paths regardless of how FastAPI represents included routers inside the app.
    operations: dict[str, set[str]] = {}
    for router in API_ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path_format.startswith("/v1/"):
                operations.setdefault(route.path_format, set()).update(m.lower() for m in route.methods or ())
    return operations


def _collect_refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            out.add(ref)
        for value in node.values():
            _collect_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _collect_refs(value, out)


def _resolve_pointer(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def extract(full: dict[str, Any], operations: dict[str, set[str]]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path in sorted(operations):
        item = full["paths"].get(path)
        if item is None:
            raise SystemExit(f"{path} is served by the simulator but missing from the spec")
        kept = {k: v for k, v in item.items() if k not in _METHODS or k in operations[path]}
        missing = operations[path] - set(item) - {"head", "options"}
        if missing:
            raise SystemExit(f"{sorted(missing)} {path} is served by the simulator but missing from the spec")
        paths[path] = kept

    # Transitive closure over component references.
    pending: set[str] = set()
    _collect_refs(paths, pending)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        found: set[str] = set()
        _collect_refs(_resolve_pointer(full, ref), found)
        pending |= found - seen

    components: dict[str, dict[str, Any]] = {}
    for ref in sorted(seen):
        _, section, name = ref.removeprefix("#/").split("/", 2)
        components.setdefault(section, {})[name] = _resolve_pointer(full, ref)
    return {
        "openapi": full["openapi"],
        "info": {**full.get("info", {}), "x-subset-of": "official ElevenLabs OpenAPI spec"},
        "paths": paths,
        "components": components,
    }


def render(subset: dict[str, Any]) -> str:
    return json.dumps(subset, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else find_full_spec()
    if source is None or not source.is_file():
        print("full ElevenLabs OpenAPI spec not found; pass its path", file=sys.stderr)
        return 2
    full = json.loads(source.read_text("utf-8"))
    text = render(extract(full, served_operations()))
    SUBSET_PATH.write_text(text, "utf-8")
    print(f"wrote {SUBSET_PATH} ({len(text)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
