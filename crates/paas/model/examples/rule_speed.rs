//! Measures the pure PaaS logic: parsing, checking and planning the samples,
//! and one scaling evaluation of a 200-member cluster. Prints per-operation
//! times; run with `cargo run --release -p strato-paas-model --example rule_speed`.

use std::time::Instant;
use strato_paas_model::plan::{self, Placement};
use strato_paas_model::samples;
use strato_paas_model::scaling::{Sample, ScalingConfig, ScalingState};
use strato_paas_model::Catalog;

fn main() {
    let n = 2000;
    let t = Instant::now();
    let mut catalog = Catalog::new();
    for _ in 0..n {
        catalog = Catalog::new().apply(&samples::changes().unwrap()).unwrap();
    }
    let per = t.elapsed() / n;
    println!("parse + check the 9 sample definitions: {per:?}");

    let t = Instant::now();
    let mut p = None;
    for _ in 0..n {
        p = Some(plan::plan(&catalog, samples::APPLICATION, samples::APPLICATION_POLICY).unwrap());
    }
    println!("plan the sample application: {:?}", t.elapsed() / n);

    // One cluster of 200 members with 10 s of per-second samples each.
    let p = p.unwrap();
    let mut php = p.cluster_by_alias("my-php").unwrap().clone();
    php.max = 200;
    for np in &mut php.network_partitions {
        np.max = 200;
        for part in &mut np.partitions {
            part.max = 100;
        }
    }
    let policy = &catalog.autoscaling_policies[&php.autoscaling_policy];
    let mut s = ScalingState::new(&php, policy, ScalingConfig::default());
    for i in 0..200 {
        let partition = if i % 2 == 0 {
            "partition-a"
        } else {
            "partition-b"
        };
        let pl = Placement {
            network_partition: "network-partition-local".into(),
            partition: partition.into(),
        };
        assert!(s.add_member(&format!("m{i}"), &pl, true));
    }
    for t in 0..10i64 {
        s.record(Sample::RequestsInFlight {
            at_ms: t * 1000,
            value: 4000.0,
        });
        for i in 0..200 {
            let member = format!("m{i}");
            s.record(Sample::MemoryConsumption {
                member: member.clone(),
                at_ms: t * 1000,
                value: 50.0,
            });
            s.record(Sample::LoadAverage {
                member,
                at_ms: t * 1000,
                value: 40.0,
            });
        }
    }
    // 4000 in flight at 20 per member: 200 required, a hold every round.
    assert_eq!(s.evaluate(9000).figures.required, 200);
    let rounds = 2000;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(s.evaluate(9000));
    }
    println!(
        "evaluate a 200-member cluster (4000 samples in window): {:?}",
        t.elapsed() / rounds
    );
}
