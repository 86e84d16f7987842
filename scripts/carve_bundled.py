"""Rule carve_bundled: the bundled real text (data/wikitext-2) carved at article headings into the splits of a
data.source: local folder (qrepro.data.bundled), after its files' SHA-256 are checked against SHA256SUMS."""
from pathlib import Path

from qrepro.data.bundled import carve
from qrepro.runlog import log_to

inp = snakemake.input  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    expected = dict(reversed(line.split()) for line in Path(inp.checksums).read_text().splitlines() if line.strip())
    record = carve(Path(inp.carved_file).parent, Path(inp.carved_file).name, Path(inp.test_file).name,
                   snakemake.params.shares, expected, snakemake.output.carved)  # noqa: F821
    print(record)
