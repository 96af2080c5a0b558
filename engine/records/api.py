"""``/api/records``: the records the engine keeps, as ``update_record`` last wrote them.

A record of an http store is kept by the platform: the engine has no copy to
show, and says so.
"""

from __future__ import annotations

from aiohttp import web

from engine.http.common import error, json, require
from engine.records.runtime import RECORDS
from engine.records.store import UnknownRecord, load_record
from engine.workflows.http import origin

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/records/{record}/{id}", get_record)


async def get_record(request: web.Request) -> web.Response:
    """One record of a table store: its id, name, version, fields and last write's time."""
    require(request, "records:read")
    runtime = request.app[RECORDS]
    name, record_id = request.match_info["record"], request.match_info["id"]
    known = runtime.config.records
    store = known.get(name)
    if store is None:
        raise error(404, "not_found", str(UnknownRecord(name, known)))
    if store.store == "http":
        raise error(
            404,
            "not_stored_here",
            f"record '{name}' is kept by the platform ({origin(store.url or '')}), not by "
            "this engine: read it there",
        )
    async with runtime.services.database.connect() as conn:
        found = await load_record(conn, name, record_id)
    if found is None:
        raise error(404, "not_found", f"no {name} with the id '{record_id}'")
    return json(found)
