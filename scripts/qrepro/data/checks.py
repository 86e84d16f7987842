"""Input data checked at the door: every problem is one message naming the file (or dataset and split),
what is wrong with it and how to fix it.

The corpus rule runs these before it writes anything, so a bad split never reaches the tokenizer.
No torch here; pyarrow and datasets only where a check needs them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

FINETUNE_SPLITS = ("train", "validation", "test")
OPTIONAL_SPLITS = ("pretrain",)

# Long-row heuristic for the corpus rule, which has no tokenizer: BPE tokenizers on English prose average
# about 4 characters per token, so a row of more than 2 * 4 * max_length characters is estimated at more
# than twice max_length tokens, and truncation to max_length (the paper protocol) drops most of it.
CHARS_PER_TOKEN = 4
LONG_ROW_FACTOR = 2
# A .txt file whose bytes are more than this fraction of control bytes (not tab, line feed, vertical tab,
# form feed or carriage return) is not text.
CONTROL_BYTE_LIMIT = 0.05
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\x0b\x0c\r") + b"\x7f"
_STRING_DTYPES = ("string", "large_string", "string_view")
ROW_TERMINATOR = b"\xff"  # never occurs in UTF-8, so it cannot be confused with row content


class DataValidationError(ValueError):
    """Input data that must not go further; the message names the file, the problem and the fix."""


def long_row_chars(max_length: int) -> int:
    return LONG_ROW_FACTOR * CHARS_PER_TOKEN * max_length


def is_blank(text: str) -> bool:
    """The paper's notion of an empty row (qrepro.data.splits.non_empty keeps the others)."""
    return not text.strip()


# --- files of data.source: local -------------------------------------------------------------------------

def local_split_files(directory: str | Path, need_pretrain: bool = False) -> dict[str, Path]:
    """train/validation/test (required) and pretrain (required when the base model is pretrained on it,
    optional otherwise), each as exactly one .txt or .parquet."""
    folder = Path(directory)
    if not folder.is_dir():
        raise DataValidationError(f"data.local_dir {folder} is not a directory; point it at a folder holding "
                                  "train, validation and test as .txt or .parquet files")
    files = {}
    for split in FINETUNE_SPLITS + OPTIONAL_SPLITS:
        found = [folder / f"{split}{ext}" for ext in (".txt", ".parquet") if (folder / f"{split}{ext}").exists()]
        if len(found) == 2:
            raise DataValidationError(f"data.local_dir {folder} has both {split}.txt and {split}.parquet; "
                                      "keep only the one that holds the split")
        if found:
            if not found[0].is_file():
                raise DataValidationError(f"{found[0]} is not a regular file; put the {split} split in it")
            files[split] = found[0]
        elif split in FINETUNE_SPLITS:
            raise DataValidationError(f"data.local_dir {folder} has no {split}.txt or {split}.parquet; "
                                      f"add the {split} split as one of them")
        elif need_pretrain:
            raise DataValidationError(
                f"data.local_dir {folder} has no pretrain.txt or pretrain.parquet, which model.source: pretrain "
                "needs (the text the base model is pretrained on, kept apart from the fine-tuning splits); add "
                "one, or use model.source: hub or local")
    return files


def check_text_file(path: str | Path) -> list[str]:
    """A .txt split: non-empty, text rather than binary, valid UTF-8. Returns warnings (a byte-order mark)."""
    path = Path(path)
    data = path.read_bytes()
    if not data:
        raise DataValidationError(f"{path} is empty (0 bytes); each split needs at least one non-empty row: "
                                  "put the text in it, one row per line")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataValidationError(
            f"{path} looks binary, not text: NUL byte at byte offset {nul} (line {_line_of(data, nul)}); "
            "a .txt split must be plain UTF-8 text, one row per line (UTF-16 text and compressed files have "
            "NUL bytes: re-encode it as UTF-8 or decompress it)")
    control = sum(data.count(bytes([b])) for b in _CONTROL)
    if control > CONTROL_BYTE_LIMIT * len(data):
        raise DataValidationError(
            f"{path} looks binary, not text: {control} of its {len(data)} bytes are control bytes "
            f"(more than {CONTROL_BYTE_LIMIT:.0%}); a .txt split must be plain UTF-8 text, one row per line")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = _line_of(data, err.start)
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataValidationError(
            f"{path} is not valid UTF-8: byte 0x{data[err.start]:02x} at byte offset {err.start} "
            f"(line {line}, byte {column} of the line) cannot be decoded ({err.reason}); re-encode the file "
            f"as UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8.txt") from None
    if data.startswith(b"\xef\xbb\xbf"):
        return [f"{path} starts with a UTF-8 byte-order mark, which stays in the first row's text "
                "(remove it to keep the row as written)"]
    return []


def check_parquet_file(path: str | Path) -> None:
    """A .parquet split: readable as parquet, with a string column named 'text'."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise DataValidationError(f"{path} is not a readable parquet file ({err}); write the split with "
                                  "pandas.DataFrame.to_parquet or datasets.Dataset.to_parquet") from None
    if "text" not in schema.names:
        found = ", ".join(schema.names) or "none"
        raise DataValidationError(f"{path} has no 'text' column (columns found: {found}); rename the column "
                                  "that holds the rows to 'text'")
    dtype = schema.field("text").type
    if not (pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
            or getattr(pa.types, "is_string_view", lambda _: False)(dtype)):
        raise DataValidationError(f"{path} column 'text' holds {dtype}, not strings; store each row's text "
                                  "as a string")


def check_local_file(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        check_parquet_file(path)
        return []
    return check_text_file(path)


# --- rows, whatever the source ---------------------------------------------------------------------------

def check_text_column(features, where: str, fix: str) -> None:
    """The loaded split has a string 'text' column."""
    if "text" not in features:
        found = ", ".join(features) or "none"
        raise DataValidationError(f"{where} has no 'text' column (columns found: {found}); {fix}")
    feature = features["text"]
    dtype = getattr(feature, "dtype", None)
    if dtype not in _STRING_DTYPES:
        raise DataValidationError(f"{where} column 'text' holds {feature}, not strings; {fix}")


def check_rows(texts: Sequence, where: str) -> None:
    """No null rows, and at least one row that is not blank."""
    nulls = [i for i, t in enumerate(texts) if t is None]
    if nulls:
        raise DataValidationError(f"{where} has {len(nulls)} rows whose text is null (first: row {nulls[0] + 1}, counting from 1); "
                                  "drop them or replace them with empty strings")
    if not texts:
        raise DataValidationError(f"{where} has no rows; each split needs at least one non-empty row")
    if all(is_blank(t) for t in texts):
        raise DataValidationError(f"{where} has {len(texts)} rows and every one is blank (only whitespace); "
                                  "each split needs at least one non-empty row: put the split's text in it")


def long_rows_warning(texts: Sequence[str], where: str, max_length: int) -> str | None:
    """Rows so long that truncation to max_length tokens would drop most of them (character heuristic)."""
    limit = long_row_chars(max_length)
    lengths = [len(t) for t in texts]
    long = [i for i, n in enumerate(lengths) if n > limit]
    if not long:
        return None
    non_empty = sum(1 for t in texts if not is_blank(t))
    longest = max(long, key=lambda i: lengths[i])
    return (f"{where}: {len(long)} of {non_empty} non-empty rows longer than {limit} characters "
            f"(about {LONG_ROW_FACTOR} x data.max_length={max_length} tokens at ~{CHARS_PER_TOKEN} characters "
            f"per token; longest: row {longest + 1} counting from 1, {lengths[longest]} characters); truncation to max_length "
            "drops most of each. Raise data.max_length, split those rows, or set data.packing: true")


def check_splits(raw, where: Callable[[str], str], fix: str, max_length: int | None = None,
                 packing: bool = False) -> list[str]:
    """Every check on a loaded DatasetDict; raises on the first problem, returns the warnings."""
    missing = [s for s in FINETUNE_SPLITS if s not in raw]
    if missing:
        raise DataValidationError(f"{where(missing[0])} does not exist (splits found: {', '.join(raw) or 'none'}); "
                                  f"{fix}")
    warnings = []
    for split in [s for s in FINETUNE_SPLITS + OPTIONAL_SPLITS if s in raw]:
        check_text_column(raw[split].features, where(split), fix)
        texts = list(raw[split]["text"])  # a datasets Column: one list, iterated several times
        check_rows(texts, where(split))
        # the pretraining portion is always packed, so nothing of it is truncated
        if max_length and not packing and split in FINETUNE_SPLITS:
            warning = long_rows_warning(texts, where(split), max_length)
            if warning:
                warnings.append(warning)
    return warnings


# --- facts for the data card -----------------------------------------------------------------------------

def rows_sha256(texts: Iterable[str]) -> str:
    """SHA-256 over each row's UTF-8 bytes followed by the byte 0xFF, in order. 0xFF never occurs in UTF-8,
    so row boundaries are unambiguous ([] and [""] differ; line breaks stay part of the rows as loaded)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(ROW_TERMINATOR)
    return digest.hexdigest()


def row_counts(texts: Sequence[str]) -> dict[str, int]:
    return {"rows": len(texts), "empty_rows": sum(1 for t in texts if is_blank(t)),
            "characters": sum(len(t) for t in texts)}


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1
