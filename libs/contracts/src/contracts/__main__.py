"""`python -m contracts > schemas.json` prints the JSON Schema of every topic."""

import json

from contracts.registry import json_schemas

print(json.dumps(json_schemas(), indent=2, sort_keys=True))
