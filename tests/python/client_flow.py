"""The official Python `kubernetes` client (PyPI) against Navarch: create, list, watch, patch, delete.

Run by tests/python_client.rs with KUBECONFIG pointing at a `navarch up`. Prints one line per step and exits
non-zero (with the assertion's message) on the first thing that does not behave as on Kubernetes.
"""

import os
import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NS = "py"


def step(text):
    print(f"ok: {text}", flush=True)


def main():
    config.load_kube_config(os.environ["KUBECONFIG"])
    core = client.CoreV1Api()
    apps = client.AppsV1Api()

    version = client.VersionApi().get_code()
    assert version.minor == "32", version
    step(f"server version {version.git_version}")

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    step("namespace created")

    # A watch on configmaps started before the writes sees them in order.
    seen = []
    started = threading.Event()

    def watch_configmaps():
        w = watch.Watch()
        started.set()
        for event in w.stream(core.list_namespaced_config_map, NS, timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) >= 4:
                w.stop()

    watcher = threading.Thread(target=watch_configmaps)
    watcher.start()
    started.wait()

    for i in range(3):
        core.create_namespaced_config_map(
            NS,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"cfg-{i}", labels={"app": "py", "idx": str(i)}),
                data={"key": f"value-{i}"},
            ),
        )
    step("3 configmaps created")

    listed = core.list_namespaced_config_map(NS, label_selector="app=py,idx!=1")
    names = sorted(cm.metadata.name for cm in listed.items)
    assert names == ["cfg-0", "cfg-2"], names
    assert listed.metadata.resource_version, "a list carries its resourceVersion"
    step("label-selected list")

    patched = core.patch_namespaced_config_map("cfg-0", NS, {"data": {"extra": "yes"}})
    assert patched.data == {"key": "value-0", "extra": "yes"}, patched.data
    step("merge patch")

    try:
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg-0"))
        )
        raise AssertionError("a second create of cfg-0 succeeded")
    except ApiException as e:
        assert e.status == 409, e
        assert '"reason":"AlreadyExists"' in e.body.replace(" ", ""), e.body
    step("AlreadyExists is a 409 ApiException")

    watcher.join(timeout=30)
    assert not watcher.is_alive(), "the watch did not see 4 events"
    assert seen == [
        ("ADDED", "cfg-0"),
        ("ADDED", "cfg-1"),
        ("ADDED", "cfg-2"),
        ("MODIFIED", "cfg-0"),
    ], seen
    step("watch saw the creates and the patch in order")

    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(name="main", image="busybox", command=["sleep", "3613"])
                    ]
                ),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(NS, deployment)
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"
    step("deployment created with defaults")

    # Strategic merge patch: containers merge by name, so the command survives an image change.
    patched = apps.patch_namespaced_deployment(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}}
    )
    container = patched.spec.template.spec.containers[0]
    assert container.image == "busybox:1.36" and container.command == ["sleep", "3613"], container
    assert patched.metadata.generation == 2, patched.metadata.generation
    step("strategic merge patch keeps the other container fields")

    scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
    assert scale.spec.replicas == 2
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 2
    step("scale subresource")

    apps.delete_namespaced_deployment("web", NS)
    core.delete_namespaced_config_map("cfg-1", NS)
    try:
        core.read_namespaced_config_map("cfg-1", NS)
        raise AssertionError("cfg-1 still readable after delete")
    except ApiException as e:
        assert e.status == 404, e
    step("delete, then 404")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the test reports whatever went wrong
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise
