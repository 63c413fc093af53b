"""Errors raised by zview.

Every error is a :class:`ZViewError` and also the builtin a caller would catch: a missing store
is a ``FileNotFoundError``, an index out of range an ``IndexError``, and so on. Each names the
store, the key and the offending value, and keeps them as attributes.

Examples
--------
>>> from zview.errors import IndexOutOfRangeError
>>> try:
...     raise IndexOutOfRangeError("views/seq", 31, 24, store="/data/view")
... except IndexError as e:
...     print(e.key, e.value)
views/seq 31
"""

from __future__ import annotations

__all__ = [
    "BaseBuildError",
    "CorruptStoreError",
    "IncompleteStoreError",
    "IndexOutOfRangeError",
    "LoaderError",
    "MetaError",
    "MissingChunkError",
    "MissingFileError",
    "MissingLabelError",
    "ReadOnlyStoreError",
    "RenderRequiredError",
    "StaleRenderError",
    "StorageOptionsError",
    "StoreAccessError",
    "StoreExistsError",
    "StoreNotFoundError",
    "StoreUnreachableError",
    "UntrustedBaseError",
    "ViewError",
    "ZViewError",
]


class ZViewError(Exception):
    """Base of every zview error.

    Parameters
    ----------
    message
        What went wrong and how to fix it.
    store
        The location of the store concerned, if any.
    key
        The key (label path, view path, ``meta.yaml`` key) concerned, if any.
    value
        The offending value, if any.
    """

    def __init__(self, message: str, *, store: object = None, key: object = None,
                 value: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.store = store
        self.key = key
        self.value = value

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        where = f" [store: {self.store}]" if self.store is not None else ""
        return f"{self.message}{where}"

    def __reduce__(self):  # keep attributes across processes (DataLoader workers)
        return (_rebuild, (type(self), self.message, self.store, self.key, self.value),
                self.__dict__)


def _rebuild(cls, message, store, key, value):
    err = ZViewError.__new__(cls)
    ZViewError.__init__(err, message, store=store, key=key, value=value)
    return err


class StoreNotFoundError(ZViewError, FileNotFoundError):
    """No store (no ``meta.yaml``) at the location."""


class StoreExistsError(ZViewError, FileExistsError):
    """A write would replace an existing store and ``overwrite=True`` was not given."""


class StoreAccessError(ZViewError, PermissionError):
    """The store refused access: credentials are missing, wrong, or lack permission."""


class StoreUnreachableError(ZViewError, ConnectionError):
    """The store's endpoint cannot be reached (no route, nothing listening, timeout)."""


class StorageOptionsError(ZViewError, ValueError):
    """``storage_options`` that the location's filesystem does not accept."""


class ReadOnlyStoreError(ZViewError, PermissionError):
    """A store cannot be written (a zip, an anonymous bucket) but the operation must write."""


class MetaError(ZViewError, ValueError):
    """``meta.yaml`` is missing a key, malformed, too large, or has a value of the wrong type."""


class ViewError(ZViewError, ValueError):
    """Views of unequal length, a non-integer view, or a views tree of the wrong shape."""


class MissingLabelError(ZViewError, KeyError):
    """A key (a view, a loader, a label path) names no label."""


class IndexOutOfRangeError(ZViewError, IndexError):
    """An index outside ``[0, length)``; zview never wraps negative indices of a view around.

    Parameters
    ----------
    key
        The view or array holding the index, or ``"index"`` for a dataset index.
    value
        The offending index.
    length
        The length the index must stay below.
    """

    def __init__(self, key: object, value: object, length: int, *, store: object = None,
                 detail: str = "") -> None:
        message = f"index {value} in {key!s} is outside [0, {length}){detail}"
        super().__init__(message, store=store, key=key, value=value)
        self.length = length


class MissingChunkError(ZViewError, FileNotFoundError):
    """A chunk of an array that was written complete is missing from the store."""


class MissingFileError(ZViewError, FileNotFoundError):
    """A file a label names (an image, a ``.npy`` file) does not exist."""


class LoaderError(ZViewError, ValueError):
    """A loader cannot turn a label's value into data (bad file, bad keyword arguments)."""


class IncompleteStoreError(ZViewError, FileNotFoundError):
    """An overwrite in a bucket stopped while the new store was copied in; it can be finished."""


class CorruptStoreError(ZViewError, ValueError):
    """A chunk or metadata document cannot be decoded."""


class RenderRequiredError(ZViewError, PermissionError):
    """A view's labels are not rendered and the store cannot be written here."""


class StaleRenderError(ZViewError, ValueError):
    """The base changed since the view's labels were rendered."""


class UntrustedBaseError(ZViewError, PermissionError):
    """``meta.yaml`` names an import path that is not trusted; nothing was imported."""


class BaseBuildError(ZViewError, ValueError):
    """The base dataset named in ``meta.yaml`` could not be built."""


def access_error(error: BaseException, *, store: object, key: object) -> ZViewError | None:
    """The zview error for a failure to reach or read a store, or ``None`` if it is not one.

    Filesystems report these in their own types (botocore's ``NoCredentialsError`` and
    ``EndpointConnectionError``, aiohttp's connector errors, a ``TypeError`` for an option the
    filesystem does not take); callers get one zview type per cause instead.
    """
    if isinstance(error, ZViewError):
        if type(error) is ZViewError and error.key == "storage_options":
            return StorageOptionsError(error.message, store=error.store, key=error.key,
                                       value=error.value)
        return None
    names = " ".join(t.__name__ for t in type(error).__mro__)
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, PermissionError) or "Credential" in names or "AccessDenied" in text:
        return StoreAccessError(f"access to the store was refused ({text}); check the "
                                f"credentials (environment, profile or storage_options)",
                                store=store, key=key, value=type(error).__name__)
    if (isinstance(error, (ConnectionError, TimeoutError)) or "Connect" in names
            or "Timeout" in names):
        return StoreUnreachableError(f"cannot reach the store ({text}); check the endpoint and "
                                     f"the network", store=store, key=key,
                                     value=type(error).__name__)
    if isinstance(error, TypeError):  # raised where the filesystem is built from the options
        return StorageOptionsError(f"the storage options were refused ({text})", store=store,
                                   key="storage_options", value=type(error).__name__)
    if isinstance(error, OSError):
        return StoreUnreachableError(f"cannot read the store ({text})", store=store, key=key,
                                     value=type(error).__name__)
    return None
