"""The toolbox (daemon) API at ``{toolboxProxyUrl}/{sandboxId}/...``: the route table.

Process execution, code-run, sessions, files, git, info and system metrics, all executed
for real in the sandbox's engine workspace."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from . import _files_api as files
from . import _git_api as gitapi
from . import _info_api as info
from . import _interpreter_api as interpreter
from . import _process_api as process
from ._daemon import Handler, endpoint

__all__ = ["toolbox_routes"]


def toolbox_routes() -> list[BaseRoute]:
    """Routes relative to ``/toolbox/{sandbox_id}``."""
    p = "/toolbox/{sandbox_id}"
    s = p + "/process/session/{session_id}"
    c = s + "/command/{command_id}"
    table: list[tuple[str, str, Handler]] = [
        ("POST", "/process/execute", process.execute),
        ("POST", "/process/code-run", process.code_run),
        ("POST", "/process/session", process.session_create),
        ("GET", "/process/session", process.session_list),
        ("POST", "/files/bulk-upload", files.bulk_upload),
        ("POST", "/files/bulk-download", files.bulk_download),
        ("GET", "/files/download", files.download),
        ("POST", "/files/upload-v2", files.upload_v2),
        ("POST", "/files/upload", files.upload_v2),
        ("GET", "/files", files.list_files),
        ("DELETE", "/files", files.delete_file),
        ("GET", "/files/info", files.file_info),
        ("POST", "/files/folder", files.create_folder),
        ("POST", "/files/move", files.move_file),
        ("POST", "/files/permissions", files.set_permissions),
        ("GET", "/files/find", files.find_in_files),
        ("GET", "/files/search", files.search_files),
        ("POST", "/files/replace", files.replace_in_files),
        ("POST", "/git/clone", gitapi.git_clone),
        ("GET", "/git/status", gitapi.git_status),
        ("GET", "/git/branches", gitapi.git_branches),
        ("POST", "/git/branches", gitapi.git_create_branch),
        ("DELETE", "/git/branches", gitapi.git_delete_branch),
        ("POST", "/git/checkout", gitapi.git_checkout),
        ("POST", "/git/add", gitapi.git_add),
        ("POST", "/git/commit", gitapi.git_commit),
        ("GET", "/git/history", gitapi.git_history),
        ("POST", "/git/push", gitapi.git_push),
        ("POST", "/git/pull", gitapi.git_pull),
        ("GET", "/work-dir", info.work_dir),
        ("GET", "/user-home-dir", info.home_dir),
        ("GET", "/version", info.version),
        ("GET", "/system/metrics", info.system_metrics),
        ("GET", "/port", info.ports),
        ("POST", "/git/init", gitapi.git_init),
        ("POST", "/git/reset", gitapi.git_reset),
        ("POST", "/git/restore", gitapi.git_restore),
        ("GET", "/git/remotes", gitapi.git_remotes),
        ("POST", "/git/remotes", gitapi.git_add_remote),
        ("GET", "/git/config", gitapi.git_get_config),
        ("POST", "/git/config", gitapi.git_set_config),
        ("POST", "/git/config/user", gitapi.git_configure_user),
        ("POST", "/git/credentials", gitapi.git_credentials),
        ("POST", "/env", process.update_env),
        ("POST", "/init", process.initialize),
        ("GET", "/process/session/entrypoint", process.entrypoint_session),
        ("GET", "/process/session/entrypoint/logs", process.entrypoint_logs),
        ("POST", "/process/interpreter/context", interpreter.context_create),
        ("GET", "/process/interpreter/context", interpreter.context_list),
    ]
    routes: list[BaseRoute] = [
        Route(p + path, endpoint(handler), methods=[method]) for method, path, handler in table
    ]
    routes += [
        Route(s, endpoint(process.session_get), methods=["GET"]),
        Route(s, endpoint(process.session_delete), methods=["DELETE"]),
        Route(s + "/exec", endpoint(process.session_exec), methods=["POST"]),
        Route(c, endpoint(process.command_get), methods=["GET"]),
        Route(c + "/logs", endpoint(process.command_logs), methods=["GET"]),
        WebSocketRoute(c + "/logs", process.command_logs_ws),
        Route(c + "/input", endpoint(process.command_input), methods=["POST"]),
        Route(p + "/port/{port:int}/in-use", endpoint(info.port_in_use), methods=["GET"]),
        Route(
            p + "/process/interpreter/context/{context_id}",
            endpoint(interpreter.context_delete),
            methods=["DELETE"],
        ),
        WebSocketRoute(p + "/process/interpreter/execute", interpreter.execute_ws),
    ]
    return routes
