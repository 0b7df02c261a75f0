"""Write docs/configuration.md from serving.config.Settings (run after changing a setting).

    python scripts/settings_doc.py            # rewrite the page
    python scripts/settings_doc.py --check    # exit 1 if the page is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGE = ROOT / "docs" / "configuration.md"
HEADER = """# Configuration

Every setting is an environment variable `MODELSERVE_<NAME>` and a flag of
`modelserve serve` (`--name-with-dashes`); flags win over variables. Lists are JSON in a
variable (`MODELSERVE_WARMUP_BATCH_SIZES='[1,8,32]'`) and comma-separated as a flag;
`MODEL_BATCHING` is JSON in both. A model's manifest may set its own `batching`, which
`MODELSERVE_MODEL_BATCHING` overrides in turn.

This page is written by `python scripts/settings_doc.py` from `serving/config.py`.

| variable | flag | default | what it does |
|---|---|---|---|
"""


def _default(field: object) -> str:
    value = field.get_default(call_default_factory=True)  # type: ignore[attr-defined]
    if value is None:
        return "(none)"
    if isinstance(value, (list, dict)):
        return f"`{json.dumps(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def render() -> str:
    from serving.config import Settings

    rows = []
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `MODELSERVE_{name.upper()}` | `--{name.replace('_', '-')}` | "
                    f"{_default(field)} | {description} |")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is out of date: run python scripts/settings_doc.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
