//! The sample set in samples/ (Stratos 4.1 shapes) parsed from disk,
//! validated as one catalog, planned, and driven through the scaling rule.

use std::path::Path;
use strato_paas_model::plan::{self, Placement};
use strato_paas_model::samples;
use strato_paas_model::scaling::{Action, Sample, ScalingConfig, ScalingState};
use strato_paas_model::{parse, Catalog, Change, Kind};

fn load_from_disk() -> Vec<Change> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut changes = Vec::new();
    for kind in Kind::ALL {
        let dir = root.join(samples::folder(kind));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let json = std::fs::read(&f).unwrap();
            let def = parse(kind, &json).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            changes.push(Change::add(def));
        }
    }
    changes
}

#[test]
fn samples_on_disk_are_the_embedded_ones() {
    let disk = load_from_disk();
    let embedded = samples::changes().unwrap();
    assert_eq!(disk.len(), embedded.len());
    for c in &embedded {
        assert!(disk.contains(c), "{c:?} not on disk");
    }
}

#[test]
fn samples_parse_validate_and_plan() {
    let catalog = Catalog::new()
        .apply(&load_from_disk())
        .expect("samples are consistent");
    assert_eq!(catalog.cartridges.len(), 2);
    let mysql = &catalog.cartridges["mysql"];
    assert_eq!(mysql.port_mapping[0].port, 3306);
    assert!(mysql.persistence.as_ref().unwrap().is_required);
    assert!(!catalog.cartridges["php"].multi_tenant); // "false" as a string

    let deployed = catalog
        .apply(&[Change::Deploy {
            application_id: samples::APPLICATION.into(),
            application_policy: samples::APPLICATION_POLICY.into(),
        }])
        .unwrap();
    let p = plan::plan(&deployed, samples::APPLICATION, samples::APPLICATION_POLICY).unwrap();
    let ids: Vec<&str> = p.clusters.iter().map(|c| c.cluster_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "php-mysql-app.my-mysql.mysql.domain",
            "php-mysql-app.my-php.php.domain"
        ]
    );
    // mysql first, then php.
    assert_eq!(
        p.stages,
        vec![
            vec!["php-mysql-app.my-mysql.mysql.domain".to_owned()],
            vec!["php-mysql-app.my-php.php.domain".to_owned()]
        ]
    );
    let php = p.cluster_by_alias("my-php").unwrap();
    assert_eq!(php.waits_for, ["php-mysql-app.my-mysql.mysql.domain"]);
    assert_eq!((php.min, php.max), (1, 4));
    assert_eq!(php.hostname, "php-mysql-app.my-php.strato.local");
    assert_eq!(php.network_partitions[0].image, "strato/sample-http:1");
    assert_eq!(php.network_partitions[0].max, 4);
    assert_eq!(php.cpu_millis, Some(500));
    assert_eq!(php.memory_bytes, Some(128 << 20));
    assert_eq!(
        php.initial_members,
        [Placement {
            network_partition: "network-partition-local".into(),
            partition: "partition-a".into()
        }]
    );
    assert_eq!(p.groups.len(), 1);
    assert_eq!(p.groups[0].clusters.len(), 2);

    // The policy in use cannot go while the application uses it.
    let err = deployed
        .apply(&[Change::Remove(
            Kind::AutoscalingPolicy,
            "autoscaling-policy-web".into(),
        )])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("application \"php-mysql-app\" uses it"),
        "{err}"
    );

    // Requests in flight rising 10/s toward 60 → 4 php members (the max).
    let policy = &deployed.autoscaling_policies[&php.autoscaling_policy];
    let mut state = ScalingState::new(php, policy, ScalingConfig::default());
    assert!(state.add_member("php-1", &php.initial_members[0], true));
    for (i, v) in [20.0, 30.0, 40.0, 50.0].into_iter().enumerate() {
        state.record(Sample::RequestsInFlight {
            at_ms: i as i64 * 1000,
            value: v,
        });
    }
    // average 35, gradient 10/s, second derivative 0 → 45 → ceil(45/20) = 3.
    let ev = state.evaluate(3000);
    assert_eq!(ev.figures.required_by_requests_in_flight, Some(3));
    let Action::ScaleUp { spawn, .. } = ev.action else {
        panic!("{:?}", ev.action)
    };
    let parts: Vec<&str> = spawn.iter().map(|p| p.partition.as_str()).collect();
    // Round-robin: partition-a holds php-1, so b then a... a has 1, b 0 → b, then a/b tie → a.
    assert_eq!(parts, ["partition-b", "partition-a"]);
}

/// Every field of Stratos 4.1's beans, filled, reads and writes back under
/// the same name (values of our own; shapes from Stratos's REST beans).
#[test]
fn every_stratos_field_name_round_trips() {
    use serde_json::{json, Value};
    let docs: Vec<(Kind, Value)> = vec![
        (
            Kind::Cartridge,
            json!({
                "type": "tomcat", "provider": "apache", "category": "framework", "host": "example.org",
                "displayName": "Tomcat", "description": "d", "version": "8", "multiTenant": false,
                "deployment": {"baseDir": "/opt", "dir": ["a", "b"]},
                "portMapping": [{"name": "http", "protocol": "http", "port": 8080, "proxyPort": 80, "kubernetesPortType": "NodePort"}],
                "metadataKeys": ["k"],
                "iaasProvider": [{
                    "type": "openstack", "name": "os", "className": "x.Y", "imageId": "img", "provider": "p",
                    "identity": "i", "credential": "c", "property": [{"name": "keyPair", "value": "kp"}],
                    "networkInterfaces": [{"networkUuid": "n", "fixedIp": "10.0.0.9", "portUuid": "pu",
                        "floatingNetworks": [{"name": "f", "networkUuid": "fn", "floatingIP": "1.2.3.4"}]}]
                }],
                "persistence": {"isRequired": true, "volume": [{"id": "v", "size": "10", "device": "/dev/sdb",
                    "removeOnTermination": true, "mappingPath": "/data", "snapshotId": "s", "volumeId": "vi"}]},
                "loadBalancingIPType": "public",
                "property": [{"name": "cpu", "value": "1"}]
            }),
        ),
        (
            Kind::CartridgeGroup,
            json!({
                "name": "g", "groups": [{"name": "h", "cartridges": ["b"], "groupScalingEnabled": false, "groupInstanceMonitoringEnabled": false}],
                "cartridges": ["a"],
                "dependencies": {"startupOrders": [{"aliases": ["cartridge.a", "group.h"]}],
                    "scalingDependents": [{"aliases": ["cartridge.a", "group.h"]}], "terminationBehaviour": "terminate-dependents"},
                "groupScalingEnabled": true, "groupInstanceMonitoringEnabled": true
            }),
        ),
        (
            Kind::Application,
            json!({
                "applicationId": "app", "alias": "my-app", "name": "App", "description": "d", "multiTenant": false,
                "components": {
                    "groups": [{"name": "g", "alias": "gg", "groupMinInstances": 1, "groupMaxInstances": 2,
                        "deploymentPolicy": "dp", "groupScalingEnabled": true,
                        "cartridges": [{"type": "a", "cartridgeMin": 1, "cartridgeMax": 2, "subscribableInfo": {"alias": "aa", "autoscalingPolicy": "asp"}}]}],
                    "cartridges": [{"type": "b", "cartridgeMin": 1, "cartridgeMax": 3, "subscribableInfo": {
                        "alias": "bb", "deploymentPolicy": "dp", "autoscalingPolicy": "asp", "dependencyAliases": ["aa"],
                        "artifactRepository": {"alias": "r", "privateRepo": true, "repoUrl": "https://git.example.org/r.git",
                            "repoUsername": "u", "repoPassword": "p"},
                        "property": [{"name": "x", "value": "y"}],
                        "persistence": {"isRequired": false, "volume": []},
                        "lvsVirtualIP": "10.0.0.100"}}],
                    "dependencies": {"startupOrders": [{"aliases": ["group.gg", "cartridge.bb"]}], "terminationBehaviour": "terminate-all"}
                },
                "property": [{"name": "k", "value": "v"}]
            }),
        ),
        (
            Kind::NetworkPartition,
            json!({"id": "np", "provider": "kubernetes",
            "partitions": [{"id": "p", "description": "d", "property": [{"name": "cluster", "value": "k"}]}],
            "properties": [{"name": "region", "value": "r"}]}),
        ),
        (
            Kind::DeploymentPolicy,
            json!({"id": "dp", "networkPartitions": [{"id": "np", "provider": "kubernetes",
            "partitionAlgo": "round-robin", "partitions": [{"id": "p", "description": "d", "property": [{"name": "a", "value": "b"}], "partitionMax": 4}]}]}),
        ),
        (
            Kind::ApplicationPolicy,
            json!({"id": "ap", "algorithm": "all-at-once", "networkPartitions": ["np"],
            "properties": [{"name": "key-1", "value": "value-1"}]}),
        ),
        (
            Kind::AutoscalingPolicy,
            json!({"id": "asp", "displayName": "A", "description": "d",
            "loadThresholds": {"requestsInFlight": {"threshold": 20.0}, "memoryConsumption": {"threshold": 80.0}, "loadAverage": {"threshold": 70.0}},
            "instanceRoundingFactor": 0.5}),
        ),
        (
            Kind::KubernetesCluster,
            json!({"clusterId": "k", "description": "d",
            "kubernetesHosts": [{"hostId": "h", "hostname": "h.example.org", "privateIPAddress": "10.0.0.2", "publicIPAddress": "1.2.3.5",
                "property": [{"name": "memory", "value": "2Gi"}]}],
            "kubernetesMaster": {"hostId": "m", "hostname": "m.example.org", "privateIPAddress": "10.0.0.1", "publicIPAddress": "1.2.3.4",
                "endpoint": "http://10.0.0.1:8080", "property": [{"name": "KUBERNETES_MASTER_PORT", "value": "8080"}]},
            "portRange": {"upper": 32767, "lower": 30000},
            "property": [{"name": "payload_parameter.X", "value": "1"}]}),
        ),
    ];
    for (kind, doc) in docs {
        let def = parse(kind, doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let back: Value = serde_json::from_slice(&def.to_json()).unwrap();
        assert_eq!(back, doc, "{kind} does not write back what it read");
    }
}
