"""A file's bytes as text (a BOM tolerated, a decoding error naming its line) and as physical lines."""
from __future__ import annotations

import os

from .table import DataFormatError


def decode_text(path: str | os.PathLike, data: bytes, encoding: str = "utf-8", hint: str = "") -> str:
    """`data` decoded (UTF-8: a leading BOM dropped); undecodable bytes raise DataFormatError naming the line,
    followed by `hint` (what to do about it)."""
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        return data.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not valid {'UTF-8' if utf8 else encoding} ({err.reason})"
                              + (f"; {hint}" if hint else "")) from None
    except LookupError:
        raise DataFormatError(f"{path}: unknown encoding {encoding!r}" + (f"; {hint}" if hint else "")) from None


def physical_lines(text: str) -> list[str]:
    """Lines as an editor numbers them: split at LF only (str.splitlines also splits at U+2028 and other separators
    that may sit inside a text, or a JSON string), CR of CRLF removed, no empty line after the final line end."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
