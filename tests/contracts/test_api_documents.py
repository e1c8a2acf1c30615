"""The OpenAPI and AsyncAPI documents agree with the schema files and the catalog.

The documents (``contracts/openapi/*.openapi.yaml``, ``contracts/asyncapi/gateway.asyncapi.yaml``)
must reference the JSON Schema files under ``contracts/schemas/`` by relative ``$ref`` and
never carry a copy of one. These tests check that:

* both OpenAPI documents load in schemathesis, every operation resolves, and request bodies
  generated from the documents conform to chargetwin's validator;
* every ``$ref`` of every document resolves: files exist under ``contracts/schemas/`` and each
  fragment points into them (and a broken copy of a document is reported);
* the AsyncAPI channels carry exactly the message types of ``catalog.REDIS_CHANNEL_TYPES``, and
  the gateway channel every schema of ``MESSAGE_SCHEMAS`` / ``EVENT_TYPES``;
* every endpoint of ``catalog.ENDPOINTS`` is documented with exactly its schema files;
* no schema is inlined in a document.

No network: schemathesis resolves the schema files' own ``$id`` URLs
(``https://chargetwin.example/contracts/schemas/...``) through a stand-in that reads the
bundled files, and any other remote address fails the test.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag

import pytest
import schemathesis
import schemathesis.core.jsonschema.resolver as schemathesis_resolver
import yaml
from hypothesis import given, settings

from chargetwin.contracts import RULES, Violation, catalog, default_validator
from chargetwin.contracts.schemas import CONTRACTS_DIR, SCHEMAS_DIR

OPENAPI_DOCS = {
    "backend": CONTRACTS_DIR / "openapi" / "backend.openapi.yaml",
    "cms": CONTRACTS_DIR / "openapi" / "cms.openapi.yaml",
}
ASYNCAPI_DOC = CONTRACTS_DIR / "asyncapi" / "gateway.asyncapi.yaml"
SCHEMA_SUFFIX = ".schema.json"

# Error statuses each service must document (DESIGN ruling 6 for the backend; the CMS stub's own).
REQUIRED_ERROR_STATUSES = {
    "backend": {"401", "404", "409", "422", "502", "503"},
    "cms": {"404", "409", "422", "503", "504"},
}

# The twin's login (SPEC-NOTES N-25) needs no token and calls no CMS: it can only fail 401 or 422.
LOGIN_CHANNEL = "backend:/api/auth/login"
REQUIRED_ERROR_STATUSES_OF = {LOGIN_CHANNEL: {"401", "422"}}

# (service, path) of every POST operation, from the catalog: the documents must have these and no other.
CMS_EVENTS_PATH = catalog.CMS_EVENTS_CHANNEL.split(":", 1)[1]
EXPECTED_OPERATIONS = {
    service: {("POST", e.path) for e in catalog.ENDPOINTS.values() if e.service == service}
    for service in OPENAPI_DOCS
}
EXPECTED_OPERATIONS["backend"].add(("POST", CMS_EVENTS_PATH))

# Channels whose request bodies are generated from the documents: every endpoint and the CMS events.
REQUEST_CHANNELS = [*catalog.ENDPOINTS, catalog.CMS_EVENTS_CHANNEL]

REDIS_ADDRESS = re.compile(r"user:\{userId\}:([a-z_]+)")


# --- helpers -----------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def pointer_to(pointer: str, key: object) -> str:
    """``pointer`` extended by one key, escaped as RFC 6901 says."""
    return f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"


def iter_refs(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """(JSON pointer of the referring object, reference) of every ``$ref`` under ``node``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield pointer, ref
        for key, value in node.items():
            yield from iter_refs(value, pointer_to(pointer, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_refs(value, f"{pointer}/{index}")


def resolve_fragment(document: Any, fragment: str) -> Any:
    """The value at the JSON pointer ``fragment`` (``""`` is the whole document); LookupError if none."""
    if fragment in ("", "/"):
        return document
    if not fragment.startswith("/"):
        raise LookupError(f"fragment {fragment!r} is not a JSON pointer")
    node = document
    for raw in fragment[1:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise LookupError(f"no {part!r} in the document at {fragment!r}")
    return node


def schema_file(doc_path: Path, url: str) -> Path:
    """The file a relative reference ``url`` of the document at ``doc_path`` points to."""
    return (doc_path.parent / unquote(url)).resolve()


def broken_refs(doc_path: Path, schemas_dir: Path = SCHEMAS_DIR) -> list[str]:
    """Every ``$ref`` of the YAML document at ``doc_path`` that does not resolve, one line each.

    A reference is either local (``#/components/...``, resolved inside the document) or a
    relative path to a file under ``schemas_dir``, optionally with a JSON-pointer fragment
    that must resolve inside that file. Absolute URLs are not allowed: the documents must
    use the bundled files.
    """
    document = load_yaml(doc_path)
    root = schemas_dir.resolve()
    problems: list[str] = []
    loaded: dict[Path, Any] = {}
    for pointer, ref in iter_refs(document):
        url, fragment = urldefrag(ref)
        where = f"{pointer or '/'}: $ref {ref!r}"
        if re.match(r"^[a-z][a-z0-9+.-]*:", url):
            problems.append(f"{where} is an absolute URL, not a relative file reference")
            continue
        if not url:
            target_doc: Any = document
        else:
            target = schema_file(doc_path, url)
            if not target.is_relative_to(root):
                problems.append(f"{where} points outside {root}")
                continue
            if not target.is_file():
                problems.append(f"{where}: no such file {target}")
                continue
            if target not in loaded:
                loaded[target] = json.loads(target.read_text(encoding="utf-8"))
            target_doc = loaded[target]
        try:
            resolve_fragment(target_doc, fragment)
        except LookupError as error:
            problems.append(f"{where}: fragment does not resolve: {error}")
    return problems


def schema_name(doc_path: Path, ref: str) -> str:
    """Catalog name (``messages/connected``) of a reference to a whole schema file."""
    url, fragment = urldefrag(ref)
    assert url and not fragment, f"{ref!r} must reference a whole schema file"
    relative = schema_file(doc_path, url).relative_to(SCHEMAS_DIR.resolve()).as_posix()
    assert relative.endswith(SCHEMA_SUFFIX), relative
    return relative[: -len(SCHEMA_SUFFIX)]


def deref(document: Any, node: Any) -> Any:
    """``node``, with local references (``#/...``) followed until a non-reference."""
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
        ref = node["$ref"]
        assert ref not in seen, f"reference cycle at {ref}"
        seen.add(ref)
        node = resolve_fragment(document, ref[1:])
    return node


def schema_files_under(document: Any, doc_path: Path, node: Any) -> set[str]:
    """Names of the schema files referenced under ``node``, following local references."""
    names: set[str] = set()
    for _, ref in iter_refs(node):
        if ref.startswith("#"):
            names |= schema_files_under(document, doc_path, deref(document, {"$ref": ref}))
        else:
            names.add(schema_name(doc_path, ref))
    return names


def inline_schemas(document: Any) -> list[str]:
    """Pointers of every ``schema`` value that is not a ``$ref`` to a file or a oneOf/anyOf of them."""

    def is_file_ref(value: Any) -> bool:
        return (isinstance(value, dict) and set(value) == {"$ref"}
                and isinstance(value["$ref"], str) and not value["$ref"].startswith("#"))

    found: list[str] = []

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = pointer_to(pointer, key)
                if key == "schema" or pointer == "/components/schemas":
                    alternatives = None
                    if isinstance(value, dict) and len(value) == 1 and set(value) <= {"oneOf", "anyOf"}:
                        alternatives = next(iter(value.values()))
                    if not (is_file_ref(value) or (isinstance(alternatives, list) and alternatives
                                                   and all(is_file_ref(a) for a in alternatives))):
                        found.append(here)
                    continue
                walk(value, here)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pointer}/{index}")

    walk(document, "")
    return found


def asyncapi_message_schema(document: Any, message: Any) -> str:
    """Schema name of an AsyncAPI message (or a reference to one): its payload's file."""
    payload = deref(document, message)["payload"]
    assert set(payload) == {"$ref"}, f"payload {payload!r} must be a $ref to a schema file"
    return schema_name(ASYNCAPI_DOC, payload["$ref"])


def schema_type(name: str) -> str:
    """Message ``type`` of a schema name: ``messages/session_update/meter_value`` -> ``session_update``."""
    assert name.startswith("messages/"), name
    return name.split("/")[1]


def all_message_schemas() -> set[str]:
    return {catalog.message_schema(t) for t in catalog.MESSAGE_SCHEMAS if t not in catalog.EVENT_TYPES} | {
        catalog.message_schema(t, e) for t, events in catalog.EVENT_TYPES.items() for e in events
    }


def channel_schemas(document: Any, channel: Any) -> set[str]:
    return {asyncapi_message_schema(document, m) for m in channel["messages"].values()}


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def remote_lookups() -> Iterator[list[str]]:
    """Serve the schemas' ``$id`` URLs from the bundled files; record any other remote lookup.

    The schema files name themselves ``https://chargetwin.example/contracts/schemas/<path>``,
    and schemathesis's reference registry resolves their relative ``$ref`` s against that
    ``$id``: those addresses are the bundled files, so read them from disk. Anything else
    would be a network fetch, which these tests must never make.
    """
    attempted: list[str] = []

    def load_remote_uri(uri: str) -> Any:
        url = urldefrag(uri)[0]
        if url.startswith(catalog.SCHEMA_BASE):
            return json.loads((SCHEMAS_DIR / url[len(catalog.SCHEMA_BASE):]).read_text(encoding="utf-8"))
        attempted.append(uri)
        raise OSError(f"no network in these tests: {uri}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schemathesis_resolver, "load_remote_uri", load_remote_uri)
        yield attempted
    assert not attempted, f"the documents made schemathesis fetch remote documents: {attempted}"


@pytest.fixture(scope="module")
def openapi_schemas(remote_lookups: list[str]) -> dict[str, Any]:
    return {service: schemathesis.openapi.from_path(path) for service, path in OPENAPI_DOCS.items()}


# --- (a) the OpenAPI documents in schemathesis ---------------------------------------------


@pytest.mark.parametrize("service", sorted(OPENAPI_DOCS))
def test_openapi_document_loads_and_every_operation_resolves(
        service: str, openapi_schemas: dict[str, Any], remote_lookups: list[str]) -> None:
    operations = [result.ok() for result in openapi_schemas[service].get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == EXPECTED_OPERATIONS[service]
    for op in operations:
        assert op.body, f"{op.method.upper()} {op.path} has no request body"
    assert remote_lookups == []


def _schema_violations(found: list[Violation]) -> list[Violation]:
    # Semantic rules (meter_value vs energy, display vs counts, ...) tie values together in ways
    # no schema states; a generator driven by the documents cannot be expected to honour them.
    return [v for v in found if v.rule not in RULES]


@pytest.mark.parametrize("channel", REQUEST_CHANNELS)
def test_generated_request_bodies_conform(channel: str, openapi_schemas: dict[str, Any],
                                          remote_lookups: list[str]) -> None:
    service, path = channel.split(":", 1)
    (operation,) = [op for op in (r.ok() for r in openapi_schemas[service].get_all_operations())
                    if op.path == path and op.method.upper() == "POST"]
    validator = default_validator()
    bodies: list[Any] = []

    @settings(max_examples=10, deadline=None, database=None, derandomize=True)
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        body = case.body
        bodies.append(body)
        violations = _schema_violations(validator.validate(body, channel=channel, direction="request"))
        assert not violations, (body, [v.to_dict() for v in violations])

    check()
    assert bodies, "hypothesis generated no request body"
    assert remote_lookups == []


# --- (b) every $ref resolves -------------------------------------------------------------


def test_asyncapi_document_is_asyncapi_3() -> None:
    document = load_yaml(ASYNCAPI_DOC)
    assert document["asyncapi"] == "3.0.0"
    assert {"info", "servers", "channels", "operations", "components"} <= set(document)


@pytest.mark.parametrize("path", [ASYNCAPI_DOC, *OPENAPI_DOCS.values()], ids=lambda p: p.name)
def test_every_ref_resolves(path: Path) -> None:
    document = load_yaml(path)
    refs = [ref for _, ref in iter_refs(document)]
    assert any(not ref.startswith("#") for ref in refs), "the document references no schema file"
    assert broken_refs(path) == []


def test_broken_refs_are_reported(tmp_path: Path) -> None:
    """A copy of the AsyncAPI document with bad references: the helper names each one."""
    (tmp_path / "schemas").symlink_to(SCHEMAS_DIR, target_is_directory=True)
    (tmp_path / "asyncapi").mkdir()
    broken = load_yaml(ASYNCAPI_DOC)
    messages = broken["components"]["messages"]
    messages["connected"]["payload"]["$ref"] = "../schemas/messages/no_such_message.schema.json"
    messages["error"]["payload"]["$ref"] = "../schemas/defs.schema.json#/$defs/no_such_def"
    messages["notification"]["payload"]["$ref"] = "../close-codes.json"
    messages["response"]["payload"]["$ref"] = "https://chargetwin.example/contracts/schemas/messages/response.schema.json"
    broken["channels"]["gateway"]["messages"]["connected"]["$ref"] = "#/components/messages/nope"
    copy_path = tmp_path / "asyncapi" / "gateway.asyncapi.yaml"
    copy_path.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")

    problems = broken_refs(copy_path)

    assert len(problems) == 5, problems
    assert any("/components/messages/connected/payload" in p and "no such file" in p
               and "no_such_message.schema.json" in p for p in problems)
    assert any("/components/messages/error/payload" in p and "no_such_def" in p for p in problems)
    assert any("/components/messages/notification/payload" in p and "outside" in p for p in problems)
    assert any("/components/messages/response/payload" in p and "absolute URL" in p for p in problems)
    assert any("/channels/gateway/messages/connected" in p and "fragment" in p for p in problems)
    assert broken_refs(ASYNCAPI_DOC) == []  # the original is untouched and clean


# --- (c) AsyncAPI channels and messages against the catalog --------------------------------


def test_redis_channels_carry_exactly_the_catalog_types() -> None:
    document = load_yaml(ASYNCAPI_DOC)
    found: dict[str, frozenset[str]] = {}
    for key, channel in document["channels"].items():
        match = REDIS_ADDRESS.fullmatch(channel.get("address") or "")
        if match is None:
            continue
        suffix = match.group(1)
        assert suffix not in found, f"two channels for user:{{userId}}:{suffix}"
        assert set(channel["parameters"]) == {"userId"}, key
        schemas = channel_schemas(document, channel)
        types = frozenset(schema_type(name) for name in schemas)
        found[suffix] = types
        # a type with events is there with every event, each as its own message
        expected_schemas = {name for name in all_message_schemas() if schema_type(name) in types}
        assert schemas == expected_schemas, key
        assert [deref(document, s)["protocol"] for s in channel["servers"]] == ["redis"], key
    assert found == catalog.REDIS_CHANNEL_TYPES


def _gateway_channel(document: Any) -> tuple[str, Any]:
    (found,) = [(key, channel) for key, channel in document["channels"].items()
                if [deref(document, s)["protocol"] for s in channel["servers"]] == ["ws"]]
    return found


def test_gateway_channel_has_every_message_schema() -> None:
    document = load_yaml(ASYNCAPI_DOC)
    _, gateway = _gateway_channel(document)
    assert channel_schemas(document, gateway) == all_message_schemas()
    assert len(gateway["messages"]) == len(all_message_schemas())


def test_one_asyncapi_message_per_schema() -> None:
    document = load_yaml(ASYNCAPI_DOC)
    names = [asyncapi_message_schema(document, m) for m in document["components"]["messages"].values()]
    assert sorted(names) == sorted(all_message_schemas())
    # channels list messages by reference, never define their own
    for key, channel in document["channels"].items():
        for name, message in channel["messages"].items():
            assert set(message) == {"$ref"} and message["$ref"].startswith("#/components/messages/"), (key, name)


def test_operations_match_their_channels() -> None:
    """The gateway only sends on the socket and only receives from Redis; each channel is covered."""
    document = load_yaml(ASYNCAPI_DOC)
    gateway_key, _ = _gateway_channel(document)
    covered: dict[str, set[str]] = {key: set() for key in document["channels"]}
    for op_key, operation in document["operations"].items():
        channel_ref = operation["channel"]["$ref"]
        channel_key = channel_ref.removeprefix("#/channels/")
        assert operation["action"] == ("send" if channel_key == gateway_key else "receive"), op_key
        for message in operation["messages"]:
            prefix = f"{channel_ref}/messages/"
            assert message["$ref"].startswith(prefix), (op_key, message)
            covered[channel_key].add(message["$ref"].removeprefix(prefix))
    for key, channel in document["channels"].items():
        assert covered[key] == set(channel["messages"]), key


def test_gateway_documents_close_codes_and_token() -> None:
    document = load_yaml(ASYNCAPI_DOC)
    _, gateway = _gateway_channel(document)
    assert schema_name(ASYNCAPI_DOC, gateway["x-close-frame"]["schema"]["$ref"]) == catalog.CLOSE_SCHEMA
    codes_file = (ASYNCAPI_DOC.parent / gateway["x-close-codes"]).resolve()
    assert codes_file == (CONTRACTS_DIR / "close-codes.json").resolve()
    for entry in json.loads(codes_file.read_text(encoding="utf-8"))["codes"]:
        assert str(entry["code"]) in gateway["description"], entry
        if entry["reason"] is not None:
            assert entry["reason"] in gateway["description"], entry
    (server,) = [deref(document, s) for s in gateway["servers"]]
    assert (server["protocol"], server["host"]) == ("ws", "localhost:8080")
    (scheme,) = [deref(document, s) for s in server["security"]]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("httpApiKey", "query", "token")


# --- (d) every catalog endpoint in the right OpenAPI document --------------------------------


def _responses(document: Any, operation: Any, doc_path: Path) -> tuple[set[str], set[str], set[str]]:
    """(statuses, schema files of 2xx bodies, schema files of 4xx/5xx bodies) of an operation."""
    success: set[str] = set()
    errors: set[str] = set()
    for status, response in operation["responses"].items():
        files = schema_files_under(document, doc_path, deref(document, response))
        (success if str(status).startswith("2") else errors).update(files)
    return {str(s) for s in operation["responses"]}, success, errors


@pytest.mark.parametrize("channel", list(catalog.ENDPOINTS))
def test_endpoint_documented_with_its_schemas(channel: str) -> None:
    endpoint = catalog.ENDPOINTS[channel]
    doc_path = OPENAPI_DOCS[endpoint.service]
    document = load_yaml(doc_path)
    operation = document["paths"][endpoint.path]["post"]
    request = schema_files_under(document, doc_path, deref(document, operation["requestBody"]))
    assert request == {endpoint.request}
    statuses, success, errors = _responses(document, operation, doc_path)
    assert success == {endpoint.response}
    assert errors == {endpoint.error}
    assert REQUIRED_ERROR_STATUSES_OF.get(channel, REQUIRED_ERROR_STATUSES[endpoint.service]) <= statuses
    assert {s for s in statuses if s.startswith("2")} == {"200"}
    assert endpoint.spec.split(". ", 1)[-1] in operation["description"], "name the seed section"


def test_backend_security_schemes() -> None:
    document = load_yaml(OPENAPI_DOCS["backend"])
    schemes = document["components"]["securitySchemes"]
    for endpoint in catalog.ENDPOINTS.values():
        if endpoint.channel == LOGIN_CHANNEL:
            assert document["paths"][endpoint.path]["post"]["security"] == [], "login needs no token"
        elif endpoint.service == "backend":
            (requirement,) = document["paths"][endpoint.path]["post"]["security"]
            (name,) = requirement
            assert (schemes[name]["type"], schemes[name]["scheme"]) == ("http", "bearer")
            assert schemes[name]["bearerFormat"] == "JWT"
    (requirement,) = document["paths"][CMS_EVENTS_PATH]["post"]["security"]
    (name,) = requirement
    assert (schemes[name]["type"], schemes[name]["in"], schemes[name]["name"]) == (
        "apiKey", "header", "X-Internal-Token")


def test_cms_events_endpoint_documented_with_every_event() -> None:
    doc_path = OPENAPI_DOCS["backend"]
    document = load_yaml(doc_path)
    operation = document["paths"][CMS_EVENTS_PATH]["post"]
    request = schema_files_under(document, doc_path, deref(document, operation["requestBody"]))
    assert request == {f"cms/events/{event}" for event in catalog.CMS_EVENTS}
    statuses, success, errors = _responses(document, operation, doc_path)
    assert "202" in statuses
    assert "content" not in operation["responses"]["202"], "202 has no body"
    assert success == set()
    assert errors == {"rest/error"}


# --- (e) no inline copies of schemas ---------------------------------------------------------


@pytest.mark.parametrize("service", sorted(OPENAPI_DOCS))
def test_openapi_documents_inline_no_schema(service: str) -> None:
    document = load_yaml(OPENAPI_DOCS[service])
    assert inline_schemas(document) == []
    assert "schemas" not in document.get("components", {})


def test_inline_schema_is_reported() -> None:
    document = load_yaml(OPENAPI_DOCS["backend"])
    broken = copy.deepcopy(document)
    body = broken["paths"]["/api/charging/start"]["post"]["requestBody"]["content"]["application/json"]
    body["schema"] = {"type": "object", "properties": {"charger_id": {"type": "string"}}}
    stop_ok = broken["paths"]["/api/charging/stop"]["post"]["responses"]["200"]["content"]["application/json"]
    stop_ok["schema"] = {"$ref": "../schemas/rest/charging-stop.response.schema.json", "type": "object"}
    assert inline_schemas(broken) == [
        "/paths/~1api~1charging~1start/post/requestBody/content/application~1json/schema",
        "/paths/~1api~1charging~1stop/post/responses/200/content/application~1json/schema",
    ]
    assert inline_schemas(document) == []


def test_asyncapi_payloads_are_file_refs() -> None:
    """Every payload is a bare $ref; the only inline schema is the ws binding's query (the URL)."""
    document = load_yaml(ASYNCAPI_DOC)
    for key, message in document["components"]["messages"].items():
        payload = message["payload"]
        assert set(payload) == {"$ref"} and not payload["$ref"].startswith("#"), key
    assert inline_schemas(document) == []
