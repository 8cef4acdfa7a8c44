//! Property tests: the parser never panics on hostile input and what it
//! accepts round-trips; placement and the scaling state keep their bounds.

use proptest::prelude::*;
use serde_json::Value;
use strato_paas_model::plan::{self, PartitionSlot};
use strato_paas_model::scaling::{self, Action, Point, Sample, ScalingConfig, ScalingState};
use strato_paas_model::{parse, samples, Catalog, Kind, PartitionAlgorithm};

fn kinds() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "80",
            "-1",
            "true",
            "false",
            "cartridge.x",
            "group.",
            "../../etc",
            "a b",
            "0.5",
            "NaN",
            "round-robin",
            "terminate-all",
            "9999999999999999999999",
        ])
        .prop_map(Value::from),
        "[a-z.]{0,12}".prop_map(Value::from),
        Just(Value::Array(vec![])),
        Just(Value::Object(Default::default())),
    ]
}

fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        _ => {}
    }
}

proptest! {
    // No regression files: the cases are cheap and CI runs them fresh.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(kind in kinds(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(kind, &bytes);
    }

    #[test]
    fn mutated_samples_are_refused_or_round_trip(
        file in 0..samples::FILES.len(),
        picks in prop::collection::vec((any::<prop::sample::Index>(), leaf()), 1..4),
    ) {
        let (kind, _, json) = samples::FILES[file];
        let mut v: Value = serde_json::from_str(json).unwrap();
        for (pick, new) in picks {
            let mut ps = Vec::new();
            pointers(&v, String::new(), &mut ps);
            if ps.is_empty() { break; }
            let at: &String = pick.get(&ps);
            *v.pointer_mut(at).unwrap() = new;
        }
        if let Ok(def) = parse(kind, v.to_string().as_bytes()) {
            let again = parse(kind, &def.to_json()).expect("what was accepted reads back");
            prop_assert_eq!(&again, &def);
            // A catalog of one definition is either consistent or refused
            // with a reason; never a panic.
            let _ = Catalog::new().apply(&[strato_paas_model::Change::add(def)]);
        }
    }

    #[test]
    fn placement_respects_partition_max(
        maxes in prop::collection::vec(1u32..8, 1..6),
        n in 0u32..60,
        rr in any::<bool>(),
    ) {
        let algo = if rr { PartitionAlgorithm::RoundRobin } else { PartitionAlgorithm::OneAfterAnother };
        let slots: Vec<PartitionSlot> = maxes.iter().enumerate()
            .map(|(i, m)| PartitionSlot { id: format!("p{i}"), max: *m }).collect();
        let mut counts = vec![0; slots.len()];
        let placed = plan::place(algo, &slots, &mut counts, n);
        let capacity: u32 = maxes.iter().sum();
        prop_assert_eq!(placed.len() as u32, n.min(capacity));
        for (c, m) in counts.iter().zip(&maxes) { prop_assert!(c <= m); }
        if rr {
            // Round-robin keeps partitions with room within one of each other.
            let open: Vec<u32> = counts.iter().zip(&maxes).filter(|(c, m)| c < m).map(|(c, _)| *c).collect();
            if let (Some(lo), Some(hi)) = (open.iter().min(), counts.iter().max()) {
                prop_assert!(hi - lo <= 1 || counts.iter().zip(&maxes).any(|(c, m)| c == m && c > lo));
            }
        }
        // Taking everything back out empties every partition.
        for _ in 0..placed.len() {
            let i = plan::scale_down_partition(algo, &counts).unwrap();
            counts[i] -= 1;
        }
        prop_assert!(counts.iter().all(|c| *c == 0));
        prop_assert_eq!(plan::scale_down_partition(algo, &counts), None);
    }

    #[test]
    fn linear_series_have_their_slope_and_no_curvature(
        a in -1000.0f64..1000.0, b in -100.0f64..100.0, n in 1usize..20, step in 1000i64..5000,
    ) {
        let pts: Vec<Point> = (0..n).map(|i| {
            let t = i as i64 * step;
            Point { at_ms: t, value: a + b * t as f64 / 1000.0 }
        }).collect();
        let t = scaling::trend(&pts).unwrap();
        let expect_gradient = if n > 1 { b } else { 0.0 };
        prop_assert!((t.gradient - expect_gradient).abs() < 1e-6, "{t:?}");
        // With three samples the first half is one sample, whose gradient
        // is 0 (Stratos's rule, kept): only then is there "curvature".
        if n != 3 {
            prop_assert!(t.second_derivative.abs() < 1e-6, "{t:?}");
        }
    }

    #[test]
    fn more_load_never_needs_fewer_instances(p in 0.0f64..1e6, d in 0.0f64..1e6, th in 0.1f64..1000.0) {
        prop_assert!(scaling::required_by_requests_in_flight(p + d, th) >= scaling::required_by_requests_in_flight(p, th));
        prop_assert!(scaling::required_by_load_average(th, p + d, 2) >= scaling::required_by_load_average(th, p, 2));
        let mc = th.min(99.0);
        prop_assert!(scaling::required_by_memory_consumption(mc, (p + d).min(100.0), 1, 5)
            >= scaling::required_by_memory_consumption(mc, p.min(100.0), 1, 5));
    }

    #[test]
    fn the_scaling_state_stays_within_its_bounds(
        steps in prop::collection::vec((0.0f64..200.0, any::<bool>(), 0u8..4), 1..80),
    ) {
        let catalog = Catalog::new().apply(&samples::changes().unwrap()).unwrap();
        let p = plan::plan(&catalog, samples::APPLICATION, samples::APPLICATION_POLICY).unwrap();
        let php = p.cluster_by_alias("my-php").unwrap();
        let policy = &catalog.autoscaling_policies[&php.autoscaling_policy];
        let config = ScalingConfig { cooldown_ms: 2000, ..ScalingConfig::default() };
        let mut s = ScalingState::new(php, policy, config);
        let mut next = 0;
        let mut members: Vec<String> = Vec::new();
        for (i, (rif, activate, kill)) in steps.into_iter().enumerate() {
            let now = i as i64 * 1000;
            s.record(Sample::RequestsInFlight { at_ms: now, value: rif });
            if kill == 0 && !members.is_empty() {
                s.remove_member(&members.remove(0)); // a member died
            }
            match s.evaluate(now).action {
                Action::ScaleUp { spawn, .. } => {
                    for pl in spawn {
                        let id = format!("m{next}");
                        next += 1;
                        prop_assert!(s.add_member(&id, &pl, false));
                        members.push(id);
                    }
                }
                Action::ScaleDown { remove } => {
                    for r in remove {
                        prop_assert!(members.contains(&r.member));
                        members.retain(|m| m != &r.member);
                    }
                    prop_assert!(s.member_count() >= s.min());
                }
                _ => {}
            }
            if activate {
                for m in &members { s.member_active(m); }
            }
            prop_assert!(s.member_count() <= s.max_members());
            prop_assert_eq!(s.member_count() as usize, members.len());
        }
    }
}

/// A case proptest found: a large integer read as a float must print and
/// read back to the same float (serde_json's exact float parsing, its
/// `float_roundtrip` feature; the default fast path was off by one unit).
#[test]
fn a_large_integer_threshold_round_trips() {
    let (kind, _, json) = samples::FILES
        .iter()
        .copied()
        .find(|(k, _, j)| *k == Kind::AutoscalingPolicy && j.contains("loadAverage"))
        .expect("a sample autoscaling policy with loadAverage");
    let mut v: Value = serde_json::from_str(json).unwrap();
    *v.pointer_mut("/loadThresholds/loadAverage/threshold")
        .unwrap() = Value::from(9_013_031_249_439_382_017u64);
    let def = parse(kind, v.to_string().as_bytes()).unwrap();
    let again = parse(kind, &def.to_json()).unwrap();
    assert_eq!(again, def);
}
