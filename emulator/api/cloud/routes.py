"""IBM Cloud stand-ins: IAM token, Global Search and Global Catalog (reference §3, §4).

The client needs these only to obtain a token and to discover instances; they answer with
the configured instances so the client's own checks ("does not have access to the
instance") behave as against IBM Cloud.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.auth import UnknownApiKey
from emulator.jobs.errors import NotAuthenticated
from emulator.runtime_state import EmulatorState

IAM_PREFIX = "/iam"
SEARCH_PREFIX = "/globalsearch"
CATALOG_PREFIX = "/globalcatalog"
PLAN_PREFIX = "emulator-plan-"


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _iam_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"errorCode": code, "errorMessage": message, "errorDetails": None}, status_code=status
    )


async def iam_token(request: Request) -> Response:
    """`POST /identity/token` with a form body `grant_type=…apikey&apikey=…`."""
    raw = (await request.body()).decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(raw).items()}
    grant = form.get("grant_type", "")
    if grant != "urn:ibm:params:oauth:grant-type:apikey":
        return _iam_error(400, "BXNIM0109E", f"Property 'grant_type' is invalid: {grant!r}.")
    try:
        return JSONResponse(_state(request).access.issue_token(form.get("apikey", "")))
    except UnknownApiKey:
        return _iam_error(400, "BXNIM0415E", "Provided API key could not be found.")


async def search_resources(request: Request) -> Response:
    """`POST /v3/resources/search`: one page holding every instance the token may use."""
    state = _state(request)
    try:
        identity = state.access.identify(request.headers.get("authorization"))
    except NotAuthenticated as exc:
        return JSONResponse({"error": str(exc)}, status_code=401)
    items = [
        {
            "crn": i.crn,
            "name": i.name,
            "service_plan_unique_id": PLAN_PREFIX + i.plan,
            "tags": [],
            # Must be truthy: the client skips items whose `doc.extensions` is empty.
            "doc": {"extensions": {"virtual_private_endpoints": {}}},
        }
        for i in identity.instances
    ]
    return JSONResponse({"items": items, "search_cursor": None, "limit": 100})


async def catalog_plan(request: Request) -> Response:
    """`GET /{plan_id}`: the plan's display name and pricing type."""
    plan_id = request.path_params["plan_id"]
    if not plan_id.startswith(PLAN_PREFIX):
        return JSONResponse({"error": f"plan {plan_id} not found"}, status_code=404)
    plan = plan_id[len(PLAN_PREFIX) :]
    return JSONResponse(
        {
            "id": plan_id,
            "name": plan,
            "overview_ui": {"en": {"display_name": plan.capitalize()}},
            "metadata": {"pricing": {"type": "free"}},
        }
    )


routes = [
    Route(IAM_PREFIX + "/identity/token", iam_token, methods=["POST"]),
    Route(SEARCH_PREFIX + "/v3/resources/search", search_resources, methods=["POST"]),
    Route(CATALOG_PREFIX + "/{plan_id}", catalog_plan, methods=["GET"]),
]
