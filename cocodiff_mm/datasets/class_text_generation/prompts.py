"""The prompts that ask an LLM for the coarse and fine texts of a class.

CoCoDiff guides its latent diffusion with two kinds of text per class (paper
Section IV-C, Figure 4): *fine* texts, detailed descriptions of the body
movement of the action, and *coarse* texts, the action label and its
synonyms.
"""

#: Prompt for the fine texts (detailed descriptions of the body movement).
FINE_PROMPT = (
    'Describe in detail the body movement of a person performing the action '
    '"{label}". Write {count} different descriptions, each one or two '
    'sentences of at most {max_words} words. Say which joints and limbs move, '
    'in which direction and how fast, and give the starting and ending pose. '
    'Do not describe the scene, the camera or the person\'s appearance. '
    'Answer only with a JSON list of {count} strings.')

#: Prompt for the coarse texts (the action label and its synonyms).
COARSE_PROMPT = (
    'Give the action label "{label}" and its synonyms: short phrases of at '
    'most {max_words} words that name the same action in other words. '
    'Answer only with a JSON list of {count} strings: the first string is '
    'exactly "{label}", followed by {num_synonyms} different synonyms.')

#: System message sent with both prompts.
SYSTEM_PROMPT = (
    'You write short, precise English texts about human body movement for a '
    'skeleton-based action recognition dataset. You answer with valid JSON '
    'only, without any other text.')

#: The two prompt kinds, as used in the cache keys.
PROMPT_KINDS = ('fine', 'coarse')

#: Word limits written into the prompts.
MAX_WORDS = {'fine': 45, 'coarse': 8}


def build_prompt(kind: str, label: str, count: int) -> str:
    """The user prompt asking for ``count`` texts of one class.

    Args:
        kind (str): ``'fine'`` or ``'coarse'``.
        label (str): The class label.
        count (int): Number of texts to ask for; for ``'coarse'`` the label
            itself is the first of them.

    Returns:
        str: The prompt.

    Raises:
        ValueError: If ``kind`` is not one of :data:`PROMPT_KINDS`.
    """
    if kind == 'fine':
        return FINE_PROMPT.format(
            label=label, count=count, max_words=MAX_WORDS['fine'])
    if kind == 'coarse':
        return COARSE_PROMPT.format(
            label=label,
            count=count,
            num_synonyms=count - 1,
            max_words=MAX_WORDS['coarse'])
    raise ValueError(
        f'prompt kind must be one of {PROMPT_KINDS}, got {kind!r}')
