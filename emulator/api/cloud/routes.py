"""IBM Cloud stand-ins: IAM token, Global Search and Global Catalog (reference §3, §4).

The client needs these only to obtain a token and to discover instances; they answer with
the configured instances so the client's own checks ("does not have access to the
instance") behave as against IBM Cloud.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from emulator.api.boundary import ErrorBoundary, read_body, renderer
from emulator.api.jsonio import safe_text
from emulator.api.state import state_of
from emulator.domain.errors import NotAuthenticated, RequestTimeout, RequestTooLarge
from emulator.domain.ids import PLAN_PREFIX
from emulator.services.access import UnknownApiKey

IAM_PREFIX = "/iam"
SEARCH_PREFIX = "/globalsearch"
CATALOG_PREFIX = "/globalcatalog"


IAM_FORM_LIMIT = 64 * 1024
"""An IAM token request is a short form; nothing legitimate comes near this."""


def _iam_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"errorCode": code, "errorMessage": safe_text(message), "errorDetails": None},
        status_code=status,
    )


# The codes IBM's IAM uses for these are not documented; these are the emulator's (BXNIM + status).
_STATUS_CODES: dict[type[BaseException], tuple[int, str]] = {
    RequestTooLarge: (413, "BXNIM0413E"),
    RequestTimeout: (408, "BXNIM0408E"),
    NotAuthenticated: (401, "BXNIM0401E"),
}
render = renderer(
    _STATUS_CODES,
    lambda status, code, message, exc: _iam_error(
        status, code if code.startswith("BXNIM") else f"BXNIM0{status}E", message
    ),
)
"""IBM Cloud's error body (`errorCode`, `errorMessage`) for any error on these routes."""


async def iam_token(request: Request) -> Response:
    """`POST /identity/token` with a form body `grant_type=…apikey&apikey=…`."""
    settings = state_of(request).settings
    body = await read_body(request, IAM_FORM_LIMIT, float(settings.request_read_timeout))
    raw = body.decode("utf-8", "replace")
    try:
        form = {k: v[0] for k, v in parse_qs(raw, max_num_fields=16).items()}
    except ValueError:
        return _iam_error(400, "BXNIM0109E", "The request body has too many form fields.")
    grant = form.get("grant_type", "")
    if grant != "urn:ibm:params:oauth:grant-type:apikey":
        return _iam_error(400, "BXNIM0109E", f"Property 'grant_type' is invalid: {grant!r}.")
    try:
        return JSONResponse(state_of(request).access.issue_token(form.get("apikey", "")))
    except UnknownApiKey:
        return _iam_error(400, "BXNIM0415E", "Provided API key could not be found.")


async def search_resources(request: Request) -> Response:
    """`POST /v3/resources/search`: one page holding every instance the token may use."""
    state = state_of(request)
    try:
        identity = state.access.identify(request.headers.get("authorization"))
    except NotAuthenticated as exc:
        return JSONResponse({"error": str(exc)}, status_code=401)
    items = [
        {
            "crn": i.crn,
            "name": i.name,
            "service_plan_unique_id": i.plan_id,
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


_middleware = [Middleware(ErrorBoundary, render=render)]
routes = [
    Mount(
        IAM_PREFIX,
        routes=[Route("/identity/token", iam_token, methods=["POST"])],
        middleware=_middleware,
    ),
    Mount(
        SEARCH_PREFIX,
        routes=[Route("/v3/resources/search", search_resources, methods=["POST"])],
        middleware=_middleware,
    ),
    Mount(
        CATALOG_PREFIX,
        routes=[Route("/{plan_id}", catalog_plan, methods=["GET"])],
        middleware=_middleware,
    ),
]
