"""OpenAPI services as tool services: each operation of the spec is a tool, called with httpx.

A tool's parameters are the operation's path, query, header and cookie parameters plus the
properties of its JSON (or form) body, with local ``$ref``s inlined so the schema stands on its
own. OpenAPI 3.0 and 3.1 are read, as FastAPI and most frameworks emit them. A 2xx answer is
the tool's data; any other answer, a refused connection or a timeout is a ``ToolError`` that
names the service and the operation. Requests (the spec's too, and every redirect) go only
where the service's ``OutboundPolicy`` allows (``tactful.tools.outbound``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urljoin, urlsplit

import httpx

from tactful.domain import ToolServiceKind, ToolSpec
from tactful.domain.tools import tool_id
from tactful.tools.base import ToolContext, ToolError, ToolResult, ToolService
from tactful.tools.outbound import OutboundPolicy, OutboundRefused

__all__ = ["OpenAPIService"]

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Methods that only read: every other operation is marked consequential.
_SAFE_METHODS = frozenset({"get", "head", "options", "trace"})
# Keywords of OpenAPI's schema dialect that JSON Schema does not have.
_OPENAPI_ONLY = ("discriminator", "xml", "externalDocs", "nullable")
# Where schemas nest other schemas, in JSON Schema and in OpenAPI's dialect of it.
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
# How much of an error answer goes into the message.
_DETAIL_CHARS = 300

Location = Literal["path", "query", "header", "cookie", "body"]
_PARAMETER_LOCATIONS: dict[str, Location] = {
    "path": "path",
    "query": "query",
    "header": "header",
    "cookie": "cookie",
}


@dataclass(frozen=True)
class _Argument:
    """Where one tool argument goes in the request."""

    name: str  # as the tool's parameters name it
    wire_name: str  # as the request carries it
    location: Location


@dataclass(frozen=True)
class _Operation:
    spec: ToolSpec
    method: str
    path: str
    arguments: dict[str, _Argument]
    # How the body is sent, whether the tool's "body" argument is the whole of it, and
    # whether the operation must have one (then an empty object is sent when no field is set).
    body: Literal["json", "form"] | None
    whole_body: bool
    body_required: bool

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


class OpenAPIService(ToolService):
    """The operations of an HTTP API described by an OpenAPI 3.0/3.1 spec, as tools.

    Give the spec as a dict, or ``spec_url`` to fetch it (JSON) on first use. Requests go to
    ``base_url``, else to the spec's first ``servers`` entry, else to the origin of
    ``spec_url``. ``headers`` go with every request (e.g. an API key). ``close()`` releases the
    connection pool. Requests go only where ``outbound`` allows (default: public addresses);
    registered with a server, the service follows the server's ``outbound_hosts`` instead.
    """

    kind = ToolServiceKind.OPENAPI

    def __init__(
        self,
        name: str,
        spec: Mapping[str, Any] | None = None,
        *,
        spec_url: str | None = None,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 15.0,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        if not name:
            raise ValueError("an OpenAPI service needs a name")
        if (spec is None) == (spec_url is None):
            raise ValueError(f"OpenAPI service {name!r} needs a spec or a spec_url (one of them)")
        self.name = name
        self.spec_url = spec_url
        self.base_url = base_url
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.outbound = outbound if outbound is not None else OutboundPolicy()
        self._operations: dict[str, _Operation] | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()
        if spec is not None:
            # A spec in hand is checked at once: a broken one is a configuration error.
            self._adopt(dict(spec), origin=None)

    async def list_tools(self) -> list[ToolSpec]:
        """One tool per operation of the spec."""
        operations = await self._load()
        return [operation.spec for operation in operations.values()]

    async def call(self, tool: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Send the operation's request; a 2xx answer's JSON (or text) is the data."""
        operations = await self._load()
        operation = operations.get(tool)
        if operation is None:
            raise ToolError(f"OpenAPI service {self.name!r} has no operation {tool!r}")
        request = self._request(operation, arguments)
        try:
            response = await self._client().send(request)
        except OutboundRefused as exc:
            raise OutboundRefused(
                f"OpenAPI service {self.name!r} did not send {operation.label}: {exc}"
            ) from None
        except httpx.TimeoutException:
            raise ToolError(
                f"OpenAPI service {self.name!r} did not answer {operation.label} "
                f"within {self.timeout_s:g}s"
            ) from None
        except (httpx.ConnectError, httpx.NetworkError) as exc:
            raise ToolError(
                f"OpenAPI service {self.name!r} is unreachable ({self.base_url}): {_said(exc)}"
            ) from None
        except httpx.HTTPError as exc:
            raise ToolError(
                f"OpenAPI service {self.name!r} failed on {operation.label}: {_said(exc)}"
            ) from None
        meta = {"status": response.status_code, "service": self.name}
        if not response.is_success:
            raise ToolError(
                f"OpenAPI service {self.name!r} answered {response.status_code} for "
                f"{operation.label}: {_detail(response)}"
            )
        return ToolResult(data=_payload(response), metadata=meta)

    async def close(self) -> None:
        """Release the HTTP connection pool; a later call opens a new one."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def service_url(self) -> str:
        return self.base_url or ""

    def outbound_urls(self) -> list[str]:
        """The spec's URL and the base URL, as far as they are known yet."""
        return [url for url in (self.spec_url, self.base_url) if url]

    async def use_outbound(self, policy: OutboundPolicy) -> None:
        """Send requests only where ``policy`` allows; open connections are dropped."""
        if policy != self.outbound:
            self.outbound = policy
            await self.close()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # The transport checks every connection (redirects too) against the policy.
            self._http = httpx.AsyncClient(
                headers=self.headers,
                timeout=self.timeout_s,
                follow_redirects=True,
                transport=self.outbound.httpx_transport(),
                event_hooks={"request": [self._keep_headers_home]},
            )
        return self._http

    async def _keep_headers_home(self, request: httpx.Request) -> None:
        """The service's own headers (an API key...) go to its own origins only: httpx keeps
        them on a redirect to another host, where it drops only ``Authorization``."""
        home = {_origin(u) for u in (self.base_url, self.spec_url) if u}
        if _origin(str(request.url)) not in home:
            for name in self.headers:
                request.headers.pop(name, None)

    async def _load(self) -> dict[str, _Operation]:
        """The operations, fetching the spec first if it comes from a URL."""
        if self._operations is not None:
            return self._operations
        async with self._lock:
            if self._operations is None:
                assert self.spec_url is not None
                self._adopt(await self._fetch(self.spec_url), origin=self.spec_url)
            assert self._operations is not None
            return self._operations

    async def _fetch(self, url: str) -> dict[str, Any]:
        where = f"OpenAPI service {self.name!r} could not load its spec from {url}"
        try:
            response = await self._client().get(url)
        except OutboundRefused as exc:
            raise OutboundRefused(f"{where}: {exc}") from None
        except httpx.TimeoutException:
            raise ToolError(f"{where}: no answer within {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"{where}: {_said(exc)}") from None
        if not response.is_success:
            raise ToolError(f"{where}: it answered {response.status_code}: {_detail(response)}")
        try:
            spec = response.json()
        except ValueError:
            raise ToolError(
                f"{where}: it is not JSON (load a YAML spec yourself and pass it as spec=)"
            ) from None
        if not isinstance(spec, dict):
            raise ToolError(f"{where}: it is not an OpenAPI document")
        return spec

    def _adopt(self, spec: dict[str, Any], origin: str | None) -> None:
        """Read the spec's operations and settle where requests go."""
        version = str(spec.get("openapi", ""))
        if not version.startswith("3."):
            found = f"version {version!r}" if version else "no 'openapi' version"
            raise _spec_error(self.name, origin, f"only OpenAPI 3.x is supported, found {found}")
        if self.base_url is None:
            self.base_url = _server_url(spec, origin)
        if self.base_url is None:
            raise _spec_error(self.name, origin, "it names no absolute server URL: pass base_url=")
        try:
            self._operations = _read_operations(self.name, spec)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            # A spec shaped unlike OpenAPI somewhere (a list where a map belongs, ...).
            raise _spec_error(self.name, origin, f"it is malformed: {_said(exc)}") from None

    def _request(self, operation: _Operation, arguments: dict[str, Any]) -> httpx.Request:
        unknown = sorted(set(arguments) - set(operation.arguments))
        if unknown:
            raise ToolError(
                f"OpenAPI service {self.name!r}: {operation.spec.name!r} has no parameter "
                f"{', '.join(map(repr, unknown))}"
            )
        missing = [name for name in operation.spec.required if arguments.get(name) is None]
        if missing:
            raise ToolError(
                f"OpenAPI service {self.name!r}: {operation.spec.name!r} needs "
                f"{', '.join(map(repr, missing))}"
            )
        path_values: dict[str, str] = {}
        query: list[tuple[str, Any]] = []
        headers: dict[str, str] = {}
        cookies: list[str] = []
        body: dict[str, Any] = {}
        whole: Any = None
        for name, value in arguments.items():
            argument = operation.arguments[name]
            if value is None and argument.location != "body":
                continue  # an optional parameter the model left empty
            match argument.location:
                case "path":
                    path_values[argument.wire_name] = quote(_text(value), safe="")
                case "query":
                    values = value if isinstance(value, list) else [value]
                    query.extend((argument.wire_name, _text(item)) for item in values)
                case "header":
                    headers[argument.wire_name] = _text(value)
                case "cookie":
                    cookies.append(f"{argument.wire_name}={quote(_text(value), safe='')}")
                case "body" if operation.whole_body:
                    whole = value
                case "body":
                    body[argument.wire_name] = value
        if cookies:
            headers["cookie"] = "; ".join(cookies)
        path = re.sub(
            r"\{([^{}]+)\}", lambda m: path_values.get(m.group(1), m.group(0)), operation.path
        )
        assert self.base_url is not None
        url = self.base_url.rstrip("/") + path
        content = whole if operation.whole_body else (body or None)
        if content is None and operation.body_required and not operation.whole_body:
            content = {}
        send: dict[str, Any] = {}
        if content is not None and operation.body == "json":
            send["json"] = content
        elif content is not None and operation.body == "form":
            send["data"] = content if isinstance(content, dict) else {}
        try:
            return self._client().build_request(
                operation.method, url, params=query, headers=headers, **send
            )
        except (TypeError, ValueError, httpx.InvalidURL) as exc:
            raise ToolError(
                f"OpenAPI service {self.name!r}: cannot send {operation.label}: {exc}"
            ) from None


def _read_operations(service: str, spec: dict[str, Any]) -> dict[str, _Operation]:
    refs = _Refs(spec)
    operations: dict[str, _Operation] = {}
    paths = spec.get("paths") or {}
    for path, raw_item in paths.items():
        item = refs.deref(raw_item)
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") or []
        for method in _METHODS:
            raw = item.get(method)
            if not isinstance(raw, dict):
                continue
            name = str(raw.get("operationId") or _slug(method, path))
            unique, n = name, 2
            while unique in operations:
                unique, n = f"{name}_{n}", n + 1
            operations[unique] = _operation(service, unique, method, path, shared, raw, refs)
    return operations


def _operation(
    service: str,
    name: str,
    method: str,
    path: str,
    shared: list[Any],
    raw: dict[str, Any],
    refs: _Refs,
) -> _Operation:
    properties: dict[str, Any] = {}
    required: list[str] = []
    arguments: dict[str, _Argument] = {}
    # Operation parameters override path-level ones with the same name and location.
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw_param in [*shared, *(raw.get("parameters") or [])]:
        param = refs.deref(raw_param)
        if isinstance(param, dict) and "name" in param and "in" in param:
            merged[(str(param["name"]), str(param["in"]))] = param
    for (wire_name, where), param in merged.items():
        location = _PARAMETER_LOCATIONS.get(where)
        if location is None:
            continue
        schema = param.get("schema")
        if schema is None:
            schema = _media_schema(param.get("content") or {})
        schema = refs.inline(schema or {})
        if param.get("description") and "description" not in schema:
            schema["description"] = param["description"]
        properties[wire_name] = schema
        arguments[wire_name] = _Argument(wire_name, wire_name, location)
        if param.get("required") or location == "path":
            required.append(wire_name)

    body_kind: Literal["json", "form"] | None = None
    whole_body = False
    body_required = False
    request_body = refs.deref(raw.get("requestBody") or {})
    if not isinstance(request_body, dict):
        request_body = {}
    content = request_body.get("content") or {}
    media = _pick_media(content)
    if media is not None:
        body_kind = "form" if media == "application/x-www-form-urlencoded" else "json"
        body_required = request_body.get("required") is True
        schema = refs.inline(content[media].get("schema") or {})
        body_properties = schema.get("properties")
        if schema.get("type", "object") == "object" and isinstance(body_properties, dict):
            body_needs = set(schema.get("required") or [])
            for prop, prop_schema in body_properties.items():
                if isinstance(prop_schema, dict) and prop_schema.get("readOnly"):
                    continue  # the server's to fill, never the client's
                arg = prop if prop not in arguments else f"body_{prop}"
                properties[arg] = prop_schema
                arguments[arg] = _Argument(arg, prop, "body")
                if body_required and prop in body_needs:
                    required.append(arg)
        else:
            whole_body = True
            arg = "body" if "body" not in arguments else "request_body"
            properties[arg] = schema
            arguments[arg] = _Argument(arg, arg, "body")
            if body_required:
                required.append(arg)

    summary = str(raw.get("summary") or "").strip()
    details = str(raw.get("description") or "").strip()
    description = "\n\n".join(part for part in (summary, details) if part) or (
        f"{method.upper()} {path}"
    )
    # Closed: an argument the operation does not take could only be a mistake.
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        parameters["required"] = required
    spec = ToolSpec(
        id=tool_id(service, name),
        service_name=service,
        name=name,
        description=description,
        parameters=parameters,
        required=required,
        consequential=method not in _SAFE_METHODS,
    )
    return _Operation(spec, method, path, arguments, body_kind, whole_body, body_required)


def _pick_media(content: Mapping[str, Any]) -> str | None:
    """The body's media type to send: JSON if the operation takes it, else a URL-encoded form."""
    for media in content:
        kind = media.split(";")[0].strip().lower()
        if kind == "application/json" or kind.endswith("+json"):
            return media
    if "application/x-www-form-urlencoded" in content:
        return "application/x-www-form-urlencoded"
    return None


def _media_schema(content: Mapping[str, Any]) -> Any:
    media = _pick_media(content) or next(iter(content), None)
    return content[media].get("schema") if media is not None else None


class _Refs:
    """Local ``$ref`` resolution (``#/components/...``) within one spec."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            return None
        node: Any = self._spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def deref(self, node: Any) -> Any:
        """A parameter, body or path item, following ``$ref``s (a few deep, never in a loop)."""
        for _ in range(8):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node
            node = self.resolve(node["$ref"])
        return None

    def inline(self, schema: Any, expanding: tuple[str, ...] = ()) -> dict[str, Any]:
        """``schema`` as standalone JSON Schema: refs inlined, OpenAPI 3.0 keywords translated."""
        if not isinstance(schema, dict):
            return {} if schema is not False else {"not": {}}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self.resolve(ref)
            name = ref.rsplit("/", 1)[-1]
            if target is None:
                return {"description": f"(unresolved reference {ref})"}
            if ref in expanding:
                # A recursive type: one level is enough for a model to fill in arguments.
                return {"type": "object", "description": f"(a nested {name})"}
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.inline(merged, (*expanding, ref))
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _OPENAPI_ONLY:
                continue
            if key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self.inline(item, expanding) for item in value]
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: self.inline(v, expanding) for k, v in value.items()}
            elif key in _SCHEMA_ONE and isinstance(value, dict | bool):
                out[key] = self.inline(value, expanding) if isinstance(value, dict) else value
            elif key == "example":
                out.setdefault("examples", [value])
            else:
                out[key] = value
        if schema.get("nullable") is True:
            out = _nullable(out)
        return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0's ``nullable: true`` in JSON Schema terms."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**schema, "type": [*kind, "null"] if "null" not in kind else kind}
    return {"anyOf": [schema, {"type": "null"}]}


def _server_url(spec: dict[str, Any], origin: str | None) -> str | None:
    """Where requests go when no base_url is given: the first server, else the spec's origin."""
    servers = spec.get("servers") or []
    first = servers[0] if servers and isinstance(servers[0], dict) else {}
    url = str(first.get("url") or "")
    for variable, details in (first.get("variables") or {}).items():
        if isinstance(details, dict) and "default" in details:
            url = url.replace("{" + variable + "}", str(details["default"]))
    if url and urlsplit(url).scheme in ("http", "https"):
        return url
    if origin is None:
        return None
    if url:
        return urljoin(origin, url)
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}"


def _spec_error(service: str, origin: str | None, why: str) -> Exception:
    if origin is None:
        return ValueError(f"OpenAPI service {service!r}: the spec cannot be used: {why}")
    return ToolError(f"OpenAPI service {service!r}: the spec at {origin} cannot be used: {why}")


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _slug(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")
    return f"{method}_{words}" if words else method


def _text(value: Any) -> str:
    """A parameter value as the wire carries it (JSON spelling for booleans and objects)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _payload(response: httpx.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text


def _detail(response: httpx.Response) -> str:
    """What an error answer says, briefly: FastAPI's ``detail``, a message field, or the text."""
    detail: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = next((body[k] for k in ("detail", "message", "error") if body.get(k)), body)
    if isinstance(detail, list):
        # FastAPI's validation errors: where, and what is wrong there.
        detail = "; ".join(_validation_item(item) for item in detail)
    if detail is None:
        detail = response.text.strip() or response.reason_phrase
    text = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"))
    return text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "..."


def _validation_item(item: Any) -> str:
    if isinstance(item, dict) and "msg" in item:
        where = ".".join(str(part) for part in item.get("loc") or [])
        return f"{where}: {item['msg']}" if where else str(item["msg"])
    return json.dumps(item, separators=(",", ":"))


def _said(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{text} ({type(exc).__name__})"
