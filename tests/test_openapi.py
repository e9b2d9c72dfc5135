"""docs/openapi.yaml is the contract: it must match the deployed API.

- Routes and their auth: the spec's operations are exactly the template's routes.
- Responses: every response the integration tests received has a documented status for its route,
  and its JSON body validates against the documented schema (checked after all other tests ran).
"""

import re

import jsonschema
import pytest
import yaml

from tests.support import ROOT, TEMPLATE

SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())


def spec_operations() -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): operation
            for path, item in SPEC["paths"].items()
            for method, operation in item.items() if method in ("get", "put", "post", "delete")}


def template_routes() -> dict[tuple[str, str], bool]:
    """(METHOD, path) -> whether the JWT authorizer guards it (the HTTP API's routes; the live
    WebSocket API's are described in the README)."""
    routes = {}
    for resource in TEMPLATE["Resources"].values():
        if resource["Type"] == "AWS::ApiGatewayV2::Route" and resource["Properties"]["ApiId"] == {"Ref": "HttpApi"}:
            method, path = resource["Properties"]["RouteKey"].split(" ", 1)
            routes[(method, path)] = resource["Properties"].get("AuthorizationType") == "JWT"
    return routes


def test_spec_and_template_have_the_same_routes_and_auth():
    routes = template_routes()
    operations = spec_operations()
    assert set(routes) == set(operations)
    for key, guarded in routes.items():
        assert bool(operations[key].get("security")) == guarded, key


def route_of(method: str, url_path: str):
    """The spec operation a concrete request path belongs to."""
    for path in SPEC["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"
        if re.match(pattern, url_path) and method.lower() in SPEC["paths"][path]:
            return path
    return None


def resolve(node: dict) -> dict:
    while "$ref" in node:
        target = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator_for(schema: dict):
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; refs resolve inside the spec document.
    return jsonschema.Draft202012Validator({**SPEC, **schema})


@pytest.mark.last
def test_every_observed_response_is_documented(observed_responses):
    # Every part of the suite (make test runs it in three) observes a few hundred answers at least.
    assert len(observed_responses) > 200, "the integration tests should have exercised the API first"
    problems = []
    for method, url_path, status, body in observed_responses:
        path = route_of(method, url_path)
        if path is None:  # no route: API Gateway's 404, not one of ours
            assert status == 404, (method, url_path, status)
            continue
        responses = SPEC["paths"][path][method.lower()]["responses"]
        if str(status) not in responses:
            problems.append(f"{method} {path}: undocumented status {status}")
            continue
        schema = resolve(responses[str(status)]).get("content", {}).get("application/json", {}).get("schema")
        if schema is not None and body is not None:
            errors = sorted(validator_for(schema).iter_errors(body), key=str)
            if errors:
                problems.append(f"{method} {path} {status}: {errors[0].message}")
    assert not sorted(set(problems)), "\n".join(sorted(set(problems)))
