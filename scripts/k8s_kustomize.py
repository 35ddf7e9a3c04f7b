#!/usr/bin/env python3
"""Renders a kustomization folder as kustomize does, for the part of kustomize that deploy/k8s
uses: `resources` (files and folders), `namespace`, `labels` (pairs, on metadata), `images` and
`patches` (JSON 6902, by kind and name). Anything else in a kustomization is refused. It is
k8s-check's renderer where neither kubectl nor kustomize is installed; where one is, k8s-check
renders with both and fails if they differ, so this stays faithful.

    scripts/k8s_kustomize.py DIR > rendered.yaml
"""

import copy
import os
import sys

import yaml

KNOWN = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}
# Kinds without a namespace (among those deploy/k8s uses or might).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass", "ClusterTriggerAuthentication"}


def pointer(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def apply_op(doc, op):
    *parents, last = pointer(op["path"])
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op["op"] == "add":
            node.insert(index, copy.deepcopy(op["value"]))
        elif op["op"] == "replace":
            node[index] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del node[index]
        else:
            raise SystemExit(f"patch op {op['op']} is not supported")
    else:
        if op["op"] in ("add", "replace"):
            if op["op"] == "replace" and last not in node:
                raise SystemExit(f"patch: {op['path']} does not exist")
            node[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del node[last]
        else:
            raise SystemExit(f"patch op {op['op']} is not supported")


def set_image(container, images):
    image = container.get("image", "")
    name, tag = image, None
    if "@" not in image and ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    for rule in images:
        if rule["name"] == name:
            container["image"] = f"{rule.get('newName', name)}:{rule.get('newTag', tag)}" if rule.get("newTag", tag) else rule.get("newName", name)


def pod_specs(doc):
    spec = doc.get("spec", {})
    if "template" in spec and isinstance(spec["template"], dict) and "spec" in spec["template"]:
        yield spec["template"]["spec"]
    if doc.get("kind") == "Pod":
        yield spec


def build(folder):
    with open(os.path.join(folder, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unknown = set(k) - KNOWN
    if unknown:
        raise SystemExit(f"{folder}: {sorted(unknown)} not supported by this renderer")
    docs = []
    for resource in k.get("resources", []):
        path = os.path.normpath(os.path.join(folder, resource))
        if os.path.isdir(path):
            docs.extend(build(path))
        else:
            with open(path) as f:
                docs.extend(d for d in yaml.safe_load_all(f) if d)
    for entry in k.get("labels", []):
        if set(entry) - {"pairs"}:
            raise SystemExit(f"{folder}: labels options {sorted(set(entry) - {'pairs'})} not supported")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    for patch in k.get("patches", []):
        target = patch["target"]
        ops = yaml.safe_load(patch["patch"])
        matched = [d for d in docs if d["kind"] == target.get("kind", d["kind"]) and d["metadata"]["name"] == target.get("name", d["metadata"]["name"])]
        if not matched:
            raise SystemExit(f"{folder}: a patch matches nothing: {target}")
        for doc in matched:
            for op in ops:
                apply_op(doc, op)
    for doc in docs:
        for pod in pod_specs(doc):
            for container in pod.get("initContainers", []) + pod.get("containers", []):
                set_image(container, k.get("images", []))
        if "namespace" in k and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = k["namespace"]
    return docs


if __name__ == "__main__":
    yaml.safe_dump_all(build(sys.argv[1]), sys.stdout, sort_keys=False)
