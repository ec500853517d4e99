"""Named workspace templates: a directory to copy in and setup commands to run.

Templates come from the provider's config, as a mapping from name to settings::

    {"python-data": {"directory": "/srv/templates/data", "setup": ["pip install -e ."],
                     "binds": ["/opt/venvs/data"]},
     "empty-shell": {"setup": ["mkdir -p out"], "description": "just a folder"},
     "site": "/srv/templates/site"}            # a bare path is shorthand for directory

:meth:`TemplateRegistry.materialize` copies the template's directory into a new
workspace (modes, symlinks, hard links and empty directories preserved; every entry owned
by the workspace's uid) and returns the setup commands, which the provider runs *inside
the sandbox*, never on the host. ``binds`` are host paths (a venv with packages, say) the
sandbox shows read-only at the same path to workspaces made from the template.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._errors import ProviderConfigError, TemplateNotFound, WorkspaceError

if TYPE_CHECKING:
    from ._files import Owner

__all__ = ["Template", "TemplateRegistry"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class Template(BaseModel):
    """A named starting point for workspaces.

    ``directory`` (optional) is copied into the workspace; ``setup`` is a list of shell
    command lines run in the sandbox, in order, after the copy.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str = Field(description="letters, digits, '.', '_' and '-'; at most 64 characters")
    directory: Path | None = None
    setup: list[str] = Field(default_factory=list)
    description: str = ""
    binds: list[Path] = Field(
        default_factory=list,
        description="host paths shown read-only (same path) to this template's workspaces",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"template name {value!r} must be 1-64 letters, digits, '.', '_' or '-' "
                "and start with a letter or digit"
            )
        return value

    @field_validator("directory")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()

    @field_validator("binds")
    @classmethod
    def _absolute_binds(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.is_absolute() or str(path) in ("/", "/proc", "/dev"):
                raise ValueError(f"binds: {str(path)!r} must be an absolute path below /")
        return value

    @field_validator("setup")
    @classmethod
    def _check_setup(cls, value: list[str]) -> list[str]:
        for command in value:
            if not command.strip():
                raise ValueError("setup commands must not be empty")
            if "\0" in command:
                raise ValueError("setup commands must not contain NUL bytes")
        return value


class TemplateRegistry:
    """The templates a provider knows, by name."""

    def __init__(self, templates: Iterable[Template] = ()) -> None:
        self._templates: dict[str, Template] = {}
        for template in templates:
            self.register(template)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> TemplateRegistry:
        """Build a registry from ``{name: settings}``; settings are a mapping, a
        :class:`Template`, or a directory path. Invalid entries raise
        :class:`~sandstorm.ProviderConfigError` naming the template and the problem."""
        registry = cls()
        for name, value in (config or {}).items():
            try:
                if isinstance(value, Template):
                    template = value
                elif isinstance(value, str | os.PathLike):
                    template = Template(name=name, directory=Path(value))
                elif isinstance(value, Mapping):
                    template = Template.model_validate({"name": name, **value})
                else:
                    raise ProviderConfigError(
                        f"template {name!r}: expected a mapping or a directory path, "
                        f"not {type(value).__name__}"
                    )
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
                    for err in exc.errors()
                )
                raise ProviderConfigError(f"template {name!r} is invalid: {problems}") from None
            if template.name != name:
                raise ProviderConfigError(
                    f"template registered as {name!r} is named {template.name!r}"
                )
            registry.register(template)
        return registry

    def register(self, template: Template) -> None:
        """Add ``template``; a name already taken is a :class:`~sandstorm.ProviderConfigError`."""
        if template.name in self._templates:
            raise ProviderConfigError(f"template {template.name!r} is defined twice")
        self._templates[template.name] = template

    def names(self) -> list[str]:
        """The known template names, sorted."""
        return sorted(self._templates)

    def get(self, name: str) -> Template:
        """The template ``name``; :class:`~sandstorm.TemplateNotFound` lists the known ones."""
        try:
            return self._templates[name]
        except (KeyError, TypeError):
            raise TemplateNotFound(str(name), self._templates) from None

    def __contains__(self, name: object) -> bool:
        return name in self._templates

    def __iter__(self) -> Iterator[Template]:
        return iter(self._templates[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._templates)

    def __repr__(self) -> str:
        return f"TemplateRegistry({self.names()!r})"

    def materialize(self, name: str, dest_dir: Path, owner: Owner | None) -> list[str]:
        """Copy template ``name``'s directory into ``dest_dir``; return its setup commands.

        ``dest_dir`` (the workspace's files directory) must exist; its own mode is left
        alone. Everything copied is owned by ``owner``. Symlinks are copied as links,
        never followed. :class:`~sandstorm.TemplateNotFound` for an unknown name,
        :class:`~sandstorm.WorkspaceError` when the template's directory is missing.
        """
        template = self.get(name)
        if template.directory is not None:
            _copy_tree(template, Path(dest_dir), owner)
        return list(template.setup)


def _copy_tree(template: Template, dest: Path, owner: Owner | None) -> None:
    from ._files import TreeWriter, walk_tree

    source = template.directory
    assert source is not None
    try:
        src_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise WorkspaceError(
            f"template {template.name!r}: directory {str(source)!r} does not exist"
        ) from None
    except NotADirectoryError:
        raise WorkspaceError(
            f"template {template.name!r}: {str(source)!r} is not a directory"
        ) from None
    hardlinks: dict[tuple[int, int], str] = {}
    try:
        with TreeWriter(dest, owner) as writer:
            for dir_fd, prefix, name, st in walk_tree(src_fd):
                rel = prefix + name
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    writer.mkdir(rel, mode, st.st_mtime)
                elif stat.S_ISLNK(st.st_mode):
                    writer.symlink(rel, os.readlink(name, dir_fd=dir_fd), st.st_mtime)
                elif stat.S_ISFIFO(st.st_mode):
                    writer.fifo(rel, mode, st.st_mtime)
                elif stat.S_ISREG(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in hardlinks:
                        writer.hardlink(rel, hardlinks[key])
                        continue
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                    with open(fd, "rb") as fh:
                        size = os.fstat(fh.fileno()).st_size
                        writer.file(rel, fh, size, mode, st.st_mtime)
                    if st.st_nlink > 1:
                        hardlinks[key] = rel
                # sockets and devices are not template content: skipped
    finally:
        os.close(src_fd)
