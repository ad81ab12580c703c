"""Typed errors. Every error a user can cause is an `L2VError` with a one-line message and a hint.

The CLIs print `error: <message>` (and the hint) and exit with `exit_code`; `--debug` shows tracebacks.
"""
from __future__ import annotations


class L2VError(Exception):
    """Base class: a one-line, user-facing message plus an optional hint on what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint
        self._init = (message, hint)

    def __reduce__(self):  # pickled whole (a Ray actor's error reaches the driver as itself)
        return type(self), self._init

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg} ({self.hint})" if self.hint else msg


class InputError(L2VError, ValueError):
    """A bad argument or bad text input."""


class ModelLoadError(L2VError):
    """MODEL is missing, unreadable, corrupt, or not available offline."""


class UnsupportedArchitectureError(L2VError):
    """The model's architecture is not one we can make bidirectional."""


class UnsupportedModuleError(L2VError):
    """A sentence-transformers folder holds a module or a setting the export cannot reproduce."""


class AdapterError(L2VError):
    """A LoRA adapter does not fit the base model or is malformed."""


class ValidationError(L2VError):
    """An exported graph disagrees with the PyTorch reference beyond tolerance."""

    exit_code = 3


class ArtifactError(L2VError):
    """The artifact directory is missing, malformed, or would be overwritten."""


class StorageError(ArtifactError):
    """The file system refused a read or write (no space, read-only, permission, a path under a file, a
    file-size limit): the message names the path and the operating system's own words."""


class ResourceError(L2VError):
    """The plan needs more disk or memory than there is (checked before anything is written)."""


class OptionalDependencyError(L2VError, ImportError):
    """An optional backend (triton, tensorrt, onnxruntime-gpu, bitsandbytes) is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the optional package '{package}', which is not installed",
            hint=f"install it with: pip install 'l2v-export[{extra}]'",
        )
        self.package = package
        self._init = (package, extra, purpose)


class RowError(InputError):
    """A bad input row of a corpus (`l2v-embed`): the message names the file and the line or row."""

    def __init__(self, where: str, reason: str, hint: str | None = None):
        super().__init__(f"{where}: {reason}", hint=hint or "fix the row, or pass --on-error skip to skip bad rows")
        self.where, self.reason = where, reason
        self._init = (where, reason, hint)


class JobChangedError(InputError):
    """`l2v-embed` was asked to resume a job whose artifact, variant, inputs or options changed."""
