"""Reading the JSON list of texts out of an LLM's answer."""
import json
from typing import List

from .errors import AnswerError


def parse_text_list(content: str, label: str, kind: str) -> List[str]:
    """Read the JSON list of strings in a model's answer.

    Accepted: a bare JSON list, one inside a Markdown code fence, one
    surrounded by other text, or an object with exactly one list value.

    Args:
        content (str): The answer's text.
        label (str): Class label, for error messages.
        kind (str): Prompt kind, for error messages.

    Returns:
        list[str]: The strings, stripped of surrounding white space.

    Raises:
        AnswerError: If no list of non-empty strings can be read; the message
            names the label and kind and quotes the start of the answer.
    """
    def fail(problem: str) -> AnswerError:
        return AnswerError(
            f'label {label!r}: {kind} answer {problem}; answer starts with '
            f'{content.strip()[:120]!r}')

    text = content.strip()
    if text.startswith('```'):
        text = text.split('\n', 1)[1] if '\n' in text else ''
        text = text.rsplit('```', 1)[0]
    try:
        value = json.loads(text)
    except ValueError:
        start, end = text.find('['), text.rfind(']')
        if start < 0 or end <= start:
            raise fail('is not a JSON list of strings') from None
        try:
            value = json.loads(text[start:end + 1])
        except ValueError:
            raise fail('is not a JSON list of strings') from None
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise fail('is a JSON object, not a list of strings')
        value = lists[0]
    if not isinstance(value, list):
        raise fail(f'is a JSON {type(value).__name__}, not a list of strings')
    if not value:
        raise fail('is an empty list')
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise fail(f'item {index} is {type(item).__name__} {item!r:.40}, '
                       f'not a string')
        if not item.strip():
            raise fail(f'item {index} is an empty string')
    return [' '.join(item.split()) for item in value]
