"""Markdown to the HTML subset Qt's rich text draws, with highlighted code blocks and no raw HTML from the model."""

from __future__ import annotations

import html
import re

import markdown
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

CODE_BACKGROUND = "#f3f4f6"
CODE_STYLE = "friendly"
_CODE_BLOCK = re.compile(r'<pre><code(?: class="language-([\w+#.-]+)")?>(.*?)</code></pre>', re.S)
_FORMATTER = HtmlFormatter(nowrap=True, noclasses=True, style=CODE_STYLE)


def _highlight(match: re.Match[str]) -> str:
    """Qt draws a one-cell table's background reliably, so code blocks become one."""
    language, escaped = match.group(1), match.group(2)
    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    body = highlight(html.unescape(escaped), lexer, _FORMATTER).rstrip("\n")
    return (
        f'<table width="100%" cellpadding="8" cellspacing="0" bgcolor="{CODE_BACKGROUND}">'
        f"<tr><td><pre>{body}</pre></td></tr></table>"
    )


def _converter() -> markdown.Markdown:
    """Raw HTML is switched off: a model's output is text, never markup that could restyle or spoof the app."""
    converter = markdown.Markdown(extensions=["fenced_code", "tables", "sane_lists"])
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    return converter


_MARKDOWN = _converter()


def to_html(text: str) -> str:
    """Renders one message; safe to call on a half-streamed answer."""
    _MARKDOWN.reset()
    return _CODE_BLOCK.sub(_highlight, _MARKDOWN.convert(text))
