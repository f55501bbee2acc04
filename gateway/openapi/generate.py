#!/usr/bin/env python3
"""Writes kubernetes-1.32.json: Kubernetes 1.32's API schemas and request parameters, in the form
kube-apiserver serves them under /openapi/v3, for the kinds Navarch serves. The gateway embeds that file and builds
its OpenAPI v3 documents from it (gateway/src/discovery/openapi/).

Sources, both from PyPI (no network is needed once they are downloaded):
  - kubernetes-validate 1.32.0 carries the definitions of Kubernetes 1.32's swagger.json, with their descriptions,
    required fields, formats and x-kubernetes-* extensions (patch strategy and merge key, list type and map keys,
    map type, group-version-kind, unions), in JSON Schema form;
  - the kubernetes Python client 32.0.1, generated from the same swagger.json, carries the operations' query
    parameters with their descriptions in its docstrings.

    pip download --no-deps -d /tmp/k8s kubernetes-validate==1.32.0 kubernetes==32.0.1
    (cd /tmp/k8s && for w in *.whl; do unzip -q -o "$w"; done)
    python3 gateway/openapi/generate.py /tmp/k8s > gateway/openapi/kubernetes-1.32.json

What is changed to turn JSON Schema back into kube-apiserver's OpenAPI v3:
  - `"type": [T, "null"]` becomes `"type": T`;
  - `$ref` `#/$defs/X` becomes `#/components/schemas/X`, wrapped in `allOf: [{$ref}]` when it has siblings (a
    description, patch metadata), as kube-apiserver does: OpenAPI 3.0 ignores a `$ref`'s siblings;
  - the `enum` kubernetes-validate adds to `apiVersion` and `kind` of each top-level kind is dropped;
  - IntOrString and Quantity, which kubernetes-validate replaces by bare `oneOf`s, get back their description and
    kube-apiserver's form (`oneOf` of their JSON types, `format: int-or-string` for IntOrString).
Not recoverable from these sources, so absent: the `default` values kube-apiserver derives from Go zero values
(`default: {}`, `default: ""`), and `enum`s (the 1.32 swagger.json carries none).
"""

import json
import re
import sys
from pathlib import Path

# The kinds Navarch serves (bus/src/api/resource.rs), with their lists, plus what the operations refer to. The
# gateway's unit tests fail if a served kind has no schema here: add it and run this script again.
ROOTS = [
    "io.k8s.api.core.v1.Namespace",
    "io.k8s.api.core.v1.Pod",
    "io.k8s.api.core.v1.Node",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.Endpoints",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.Secret",
    "io.k8s.api.core.v1.Event",
    "io.k8s.api.core.v1.ServiceAccount",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.coordination.v1.Lease",
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    "io.k8s.api.rbac.v1.Role",
    "io.k8s.api.rbac.v1.RoleBinding",
    "io.k8s.api.rbac.v1.ClusterRole",
    "io.k8s.api.rbac.v1.ClusterRoleBinding",
]
ROOTS += [name + "List" for name in ROOTS]
ROOTS += [
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
]

# kube-apiserver's v3 forms of the two types kubernetes-validate rewrites (descriptions: apimachinery's doc comments,
# as k8s-openapi 0.26 carries them too).
INT_OR_STRING = {
    "description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling "
    "and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field "
    "that can accept a name or number.",
    "format": "int-or-string",
    "oneOf": [{"type": "integer"}, {"type": "string"}],
}
QUANTITY_DESCRIPTION = (
    "Quantity is a fixed-point representation of a number. It provides convenient marshaling/unmarshaling in JSON and "
    "YAML, in addition to String() and AsInt64() accessors.\n\nThe serialization format is:\n\n``` <quantity>        "
    "::= <signedNumber><suffix>\n\n\t(Note that <suffix> may be empty, from the \"\" case in <decimalSI>.)\n\n<digit>"
    "           ::= 0 | 1 | ... | 9 <digits>          ::= <digit> | <digit><digits> <number>          ::= <digits> | "
    "<digits>.<digits> | <digits>. | .<digits> <sign>            ::= \"+\" | \"-\" <signedNumber>    ::= <number> | "
    "<sign><number> <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI> <binarySI>        ::= Ki | Mi "
    "| Gi | Ti | Pi | Ei\n\n\t(International System of units; See: http://physics.nist.gov/cuu/Units/binary.html)\n\n"
    "<decimalSI>       ::= m | \"\" | k | M | G | T | P | E\n\n\t(Note that 1024 = 1Ki but 1000 = 1k; I didn't "
    "choose the capitalization.)\n\n<decimalExponent> ::= \"e\" <signedNumber> | \"E\" <signedNumber> ```\n\nNo "
    "matter which of the three exponent forms is used, no quantity may represent a number greater than 2^63-1 in "
    "magnitude, nor may it have more than 3 decimal places. Numbers larger or more precise will be capped or rounded "
    "up. (E.g.: 0.1m will rounded up to 1m.) This may be extended in the future if we require larger or smaller "
    "quantities.\n\nWhen a Quantity is parsed from a string, it will remember the type of suffix it had, and will use "
    "the same type again when it is serialized.\n\nBefore serializing, Quantity will be put in \"canonical form\". "
    "This means that Exponent/suffix will be adjusted up or down (with a corresponding increase or decrease in "
    "Mantissa) such that:\n\n- No precision is lost - No fractional digits will be emitted - The exponent (or "
    "suffix) is as large as possible.\n\nThe sign will be omitted unless the number is negative.\n\nExamples:\n\n- "
    "1.5 will be serialized as \"1500m\" - 1.5Gi will be serialized as \"1536Mi\"\n\nNote that the quantity will "
    "NEVER be internally represented by a floating point number. That is the whole point of this exercise.\n\n"
    "Non-canonical values will still parse as long as they are well formed, but will be re-emitted in their "
    "canonical form. (So always use canonical form, or don't diff.)\n\nThis format is intended to make it difficult "
    "to use these numbers without writing some sort of special handling code in the hopes that that will cause "
    "implementors to also use a fixed point implementation."
)
QUANTITY = {"description": QUANTITY_DESCRIPTION, "oneOf": [{"type": "string"}, {"type": "number"}]}

# The operations whose query parameters are taken, by kube-apiserver's action name, from one Python client method
# each (the parameters are the same for every kind).
OPERATIONS = {
    "list": ("apps_v1_api.py", "list_namespaced_deployment"),
    "post": ("apps_v1_api.py", "create_namespaced_deployment"),
    "get": ("apps_v1_api.py", "read_namespaced_deployment"),
    "put": ("apps_v1_api.py", "replace_namespaced_deployment"),
    "patch": ("apps_v1_api.py", "patch_namespaced_deployment"),
    "delete": ("apps_v1_api.py", "delete_namespaced_deployment"),
}
PARAM_TYPES = {"str": "string", "bool": "boolean", "int": "integer"}
# Path parameters, `pretty` (a path-level parameter in kube-apiserver's documents) and the body are not queries.
NOT_QUERY = {"name", "namespace", "body", "pretty", "async_req"}


def camel(snake):
    """`field_validation` -> `fieldValidation`; `_continue` -> `continue`."""
    head, *rest = snake.lstrip("_").split("_")
    return head + "".join(word.capitalize() for word in rest)


def parameters(api_dir):
    """{action: [parameter]} and the `pretty` parameter, from the Python client's docstrings."""
    out, pretty = {}, None
    for action, (module, method) in OPERATIONS.items():
        text = (api_dir / module).read_text()
        start = text.index(f"    def {method}_with_http_info(")
        doc = text[start : text.index('"""', text.index('"""', start) + 3)]
        params = []
        for kind, name, description in re.findall(r"^\s*:param (\w+) (\w+): (.*)$", doc, re.M):
            description = description.replace('\\"', '"')
            if kind not in PARAM_TYPES:
                continue
            schema = {"type": PARAM_TYPES[kind], "uniqueItems": True}
            param = {"description": description, "in": "query", "name": camel(name), "schema": schema}
            if name == "pretty":
                pretty = param
            elif name not in NOT_QUERY:
                params.append(param)
        out[action] = sorted(params, key=lambda p: p["name"])
    return out, pretty


def to_v3(schema):
    """One JSON Schema node of kubernetes-validate in kube-apiserver's OpenAPI v3 form."""
    if isinstance(schema, list):
        return [to_v3(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            out[key] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "$ref":
            out[key] = value.replace("#/$defs/", "#/components/schemas/")
        elif key == "properties":
            out[key] = {name: to_v3(prop) for name, prop in value.items()}
        elif key == "x-kubernetes-group-version-kind":
            out[key] = value
        else:
            out[key] = to_v3(value)
    if "$ref" in out and len(out) > 1:
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return dict(sorted(out.items()))


def definition(name, schema):
    if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
        return INT_OR_STRING
    if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
        return QUANTITY
    schema = to_v3(schema)
    if "x-kubernetes-group-version-kind" in schema:
        for field in ("apiVersion", "kind"):
            schema.get("properties", {}).get(field, {}).pop("enum", None)
    return schema


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value.rsplit("/", 1)[-1]
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def main(root):
    root = Path(root)
    defs = json.loads(
        (root / "kubernetes_validate/kubernetes-json-schema/v1.32.0-local/_definitions.json").read_text()
    )["$defs"]
    schemas, todo = {}, list(ROOTS)
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        schemas[name] = definition(name, defs[name])
        todo.extend(refs(schemas[name]))
    ops, pretty = parameters(root / "kubernetes/client/api")
    doc = {
        "source": "Kubernetes 1.32: PyPI kubernetes-validate 1.32.0 (schemas) and kubernetes 32.0.1 (parameters), "
        "converted by gateway/openapi/generate.py",
        "schemas": dict(sorted(schemas.items())),
        "parameters": {"pretty": pretty, "operations": ops},
    }
    json.dump(doc, sys.stdout, indent=1, sort_keys=False, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/k8s")
