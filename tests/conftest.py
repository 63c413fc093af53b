"""Shared fixtures: the edflow fixture copied to a temporary folder, small synthetic stores."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests._expected import FIXTURE
from tests._s3 import S3Server


@pytest.fixture
def edflow_copy(tmp_path: Path) -> Path:
    """A writable copy of shared/fixtures/edflow-small (``base/`` and ``view/``)."""
    target = tmp_path / "edflow-small"
    shutil.copytree(FIXTURE, target)
    return target


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# -- object storage -------------------------------------------------------------------------------
BUCKET = "zview-test"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """moto's S3 server on loopback, found through the standard AWS environment variables.

    Nothing passes ``endpoint_url``: s3fs (through botocore) reads ``AWS_ENDPOINT_URL`` as it
    would for any S3-compatible service, and subprocesses and spawned workers inherit it.
    """
    server = S3Server()
    nowhere = str(tmp_path_factory.mktemp("aws") / "absent")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.endpoint,
                            "AWS_CONFIG_FILE": nowhere,  # a developer's ~/.aws stays out of it
                            "AWS_SHARED_CREDENTIALS_FILE": nowhere}.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The S3 server, emptied, with one bucket ``BUCKET``."""
    import s3fs

    s3_server.reset()
    for fs in list(s3fs.S3FileSystem._cache.values()):
        fs.invalidate_cache()  # listings cached before the reset describe objects now gone
    s3fs.S3FileSystem().mkdir(BUCKET)
    yield s3_server


@dataclass
class Backend:
    """Where a test's stores go on one backend: ``backend("name")`` is a fresh location."""

    name: str
    root: str
    storage_options: dict = field(default_factory=dict)

    def __call__(self, name: str) -> str:
        return f"{self.root}/{name}.zip" if self.name == "zip" else f"{self.root}/{name}"


@pytest.fixture(params=["local", "memory", "zip", "s3"])
def location(request, tmp_path: Path) -> Iterator[Backend]:
    """Fresh store locations on a local disk, in memory, in zip files and in an S3 bucket."""
    test = uuid.uuid4().hex[:12]
    if request.param in ("local", "zip"):
        yield Backend(request.param, str(tmp_path))
    elif request.param == "memory":
        import fsspec

        yield Backend("memory", f"memory://zview-test-{test}")
        memory = fsspec.filesystem("memory")
        if memory.exists(f"/zview-test-{test}"):
            memory.rm(f"/zview-test-{test}", recursive=True)
    else:
        request.getfixturevalue("s3")
        yield Backend("s3", f"s3://{BUCKET}/{test}")
