//! Test fixtures: one valid definition of each kind, consistent together,
//! as JSON values tests mutate.

use crate::{parse, Catalog, Change, Definition, Kind, ModelError};
use serde_json::{json, Value};

pub fn kubernetes_cluster() -> Value {
    json!({
        "clusterId": "k1",
        "kubernetesMaster": {"hostId": "m", "privateIPAddress": "10.0.0.1"},
        "kubernetesHosts": [
            {"hostId": "h1", "privateIPAddress": "10.0.0.2", "property": [{"name": "cpu", "value": "4"}, {"name": "memory", "value": "8Gi"}]},
            {"hostId": "h2", "privateIPAddress": "10.0.0.3"}
        ],
        "portRange": {"lower": 30000, "upper": 32767}
    })
}

pub fn network_partition(id: &str, partitions: &[&str]) -> Value {
    let parts: Vec<Value> = partitions
        .iter()
        .map(|p| json!({"id": p, "property": [{"name": "region", "value": "here"}]}))
        .collect();
    json!({"id": id, "provider": "strato", "partitions": parts})
}

pub fn autoscaling_policy() -> Value {
    json!({
        "id": "asp1",
        "loadThresholds": {
            "requestsInFlight": {"threshold": 10},
            "memoryConsumption": {"threshold": 80},
            "loadAverage": {"threshold": 70}
        }
    })
}

pub fn deployment_policy() -> Value {
    json!({
        "id": "dp1",
        "networkPartitions": [
            {"id": "np1", "partitionAlgo": "round-robin", "partitions": [
                {"id": "p1", "partitionMax": 2}, {"id": "p2", "partitionMax": 3}]},
            {"id": "np2", "partitionAlgo": "one-after-another", "partitions": [
                {"id": "q1", "partitionMax": 2}]}
        ]
    })
}

pub fn application_policy() -> Value {
    json!({"id": "ap1", "algorithm": "one-after-another", "networkPartitions": ["np1", "np2"]})
}

pub fn cartridge(ty: &str, port: u16, proxy: u16) -> Value {
    json!({
        "type": ty,
        "category": "framework",
        "provider": "strato",
        "host": "example.org",
        "portMapping": [{"name": "p", "protocol": "http", "port": port, "proxyPort": proxy}],
        "iaasProvider": [{"type": "strato", "imageId": format!("{ty}:1")}],
        "property": [{"name": "cpu", "value": "250m"}, {"name": "memory", "value": "64Mi"}]
    })
}

pub fn group() -> Value {
    json!({
        "name": "stack",
        "cartridges": ["db", "web"],
        "groups": [{"name": "inner", "cartridges": ["web"]}],
        "dependencies": {
            "startupOrders": [{"aliases": ["cartridge.d", "group.i", "cartridge.w"]}],
            "terminationBehaviour": "terminate-dependents"
        },
        "groupScalingEnabled": false
    })
}

fn sub(ty: &str, alias: &str, min: i64, max: i64, dp: Option<&str>) -> Value {
    let mut s = json!({"alias": alias, "autoscalingPolicy": "asp1"});
    if let Some(dp) = dp {
        s["deploymentPolicy"] = json!(dp);
    }
    json!({"type": ty, "cartridgeMin": min, "cartridgeMax": max, "subscribableInfo": s})
}

pub fn application() -> Value {
    json!({
        "applicationId": "app1",
        "alias": "my-app",
        "components": {
            "groups": [{
                "name": "stack",
                "alias": "s",
                "groupMinInstances": 1,
                "groupMaxInstances": 2,
                "deploymentPolicy": "dp1",
                "cartridges": [sub("db", "d", 1, 1, None), sub("web", "w", 1, 5, None)],
                "groups": [{
                    "name": "inner",
                    "alias": "i",
                    "cartridges": [sub("web", "w2", 2, 3, None)]
                }]
            }],
            "cartridges": [sub("web", "front", 1, 10, Some("dp1"))],
            "dependencies": {
                "startupOrders": [{"aliases": ["group.s", "cartridge.front"]}]
            }
        }
    })
}

/// Every fixture as `(kind, json)`, in dependency order.
pub fn all() -> Vec<(Kind, Value)> {
    vec![
        (Kind::KubernetesCluster, kubernetes_cluster()),
        (Kind::NetworkPartition, {
            let mut np = network_partition("np1", &["p1", "p2"]);
            np["partitions"][0]["property"] = json!([{"name": "cluster", "value": "k1"}]);
            np
        }),
        (Kind::NetworkPartition, network_partition("np2", &["q1"])),
        (Kind::AutoscalingPolicy, autoscaling_policy()),
        (Kind::DeploymentPolicy, deployment_policy()),
        (Kind::ApplicationPolicy, application_policy()),
        (Kind::Cartridge, cartridge("db", 3306, 0)),
        (Kind::Cartridge, cartridge("web", 80, 8080)),
        (Kind::CartridgeGroup, group()),
        (Kind::Application, application()),
    ]
}

pub fn def(kind: Kind, v: &Value) -> Definition {
    parse(kind, v.to_string().as_bytes()).unwrap_or_else(|e| panic!("fixture {kind}: {e}"))
}

/// The catalog of all fixtures.
pub fn catalog() -> Catalog {
    let changes: Vec<Change> = all().iter().map(|(k, v)| Change::add(def(*k, v))).collect();
    Catalog::new()
        .apply(&changes)
        .unwrap_or_else(|e| panic!("fixtures: {e}"))
}

/// Sets the value at a JSON pointer (creating nothing: the parent must exist).
pub fn set(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let p = if parent.is_empty() {
        &mut v
    } else {
        v.pointer_mut(parent).unwrap_or_else(|| panic!("{parent}"))
    };
    match p {
        Value::Object(m) => {
            m.insert(key.to_owned(), new);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = new,
        _ => panic!("{pointer}"),
    }
    v
}

/// Parses `v` as `kind`, expecting an `Invalid` fault; returns (path, message).
pub fn fault(kind: Kind, v: &Value) -> (String, String) {
    match parse(kind, v.to_string().as_bytes()) {
        Err(ModelError::Invalid { path, message, .. }) => (path, message),
        other => panic!("expected a fault, got {other:?}"),
    }
}

/// Asserts that parsing gives a fault at `path` whose message contains `msg`.
#[track_caller]
pub fn assert_fault(kind: Kind, v: &Value, path: &str, msg: &str) {
    let (p, m) = fault(kind, v);
    assert_eq!(p, path, "message: {m}");
    assert!(m.contains(msg), "message {m:?} lacks {msg:?}");
}
