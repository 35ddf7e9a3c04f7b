#!/usr/bin/env python3
"""`make k8s-check` (run by scripts/k8s-check.sh, which installs what this needs): renders every
overlay under deploy/k8s/overlays and checks, without a cluster,

1. every object against Kubernetes' schemas (kubernetes-validate, strict: unknown fields fail), at
   the oldest and the newest Kubernetes version supported here; KEDA's objects against KEDA's CRD
   (scripts/k8s_keda.mjs); CloudNativePG's Cluster against deploy/k8s/schemas/;
2. that what the manifests run is what the binary accepts: subcommands, flags and environment
   names against `lookalike <command> --help`; every ConfigMap/Secret key a container reads;
   ports against the listen addresses; probes, Services, PDBs, autoscalers and NetworkPolicies
   against the pods they name; terminationGracePeriodSeconds against preStop + the shutdown grace;
3. the same, running: each lookalike container's command with its manifest's settings (connection
   settings swapped for a throwaway local database and folder, ports for free local ones) must
   answer its probes on the ports they name, keep /metrics off the public port, stop on SIGTERM
   within its termination grace period; the migration must succeed, and KEDA's query must run on
   the migrated schema and return one number.

Prints every problem and exits 1 if there is any.
"""

import argparse
import json
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import jsonschema
import kubernetes_validate
import yaml

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
import k8s_kustomize  # noqa: E402

# The oldest Kubernetes the manifests target (unhealthyPodEvictionPolicy, the sidecar-free
# probes and the restricted Pod Security level are there) and the newest the validator knows.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]

# Read from the environment by the object store's S3 client (`AmazonS3Builder::from_env`,
# src/photo_store.rs), not by clap: accepted wherever `--storage-url` is.
AWS_ENV = {
    "AWS_ENDPOINT",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ALLOW_HTTP",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}

# KEDA's PostgreSQL scaler's metadata keys (its documentation); the CRD leaves them free.
KEDA_POSTGRESQL_KEYS = {
    "query",
    "targetQueryValue",
    "activationTargetQueryValue",
    "connectionFromEnv",
    "host",
    "port",
    "userName",
    "passwordFromEnv",
    "dbName",
    "sslmode",
}

# Connection settings: in the running check they point at local stand-ins.
CONNECTION_ENV = {"DATABASE_URL", "LOOKALIKE_STORAGE_URL"} | AWS_ENV

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}

# RSS of `serve` and `work` at rest with the model loaded: 71 and 70 MiB measured (peaks of 105
# and 111 MiB while loading it), rounded up (docs/operations.md).
BASE_RSS_MIB = 128

MEMORY_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def mib(quantity):
    """A memory quantity (`1536Mi`, `2Gi`, `512M`, bytes) in MiB."""
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity))
    return float(m.group(1)) * MEMORY_UNITS[m.group(2)] / (1 << 20)


def cores(quantity):
    """A CPU quantity (`2`, `500m`) in cores."""
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


# --- the binary ---------------------------------------------------------------------------------


class Binary:
    """What `lookalike` accepts, read from its --help."""

    def __init__(self, path):
        self.path = path
        top = self.help([])
        section = top.split("Commands:", 1)[1].split("Options:", 1)[0]
        self.commands = {
            m.group(1) for m in re.finditer(r"^  ([a-z][\w-]*)\s", section, re.M)
        } - {"help"}
        self.flags = {}
        self.envs = {}
        self.defaults = {}
        for command in self.commands:
            text = self.help([command])
            self.flags[command] = set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", text, re.M))
            self.envs[command] = set(re.findall(r"\[env: (\w+)=", text))
            # The default of each environment variable: `[env: X=]` then `[default: V]`.
            self.defaults[command] = {
                m.group(1): m.group(2)
                for m in re.finditer(r"\[env: (\w+)=[^\]]*\]\s*\[default: ([^\]]*)\]", text)
            }

    def help(self, args):
        # A clean environment: clap shows the values of variables that are set.
        out = subprocess.run(
            [self.path, *args, "--help"],
            env={"PATH": os.environ.get("PATH", "")},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout


# --- rendering and schemas ----------------------------------------------------------------------


def render(command, overlay):
    """The overlay's objects, rendered by `command` (or by k8s_kustomize.py when it is
    `builtin`); with an external kustomize, k8s_kustomize.py must render the same objects."""
    try:
        own = k8s_kustomize.build(overlay)
    except (SystemExit, KeyError, IndexError, ValueError) as e:
        problem(overlay, f"k8s_kustomize.py does not render it: {e}")
        own = None
    if command == "builtin":
        return own or []
    out = subprocess.run([*shlex.split(command), overlay], capture_output=True, text=True)
    if out.returncode != 0:
        problem(overlay, f"does not render: {out.stderr.strip()}")
        return []
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])  # noqa: E731
    text = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731
    if own is not None and sorted(map(text, own)) != sorted(map(text, docs)):
        differ = sorted({key(d) for d in docs} ^ {key(d) for d in own}) or sorted(
            key(d) for d in docs if text(d) not in set(map(text, own))
        )
        problem(overlay, f"k8s_kustomize.py renders it otherwise than `{command}`: {differ}")
    return docs


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def validate_schemas(where, docs, node_modules, schemas_dir):
    keda = []
    for doc in docs:
        api, kind = doc.get("apiVersion", ""), doc.get("kind")
        if api.startswith("keda.sh/"):
            keda.append(doc)
        elif api.startswith("postgresql.cnpg.io/"):
            path = os.path.join(schemas_dir, "cnpg-cluster.schema.json")
            with open(path) as f:
                schema = json.load(f)
            for error in jsonschema.Draft202012Validator(schema).iter_errors(doc):
                at = "/".join(str(p) for p in error.absolute_path)
                problem(f"{where} {name_of(doc)}", f"{at}: {error.message}")
        else:
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.SchemaNotFoundError:
                    problem(f"{where} {name_of(doc)}", f"no Kubernetes {version} schema for {api} {kind}")
                except kubernetes_validate.ValidationError as e:
                    at = "/".join(str(p) for p in e.path)
                    problem(f"{where} {name_of(doc)}", f"Kubernetes {version}: {at}: {e.message}")
    if keda:
        out = subprocess.run(
            ["node", os.path.join(os.path.dirname(__file__), "k8s_keda.mjs"), node_modules],
            input=json.dumps(keda),
            capture_output=True,
            text=True,
        )
        lines = out.stdout.strip().splitlines()
        for line in lines[:-1]:
            problem(where, line)
        if out.returncode != 0 and not lines[:-1]:
            problem(where, f"the KEDA check failed: {out.stderr.strip()}")
    return len(keda)


# --- what the manifests run ---------------------------------------------------------------------


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


class Manifests:
    """One overlay's objects, indexed."""

    def __init__(self, docs):
        self.docs = docs
        self.config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
        self.secrets = {
            d["metadata"]["name"]: {**d.get("stringData", {}), **d.get("data", {})}
            for d in docs
            if d["kind"] == "Secret"
        }
        self.workloads = [d for d in docs if d["kind"] in WORKLOADS]

    def pod_labels(self, workload):
        return workload["spec"]["template"].get("metadata", {}).get("labels", {})

    def pods_selected(self, selector):
        return [w for w in self.workloads if labels_match(selector, self.pod_labels(w))]


def is_lookalike(container):
    repository = container.get("image", "").split("@")[0].rsplit(":", 1)[0]
    return repository.rsplit("/", 1)[-1] == "lookalike"


def container_env(m, where, container, binary, command):
    """The container's environment names and values (None where a Secret outside the manifests
    holds it), with a problem for every name the command does not accept and every reference
    that does not resolve."""
    accepted = binary.envs[command] | (AWS_ENV if "--storage-url" in binary.flags[command] else set())
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            if ref not in m.config_maps:
                if not source["configMapRef"].get("optional"):
                    problem(where, f"envFrom ConfigMap {ref} is not in the manifests")
                continue
            env.update(m.config_maps[ref])
        elif "secretRef" in source:
            ref = source["secretRef"]["name"]
            if ref not in m.secrets:
                problem(where, f"envFrom Secret {ref}: its names are not in the manifests; name each variable with env[].valueFrom so that they can be checked")
                continue
            env.update({k: None for k in m.secrets[ref]})
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = var["value"]
        elif "valueFrom" in var:
            source = var["valueFrom"]
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                data = m.config_maps.get(ref["name"])
                if data is None or ref["key"] not in data:
                    if not ref.get("optional"):
                        problem(where, f"{name}: ConfigMap {ref['name']} has no key {ref['key']}")
                    continue
                env[name] = data[ref["key"]]
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                data = m.secrets.get(ref["name"])
                if data is not None and ref["key"] not in data and not ref.get("optional"):
                    problem(where, f"{name}: Secret {ref['name']} has no key {ref['key']}")
                env[name] = None
            else:
                env[name] = None
        else:
            env[name] = ""
    for name in env:
        if name not in accepted:
            problem(where, f"environment variable {name} is not accepted by `lookalike {command}`")
    return env


def check_container(m, where, workload, container, binary, image_env):
    command_line = container.get("command")
    if command_line not in (None, ["lookalike"]):
        problem(where, f"command {command_line}: the image's entrypoint is lookalike; give args only")
    args = container.get("args", [])
    if not args or args[0] not in binary.commands:
        problem(where, f"args {args}: the first must be one of lookalike's commands {sorted(binary.commands)}")
        return None
    command = args[0]
    for arg in args[1:]:
        if arg.startswith("--") and arg.split("=", 1)[0] not in binary.flags[command]:
            problem(where, f"flag {arg.split('=', 1)[0]} is not accepted by `lookalike {command}`")
    env = container_env(m, where, container, binary, command)
    settings = {**binary.defaults[command], **{k: v for k, v in image_env.items() if k in binary.envs[command]}}
    settings.update({k: v for k, v in env.items() if v is not None})

    # Ports: each declared port is one the process listens on, under the name its probes use.
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    listens = {}
    if "LOOKALIKE_LISTEN" in binary.envs[command]:
        listens["http"] = port_of(settings["LOOKALIKE_LISTEN"])
    if settings.get("LOOKALIKE_METRICS_LISTEN"):
        listens["metrics"] = port_of(settings["LOOKALIKE_METRICS_LISTEN"])
    for name, port in ports.items():
        if listens.get(name) != port:
            problem(where, f"containerPort {name}={port}, but the process listens there on {listens.get(name)}")
    for name in listens:
        if name not in ports:
            problem(where, f"the process listens on {name} ({listens[name]}) but declares no containerPort {name}")
    probes = {}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        if not probe:
            continue
        get = probe.get("httpGet")
        if not get:
            problem(where, f"{kind}: lookalike's probes are HTTP (/healthz, /readyz, /metrics)")
            continue
        port = get["port"]
        number = ports.get(port) if isinstance(port, str) else port
        if number not in listens.values():
            problem(where, f"{kind}: port {port} is not one the process listens on")
            continue
        probes[kind] = (number, get.get("path", "/"))
    if command in ("serve", "work") and not container.get("livenessProbe"):
        problem(where, "no livenessProbe")
    if command == "serve" and "readinessProbe" not in probes:
        problem(where, "no readinessProbe")
    if command == "serve" and probes.get("readinessProbe", (0, ""))[1] != "/readyz":
        problem(where, "the readinessProbe must be /readyz (the database answers and the model is loaded)")

    # The graceful stop must fit the termination grace period.
    pod = workload["spec"]["template"]["spec"]
    total = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = 0
    hook = container.get("lifecycle", {}).get("preStop", {})
    if "exec" in hook:
        cmd = hook["exec"].get("command", [])
        if len(cmd) == 2 and cmd[0] == "sleep":
            pre_stop = int(cmd[1])
        else:
            problem(where, f"preStop {cmd}: only a sleep is understood")
    elif "sleep" in hook:
        pre_stop = int(hook["sleep"]["seconds"])
    grace = int(settings.get("LOOKALIKE_SHUTDOWN_GRACE_SECS", "0")) if command in ("serve", "work") else 0
    # serve: the pool closes within the grace; work: then 1 s more for the pool. 2 s of margin.
    if command in ("serve", "work") and total < pre_stop + grace + 2:
        problem(where, f"terminationGracePeriodSeconds {total} < preStop {pre_stop} + shutdown grace {grace} + 2")
    if command == "serve" and pre_stop == 0 and workload["kind"] == "Deployment":
        problem(where, "no preStop sleep: requests would still arrive while the listener closes")
    resources = container.get("resources", {})
    for what in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(what, {}):
                problem(where, f"no {resource} {what}")
    if command in ("serve", "work") and "memory" in resources.get("limits", {}) and "cpu" in resources.get("limits", {}):
        # What the settings allow at most: the process at rest (model loaded), the memory for
        # request bodies (serve), and each concurrent decode's allowance.
        # 0 decode permits is one per core, which Rust reads from the CPU limit (rounded up here,
        # to be safe).
        decodes = int(settings.get("LOOKALIKE_DECODE_PERMITS", "0")) or max(1, math.ceil(cores(resources["limits"]["cpu"])))
        bound = BASE_RSS_MIB + decodes * int(settings.get("LOOKALIKE_MAX_DECODE_MIB", "512"))
        if command == "serve":
            bound += int(settings.get("LOOKALIKE_BODY_MEMORY_MIB", "96"))
        limit = mib(resources["limits"]["memory"])
        if limit < bound:
            problem(where, f"memory limit {limit:.0f} MiB < {bound} MiB that the settings allow ({BASE_RSS_MIB} at rest + {decodes} decodes x LOOKALIKE_MAX_DECODE_MIB{' + LOOKALIKE_BODY_MEMORY_MIB' if command == 'serve' else ''})")
    return {
        "command": command,
        "args": args[1:],
        "env": env,
        "ports": ports,
        "listens": listens,
        "probes": probes,
        "stop_within": total - pre_stop,
        "where": where,
    }


def check_references(m, where):
    kinds = {(d["kind"], d["metadata"]["name"]) for d in m.docs}
    for doc in m.docs:
        at = f"{where} {name_of(doc)}"
        spec = doc.get("spec", {})
        if doc["kind"] == "Service":
            pods = m.pods_selected(spec.get("selector"))
            if not pods:
                problem(at, "selects no pods")
            for port in spec.get("ports", []):
                target = port.get("targetPort", port["port"])
                declared = {
                    p.get("name") if isinstance(target, str) else p["containerPort"]
                    for w in pods
                    for c in w["spec"]["template"]["spec"]["containers"]
                    for p in c.get("ports", [])
                }
                if target not in declared:
                    problem(at, f"targetPort {target} is not a port of the pods it selects")
        elif doc["kind"] == "PodDisruptionBudget":
            if not m.pods_selected(spec["selector"].get("matchLabels")):
                problem(at, "selects no pods")
        elif doc["kind"] == "HorizontalPodAutoscaler":
            ref = spec["scaleTargetRef"]
            if (ref["kind"], ref["name"]) not in kinds:
                problem(at, f"scales {ref['kind']}/{ref['name']}, which is not in the manifests")
        elif doc["kind"] == "ScaledObject":
            ref = spec["scaleTargetRef"]
            if (ref.get("kind", "Deployment"), ref["name"]) not in kinds:
                problem(at, f"scales {ref['name']}, which is not in the manifests")
            for trigger in spec["triggers"]:
                auth = trigger.get("authenticationRef", {}).get("name")
                if auth and ("TriggerAuthentication", auth) not in kinds:
                    problem(at, f"authenticationRef {auth} is not in the manifests")
                if trigger["type"] == "postgresql":
                    for key in set(trigger["metadata"]) - KEDA_POSTGRESQL_KEYS:
                        problem(at, f"postgresql trigger: unknown metadata key {key}")
                    # A capped count must still tell the largest scale apart.
                    cap = re.search(r"\bLIMIT (\d+)", trigger["metadata"]["query"])
                    target = float(trigger["metadata"].get("targetQueryValue", "0"))
                    if cap and int(cap.group(1)) < spec.get("maxReplicaCount", 100) * target:
                        problem(at, f"the query counts up to {cap.group(1)}, less than maxReplicaCount x targetQueryValue")
        elif doc["kind"] == "TriggerAuthentication":
            for ref in spec.get("secretTargetRef", []):
                data = m.secrets.get(ref["name"])
                if data is not None and ref["key"] not in data:
                    problem(at, f"Secret {ref['name']} has no key {ref['key']}")
        elif doc["kind"] == "NetworkPolicy":
            pods = m.pods_selected(spec["podSelector"].get("matchLabels"))
            if not pods:
                problem(at, "selects no pods")
            names = {p.get("name") for w in pods for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for rule in spec.get("ingress", []):
                for port in rule.get("ports", []):
                    if isinstance(port.get("port"), str) and port["port"] not in names:
                        problem(at, f"ingress port {port['port']} is not a port of the pods it selects")


# --- running it ---------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=3):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def local_env(run, local):
    """The container's settings with its connection settings and addresses made local."""
    env = {k: v for k, v in run["env"].items() if k not in CONNECTION_ENV and v is not None}
    env.update(local)
    mapped = {}
    for name, port in run["listens"].items():
        mapped[port] = free_port()
        key = "LOOKALIKE_LISTEN" if name == "http" else "LOOKALIKE_METRICS_LISTEN"
        env[key] = f"127.0.0.1:{mapped[port]}"
    return env, mapped


def run_service(binary, run, local, log_dir):
    where = run["where"]
    env, mapped = local_env(run, local)
    log_path = os.path.join(log_dir, f"{run['command']}-{len(os.listdir(log_dir))}.log")
    with open(log_path, "w") as log:
        child = subprocess.Popen([binary.path, run["command"], *run["args"]], env=env, stdout=log, stderr=log)
    try:
        # Each probe must answer 200 on the port it names.
        deadline = time.monotonic() + 90
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind not in run["probes"]:
                continue
            port, path = run["probes"][kind]
            while (status := get(mapped[port], path)) != 200:
                # 404: no such route, however long it waits.
                if status == 404 or child.poll() is not None or time.monotonic() > deadline:
                    problem(where, f"running: {kind} {path} on port {port} never answered 200 (log: {log_path})")
                    return
                time.sleep(0.2)
        if "metrics" in run["listens"]:
            if get(mapped[run["listens"]["metrics"]], "/metrics") != 200:
                problem(where, "running: /metrics does not answer on the metrics port")
            if "http" in run["listens"] and get(mapped[run["listens"]["http"]], "/metrics") != 404:
                problem(where, "running: /metrics answers on the public port too")
        child.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = child.wait(timeout=run["stop_within"])
            if code != 0:
                problem(where, f"running: exited {code} after SIGTERM (log: {log_path})")
            print(f"  {where}: probes answered; stopped {time.monotonic() - started:.1f} s after SIGTERM")
        except subprocess.TimeoutExpired:
            problem(where, f"running: still running {run['stop_within']} s after SIGTERM (the kubelet would kill it)")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def run_once(binary, run, local, log_dir):
    env, _ = local_env(run, local)
    out = subprocess.run([binary.path, run["command"], *run["args"]], env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        problem(run["where"], f"running: `lookalike {run['command']}` failed: {out.stderr.strip()[-2000:]}")
    else:
        print(f"  {run['where']}: `lookalike {run['command']}` succeeded")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--render", required=True, help="command that renders a kustomization folder")
    parser.add_argument("--binary", required=True)
    parser.add_argument("--node-modules", required=True)
    parser.add_argument("--database-url", help="an empty database for the running check; none: no running check")
    parser.add_argument("--psql", help="psql, for KEDA's query")
    parser.add_argument("--local-env", default="{}", help="JSON: settings the image provides (model, runtime)")
    parser.add_argument("overlays", nargs="*")
    args = parser.parse_args()

    root = args.root
    overlays = args.overlays or sorted(
        os.path.join(root, "deploy/k8s/overlays", d) for d in os.listdir(os.path.join(root, "deploy/k8s/overlays"))
    )
    binary = Binary(args.binary)
    # What the image sets (Dockerfile ENV) counts as the container's defaults.
    with open(os.path.join(root, "Dockerfile")) as f:
        dockerfile = f.read()
    image_env = dict(re.findall(r"\b(LOOKALIKE_\w+)=(\S+)", dockerfile.split("FROM ${DEBIAN_IMAGE}", 1)[1]))
    for name in image_env:
        if not any(name in envs for envs in binary.envs.values()):
            problem("Dockerfile", f"ENV {name} is accepted by no lookalike command")

    runs, queries, total_objects, total_keda = {}, set(), 0, 0
    for overlay in overlays:
        where = os.path.relpath(overlay, root)
        docs = render(args.render, overlay)
        total_objects += len(docs)
        total_keda += validate_schemas(where, docs, args.node_modules, os.path.join(root, "deploy/k8s/schemas"))
        m = Manifests(docs)
        check_references(m, where)
        for workload in m.workloads:
            pod = workload["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                if is_lookalike(container):
                    at = f"{where} {name_of(workload)} {container['name']}"
                    run = check_container(m, at, workload, container, binary, image_env)
                    if run:
                        key = json.dumps([run["command"], run["args"], run["env"], run["probes"], run["stop_within"]], sort_keys=True)
                        runs.setdefault(key, run)
        for doc in docs:
            if doc["kind"] == "ScaledObject":
                for trigger in doc["spec"]["triggers"]:
                    if trigger["type"] == "postgresql":
                        queries.add((f"{where} {name_of(doc)}", trigger["metadata"]["query"]))
    print(f"k8s-check: {len(overlays)} overlays, {total_objects} objects ({total_keda} KEDA) validated against Kubernetes {', '.join(K8S_VERSIONS)} and the CRDs; {len(runs)} distinct lookalike containers")

    if args.database_url and not problems:
        local = json.loads(args.local_env)
        local["DATABASE_URL"] = args.database_url
        local["PATH"] = os.environ.get("PATH", "")
        with tempfile.TemporaryDirectory(prefix="k8s-check-") as scratch:
            local["LOOKALIKE_STORAGE_DIR"] = os.path.join(scratch, "photos")
            log_dir = os.path.join(scratch, "logs")
            os.mkdir(log_dir)
            ordered = sorted(runs.values(), key=lambda r: r["command"] != "migrate")
            for run in ordered:
                if run["command"] in ("serve", "work"):
                    run_service(binary, run, local, log_dir)
                else:
                    run_once(binary, run, local, log_dir)
            for where, query in sorted(queries):
                out = subprocess.run(
                    [args.psql, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", args.database_url, "-c", query],
                    capture_output=True,
                    text=True,
                )
                if out.returncode != 0 or not re.fullmatch(r"\d+", out.stdout.strip()):
                    problem(where, f"KEDA's query does not return one number: {out.stdout.strip()} {out.stderr.strip()}")
                else:
                    print(f"  {where}: KEDA's query returns {out.stdout.strip()}")
            if problems:
                for name in sorted(os.listdir(log_dir)):
                    with open(os.path.join(log_dir, name)) as f:
                        tail = f.read().splitlines()[-15:]
                    print(f"--- {name} ---", *tail, sep="\n", file=sys.stderr)

    for p in problems:
        print(f"k8s-check: {p}", file=sys.stderr)
    if problems:
        print(f"k8s-check: {len(problems)} problems", file=sys.stderr)
        return 1
    print("k8s-check: no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
