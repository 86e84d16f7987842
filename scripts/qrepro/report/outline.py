"""The report's outline: templates/outline.yaml, its sections numbered as LaTeX numbers them."""
from __future__ import annotations

from pathlib import Path


def load_outline(path: str, shown: dict[str, bool] | None = None) -> dict:
    """templates/outline.yaml with every section numbered as LaTeX numbers it (1, 1.1, 1.1.1; the appendix A, A.1):
    the HTML report shows these numbers, and section_ref links use them. A section with `when: NAME` is left out
    unless shown[NAME] is true (sweeps: only when a sweep has been run)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    numbers: dict[str, str] = {}
    outline = {}
    for part, first in (("sections", 1), ("appendix", "A")):
        counters: list = []
        sections = []
        for section in data[part]:
            if section.get("when") and not (shown or {}).get(section["when"]):
                continue
            level = section["level"]
            counters = counters[:level]
            if len(counters) < level:
                counters += [0] * (level - len(counters))
            counters[level - 1] += 1
            head = counters[0] if first == 1 else chr(ord("A") + counters[0] - 1)
            number = ".".join([str(head)] + [str(c) for c in counters[1:]])
            content = [{"prose": None, "list": None, "note": None, "tables": None, "block": None, **item}
                       for item in section.get("content", [])]
            sections.append({"id": None, **section, "number": number, "content": content})
            if section.get("id"):
                numbers[section["id"]] = number
        outline[part] = sections
    outline["numbers"] = numbers
    return outline
