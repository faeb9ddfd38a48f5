"""File bytes -> plain text for file_search ingestion.

Which parser runs is decided by the file name's extension (as OpenAI does),
with a sniff for PDFs and extension-less text. Failures raise ParseError with
OpenAI's `last_error.code`: `unsupported_file` (a type we cannot read) or
`invalid_file` (the right type, but broken or without any text).
"""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Literal

# Plain-text formats OpenAI's file_search accepts, plus a few obvious cousins.
TEXT_EXTENSIONS = frozenset({
    ".txt", ".md", ".markdown", ".rst", ".tex", ".csv", ".tsv", ".log", ".xml", ".yaml", ".yml",
    ".toml", ".ini", ".c", ".h", ".cpp", ".hpp", ".cc", ".cs", ".css", ".go", ".java", ".js",
    ".mjs", ".ts", ".tsx", ".jsx", ".php", ".py", ".rb", ".rs", ".sh", ".sql", ".swift", ".kt",
    ".scala", ".lua", ".r", ".pl",
})
HTML_EXTENSIONS = frozenset({".html", ".htm"})


class ParseError(Exception):
    def __init__(self, code: Literal["unsupported_file", "invalid_file"], message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def extract_text(filename: str, data: bytes) -> str:
    """The text of a file, or ParseError. Pure and deterministic (retries re-run it)."""
    ext = PurePosixPath(filename.lower()).suffix
    if ext == ".pdf" or data.startswith(b"%PDF-"):
        text = _pdf_text(data)
    elif ext in HTML_EXTENSIONS:
        text = _html_text(_decode(data))
    elif ext == ".json":
        text = _decode(data)
        try:
            json.loads(text)
        except ValueError as error:
            raise ParseError("invalid_file", f"The file is not valid JSON: {error}.") from None
    elif ext in TEXT_EXTENSIONS or ext == "":
        text = _decode(data)
    else:
        raise ParseError("unsupported_file",
                         f"Files with extension '{ext}' are not supported for file_search.")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ParseError("invalid_file", "No text could be extracted from the file.")
    return text


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError("invalid_file", "The file is not valid UTF-8 text.") from None
    if "\x00" in text:  # binary data that happens to decode
        raise ParseError("unsupported_file", "The file looks binary, not text.")
    return text


def _pdf_text(data: bytes) -> str:
    # Imported here: pypdf is only needed by the ingestion activity.
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as error:
        raise ParseError("invalid_file", f"The PDF could not be read: {error}.") from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


class _TextExtractor(HTMLParser):
    SKIP = frozenset({"script", "style", "noscript", "template"})
    BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
                       "section", "article", "pre", "table", "ul", "ol", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    text = "".join(extractor.parts)
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text)
