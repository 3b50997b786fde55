"""Errors raised while generating class texts with an LLM."""


class GenerationError(RuntimeError):
    """The texts of a class could not be obtained."""


class AnswerError(GenerationError):
    """The model's answer is malformed or has too few valid texts."""


class RequestError(GenerationError):
    """The endpoint could not be reached or kept failing."""


class OutputError(GenerationError):
    """The generated document is not a class-text file training can load."""
