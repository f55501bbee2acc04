#!/bin/bash
# Controller benchmark (docs/benchmarks.md, "Controllers") on hollow nodes with the debug navarch binary: time for a REPLICAS deployment to be
# fully available, then a rollout (command change) with maxSurge 25%.
set -u
BIN=${BIN:-/work/tgt-rs/debug/navarch}
REPLICAS=${1:-1000}
NODES=${2:-20}
W=$(mktemp -d /tmp/rsbench/run.XXXX)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
nats-server -a 127.0.0.1 -p $PORT >$W/nats.log 2>&1 & NATS=$!
U=nats://127.0.0.1:$PORT
C="--nats $U --cluster bench"
echo "benchadmin,admin,admin,\"system:masters\"" > $W/tokens.csv
$BIN store --id 1 --data-dir $W/store $C >$W/store.log 2>&1 & P1=$!
$BIN gateway --api-listen 127.0.0.1:0 --kubeconfig $W/kubeconfig --pki-dir $W/pki --token-auth-file $W/tokens.csv --api-rate-limit-qps 0 $C >$W/gw.log 2>&1 & P2=$!
$BIN scheduler $C >$W/sched.log 2>&1 & P3=$!
$BIN controllers $C >$W/ctrl.log 2>&1 & P4=$!
$BIN agent --simulate $NODES --node-prefix sim $C >$W/agent.log 2>&1 & P5=$!
trap "kill $P5 $P4 $P3 $P2 $P1 $NATS 2>/dev/null" EXIT
export KUBECONFIG=$W/kubeconfig KUBECACHEDIR=$W/cache
for i in $(seq 1 120); do [ -s $W/kubeconfig ] && kubectl --cache-dir $W/cache get nodes --no-headers 2>/dev/null | grep -c " Ready" | grep -q "^$NODES$" && break; sleep 1; done
K="kubectl --cache-dir $W/cache"
$K create namespace bench >/dev/null
manifest() { cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: bench}
spec:
  replicas: $REPLICAS
  selector: {matchLabels: {app: big}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: "25%", maxUnavailable: 0}}
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: main, image: busybox, command: ["sleep", "$1"]}]}
YAML
}
avail() { $K get deploy big -n bench -o jsonpath='{.status.availableReplicas} {.status.updatedReplicas} {.status.replicas} {.metadata.generation} {.status.observedGeneration}'; }
t0=$(date +%s.%N)
manifest 1 | $K apply -f - >/dev/null
while true; do read a u r g o <<<"$(avail)"; [ "${a:-0}" = "$REPLICAS" ] && [ "${r:-0}" = "$REPLICAS" ] && break; sleep 0.5; done
t1=$(date +%s.%N)
echo "create: $REPLICAS replicas on $NODES hollow nodes fully available in $(echo "$t1 - $t0" | bc) s"
manifest 2 | $K apply -f - >/dev/null
while true; do read a u r g o <<<"$(avail)"; [ "$g" = "$o" ] && [ "${u:-0}" = "$REPLICAS" ] && [ "${a:-0}" = "$REPLICAS" ] && [ "${r:-0}" = "$REPLICAS" ] && break; sleep 0.5; done
t2=$(date +%s.%N)
echo "rollout: $REPLICAS replicas, maxSurge 25%, maxUnavailable 0, complete in $(echo "$t2 - $t1" | bc) s"
$K get rs -n bench
