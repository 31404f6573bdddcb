"""Registries: the names a person types (``--method htd``, ``--model neumf``) and the
classes they stand for. A name is part of run folder names, so htdviz's own names cannot
be given to another class; any other name can be registered again (a notebook cell run
twice replaces its class)."""
from __future__ import annotations


class Registry:
    """name -> class for one kind of thing (``kind`` "method" or "model").

    Parameters
    ----------
    kind : str
        What the names name, for messages.
    base : type
        The class every registered class subclasses.
    register_with : str
        The function a person registers with, for messages.
    extra_characters : str, default ""
        Characters allowed in a name besides letters, digits, ``_`` and ``-``.
    """

    def __init__(self, kind: str, base: type, register_with: str,
                 extra_characters: str = ""):
        self.kind, self.base, self.register_with = kind, base, register_with
        self.extra_characters = extra_characters
        self.classes: dict[str, type | None] = {}
        self.built_in: set[str] = set()

    def register(self, name: str, cls: type | None, built_in: bool = False,
                 allow_none: bool = False) -> None:
        """Make ``cls`` the class of ``name`` (``allow_none``: None is a valid class)."""
        allowed = "_-" + self.extra_characters
        if not isinstance(name, str) or not name or \
                not name.translate({ord(c): None for c in allowed}).isalnum():
            quoted = ", ".join(f"'{c}'" for c in allowed)
            raise ValueError(f"{self.kind} name must be letters, digits, {quoted}, got "
                             f"{name!r}")
        if name in self.built_in and self.classes.get(name) is not cls:
            raise ValueError(f"{self.kind} {name!r} is built into htdviz; register yours "
                             f"under another name")
        if not (cls is None and allow_none) and \
                not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise ValueError(f"{self.kind} {name!r}: cls must be a subclass of "
                             f"{self.base.__module__.rsplit('.', 1)[0]}.{self.base.__name__}, "
                             f"got {cls!r}")
        self.classes[name] = cls
        if built_in:
            self.built_in.add(name)

    def get(self, name: str):
        """The class registered as ``name``; ValueError listing the registered names."""
        if name not in self.classes:
            raise ValueError(f"{self.kind} must be one of {self.names()}, got {name!r} "
                             f"(register a {self.kind} of your own with "
                             f"{self.register_with})")
        return self.classes[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, in the order they were registered."""
        return tuple(self.classes)
