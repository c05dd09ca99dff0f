"""Errors raised for bad input files: each names the file, the field and what was expected."""

from __future__ import annotations

from os import PathLike
from pathlib import Path


class FileFormatError(ValueError):
    """A file exists but its content is not what the reader expects.

    The message names the file, the field (or record) at fault, what was expected and what was found.
    """

    def __init__(self, path: str | PathLike, field: str, expected: str, found: str) -> None:
        self.path = str(path)
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(f"{self.path}: {field}: expected {expected}, found {found}")


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not match the model it is loaded into."""


def read_utf8(path: str | PathLike) -> str:
    """The text of a file that must be UTF-8.

    Raises:
        FileFormatError: bytes that are not UTF-8, with their offset.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FileFormatError(path, "text", "UTF-8 text", f"byte 0x{data[err.start]:02x} at offset {err.start}") from err
