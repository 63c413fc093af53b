"""Where a store lives: the one module that resolves locations and storage options.

A location is a local path, a ``file://``, ``s3://``, ``gs://``, ``az://`` or ``memory://`` URL,
or a ``.zip`` file. It is turned into an fsspec filesystem (for ``meta.yaml`` and legacy ``.npy``
labels) and a zarr store (for everything else); zview has no store layer of its own.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

import fsspec
import zarr.storage

from zview.errors import ReadOnlyStoreError, StoreNotFoundError, ZViewError

# fsspec's registry knows the protocols; this adds the pip extra that provides each one.
_INSTALL_HINTS = {"s3": "zview[s3] (s3fs)", "gs": "zview[gcs] (gcsfs)", "gcs": "zview[gcs] (gcsfs)",
                  "az": "adlfs", "abfs": "adlfs"}


@dataclass(frozen=True, slots=True)
class Location:
    """A resolved store location.

    Pickles as its URL and options, so a dataset sent to a DataLoader worker reopens there.
    """

    url: str
    """The location as the user gave it, made absolute for local paths."""
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """Options for the fsspec filesystem (``anon``, ``endpoint_url``, ...). Never stored."""
    inner: str = ""
    """A path inside the zip file ``url``; empty for the zip's root and for other locations."""

    @classmethod
    def resolve(cls, location: str | os.PathLike | Location, storage_options: dict | None = None
                ) -> Location:
        if isinstance(location, Location):
            if storage_options is None:
                return location
            location = location.url
        url = os.fspath(location)
        if "://" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        elif url.startswith("file://"):
            url = url[len("file://"):]
        return cls(url.rstrip("/") or "/", dict(storage_options or {}))

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0] if "://" in self.url else "file"

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    @property
    def is_zip(self) -> bool:
        return self.url.lower().endswith(".zip")

    def join(self, relative: str) -> Location:
        """The location of ``relative`` seen from this one (a zip counts as a folder)."""
        if "://" in relative or os.path.isabs(relative):
            return Location.resolve(relative, self.storage_options)
        if self.is_zip:
            inner = posixpath.normpath(posixpath.join(self.inner, relative))
            if inner == ".":
                return Location(self.url, self.storage_options)
            if not inner.startswith("../"):
                return Location(self.url, self.storage_options, inner)
            return Location(self.url, self.storage_options)._join_path(inner)
        return self._join_path(relative)

    def _join_path(self, relative: str) -> Location:
        if self.is_local:
            return Location(os.path.normpath(os.path.join(self.url, relative)),
                            self.storage_options)
        proto, path = self.url.split("://", 1)
        return Location(f"{proto}://{posixpath.normpath(posixpath.join(path, relative))}",
                        self.storage_options)

    def __str__(self) -> str:
        return f"{self.url}/{self.inner}" if self.inner else self.url

    # -- files ---------------------------------------------------------------------------------
    def filesystem(self, *, outer: bool = False) -> tuple[fsspec.AbstractFileSystem, str]:
        """The fsspec filesystem and the root path inside it.

        For a zip, the filesystem inside the zip file; ``outer=True`` gives the one holding it.
        """
        if self.is_zip and not outer:
            outer, outer_path = _url_to_fs(self.url, self.storage_options, self)
            target = outer.protocol if isinstance(outer.protocol, str) else outer.protocol[0]
            fs = fsspec.filesystem("zip", fo=outer_path, target_protocol=target,
                                   target_options=self.storage_options)
            return fs, self.inner
        return _url_to_fs(self.url, self.storage_options, self)

    def read_bytes(self, name: str, *, limit: int | None = None) -> bytes:
        """Read the file ``name`` under this location; ``FileNotFoundError`` if absent."""
        fs, root = self.filesystem()
        path = posixpath.join(root, name) if root and name else root or name
        try:  # one GET: opening a file object would first ask the object's size (a HEAD)
            return fs.cat_file(path, start=0 if limit is not None else None, end=limit)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise
        except KeyError as e:  # the zip filesystem's way of saying "no such member"
            raise FileNotFoundError(path) from e
        except OSError as e:
            raise ZViewError(f"cannot read {name or path!r}: {e}", store=str(self),
                             key=name or path) from e

    def exists(self) -> bool:
        fs, root = self.filesystem()
        return fs.exists(root) if root else True

    # -- zarr ----------------------------------------------------------------------------------
    def zarr_store(self, *, read_only: bool = True) -> zarr.abc.store.Store:
        """A zarr store at this location."""
        if self.is_zip:
            if not read_only:
                raise ReadOnlyStoreError(
                    "a zip store is written whole by write_view or convert, not in place: "
                    "convert it to a folder or bucket to change it", store=self.url)
            if not self.is_local:
                fs, _ = self.filesystem()
                return zarr.storage.FsspecStore(fs=_async(fs), path="", read_only=True)
            if self.inner:
                raise ReadOnlyStoreError(f"a store must sit at the root of a zip file, not at "
                                         f"{self.inner!r}", store=str(self), key="location")
            return zarr.storage.ZipStore(self.url, mode="r", read_only=True)
        if self.is_local:
            return zarr.storage.LocalStore(self.url, read_only=read_only)
        fs, path = self.filesystem()
        if fs.async_impl:  # zarr drives the filesystem from its own event loop
            fs, path = _url_to_fs(self.url, {**self.storage_options, "asynchronous": True}, self)
        return zarr.storage.FsspecStore(fs=_async(fs), path=path, read_only=read_only)


def _url_to_fs(url: str, storage_options: dict, where: Location
               ) -> tuple[fsspec.AbstractFileSystem, str]:
    if url.startswith(("s3://", "s3a://")):
        storage_options = _s3_defaults(storage_options)
    try:
        return fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as e:
        proto = url.split("://", 1)[0]
        hint = _INSTALL_HINTS.get(proto, f"the fsspec backend for {proto!r}")
        raise ZViewError(f"install {hint} to access {proto}:// locations", store=url,
                         key="protocol", value=proto) from e
    except ValueError as e:
        if "Protocol not known" in str(e):
            raise StoreNotFoundError(
                f"unknown protocol in {url!r}; use a local path or a file://, s3://, gs://, "
                f"az://, memory:// URL", store=url, key="protocol", value=url) from e
        raise ZViewError(f"bad storage options {sorted(storage_options)}: {e}", store=url,
                         key="storage_options", value=storage_options) from e
    except TypeError as e:
        raise ZViewError(f"bad storage options {sorted(storage_options)}: {e}", store=url,
                         key="storage_options", value=storage_options) from e


def _s3_defaults(storage_options: dict) -> dict:
    """s3fs options zview sets unless the caller does."""
    # s3fs asks an object's size (a HEAD) before every whole-object GET, to split large
    # downloads; zview's objects are chunks of about 1 MiB, so that only doubles requests
    options = {"max_concurrency": 1, **storage_options}
    # every chunk carries a CRC32C that zarr checks; botocore checking each response again
    # costs about a third of a reader's CPU per chunk (botocore >= 1.36 has the setting)
    config = options.get("config_kwargs", {})
    try:
        from botocore.config import Config
    except ImportError:  # s3fs is missing: url_to_fs says how to install it
        return options
    if not isinstance(config, dict):  # refused as a bad option further on
        return options
    if "response_checksum_validation" in getattr(Config, "OPTION_DEFAULTS", {}):
        options["config_kwargs"] = {"response_checksum_validation": "when_required", **config}
    return options


def _async(fs: fsspec.AbstractFileSystem) -> fsspec.AbstractFileSystem:
    """zarr's FsspecStore needs an async filesystem; wrap the sync ones (memory, zip)."""
    if fs.async_impl:
        return fs
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    return AsyncFileSystemWrapper(fs, asynchronous=True)
